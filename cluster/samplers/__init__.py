"""Sampler stages: problems → problems with their raw completions.

Three kinds, chosen by ``spec.sampler.kind``: ``replay`` (completions recorded in the
input), ``openai`` (an OpenAI-compatible HTTP endpoint) and ``vllm`` (``ray.data.llm`` on
GPUs). All plan and regroup their requests with ``pipeline.sampling``, so every kind hands
the parser the same ``ProblemState``.

Each kind's module is imported only when chosen, so the CPU paths never import vLLM.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cluster.placement import StagePlacement
from pipeline.config import SamplerConfig, SamplerKind
from pipeline.sampling import first_k

if TYPE_CHECKING:
    import ray.data

__all__ = ["add_sample_stage"]


# Ray Data names operators after their function or class; every sampler's is `sample`.


def sample(row: dict[str, Any], *, k: int) -> dict[str, Any]:
    """Ray Data ``map``, kind ``replay``: the first ``k`` recorded completions of a problem."""
    return {"state": first_k(row["state"], k)}


def add_sample_stage(
    ds: ray.data.Dataset,
    config: SamplerConfig,
    job_id: str,
    placement: StagePlacement,
    round_: int | None = None,
) -> ray.data.Dataset:
    """Add the sampler stage for ``config.kind`` to a dataset of ``{"state": ProblemState}``.

    ``round_`` is the Target-DPO round the stage samples for (None: a Focused-DPO build).
    Replay cannot refine; the job's validation refuses that pairing before a build starts.

    Raises:
        SamplerUnavailable: kind ``vllm`` without vLLM installed.
    """
    if config.kind is SamplerKind.REPLAY:
        return ds.map(
            sample,  # type: ignore[arg-type]  # Ray passes fn_kwargs; its stub does not say so
            fn_kwargs={"k": config.k},
            **placement.ray_options(),
        )
    if config.kind is SamplerKind.OPENAI:
        from cluster.samplers.openai_http import sample as openai_sample

        return ds.map_batches(
            openai_sample,
            fn_constructor_kwargs={"config": config, "job_id": job_id, "round_": round_},
            **placement.ray_options(),
        )
    from cluster.samplers.vllm_processor import build_vllm_sampler

    return build_vllm_sampler(config, job_id, round_)(ds)
