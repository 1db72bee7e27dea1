"""Sampler stages: source rows → sampled rows (raw completions per problem).

Three kinds, chosen by ``spec.sampler.kind``: ``replay`` (completions already in the
source rows), ``openai`` (an OpenAI-compatible HTTP endpoint) and ``vllm``
(``ray.data.llm`` on GPUs). All produce the rows described in ``cluster.samplers.base``.

    ds = read_source(spec.source, spec.sampler.kind)
    sampled = sample_dataset(ds, spec.sampler, job_id)

Each kind's module is imported only when chosen, so the CPU paths never import vLLM.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from cluster.samplers.base import SAMPLED_COLUMNS, SampledRow
from pipeline.config import SamplerConfig, SamplerKind

if TYPE_CHECKING:
    import ray.data

__all__ = ["SAMPLED_COLUMNS", "SampledRow", "openai_batch_size", "sample_dataset"]

_OPENAI_ACTOR_CPUS = 0.25
"""The HTTP sampler waits on the network; a whole CPU would starve the executors."""

_REQUESTS_PER_SLOT = 4
"""Requests queued per concurrency slot in one batch, so slots stay busy at a batch's tail."""


def openai_batch_size(config: SamplerConfig) -> int:
    """Problems per batch for the HTTP sampler: enough requests to keep every slot busy."""
    per_problem = config.k * (1 if config.prompt_mode == "joint" else 2)
    return max(1, math.ceil(_REQUESTS_PER_SLOT * config.max_concurrency / per_problem))


def sample_dataset(ds: ray.data.Dataset, config: SamplerConfig, job_id: str) -> ray.data.Dataset:
    """Add the sampler stage for ``config.kind`` to a dataset of source rows.

    Raises:
        SamplerUnavailable: kind ``vllm`` without vLLM installed.
    """
    if config.kind is SamplerKind.REPLAY:
        from cluster.samplers.replay import replay_batch

        return ds.map_batches(
            replay_batch,  # type: ignore[arg-type]  # Ray converts our list columns itself
            fn_kwargs={"k": config.k},
        )
    if config.kind is SamplerKind.OPENAI:
        from cluster.samplers.openai_http import OpenAISamplerUDF

        return ds.map_batches(
            OpenAISamplerUDF,
            fn_constructor_kwargs={"config": config, "job_id": job_id},
            batch_size=openai_batch_size(config),
            # One actor: `max_concurrency` then bounds the requests of the whole job.
            concurrency=1,
            num_cpus=_OPENAI_ACTOR_CPUS,
        )
    from cluster.samplers.vllm_processor import build_vllm_sampler

    return build_vllm_sampler(config, job_id)(ds)
