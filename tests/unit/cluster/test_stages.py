"""The parse stage: sampled rows in, problem states out, sampler failures kept visible."""

from __future__ import annotations

from cluster.samplers.base import SampledRow
from cluster.stages import ProblemState, load_state, parse_row
from pipeline.records import Problem, SkipReason

PROBLEM = Problem(problem_id="P/1", prompt="def f():\n", entry_point="f")


def parsed(**completions: object) -> ProblemState:
    row = SampledRow(index=5, problem=PROBLEM, **completions)
    out = parse_row(row.to_ray_row(), problems_per_unit=2)
    assert (out["unit"], out["index"], out["problem_id"]) == (2, 5, "P/1")
    return load_state(out)


def test_all_test_samples_failed_is_a_sampler_error_not_a_problem_without_tests() -> None:
    state = parsed(
        code_completions=["    return 1\n"],
        test_completions=[],
        sampler_errors=["test sample 0: HTTP 400", "test sample 1: HTTP 400"],
    )
    assert state.skip_reason is SkipReason.SAMPLER_ERROR
    assert state.error is not None and "test sample 0: HTTP 400" in state.error


def test_replayed_row_without_tests_and_without_errors_is_parsed() -> None:
    state = parsed(code_completions=["    return 1\n"], test_completions=[])
    assert state.skip_reason is None
    assert state.candidates is not None and state.candidates.tests == []


def test_failed_samples_beside_good_ones_are_counted() -> None:
    state = parsed(
        code_completions=["    return 1\n", "    return 2\n"],
        test_completions=["assert f() == 1"],
        sampler_errors=["code sample 2: gave up", "test sample 1: gave up"],
    )
    assert state.skip_reason is None
    assert state.candidates is not None
    assert state.candidates.parse_stats["sampler_errors"] == 2
    assert len(state.candidates.codes) == 2


def test_no_code_samples_is_a_sampler_error() -> None:
    state = parsed(completions=[], sampler_errors=["joint sample 0: timed out"])
    assert state.skip_reason is SkipReason.SAMPLER_ERROR
    assert state.candidates is None
