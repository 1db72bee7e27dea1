"""Ray Data row functions around the pure per-problem steps in ``pipeline.stages``.

Rows carry the problem's state as JSON text (``state``) next to a few scalar columns:
nested lists of varying shape (status matrices, candidates) do not survive Arrow's type
unification across blocks, and JSON keeps the records exactly as pydantic wrote them.

    sampled row (cluster.samplers) ──parse_row──► {unit, index, problem_id, state}
        ──ExecutorUDF (cluster.executor_actor)──► state + status
        ──rank_row──► state + outcome + pairs
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from cluster.samplers import SampledRow
from pipeline.config import JobSpec
from pipeline.records import (
    Candidates,
    PreferencePair,
    Problem,
    ProblemOutcome,
    ReplayRow,
    SkipReason,
    StatusMatrix,
)
from pipeline.seeding import derive_seed
from pipeline.stages import candidates_of, rank_and_pair

STAGE_COLUMNS = ("unit", "index", "problem_id", "state")


class ProblemState(BaseModel):
    """What one problem carries between stages."""

    model_config = ConfigDict(frozen=True)

    problem: Problem = Field(description="The problem.")
    candidates: Candidates | None = Field(default=None, description="Parsed candidates.")
    status: StatusMatrix | None = Field(default=None, description="Pass matrix statuses.")
    sampler_errors: list[str] = Field(default_factory=list, description="Failed samples.")
    skip_reason: SkipReason | None = Field(default=None, description="Set when a stage gave up.")
    error: str | None = Field(default=None, description="Why a stage gave up.")
    timings: dict[str, float] = Field(default_factory=dict, description="Seconds per stage.")
    outcome: ProblemOutcome | None = Field(default=None, description="Final outcome.")
    pairs: list[PreferencePair] = Field(default_factory=list, description="Selected pairs.")


def _row(unit: int, index: int, state: ProblemState) -> dict[str, Any]:
    return {
        "unit": unit,
        "index": index,
        "problem_id": state.problem.problem_id,
        "state": state.model_dump_json(),
    }


def load_state(row: dict[str, Any]) -> ProblemState:
    return ProblemState.model_validate_json(row["state"])


def parse_row(row: dict[str, Any], *, problems_per_unit: int) -> dict[str, Any]:
    """Sampled row → candidates.

    A problem left without code samples, or (separate mode) whose test samples all failed,
    is marked ``SAMPLER_ERROR``, not dropped nor passed off as a problem without tests.
    Samples that failed beside successful ones are counted in ``parse_stats``.
    """
    started = time.perf_counter()
    sampled = SampledRow.from_ray_row(row)
    index = sampled.index
    unit = index // problems_per_unit
    tests_failed = sampled.test_completions == [] and bool(sampled.sampler_errors)
    if not (sampled.code_completions or sampled.completions) or tests_failed:
        state = ProblemState(
            problem=sampled.problem,
            sampler_errors=sampled.sampler_errors,
            skip_reason=SkipReason.SAMPLER_ERROR,
            error="; ".join(sampled.sampler_errors[:3]) or "the sampler returned no completions",
        )
        return _row(unit, index, state)
    replay: ReplayRow = sampled.replay_row()
    candidates = candidates_of(replay)
    if sampled.sampler_errors:
        stats = {**candidates.parse_stats, "sampler_errors": len(sampled.sampler_errors)}
        candidates = candidates.model_copy(update={"parse_stats": stats})
    state = ProblemState(
        problem=sampled.problem,
        candidates=candidates,
        sampler_errors=sampled.sampler_errors,
        timings={"parse": time.perf_counter() - started},
    )
    return _row(unit, index, state)


def rank_row(row: dict[str, Any], *, spec: JobSpec, job_id: str) -> dict[str, Any]:
    """Executed row → outcome and pairs (skip rules, ranking, pair selection)."""
    started = time.perf_counter()
    state = load_state(row)
    if state.skip_reason is not None or state.candidates is None or state.status is None:
        outcome = ProblemOutcome(
            job_id=job_id,
            problem_id=state.problem.problem_id,
            candidates=state.candidates,
            status=state.status or [],
            skip_reason=state.skip_reason or SkipReason.NO_CODES,
            error=state.error,
            timings=state.timings,
        )
        pairs: list[PreferencePair] = []
    else:
        outcome, pairs = rank_and_pair(
            state.problem,
            state.candidates,
            state.status,
            spec,
            job_id=job_id,
            seed=derive_seed(job_id, spec.sampler.seed, state.problem.problem_id),
            timings=state.timings,
        )
    timings = {**outcome.timings, "rank": time.perf_counter() - started}
    done = state.model_copy(
        update={"outcome": outcome.model_copy(update={"timings": timings}), "pairs": pairs}
    )
    return {**row, "state": done.model_dump_json()}


def outcome_of(row: dict[str, Any]) -> tuple[ProblemOutcome, list[PreferencePair]]:
    """The final outcome and pairs of a fully processed row."""
    state = load_state(row)
    if state.outcome is None:
        raise ValueError(f"row of problem {row['problem_id']!r} has not been ranked yet")
    return state.outcome, state.pairs
