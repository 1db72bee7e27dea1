"""The per-problem steps of a Focused-DPO build, as plain functions over records.

The Ray driver calls these from its stages; a notebook can call them directly with
canned data. Order: ``candidates_of`` (parse) → the sandbox builds the status matrix →
``rank_and_pair`` (skip rules, ranking, pair selection) → one ``ProblemOutcome`` and its
``PreferencePair``s.
"""

from __future__ import annotations

from collections.abc import Mapping

from pipeline.config import JobSpec, SamplerKind
from pipeline.pairing import select_focused_pairs
from pipeline.parsing import parse_replay_row
from pipeline.prompts import code_prompt
from pipeline.ranking import binary_matrix, make_ranker, skip_reason_for
from pipeline.records import (
    Candidates,
    GenerationInfo,
    PreferencePair,
    Problem,
    ProblemOutcome,
    ReplayRow,
    StatusMatrix,
)

MAX_TESTS_PER_SAMPLE = 5
"""CodeT's ``test_case_limit``: asserts kept from one test sample."""


def generation_info(spec: JobSpec, seed: int | None) -> GenerationInfo:
    """Provenance recorded with every pair of a problem."""
    sampler = spec.sampler
    # Replayed samples were drawn elsewhere: the spec's sampling settings did not apply.
    live = sampler.kind is not SamplerKind.REPLAY
    return GenerationInfo(
        model=sampler.model,
        sampler=sampler.kind.value,
        temperature=sampler.temperature if live else None,
        top_p=sampler.top_p if live else None,
        k=sampler.k,
        seed=seed,
    )


def candidates_of(row: ReplayRow) -> Candidates:
    """Distinct codes and tests of a sampled (or replayed) problem."""
    return parse_replay_row(row, max_tests_per_sample=MAX_TESTS_PER_SAMPLE)


def rank_and_pair(
    problem: Problem,
    candidates: Candidates,
    status: StatusMatrix,
    spec: JobSpec,
    *,
    job_id: str,
    seed: int | None = None,
    timings: Mapping[str, float] | None = None,
) -> tuple[ProblemOutcome, list[PreferencePair]]:
    """Rank one executed problem and select its Focused-DPO pairs.

    Returns the problem's outcome (with the whole status matrix, scores and the skip
    reason when no pair was selected) and the selected pairs.
    """
    outcome = ProblemOutcome(
        job_id=job_id,
        problem_id=problem.problem_id,
        candidates=candidates,
        status=status,
        timings=dict(timings or {}),
    )
    reason = skip_reason_for(status, max_sandbox_error_frac=spec.pairs.max_sandbox_error_frac)
    if reason is not None:
        return outcome.model_copy(update={"skip_reason": reason}), []

    passed = binary_matrix(status)
    ranking = make_ranker(spec.ranking).rank(
        passed,
        candidates.code_counts,
        candidates.test_counts,
        [code.first_sample for code in candidates.codes],
    )
    selection = select_focused_pairs(
        candidates,
        passed,
        ranking,
        spec.pairs,
        job_id=job_id,
        prompt=code_prompt(problem),
        generation=generation_info(spec, seed),
    )
    update = {
        "ranking": ranking,
        "pairs_emitted": len(selection.pairs),
        "skip_reason": selection.skip_reason,
    }
    return outcome.model_copy(update=update), selection.pairs
