"""The per-problem steps: parse_step and rank_step over ProblemState, with canned matrices."""

from __future__ import annotations

from typing import Any

import pytest

from pipeline.config import JobSpec
from pipeline.errors import ContractViolation
from pipeline.problem_state import ProblemState
from pipeline.prompts import code_prompt
from pipeline.records import CellStatus, PairMethod, Problem, ReplayRow, SkipReason
from pipeline.stages import generation_info, parse_step, rank_step

P, F, SB = CellStatus.PASSED, CellStatus.FAILED, CellStatus.SANDBOX_ERROR

PROBLEM = Problem(problem_id="P/1", prompt="def inc(x):\n", entry_point="inc")
RIGHT = "    y = x\n    return y + 1\n"
WRONG = "    y = x\n    return y - 1\n"
TESTS = ["assert inc(1) == 2", "assert inc(0) == 1\nassert inc(2) == 3"]


def spec(**sections: Any) -> JobSpec:
    return JobSpec.model_validate(
        {
            "source": {"path": "in.jsonl"},
            "sampler": {"kind": "replay", "k": 3},
            "output": {"uri": "/tmp/out"},
            **sections,
        }
    )


def sampled(**completions: Any) -> ProblemState:
    """A problem as the sampler hands it on."""
    return ProblemState(index=5, problem=PROBLEM, **completions)


def executed(status: list[list[CellStatus]], **update: Any) -> ProblemState:
    """Two codes (RIGHT twice, WRONG once) and three tests, parsed, with a canned matrix."""
    state = parse_step(sampled(code_completions=[RIGHT, WRONG, RIGHT], test_completions=TESTS))
    return state.model_copy(update={"status": status, **update})


# ------------------------------------------------------------------ parse_step


def test_parse_step_finds_distinct_codes_and_tests_with_their_counts():
    state = parse_step(sampled(code_completions=[RIGHT, WRONG, RIGHT], test_completions=TESTS))
    assert state.candidates is not None
    assert [(c.completion, c.count) for c in state.candidates.codes] == [(RIGHT, 2), (WRONG, 1)]
    assert [t.source for t in state.candidates.tests] == [
        "assert inc(1) == 2",
        "assert inc(0) == 1",
        "assert inc(2) == 3",
    ]
    assert "sampler_errors" not in state.candidates.parse_stats
    assert state.timings["parse"] >= 0
    assert (state.index, state.problem) == (5, PROBLEM)


def test_failed_samples_beside_good_ones_are_counted_in_the_parse_stats():
    state = parse_step(
        sampled(
            code_completions=["    return 1\n", "    return 2\n"],
            test_completions=["assert inc(1) == 1"],
            sampler_errors=["code sample 2: gave up", "test sample 1: gave up"],
        )
    )
    assert state.candidates is not None
    assert state.candidates.parse_stats["sampler_errors"] == 2
    assert len(state.candidates.codes) == 2


@pytest.mark.parametrize(
    "completions",
    [
        {"completions": [], "sampler_errors": ["joint sample 0: timed out"]},
        {"code_completions": [], "test_completions": ["assert inc(1) == 2"]},
    ],
    ids=["joint", "separate"],
)
def test_parse_step_passes_a_problem_without_code_samples_on_unparsed(completions):
    state = sampled(**completions)
    assert parse_step(state) == state


# ------------------------------------------------------------------ rank_step: skips


def test_all_test_samples_failed_is_a_sampler_error_not_a_problem_without_tests():
    state = parse_step(
        sampled(
            code_completions=[RIGHT],
            test_completions=[],
            sampler_errors=["test sample 0: HTTP 400", "test sample 1: HTTP 400"],
        )
    )
    ranked = rank_step(state, spec(), job_id="j")
    assert ranked.outcome is not None
    assert ranked.outcome.skip_reason is SkipReason.SAMPLER_ERROR
    assert ranked.outcome.error is not None and "test sample 0: HTTP 400" in ranked.outcome.error
    assert ranked.pairs == []


def test_no_code_samples_is_a_sampler_error_naming_the_failures():
    state = parse_step(sampled(completions=[], sampler_errors=["joint sample 0: timed out"]))
    ranked = rank_step(state, spec(), job_id="j")
    assert ranked.outcome is not None
    assert ranked.outcome.skip_reason is SkipReason.SAMPLER_ERROR
    assert ranked.outcome.error == "joint sample 0: timed out"
    assert ranked.outcome.candidates is None and ranked.outcome.status == []


def test_a_replayed_problem_without_tests_and_without_errors_is_no_tests():
    state = parse_step(sampled(code_completions=[RIGHT], test_completions=[]))
    assert state.candidates is not None and state.candidates.tests == []
    ranked = rank_step(state.model_copy(update={"status": [[]]}), spec(), job_id="j")
    assert ranked.outcome is not None
    assert ranked.outcome.skip_reason is SkipReason.NO_TESTS
    assert ranked.outcome.error is None


def test_codes_that_parse_to_nothing_are_no_codes():
    state = parse_step(sampled(code_completions=["", "   \n"], test_completions=TESTS))
    ranked = rank_step(state, spec(), job_id="j")
    assert ranked.outcome is not None
    assert ranked.outcome.skip_reason is SkipReason.NO_CODES


def test_a_problem_past_its_time_budget_is_skipped_whatever_its_partial_matrix_says():
    state = executed([[P, P, P], [F, F, F]], budget_exceeded=True)
    ranked = rank_step(state, spec(sandbox={"problem_budget_s": 7}), job_id="j")
    assert ranked.outcome is not None
    assert ranked.outcome.skip_reason is SkipReason.TIME_BUDGET
    assert ranked.outcome.error is not None and "7.0 s" in ranked.outcome.error
    assert ranked.pairs == [] and ranked.outcome.pairs_emitted == 0
    # The evidence stays in the outcome.
    assert ranked.outcome.status == [[P, P, P], [F, F, F]]


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        ([[P, P, P], [P, P, P]], SkipReason.ALL_PASS),
        ([[F, F, F], [F, F, F]], SkipReason.ALL_FAIL),
        ([[P, SB, SB], [F, SB, F]], SkipReason.SANDBOX_ERROR),
    ],
)
def test_matrix_rules_skip_before_ranking(status, reason):
    ranked = rank_step(executed(status), spec(), job_id="j")
    assert ranked.outcome is not None
    assert (ranked.outcome.skip_reason, ranked.outcome.ranking) == (reason, None)
    assert ranked.pairs == []


def test_a_problem_with_candidates_but_no_matrix_is_a_contract_violation():
    state = parse_step(sampled(code_completions=[RIGHT, WRONG], test_completions=TESTS))
    with pytest.raises(ContractViolation, match="no status"):
        rank_step(state, spec(), job_id="j")


# ------------------------------------------------------------------ rank_step: pairs


def test_a_normal_problem_is_ranked_and_gives_a_focused_pair_of_right_over_wrong():
    ranked = rank_step(executed([[P, P, P], [F, F, F]]), spec(), job_id="job-9")
    outcome = ranked.outcome
    assert outcome is not None
    assert outcome.skip_reason is None and outcome.error is None
    assert outcome.ranking is not None and outcome.ranking.order == [0, 1]
    assert outcome.pairs_emitted == len(ranked.pairs) == 1
    assert set(outcome.timings) >= {"parse", "rank"}
    (pair,) = ranked.pairs
    assert (pair.chosen, pair.rejected) == (RIGHT, WRONG)
    assert (pair.chosen_index, pair.rejected_index) == (0, 1)
    assert (pair.job_id, pair.problem_id, pair.method) == ("job-9", "P/1", PairMethod.FOCUSED_DPO)
    assert pair.prompt == code_prompt(PROBLEM)
    assert pair.focused and pair.spans is not None
    # Only the differing character is in the mid: "+" against "-".
    chosen_mid = pair.chosen[pair.spans.chosen_mid_start : pair.spans.chosen_mid_end]
    rejected_mid = pair.rejected[pair.spans.rejected_mid_start : pair.spans.rejected_mid_end]
    assert (chosen_mid, rejected_mid) == ("+", "-")
    assert (pair.generation.sampler, pair.generation.k) == ("replay", 3)


def test_the_seed_recorded_with_a_pair_is_stable_within_a_job_and_differs_across_jobs():
    state = executed([[P, P, P], [F, F, F]])
    seeds = [rank_step(state, spec(), job_id=job).pairs[0].generation.seed for job in "aab"]
    assert seeds[0] is not None and seeds[0] == seeds[1] != seeds[2]


def test_the_ranker_of_the_spec_is_used():
    ranked = rank_step(
        executed([[P, P, F], [F, F, P]]), spec(ranking={"ranker": "codet"}), job_id="j"
    )
    assert ranked.outcome is not None and ranked.outcome.ranking is not None
    assert ranked.outcome.ranking.ranker == "codet"
    assert all(p.ranker == "codet" for p in ranked.pairs)


def test_ranking_is_deterministic_for_a_job():
    state = executed([[P, P, F], [F, P, P]])
    first = rank_step(state, spec(), job_id="j")
    again = rank_step(state, spec(), job_id="j")
    assert first.pairs == again.pairs
    assert first.outcome is not None and again.outcome is not None
    assert first.outcome.ranking == again.outcome.ranking


def test_replayed_samples_record_no_sampling_settings_live_ones_do():
    replay = generation_info(spec(), 11)
    assert (replay.sampler, replay.temperature, replay.top_p, replay.k, replay.seed) == (
        "replay",
        None,
        None,
        3,
        11,
    )
    live = generation_info(
        spec(
            sampler={
                "kind": "openai",
                "model": "m",
                "base_url": "http://x/v1",
                "temperature": 0.8,
                "top_p": 0.9,
            }
        ),
        None,
    )
    assert (live.model, live.sampler, live.temperature, live.top_p) == ("m", "openai", 0.8, 0.9)


def test_rank_step_takes_replay_rows_through_from_input():
    row = ReplayRow(
        problem_id="P/1",
        prompt=PROBLEM.prompt,
        entry_point="inc",
        code_completions=[RIGHT, WRONG],
        test_completions=TESTS,
    )
    state = parse_step(ProblemState.from_input(0, row))
    ranked = rank_step(
        state.model_copy(update={"status": [[P, P, P], [F, P, F]]}), spec(), job_id="j"
    )
    assert ranked.outcome is not None and ranked.outcome.skip_reason is None
    assert [(p.chosen, p.rejected) for p in ranked.pairs] == [(RIGHT, WRONG)]
