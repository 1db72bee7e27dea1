"""The ranker interface, the shared tie-break, pass-matrix helpers and the ranker factory.

A ranker scores the distinct codes and tests of one problem from the binary pass matrix
``A`` (``A[i, j]`` is true when code i passed test j) and the multiplicities of identical
codes ``m`` and identical asserts ``f`` (ALGORITHMS.md §1.4, §3.4). Pure numpy: no I/O, no
Ray. Every ranker orders codes with :func:`tie_break_order`, so two rankers that give the
same scores give the same order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np
import numpy.typing as npt

from pipeline.errors import ContractViolation
from pipeline.records import CellStatus, RankingResult, StatusMatrix

if TYPE_CHECKING:
    from pipeline.config import RankingConfig

BoolMatrix = npt.NDArray[np.bool_]
FloatVector = npt.NDArray[np.float64]
IntVector = npt.NDArray[np.int64]


class Ranker(Protocol):
    """Scores the codes and tests of one problem; higher is better."""

    @property
    def name(self) -> str:
        """Short name recorded with every result (`pagerank`, `codet`, `hits`, `passcount`)."""
        ...

    def rank(
        self,
        passed: BoolMatrix,
        code_counts: Sequence[int],
        test_counts: Sequence[int],
        sample_order: Sequence[int] | None = None,
    ) -> RankingResult:
        """Score codes and tests.

        Args:
            passed: K×M boolean pass matrix, ``passed[i, j]`` ⇔ code i passed test j.
            code_counts: how many samples produced each distinct code (m, length K).
            test_counts: how many times each distinct assert occurred (f, length M).
            sample_order: the lowest sample index behind each code, the last tie-break
                key; ``None`` uses the code index.

        Returns:
            One score per code and per test, and the code order best first.
        """
        ...


@dataclass(frozen=True)
class RankInputs:
    """Validated ranker inputs as numpy arrays (see :func:`rank_inputs`)."""

    passed: BoolMatrix
    """K×M pass matrix."""
    code_counts: FloatVector
    """m, as float64 so it multiplies scores without casts."""
    test_counts: FloatVector
    """f, as float64."""
    first_sample: IntVector
    """Last tie-break key of each code."""


def rank_inputs(
    passed: BoolMatrix,
    code_counts: Sequence[int],
    test_counts: Sequence[int],
    sample_order: Sequence[int] | None = None,
) -> RankInputs:
    """Check that the matrix and the counts agree, and convert them to arrays.

    Raises:
        ContractViolation: the matrix is not 2-D boolean, a length disagrees with its shape,
            or a multiplicity is below 1.
    """
    matrix = np.asarray(passed)
    if matrix.ndim != 2 or matrix.dtype != np.bool_:
        raise ContractViolation(
            f"a ranker expects a 2-D boolean pass matrix, got ndim={matrix.ndim} "
            f"dtype={matrix.dtype}; build it with binary_matrix(status)"
        )
    n_codes, n_tests = matrix.shape
    m = np.asarray(code_counts, dtype=np.int64)
    f = np.asarray(test_counts, dtype=np.int64)
    first = (
        np.arange(n_codes, dtype=np.int64)
        if sample_order is None
        else np.asarray(sample_order, dtype=np.int64)
    )
    for label, values, axis, expected in (
        ("code_counts", m, "row", n_codes),
        ("test_counts", f, "column", n_tests),
        ("sample_order", first, "row", n_codes),
    ):
        if values.shape != (expected,):
            raise ContractViolation(
                f"{label} must have one entry per matrix {axis} ({expected}), got shape "
                f"{values.shape} for a {n_codes}×{n_tests} matrix"
            )
    if (m < 1).any() or (f < 1).any():
        raise ContractViolation(
            f"multiplicities must be >= 1, got code_counts={m.tolist()} test_counts={f.tolist()}"
        )
    return RankInputs(
        passed=matrix,
        code_counts=m.astype(np.float64),
        test_counts=f.astype(np.float64),
        first_sample=first,
    )


@dataclass(frozen=True)
class MergedGraph:
    """The pass matrix with identical code rows and identical test columns merged.

    A row shared by several codes becomes one node whose multiplicity is the sum of theirs;
    the same for columns. Every update rule here is linear in the multiplicities, so this
    is the same problem, smaller; and because the merged matrix does not depend on the
    order of codes or tests, codes with identical rows get bit-identical scores (ties stay
    exact and reach the tie-break instead of being decided by float rounding).

    Example: rows ``[1,0], [1,0], [0,1]`` with ``m = [1, 2, 1]`` merge into rows
    ``[0,1], [1,0]`` (sorted) with weights ``[1, 3]`` and ``code_node = [1, 1, 0]``.
    """

    passed: FloatVector
    """K'×M' 0/1 matrix of distinct rows and columns, float64."""
    code_weights: FloatVector
    """Summed multiplicity of each merged row."""
    test_weights: FloatVector
    """Summed multiplicity of each merged column."""
    code_node: IntVector
    """Merged row of each original code."""
    test_node: IntVector
    """Merged column of each original test."""


def merge_identical(inputs: RankInputs) -> MergedGraph:
    """Merge identical rows and identical columns of the pass matrix (see :class:`MergedGraph`)."""
    rows, code_node = np.unique(inputs.passed, axis=0, return_inverse=True)
    # Two columns of A are identical exactly when they are identical in the distinct rows.
    columns, test_node = np.unique(rows.T, axis=0, return_inverse=True)
    code_node = code_node.reshape(-1).astype(np.int64)
    test_node = test_node.reshape(-1).astype(np.int64)
    n_rows, n_columns = rows.shape[0], columns.shape[0]
    code_weights = np.bincount(code_node, weights=inputs.code_counts, minlength=n_rows)
    test_weights = np.bincount(test_node, weights=inputs.test_counts, minlength=n_columns)
    return MergedGraph(
        passed=columns.T.astype(np.float64),
        code_weights=code_weights.astype(np.float64),
        test_weights=test_weights.astype(np.float64),
        code_node=code_node,
        test_node=test_node,
    )


def tests_passed(passed: BoolMatrix, test_counts: Sequence[int] | FloatVector) -> FloatVector:
    """Multiplicity-weighted number of tests each code passed: ``A @ f``."""
    return np.asarray(passed, dtype=np.float64) @ np.asarray(test_counts, dtype=np.float64)


SCORE_REL_TOL = 1e-9
"""Scores this close (relatively) are equal. Rounding in a ranker's sums is ~1e-16 per
operation, so codes with mathematically equal scores (three codes each failing a different
test once; CodeT's √27·3 and √3·9) land a few ulps apart; real differences between scores
are many orders larger."""


def tied_scores(scores: Sequence[float] | FloatVector) -> FloatVector:
    """``scores`` with each tie class set to one value, so equal scores compare equal.

    Walking from the highest score down, a score within ``SCORE_REL_TOL`` of the first
    (highest) score of the current class joins it and takes that value; the first score
    outside starts the next class. Rankers return tied scores, so whatever compares them
    (the tie-break, CodeT's top group, pair selection's Diff) sees exact ties.

    Example: ``[1.0, 1.0 + 1e-15, 0.5]`` becomes ``[1.0 + 1e-15, 1.0 + 1e-15, 0.5]``.
    """
    values = np.asarray(scores, dtype=np.float64)
    tied = values.copy()
    head = math.nan
    for i in np.argsort(-values, kind="stable"):
        value = float(values[i])
        if math.isclose(value, head, rel_tol=SCORE_REL_TOL):
            tied[i] = head
        else:
            head = value
    return tied


def tie_break_order(
    scores: FloatVector,
    passed: BoolMatrix,
    first_sample: Sequence[int] | IntVector,
    test_counts: Sequence[int] | FloatVector | None = None,
) -> list[int]:
    """Code indices best first: higher score, then more tests passed, then lower sample index.

    "Tests passed" is weighted by the assert multiplicities ``test_counts`` when given
    (rankers always give them): an assert sampled f times is f pieces of evidence, and the
    weighted count is exactly the PassCount score, so the tie-break agrees with the
    simplest ranker. Scores within ``SCORE_REL_TOL`` of each other are equal
    (:func:`tied_scores`), so float rounding never decides an order the scores leave
    open; structurally tied codes are bit-identical anyway (:class:`MergedGraph`). Equal
    keys keep code-index order.

    Example: scores ``[1, 2, 2]``, code 1 passes 1 test and code 2 passes 2, gives
    ``[2, 1, 0]``.

    Raises:
        ContractViolation: a score is NaN or a length disagrees with the matrix.
    """
    score_array = np.asarray(scores, dtype=np.float64)
    matrix = np.asarray(passed, dtype=np.bool_)
    first = np.asarray(first_sample, dtype=np.int64)
    n_codes = matrix.shape[0]
    if score_array.shape != (n_codes,) or first.shape != (n_codes,):
        raise ContractViolation(
            f"tie_break_order needs one score and one sample index per code ({n_codes}), got "
            f"{score_array.shape[0] if score_array.ndim else 0} scores and {first.shape[0]} "
            "sample indices"
        )
    if np.isnan(score_array).any():
        raise ContractViolation(f"ranker scores must not be NaN, got {score_array.tolist()}")
    weights = np.ones(matrix.shape[1]) if test_counts is None else test_counts
    # np.lexsort is stable and sorts by the last key first.
    order = np.lexsort((first, -tests_passed(matrix, weights), -tied_scores(score_array)))
    return [int(i) for i in order]


def binary_matrix(status: StatusMatrix) -> BoolMatrix:
    """The pass matrix A of a status matrix: ``A[i, j]`` ⇔ ``status[i][j] is PASSED``.

    Every other status (failed, error, timeout, memory, sandbox_error) is 0; the skip
    rules in ``pipeline.skip_rules`` decide beforehand whether too many cells are
    sandbox errors to trust the matrix, and pair selection never counts one as a failure.
    A matrix with no codes has shape (0, 0).

    Raises:
        ContractViolation: the rows have different lengths.
    """
    return cells_with(status, CellStatus.PASSED)


def cells_with(status: StatusMatrix, wanted: CellStatus) -> BoolMatrix:
    """``M[i, j]`` ⇔ ``status[i][j] is wanted``; shape (0, 0) for no codes.

    Raises:
        ContractViolation: the rows have different lengths.
    """
    widths = {len(row) for row in status}
    if len(widths) > 1:
        raise ContractViolation(
            f"a status matrix must be rectangular, got row lengths {sorted(widths)}"
        )
    n_tests = widths.pop() if widths else 0
    matrix = np.zeros((len(status), n_tests), dtype=np.bool_)
    for i, row in enumerate(status):
        matrix[i] = [cell == wanted for cell in row]
    return matrix


def make_ranker(config: RankingConfig) -> Ranker:
    """Build the ranker a job's ``ranking`` section asks for."""
    # Imported here: the ranker modules import this one for the tie-break.
    from pipeline.ranking.codet import CodeTRanker
    from pipeline.ranking.hits import HitsRanker
    from pipeline.ranking.pagerank import PageRankRanker
    from pipeline.ranking.passcount import PassCountRanker

    if config.ranker == "pagerank":
        return PageRankRanker(
            damping=config.damping, iterations=config.iterations, early_stop=config.early_stop
        )
    if config.ranker == "codet":
        return CodeTRanker()
    if config.ranker == "hits":
        return HitsRanker()
    if config.ranker == "passcount":
        return PassCountRanker()
    raise ContractViolation(
        f"unknown ranker {config.ranker!r}; RankingConfig allows pagerank, codet, hits, passcount"
    )
