"""Skip rules applied before ranking (ALGORITHMS.md §1.4, §5.6)."""

from __future__ import annotations

import pytest

from pipeline.config import JobSpec
from pipeline.errors import ContractViolation
from pipeline.problem_state import ProblemState
from pipeline.records import (
    Candidates,
    CellStatus,
    CodeCandidate,
    Problem,
    SkipReason,
    StatusMatrix,
    TestCandidate,
)
from pipeline.skip_rules import Skip, skip_before_ranking, skip_reason_for

P, F, E, T, SB = (
    CellStatus.PASSED,
    CellStatus.FAILED,
    CellStatus.ERROR,
    CellStatus.TIMEOUT,
    CellStatus.SANDBOX_ERROR,
)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ([], SkipReason.NO_CODES),
        ([[], []], SkipReason.NO_TESTS),
        ([[F, E], [T, F]], SkipReason.ALL_FAIL),
        ([[P, P], [P, P]], SkipReason.ALL_PASS),
        ([[P, F], [P, P]], None),
        ([[P, T], [E, E]], None),
        # 2 of 4 cells are sandbox errors: 0.5 > 0.2.
        ([[P, SB], [SB, F]], SkipReason.SANDBOX_ERROR),
        # 1 of 5 cells (0.2) is tolerated, and the rest pass: a sandbox error is no negative.
        ([[P, P, P, P, SB]], SkipReason.ALL_PASS),
        # Sandbox errors beside failures only: still nothing passed.
        ([[F, F, F, F, SB]], SkipReason.ALL_FAIL),
        ([[P, F, P, P, SB]], None),
    ],
)
def test_rules(status: list[list[CellStatus]], expected: SkipReason | None) -> None:
    assert skip_reason_for(status, max_sandbox_error_frac=0.2) is expected


def test_sandbox_errors_are_checked_before_pass_counts() -> None:
    # Every cell is a sandbox error: with a 0.5 limit that is the reason, not ALL_FAIL.
    assert skip_reason_for([[SB, SB]], max_sandbox_error_frac=0.5) is SkipReason.SANDBOX_ERROR
    # With the limit at 1.0 sandbox errors are tolerated; nothing passed, so ALL_FAIL.
    assert skip_reason_for([[SB, SB]], max_sandbox_error_frac=1.0) is SkipReason.ALL_FAIL


def test_zero_tolerance_skips_on_a_single_sandbox_error() -> None:
    status = [[P, F, F], [F, P, SB]]
    assert skip_reason_for(status, max_sandbox_error_frac=0.0) is SkipReason.SANDBOX_ERROR
    assert skip_reason_for(status, max_sandbox_error_frac=1 / 6) is None


def test_bad_threshold_and_ragged_matrix_are_refused() -> None:
    with pytest.raises(ValueError, match=r"\[0, 1\], got 1.5"):
        skip_reason_for([[P]], max_sandbox_error_frac=1.5)
    with pytest.raises(ContractViolation, match="rectangular"):
        skip_reason_for([[P, F], [P]], max_sandbox_error_frac=0.2)


# ------------------------------------------------------------------ skip_before_ranking

SPEC = JobSpec.model_validate(
    {
        "source": {"path": "in.jsonl"},
        "sampler": {"kind": "replay", "k": 2},
        "sandbox": {"problem_budget_s": 30},
        "output": {"uri": "/tmp/out"},
    }
)
PROBLEM = Problem(problem_id="P/1", prompt="def f():\n", entry_point="f")
CODE = CodeCandidate(
    completion="    return 1\n", program="def f():\n    return 1\n", count=1, first_sample=0
)
TEST = TestCandidate(source="assert f() == 1", count=1, first_sample=0)


def state(
    *,
    codes: int = 2,
    tests: int = 2,
    parsed: bool = True,
    status: StatusMatrix | None = None,
    **update: object,
) -> ProblemState:
    """A problem after execution: sampled (separately), parsed and, if given, its matrix."""
    candidates = Candidates(problem_id="P/1", codes=[CODE] * codes, tests=[TEST] * tests)
    fields: dict[str, object] = {
        "code_completions": ["    return 1\n"] * 2,
        "test_completions": ["assert f() == 1"] * 2,
        "candidates": candidates if parsed else None,
        "status": status,
        **update,
    }
    return ProblemState(index=0, problem=PROBLEM, **fields)


def reason(s: ProblemState) -> SkipReason | None:
    skip = skip_before_ranking(s, SPEC)
    return None if skip is None else skip.reason


def test_a_ranked_problem_with_a_mixed_matrix_has_no_skip() -> None:
    assert skip_before_ranking(state(status=[[P, F], [F, P]]), SPEC) is None


def test_no_code_sample_is_a_sampler_error_before_every_other_rule() -> None:
    # Whatever else the state says (no candidates, an overrun budget), the endpoint is the cause.
    failed = state(
        code_completions=[],
        parsed=False,
        budget_exceeded=True,
        sampler_errors=["code sample 0: HTTP 503", "code sample 1: HTTP 503"],
    )
    assert skip_before_ranking(failed, SPEC) == Skip(
        SkipReason.SAMPLER_ERROR, "code sample 0: HTTP 503; code sample 1: HTTP 503"
    )


def test_a_sampler_error_names_at_most_three_failures() -> None:
    errors = [f"joint sample {i}: timed out" for i in range(5)]
    failed = state(
        code_completions=None,
        test_completions=None,
        completions=[],
        parsed=False,
        sampler_errors=errors,
    )
    skip = skip_before_ranking(failed, SPEC)
    assert skip is not None and skip.reason is SkipReason.SAMPLER_ERROR
    assert skip.error == "; ".join(errors[:3])


def test_a_sampler_that_returned_nothing_without_errors_is_still_a_sampler_error() -> None:
    skip = skip_before_ranking(
        state(code_completions=None, test_completions=None, parsed=False), SPEC
    )
    assert skip == Skip(SkipReason.SAMPLER_ERROR, "the sampler returned no completions")


def test_every_test_sample_failing_is_a_sampler_error_not_no_tests() -> None:
    failed = state(tests=0, test_completions=[], sampler_errors=["test sample 0: HTTP 400"])
    assert reason(failed) is SkipReason.SAMPLER_ERROR


def test_no_test_samples_without_errors_is_no_tests() -> None:
    # A replay file may record no tests at all: that is the data, not the endpoint.
    assert reason(state(tests=0, test_completions=[], status=[[], []])) is SkipReason.NO_TESTS


def test_no_codes_comes_before_no_tests() -> None:
    assert reason(state(codes=0, tests=0)) is SkipReason.NO_CODES
    assert reason(state(parsed=False)) is SkipReason.NO_CODES


def test_no_tests_comes_before_the_time_budget() -> None:
    assert reason(state(tests=0, budget_exceeded=True)) is SkipReason.NO_TESTS


def test_the_time_budget_comes_before_the_matrix_rules_and_names_the_budget() -> None:
    # A partial matrix of passes only would otherwise read as ALL_PASS.
    overrun = state(status=[[P, P], [P, P]], budget_exceeded=True)
    assert skip_before_ranking(overrun, SPEC) == Skip(
        SkipReason.TIME_BUDGET, "execution ran past the problem budget of 30.0 s"
    )
    # The executor may stop before it has a matrix at all.
    assert reason(state(status=None, budget_exceeded=True)) is SkipReason.TIME_BUDGET


def test_candidates_without_a_matrix_are_a_contract_violation() -> None:
    with pytest.raises(ContractViolation, match=r"'P/1'.*no status matrix"):
        skip_before_ranking(state(status=None), SPEC)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ([[P, P], [P, P]], SkipReason.ALL_PASS),
        ([[F, F], [E, T]], SkipReason.ALL_FAIL),
        ([[P, SB], [F, F]], SkipReason.SANDBOX_ERROR),  # 1 of 4 > the default 0.2
    ],
)
def test_the_matrix_rules_apply_last_with_the_specs_tolerance(
    status: StatusMatrix, expected: SkipReason
) -> None:
    assert skip_before_ranking(state(status=status), SPEC) == Skip(expected)


def test_the_sandbox_error_tolerance_comes_from_the_spec() -> None:
    tolerant = SPEC.model_copy(
        update={"pairs": SPEC.pairs.model_copy(update={"max_sandbox_error_frac": 0.25})}
    )
    assert skip_before_ranking(state(status=[[P, SB], [F, F]]), tolerant) is None
