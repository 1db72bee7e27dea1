"""PassCount: rank codes by how many tests they pass, the baseline ranker (ALGORITHMS.md §1.4).

Gives the same code order as PageRank stopped after one round (T = 1). Pure numpy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from pipeline.ranking.base import BoolMatrix, rank_inputs, tests_passed, tie_break_order
from pipeline.records import RankingResult


@dataclass(frozen=True)
class PassCountRanker:
    """A code's score is ``A @ f``, a test's score is ``Aᵀ @ m`` (multiplicity-weighted counts).

    Example: code 0 passes tests 0 and 1 with f = [1, 3], code 1 passes test 1 only:
        >>> import numpy as np
        >>> r = PassCountRanker().rank(np.array([[True, True], [False, True]]), [1, 2], [1, 3])
        >>> r.code_scores, r.test_scores
        ([4.0, 3.0], [1.0, 3.0])
    """

    name: ClassVar[str] = "passcount"

    def rank(
        self,
        passed: BoolMatrix,
        code_counts: Sequence[int],
        test_counts: Sequence[int],
        sample_order: Sequence[int] | None = None,
    ) -> RankingResult:
        """Count tests passed; see :class:`pipeline.ranking.base.Ranker` for the arguments."""
        inputs = rank_inputs(passed, code_counts, test_counts, sample_order)
        code_scores = tests_passed(inputs.passed, inputs.test_counts)
        return RankingResult(
            ranker=self.name,
            code_scores=code_scores.tolist(),
            test_scores=tests_passed(inputs.passed.T, inputs.code_counts).tolist(),
            order=tie_break_order(
                code_scores, inputs.passed, inputs.first_sample, inputs.test_counts
            ),
            iterations=0,
        )
