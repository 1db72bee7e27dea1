"""Where each stage of a build runs and how wide it goes: placement as data, in one place.

``build_placement(spec)`` says, for every stage, what one instance asks Ray for (CPUs,
GPUs, custom resources), how many instances may run (a fixed number, or an autoscaling
``(min, max)`` actor pool) and how many problems one call gets. ``cluster.dataflow``
passes each ``StagePlacement`` to Ray Data unchanged (``**placement.ray_options()``), so
changing where something runs never means editing the wiring::

    placement = build_placement(spec)
    placement.execute.ray_options()
    # {'num_cpus': 0.0, 'resources': {'sandbox': 1.0}, 'compute': ActorPoolStrategy(1..2)}
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from ray.data import ActorPoolStrategy

from pipeline.config import JobSpec, SamplerConfig, SamplerKind
from pipeline.records import PairMethod

SANDBOX_RESOURCE = "sandbox"
"""Custom Ray resource marking nodes with a Docker engine and the sandbox image."""

OPENAI_ACTOR_CPUS = 0.25
"""The HTTP sampler waits on the network; a whole CPU would starve the executors."""

REQUESTS_PER_SLOT = 4
"""HTTP requests queued per concurrency slot in one batch, so slots stay busy at its tail."""


class StagePlacement(BaseModel):
    """What one stage asks Ray for."""

    model_config = ConfigDict(frozen=True)

    num_cpus: float = Field(default=1.0, ge=0, description="CPUs per task or actor.")
    num_gpus: float = Field(default=0.0, ge=0, description="GPUs per task or actor.")
    resources: dict[str, float] = Field(
        default_factory=dict, description="Custom Ray resources per task or actor."
    )
    concurrency: int | tuple[int, int] | None = Field(
        default=None,
        description="Instances: None runs tasks, as many as Ray fits; an int is a fixed "
        "actor pool; (min, max) an autoscaling one.",
    )
    batch_size: int | None = Field(
        default=None, description="Problems per call, for stages that take batches."
    )

    def ray_options(self) -> dict[str, Any]:
        """Keyword arguments for ``Dataset.map`` / ``map_batches``."""
        options: dict[str, Any] = {"num_cpus": self.num_cpus}
        if self.num_gpus:
            options["num_gpus"] = self.num_gpus
        if self.resources:
            options["resources"] = dict(self.resources)
        if isinstance(self.concurrency, tuple):
            low, high = self.concurrency
            options["compute"] = ActorPoolStrategy(min_size=low, max_size=high)
        elif self.concurrency is not None:
            options["compute"] = ActorPoolStrategy(size=self.concurrency)
        if self.batch_size is not None:
            options["batch_size"] = self.batch_size
        return options


class BuildPlacement(BaseModel):
    """The placement of every stage of one build."""

    model_config = ConfigDict(frozen=True)

    sample: StagePlacement = Field(description="The sampler (replay, HTTP or vLLM).")
    parse: StagePlacement = Field(description="Completion parsing; light CPU tasks.")
    execute: StagePlacement = Field(
        description="Executors: one warm sandbox container per actor, on `sandbox` nodes."
    )
    rank: StagePlacement = Field(description="Ranking and pair selection; light CPU tasks.")


def openai_batch_size(config: SamplerConfig) -> int:
    """Problems per batch for the HTTP sampler: enough requests to keep every slot busy."""
    per_problem = config.k * (1 if config.prompt_mode == "joint" else 2)
    return max(1, math.ceil(REQUESTS_PER_SLOT * config.max_concurrency / per_problem))


def _sample_placement(config: SamplerConfig, passes: int) -> StagePlacement:
    if config.kind is SamplerKind.OPENAI:
        # One actor: `max_concurrency` then bounds the requests of the whole job. The
        # rounds of a Target-DPO build share the CPU one actor would take, or six idle
        # HTTP actors would hold the CPUs the parse tasks need.
        return StagePlacement(
            num_cpus=OPENAI_ACTOR_CPUS / passes,
            concurrency=1,
            batch_size=openai_batch_size(config),
        )
    if config.kind is SamplerKind.VLLM:
        # ray.data.llm places its own engine actors from the processor config.
        return StagePlacement(
            num_cpus=0,
            num_gpus=config.tensor_parallel_size,
            concurrency=config.concurrency,
            batch_size=config.batch_size,
        )
    return StagePlacement()


def _execute_passes(spec: JobSpec) -> int:
    """Sample and execute stages in the build's dataflow: one, or one per Target-DPO round.

    Every pass is an actor pool of its own, and a node's ``sandbox`` count says how many
    executors it takes; the passes share it, so a build always fits where one Focused-DPO
    pool does. Later rounds only see the rows that still fail, so most of their
    containers sit warm and idle.
    """
    if spec.pairs.method is PairMethod.TARGET_DPO:
        return spec.pairs.max_rounds + 1
    return 1


def build_placement(spec: JobSpec) -> BuildPlacement:
    """Every stage's placement for a JobSpec."""
    return BuildPlacement(
        sample=_sample_placement(spec.sampler, _execute_passes(spec)),
        parse=StagePlacement(),
        # The container does the work; the actor only waits on it. The custom resource,
        # not CPUs, decides where executors run and how many fit.
        execute=StagePlacement(
            num_cpus=0,
            resources={SANDBOX_RESOURCE: 1.0 / _execute_passes(spec)},
            concurrency=(spec.sandbox.min_workers, spec.sandbox.max_workers),
        ),
        rank=StagePlacement(),
    )
