"""CodeT dual execution agreement, as CodeT's released code computes it (ALGORITHMS.md §3.4).

For every code that passes at least one test, its *case set* is the multiset of tests it
passes, each repeated by the assert's multiplicity f. Codes with the same case set form a
consensus group with ``score = sqrt(|S_x|) · |S_y|`` (``src/agreement.py``:
``len(case_set) * math.sqrt(len(solution_set))``), where |S_x| counts the group's codes
with their multiplicities m and |S_y| its tests with their multiplicities f. Pure Python
and numpy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from pipeline.ranking.base import (
    BoolMatrix,
    merge_identical,
    rank_inputs,
    tie_break_order,
    tied_scores,
)
from pipeline.records import RankingResult


@dataclass(frozen=True)
class CodeTRanker:
    """Consensus-group scores; codes that pass no test score 0 and rank last.

    A code's score is its group's score. A test's score is the best score among the groups
    whose case set contains it, 0 if no code passes it: the strongest consensus that vouches
    for the test.

    Example: codes 0 (m=1) and 1 (m=2) both pass exactly tests {0, 1} with f = [1, 2]:
    |S_x| = 3, |S_y| = 3, score √3·3 ≈ 5.196; code 2 (m=1) passes only test 2 (f=1):
    score √1·1 = 1.
        >>> import numpy as np
        >>> A = np.array([[True, True, False], [True, True, False], [False, False, True]])
        >>> r = CodeTRanker().rank(A, [1, 2, 1], [1, 2, 1])
        >>> [round(s, 3) for s in r.code_scores], r.order
        ([5.196, 5.196, 1.0], [0, 1, 2])
    """

    name: ClassVar[str] = "codet"

    def rank(
        self,
        passed: BoolMatrix,
        code_counts: Sequence[int],
        test_counts: Sequence[int],
        sample_order: Sequence[int] | None = None,
    ) -> RankingResult:
        """Score consensus groups; see :class:`pipeline.ranking.base.Ranker` for the arguments."""
        inputs = rank_inputs(passed, code_counts, test_counts, sample_order)
        # A merged row is exactly one case set; its weight is |S_x| (multiplicities summed).
        graph = merge_identical(inputs)
        group_sizes = graph.passed @ graph.test_weights  # |S_y| of each case set
        group_scores = np.array(
            [
                # Same operands and operation as CodeT.
                float(case_count) * math.sqrt(solution_count) if case_count > 0 else 0.0
                for case_count, solution_count in zip(
                    group_sizes.tolist(), graph.code_weights.tolist(), strict=True
                )
            ],
            dtype=np.float64,
        )
        # CodeT compares its float scores exactly, which splits equal groups such as
        # √27·3 and √3·9 (9√3 both, 2 ulps apart); tied scores merge them as the formula does.
        group_scores = tied_scores(group_scores)
        test_node_scores = (graph.passed * group_scores[:, None]).max(axis=0, initial=0.0)
        code_scores = group_scores[graph.code_node]
        return RankingResult(
            ranker=self.name,
            code_scores=code_scores.tolist(),
            test_scores=test_node_scores[graph.test_node].tolist(),
            order=tie_break_order(
                code_scores, inputs.passed, inputs.first_sample, inputs.test_counts
            ),
            iterations=0,
        )


def top_group(result: RankingResult) -> list[int]:
    """Codes sharing the top score, best first: CodeT's merged top consensus group.

    CodeT merges groups of equal score and picks uniformly among the *samples* of the top
    merged group (``src/evaluation.py``), so its expected pass@1 on a problem is
    ``Σ_{i∈group} m_i·correct_i / Σ_{i∈group} m_i``. When no code passes any test every
    code scores 0 and the group is all codes, matching CodeT's fallback to a random sample.
    Scores are compared exactly: the ranker has already made scores that are equal up to
    rounding identical (``tied_scores``), where CodeT would split them.
    """
    if not result.order:
        return []
    best = result.code_scores[result.order[0]]
    return [i for i in result.order if result.code_scores[i] == best]
