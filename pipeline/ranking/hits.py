"""HITS on the code–test graph: the limit PageRank tends to as T → ∞ (ALGORITHMS.md §1.4).

Codes are hubs, tests are authorities. With multiplicities, the PageRank update equals
the unweighted one on a graph where every code is repeated m times and every test f
times. Its limit, per copy, is ``s_c = u / √m`` and ``s_t = v / √f`` where (u, v) are the
leading singular vectors of ``W = diag(√m) · A · diag(√f)``: the symmetric form of the
update (substitute ``y = √m ⊙ s_c``). So W's entries ``√(m_i f_j)`` are the edge weights.

Computed with ``numpy.linalg.svd`` (LAPACK), not ``networkx.hits``. networkx's HITS is
one ARPACK singular vector (and needs scipy): when σ₁ is repeated, as with two equally
strong disconnected blocks, it returns one block and drops the other, even when started
from the iteration's own start vector (tried: on A = I₂ it gives hubs (1, 0), where the
update converges to (1, 1)). Here a repeated σ₁ is resolved the way the PageRank
iteration resolves it: the all-ones start projected onto the top singular subspace.
Pure numpy.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from pipeline.ranking.base import (
    BoolMatrix,
    FloatVector,
    MergedGraph,
    merge_identical,
    rank_inputs,
    tie_break_order,
    tied_scores,
)
from pipeline.ranking.pagerank import PageRankRanker
from pipeline.records import RankingResult

logger = logging.getLogger(__name__)

_TOP_SUBSPACE_RTOL = 1e-9
"""Singular values within this relative distance of σ₁ count as σ₁ (a repeated top value)."""

_ZERO_ATOL = 1e-12
"""Scaled scores below this are 0: SVD rounding is ~1e-16, and the top block's positive
entries, over at most a few thousand nodes, are many orders larger."""

_FALLBACK_ITERATIONS = 1000
"""Rounds of the PageRank update used if the SVD does not converge; enough to reach the limit."""


@dataclass(frozen=True)
class HitsRanker:
    """Converged hub/authority scores; the largest score of codes and tests together is 1.

    Codes outside the strongest connected block score 0 (the limit of the PageRank update
    gives them a vanishing share) and are ordered among themselves by the tie-break, i.e.
    by tests passed. If no code passes any test, every score is 0.

    Example (A = [[1, 1], [1, 0]]: A·Aᵀ = [[2, 1], [1, 1]] has leading eigenvector (φ, 1)):
        >>> import numpy as np
        >>> r = HitsRanker().rank(np.array([[True, True], [True, False]]), [1, 1], [1, 1])
        >>> [round(s, 4) for s in r.code_scores]
        [1.0, 0.618]
    """

    name: ClassVar[str] = "hits"

    def rank(
        self,
        passed: BoolMatrix,
        code_counts: Sequence[int],
        test_counts: Sequence[int],
        sample_order: Sequence[int] | None = None,
    ) -> RankingResult:
        """Score by the leading singular vectors; see :class:`pipeline.ranking.base.Ranker`."""
        inputs = rank_inputs(passed, code_counts, test_counts, sample_order)
        graph = merge_identical(inputs)
        try:
            code_scores, test_scores = _leading_singular_scores(graph)
        except np.linalg.LinAlgError:
            logger.warning(
                "SVD of the %dx%d pass matrix did not converge; approximating HITS with %d "
                "PageRank rounds",
                *graph.passed.shape,
                _FALLBACK_ITERATIONS,
            )
            approx = PageRankRanker(iterations=_FALLBACK_ITERATIONS, early_stop=False).rank(
                passed, code_counts, test_counts, sample_order
            )
            return approx.model_copy(update={"ranker": self.name, "iterations": 0})
        expanded = tied_scores(code_scores[graph.code_node])
        return RankingResult(
            ranker=self.name,
            code_scores=expanded.tolist(),
            test_scores=test_scores[graph.test_node].tolist(),
            order=tie_break_order(expanded, inputs.passed, inputs.first_sample, inputs.test_counts),
            iterations=0,
        )


def _leading_singular_scores(graph: MergedGraph) -> tuple[FloatVector, FloatVector]:
    """Per-copy hub and authority scores of the merged graph, scaled so the largest is 1."""
    a = graph.passed
    if a.size == 0 or not a.any():
        return np.zeros(a.shape[0]), np.zeros(a.shape[1])
    root_m, root_f = np.sqrt(graph.code_weights), np.sqrt(graph.test_weights)
    u, sigma, vt = np.linalg.svd(root_m[:, None] * a * root_f[None, :], full_matrices=False)
    top = sigma >= sigma[0] * (1.0 - _TOP_SUBSPACE_RTOL)
    # The iteration starts at y = (√m, √f) in the symmetric coordinates; its component on
    # each top pair (u_k, v_k) is u_k·√m + v_k·√f, and that component is what survives.
    weights = u[:, top].T @ root_m + vt[top] @ root_f
    hubs = (u[:, top] @ weights) / root_m
    authorities = (vt[top].T @ weights) / root_f
    peak = max(hubs.max(), authorities.max())
    hubs, authorities = hubs / peak, authorities / peak
    # The limit is non-negative (Perron–Frobenius) and exactly 0 off the top block; entries
    # that small are rounding noise, which must not decide the order of those codes.
    hubs[hubs < _ZERO_ATOL] = 0.0
    authorities[authorities < _ZERO_ATOL] = 0.0
    return hubs, authorities
