"""PageRank over the code–test pass graph, as CodeDPO and Focused-DPO use it (ALGORITHMS.md §1.4).

The Jacobi update, in float64, weighted by multiplicities and *not* normalised by degree::

    s_c ← (1−d)·s_c + d · A (f ⊙ s_t)
    s_t ← (1−d)·s_t + d · Aᵀ(m ⊙ s_c)          both from the previous step's scores

starting from all ones. At T = 1 the code order is the PassCount order; as T grows it
tends to HITS (the leading singular vectors of A). Pure numpy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from pipeline.ranking.base import (
    BoolMatrix,
    FloatVector,
    merge_identical,
    rank_inputs,
    tie_break_order,
    tied_scores,
)
from pipeline.records import RankingResult

_RESCALE_ABOVE = 2.0**256
"""Scores past this (or below its inverse) are rescaled; one more step cannot overflow.

One step multiplies the largest score by at most 1 + max(Σm, Σf), far below 2^700 for any
real problem, so float64 (max ≈ 2^1024) never overflows between checks."""

_STABLE_ROUNDS = 3
"""Early stop once this many consecutive rounds gave the same order (unchanged twice)."""


@dataclass(frozen=True)
class PageRankRanker:
    """Multiplicity-weighted PageRank with CodeDPO's defaults (d = 0.85, T = 10, init 1).

    Early stop (``early_stop=True``): after round τ ≥ 3, stop if the code order (with the
    tie-break) of rounds τ−2, τ−1 and τ is the same, i.e. it was unchanged for 2
    consecutive iterations. The all-ones start is not counted as an order: every code ties
    there, so "unchanged since the start" would only repeat the tie-break.

    Codes whose scores are equal up to rounding (``SCORE_REL_TOL``) get one score and are
    ordered by the tie-break: three codes each failing a different test are symmetric, but
    the float sums differ in the last bit.

    If the scores grow past 2^256 (large T or multiplicities), both vectors are multiplied
    by the same power of two. That is exact in float64 and the update is linear, so the
    ranking and every score ratio are unchanged; only the absolute values differ from the
    formula, by a common factor.

    Example:
        >>> import numpy as np
        >>> A = np.array([[True, True], [True, False]])
        >>> r = PageRankRanker(iterations=2).rank(A, [1, 1], [1, 1])
        >>> [round(s, 4) for s in r.code_scores], r.order
        ([2.7, 1.7225], [0, 1])
    """

    damping: float = 0.85
    iterations: int = 10
    early_stop: bool = True
    name: ClassVar[str] = "pagerank"

    def __post_init__(self) -> None:
        if not 0.0 < self.damping <= 1.0:
            raise ValueError(f"damping must be in (0, 1], got {self.damping}")
        if self.iterations < 1:
            raise ValueError(f"iterations must be >= 1, got {self.iterations}")

    def rank(
        self,
        passed: BoolMatrix,
        code_counts: Sequence[int],
        test_counts: Sequence[int],
        sample_order: Sequence[int] | None = None,
    ) -> RankingResult:
        """Run the update; see :class:`pipeline.ranking.base.Ranker` for the arguments."""
        inputs = rank_inputs(passed, code_counts, test_counts, sample_order)
        graph = merge_identical(inputs)
        a, m, f, d = graph.passed, graph.code_weights, graph.test_weights, self.damping
        code_scores = np.ones(a.shape[0])
        test_scores = np.ones(a.shape[1])

        def order_of(scores: FloatVector) -> list[int]:
            return tie_break_order(
                scores[graph.code_node], inputs.passed, inputs.first_sample, inputs.test_counts
            )

        recent: list[list[int]] = []
        rounds = 0
        while rounds < self.iterations:
            code_scores, test_scores = (
                (1.0 - d) * code_scores + d * (a @ (f * test_scores)),
                (1.0 - d) * test_scores + d * (a.T @ (m * code_scores)),
            )
            code_scores, test_scores = _rescaled(code_scores, test_scores)
            rounds += 1
            if self.early_stop:
                recent = [*recent[-(_STABLE_ROUNDS - 1) :], order_of(code_scores)]
                if len(recent) == _STABLE_ROUNDS and all(o == recent[0] for o in recent):
                    break

        expanded_codes = tied_scores(code_scores[graph.code_node])
        return RankingResult(
            ranker=self.name,
            code_scores=expanded_codes.tolist(),
            test_scores=test_scores[graph.test_node].tolist(),
            order=order_of(code_scores),
            iterations=rounds,
        )


def _rescaled(
    code_scores: FloatVector, test_scores: FloatVector
) -> tuple[FloatVector, FloatVector]:
    """Bring the largest score back near 1 by a power of two when it drifts too far."""
    peak = float(max(code_scores.max(initial=0.0), test_scores.max(initial=0.0)))
    if peak == 0.0 or 1.0 / _RESCALE_ABOVE <= peak <= _RESCALE_ABOVE:
        return code_scores, test_scores
    _, exponent = math.frexp(peak)
    return np.ldexp(code_scores, -exponent), np.ldexp(test_scores, -exponent)
