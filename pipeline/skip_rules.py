"""Why a problem yields no pair before it is ranked: every such rule, in one place.

``skip_before_ranking`` reads a problem's whole state once, after execution, and returns
the first rule that matches (ALGORITHMS.md §1.4, §5.6)::

1. ``SAMPLER_ERROR``: the sampler produced no code sample, or (separate sampling) every
   test sample failed; the problem says nothing about the code, only about the endpoint.
2. ``NO_CODES``: parsing found no code candidate.
3. ``NO_TESTS``: parsing found no test candidate.
4. ``TIME_BUDGET``: execution stopped at ``sandbox.problem_budget_s``; a partial matrix
   would rank codes on the tests they happened to reach.
5. ``SANDBOX_ERROR``: more than ``pairs.max_sandbox_error_frac`` of the cells are
   ``sandbox_error`` (infrastructure trouble), so the matrix cannot be trusted.
6. ``ALL_FAIL``: no cell passed (A = 0): every score decays alike, nothing to prefer.
7. ``ALL_PASS``: every executed cell passed (A = 1 once sandbox errors are set aside): no
   negative exists. A ``sandbox_error`` cell is never a failure of the code.

The rules that need a ranking (no correct or incorrect code, no distinct pair: §1.5) are
pair selection's own and live in ``pipeline.pairing``. Pure Python.
"""

from __future__ import annotations

from typing import NamedTuple

from pipeline.config import JobSpec
from pipeline.errors import ContractViolation
from pipeline.problem_state import ProblemState
from pipeline.records import CellStatus, SkipReason, StatusMatrix


class Skip(NamedTuple):
    """A rule that matched, and what to tell the user about it."""

    reason: SkipReason
    error: str | None = None


def skip_before_ranking(state: ProblemState, spec: JobSpec) -> Skip | None:
    """The first rule (see the module docstring) that keeps this problem from a pair."""
    nothing_sampled = state.candidates is None and not state.has_samples()
    separate_tests_failed = state.test_completions == [] and bool(state.sampler_errors)
    if nothing_sampled or separate_tests_failed:
        detail = "; ".join(state.sampler_errors[:3]) or "the sampler returned no completions"
        return Skip(SkipReason.SAMPLER_ERROR, detail)
    candidates = state.candidates
    if candidates is None or not candidates.codes:
        return Skip(SkipReason.NO_CODES)
    if not candidates.tests:
        return Skip(SkipReason.NO_TESTS)
    if state.budget_exceeded:
        return Skip(
            SkipReason.TIME_BUDGET,
            f"execution ran past the problem budget of {spec.sandbox.problem_budget_s} s",
        )
    if state.status is None:
        raise ContractViolation(
            f"problem {state.problem_id!r} reached ranking with candidates but no status "
            "matrix; the execute stage did not run on it"
        )
    reason = skip_reason_for(state.status, max_sandbox_error_frac=spec.pairs.max_sandbox_error_frac)
    return None if reason is None else Skip(reason)


def skip_reason_for(status: StatusMatrix, *, max_sandbox_error_frac: float) -> SkipReason | None:
    """The matrix rules alone (``NO_CODES`` .. ``ALL_PASS`` without the sampler and budget).

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
