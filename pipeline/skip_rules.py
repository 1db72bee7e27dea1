"""Skip rules for problems whose status matrix cannot yield a pair (ALGORITHMS.md §1.4, §5.6).

Checked before ranking, in this order, the first match wins:

1. ``NO_CODES``: no code candidates.
2. ``NO_TESTS``: no test candidates.
3. ``SANDBOX_ERROR``: more than ``max_sandbox_error_frac`` of the cells are
   ``sandbox_error`` (infrastructure trouble), so the matrix cannot be trusted.
4. ``ALL_FAIL``: no cell passed (A = 0): every score decays alike, nothing to prefer.
5. ``ALL_PASS``: every executed cell passed (A = 1 once sandbox errors are set aside): no
   negative exists. A ``sandbox_error`` cell is never a failure of the code, so it does not
   make a code a negative.

The C⁺/C⁻ rules of §1.5 need a ranking and belong to pair selection. Pure Python.
"""

from __future__ import annotations

from pipeline.errors import ContractViolation
from pipeline.records import CellStatus, SkipReason, StatusMatrix


def skip_reason_for(status: StatusMatrix, *, max_sandbox_error_frac: float) -> SkipReason | None:
    """Why this problem must be skipped before ranking, or ``None`` if it can be ranked.

    Args:
        status: ``status[i][j]`` is the outcome of code i against test j.
        max_sandbox_error_frac: the largest tolerated fraction of ``sandbox_error`` cells
            (``PairsConfig.max_sandbox_error_frac``); a fraction equal to it is tolerated.

    Example:
        >>> P, F = CellStatus.PASSED, CellStatus.FAILED
        >>> skip_reason_for([[P, P], [P, F]], max_sandbox_error_frac=0.2) is None
        True
        >>> skip_reason_for([[P, P], [P, P]], max_sandbox_error_frac=0.2)
        <SkipReason.ALL_PASS: 'all_pass'>

    Raises:
        ValueError: ``max_sandbox_error_frac`` is outside [0, 1].
        ContractViolation: the rows have different lengths.
    """
    if not 0.0 <= max_sandbox_error_frac <= 1.0:
        raise ValueError(f"max_sandbox_error_frac must be in [0, 1], got {max_sandbox_error_frac}")
    if not status:
        return SkipReason.NO_CODES
    widths = {len(row) for row in status}
    if len(widths) > 1:
        raise ContractViolation(
            f"a status matrix must be rectangular, got row lengths {sorted(widths)}"
        )
    n_tests = widths.pop()
    if n_tests == 0:
        return SkipReason.NO_TESTS
    cells = [cell for row in status for cell in row]
    sandbox_errors = sum(cell == CellStatus.SANDBOX_ERROR for cell in cells)
    if sandbox_errors / len(cells) > max_sandbox_error_frac:
        return SkipReason.SANDBOX_ERROR
    passed = sum(cell == CellStatus.PASSED for cell in cells)
    if passed == 0:
        return SkipReason.ALL_FAIL
    if passed + sandbox_errors == len(cells):
        return SkipReason.ALL_PASS
    return None
