"""The per-problem steps of a Focused-DPO build, as plain functions over ``ProblemState``.

The Ray dataflow (``cluster.dataflow``) maps these over its rows; a notebook can call
them directly with canned data::

    state = ProblemState.from_input(0, replay_row)
    state = parse_step(state)
    state = state.model_copy(update={"status": status_matrix})   # the sandbox's part
    state = rank_step(state, spec, job_id="demo")
    state.outcome, state.pairs

Sampling has its own module (``pipeline.sampling``) and execution happens in the sandbox;
the skip rules are all in ``pipeline.skip_rules``.
"""

from __future__ import annotations

import time

from pipeline.config import JobSpec, SamplerKind
from pipeline.pairing import select_focused_pairs
from pipeline.parsing import parse_replay_row
from pipeline.problem_state import ProblemState
from pipeline.prompts import code_prompt
from pipeline.ranking import binary_matrix, make_ranker
from pipeline.ranking.graph import pass_graph_stats
from pipeline.records import GenerationInfo, ProblemOutcome
from pipeline.seeding import derive_seed
from pipeline.skip_rules import skip_before_ranking


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


def parse_step(state: ProblemState) -> ProblemState:
    """Distinct codes and tests of the sampled completions (none when nothing was sampled)."""
    if not state.has_samples():
        return state
    started = time.perf_counter()
    candidates = parse_replay_row(state.sampled())
    if state.sampler_errors:
        stats = {**candidates.parse_stats, "sampler_errors": len(state.sampler_errors)}
        candidates = candidates.model_copy(update={"parse_stats": stats})
    timings = {**state.timings, "parse": time.perf_counter() - started}
    return state.model_copy(update={"candidates": candidates, "timings": timings})


def rank_step(state: ProblemState, spec: JobSpec, *, job_id: str) -> ProblemState:
    """The problem's outcome and Focused-DPO pairs: skip rules, ranking, pair selection.

    The outcome keeps the whole status matrix and the scores (the evidence behind every
    pair), and the skip reason when no pair was selected.
    """
    started = time.perf_counter()
    outcome = ProblemOutcome(
        job_id=job_id,
        problem_id=state.problem_id,
        candidates=state.candidates,
        status=state.status or [],
        fallback_cells=state.fallback_cells,
    )
    skip = skip_before_ranking(state, spec)
    if skip is not None or state.candidates is None or state.status is None:
        update: dict[str, object] = {"skip_reason": skip.reason if skip else None}
        if skip is not None and skip.error is not None:
            update["error"] = skip.error
        outcome = outcome.model_copy(update=update)
        pairs = []
    else:
        passed = binary_matrix(state.status)
        candidates = state.candidates
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
            prompt=code_prompt(state.problem),
            generation=generation_info(
                spec, derive_seed(job_id, spec.sampler.seed, state.problem_id)
            ),
            status=state.status,
        )
        outcome = outcome.model_copy(
            update={
                "ranking": ranking,
                "pass_graph": pass_graph_stats(passed, candidates.code_counts),
                "pairs_emitted": len(selection.pairs),
                "skip_reason": selection.skip_reason,
            }
        )
        pairs = selection.pairs
    timings = {**state.timings, "rank": time.perf_counter() - started}
    return state.model_copy(
        update={"outcome": outcome.model_copy(update={"timings": timings}), "pairs": pairs}
    )
