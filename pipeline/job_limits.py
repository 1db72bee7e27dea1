"""What a job may ask for, and whether this version can run it at all.

A JobSpec comes from whoever submits it; the resources it asks for (container memory,
processes, CPUs, workers, time budgets, samples, row sizes) are capped by the operator,
never by the caller. ``JobLimits`` holds those maxima; the job service reads them from its
settings and ``pairforge build`` from its environment or a limits file, both as
``PAIRFORGE_MAX_*`` variables named after the fields (``max_memory_mb`` is
``PAIRFORGE_MAX_MEMORY_MB``).

    limits = JobLimits(max_memory_mb=1024)
    problems = limit_violations(spec, limits) + unrunnable_reasons(spec)
    require_runnable(spec, limits)             # JobSpecError listing every problem

Every check answers with one line per problem, naming the JobSpec field, the value seen
and the limit, so the service (HTTP 422) and the CLI (exit 2) print the same words.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from pipeline.config import JobSpec, SamplerKind
from pipeline.errors import JobSpecError
from pipeline.records import PairMethod

ENV_PREFIX = "PAIRFORGE_"
"""Prefix of the environment variables that set the limits (``PAIRFORGE_MAX_PIDS``...)."""


class JobLimits(BaseModel):
    """Operator maxima for every resource a JobSpec can ask for.

    The defaults fit one machine of a few cores and GiB; raise them for a cluster.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_memory_mb: int = Field(
        default=4096, ge=64, description="Largest `sandbox.memory_mb` (MiB per container)."
    )
    max_pids: int = Field(
        default=512, ge=8, description="Largest `sandbox.pids` (processes per container)."
    )
    max_cpus: float = Field(
        default=4.0, gt=0, description="Largest `sandbox.cpus` (CPUs per container)."
    )
    max_workers: int = Field(
        default=16,
        ge=1,
        description="Largest `sandbox.max_workers` (and so `min_workers`): executors, each "
        "with one warm container.",
    )
    max_timeout_s: float = Field(
        default=30.0, gt=0, description="Largest `sandbox.timeout_s` (seconds per test)."
    )
    max_problem_budget_s: float = Field(
        default=1800.0,
        gt=0,
        description="Largest `sandbox.problem_budget_s` (execution seconds per problem).",
    )
    max_k: int = Field(default=200, ge=1, description="Largest `sampler.k` (samples per problem).")
    max_samples_per_job: int = Field(
        default=200_000,
        ge=1,
        description="Largest `sampler.k` × problems in the input (after `source.limit`), "
        "× (1 + `pairs.max_rounds`) for a Target-DPO job, whose trajectories may each ask "
        "for a fix every round.",
    )
    max_tokens: int = Field(
        default=8192, ge=1, description="Largest `sampler.max_tokens` (tokens per completion)."
    )
    max_gpus: int = Field(
        default=8,
        ge=1,
        description="Largest `sampler.concurrency` × `sampler.tensor_parallel_size` (GPUs a "
        "vLLM sampler takes), and largest `num_gpus` of a hand-off's training config.",
    )
    max_batch_size: int = Field(
        default=1024, ge=1, description="Largest `sampler.batch_size` (rows per vLLM batch)."
    )
    max_requests_in_flight: int = Field(
        default=64,
        ge=1,
        description="Largest `sampler.max_concurrency` (requests to an OpenAI endpoint at once).",
    )
    max_request_timeout_s: float = Field(
        default=600.0, gt=0, description="Largest `sampler.request_timeout_s`."
    )
    max_retries: int = Field(default=10, ge=0, description="Largest `sampler.max_retries`.")
    max_problems_per_unit: int = Field(
        default=1024,
        ge=1,
        description="Largest `output.problems_per_unit` (problems held in memory per work unit).",
    )
    max_row_bytes: int = Field(
        default=8 * 1024 * 1024,
        ge=1024,
        description="Largest input row (one JSONL line or Parquet row) in bytes; a longer one "
        "is an input error naming its line.",
    )

    @classmethod
    def env_name(cls, field: str) -> str:
        """The environment variable that sets ``field``: ``PAIRFORGE_MAX_PIDS``."""
        return ENV_PREFIX + field.upper()


@dataclass(frozen=True)
class _Cap:
    """One JobSpec value and the limit that caps it."""

    field: str
    limit: str
    value: Callable[[JobSpec], float]
    applies: Callable[[JobSpec], bool] = lambda _spec: True


# Every resource-bearing JobSpec field and its maximum; a new such field belongs here.
_CAPS = (
    _Cap("sandbox.memory_mb", "max_memory_mb", lambda s: s.sandbox.memory_mb),
    _Cap("sandbox.pids", "max_pids", lambda s: s.sandbox.pids),
    _Cap("sandbox.cpus", "max_cpus", lambda s: s.sandbox.cpus),
    _Cap("sandbox.max_workers", "max_workers", lambda s: s.sandbox.max_workers),
    _Cap("sandbox.min_workers", "max_workers", lambda s: s.sandbox.min_workers),
    _Cap("sandbox.timeout_s", "max_timeout_s", lambda s: s.sandbox.timeout_s),
    _Cap("sandbox.problem_budget_s", "max_problem_budget_s", lambda s: s.sandbox.problem_budget_s),
    _Cap("sampler.k", "max_k", lambda s: s.sampler.k),
    _Cap("sampler.max_tokens", "max_tokens", lambda s: s.sampler.max_tokens),
    _Cap(
        "sampler.concurrency × sampler.tensor_parallel_size",
        "max_gpus",
        lambda s: s.sampler.concurrency * s.sampler.tensor_parallel_size,
        lambda s: s.sampler.kind is SamplerKind.VLLM,
    ),
    _Cap(
        "sampler.batch_size",
        "max_batch_size",
        lambda s: s.sampler.batch_size,
        lambda s: s.sampler.kind is SamplerKind.VLLM,
    ),
    _Cap(
        "sampler.max_concurrency",
        "max_requests_in_flight",
        lambda s: s.sampler.max_concurrency,
        lambda s: s.sampler.kind is SamplerKind.OPENAI,
    ),
    _Cap(
        "sampler.request_timeout_s",
        "max_request_timeout_s",
        lambda s: s.sampler.request_timeout_s,
        lambda s: s.sampler.kind is SamplerKind.OPENAI,
    ),
    _Cap(
        "sampler.max_retries",
        "max_retries",
        lambda s: s.sampler.max_retries,
        lambda s: s.sampler.kind is SamplerKind.OPENAI,
    ),
    _Cap("output.problems_per_unit", "max_problems_per_unit", lambda s: s.output.problems_per_unit),
)


def _shown(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def limit_violations(spec: JobSpec, limits: JobLimits) -> list[str]:
    """One line per JobSpec value above the operator's limit (empty when all fit)."""
    problems = []
    for cap in _CAPS:
        if not cap.applies(spec):
            continue
        value = cap.value(spec)
        limit: float = getattr(limits, cap.limit)
        if value > limit:
            problems.append(
                f"{cap.field}: {_shown(value)} is over the limit of {_shown(limit)} set by "
                f"the operator ({JobLimits.env_name(cap.limit)}); ask for at most {_shown(limit)}"
            )
    return problems


def sample_count_problem(problems: int, spec: JobSpec, limits: JobLimits) -> str | None:
    """The line refusing ``problems`` × k samples over ``max_samples_per_job``, or None.

    ``problems`` must be the exact count the build will sample (after ``source.limit``).
    """
    samples = problems * spec.sampler.k
    shown = f"{problems} problems × k={spec.sampler.k}"
    if spec.pairs.method is PairMethod.TARGET_DPO:
        # Every trajectory may ask for a fix in every round: the most the build can send.
        rounds = spec.pairs.max_rounds
        samples *= 1 + rounds
        shown += f" × (1 + max_rounds={rounds})"
    if samples <= limits.max_samples_per_job:
        return None
    return (
        f"sampler.k: {shown} = {samples} samples at most, over the "
        f"limit of {limits.max_samples_per_job} per job set by the operator "
        f"({JobLimits.env_name('max_samples_per_job')}); lower sampler.k, set source.limit, "
        "or split the job"
    )


def unrunnable_reasons(spec: JobSpec) -> list[str]:
    """One line per part of ``spec`` that this version of the build cannot run."""
    reasons = []
    handoff = spec.handoff
    if handoff is not None and handoff.submit and not handoff.training_config.strip():
        reasons.append(
            "handoff.training_config: a hand-off that submits the training job needs the "
            "path of its training config (YAML); got none"
        )
    if handoff is not None and handoff.submit and not handoff.entrypoint.strip():
        reasons.append(
            "handoff.entrypoint: a hand-off that submits the training job needs its command; "
            "got an empty one"
        )
    return reasons


def training_gpus_problem(num_gpus: int, limits: JobLimits) -> str | None:
    """The line refusing a training config's ``num_gpus`` over ``max_gpus``, or None."""
    if num_gpus <= limits.max_gpus:
        return None
    return (
        f"handoff.training_config: num_gpus {num_gpus} is over the limit of "
        f"{limits.max_gpus} set by the operator ({JobLimits.env_name('max_gpus')}); ask for "
        f"at most {limits.max_gpus}"
    )


def require_runnable(spec: JobSpec, limits: JobLimits, *, problems: int | None = None) -> None:
    """Refuse a job this version cannot run or that asks for more than ``limits`` allow.

    Args:
        problems: the exact number of problems the build will sample, when known; then
            k × problems is checked too.

    Raises:
        JobSpecError: ``problems`` lists every reason, one line each.
    """
    found = unrunnable_reasons(spec) + limit_violations(spec, limits)
    if problems is not None:
        too_many = sample_count_problem(problems, spec, limits)
        if too_many is not None:
            found.append(too_many)
    if found:
        raise JobSpecError("this job cannot run:\n  " + "\n  ".join(found), found)
