"""Skip rules applied before ranking (ALGORITHMS.md §1.4, §5.6)."""

from __future__ import annotations

import pytest

from pipeline.errors import ContractViolation
from pipeline.skip_rules import skip_reason_for
from pipeline.records import CellStatus, SkipReason

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
