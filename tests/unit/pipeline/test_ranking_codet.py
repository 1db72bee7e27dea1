"""CodeT ranker: consensus groups, sqrt(|S_x|)·|S_y| with multiplicities, top group."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline.ranking import CodeTRanker, top_group


def test_groups_and_scores_by_hand() -> None:
    # f = (1, 2, 1).
    # code 0 (m=1) and code 1 (m=2) pass exactly {t0, t1}: one group, |S_x| = 1 + 2 = 3,
    #   |S_y| = 1 + 2 = 3                      → score √3 · 3 ≈ 5.196
    # code 2 (m=1) passes {t0, t1, t2}: |S_x| = 1, |S_y| = 4   → score √1 · 4 = 4
    # code 3 (m=1) passes nothing                             → score 0, ranked last
    # code 4 (m=3) passes {t2}: |S_x| = 3, |S_y| = 1          → score √3 ≈ 1.732
    a = np.array(
        [
            [True, True, False],
            [True, True, False],
            [True, True, True],
            [False, False, False],
            [False, False, True],
        ]
    )
    result = CodeTRanker().rank(a, [1, 2, 1, 1, 3], [1, 2, 1])
    root3 = math.sqrt(3)
    assert result.code_scores == pytest.approx([3 * root3, 3 * root3, 4.0, 0.0, root3])
    # Tests: t0 and t1 are in the case sets of both groups {0,1} and {2}: best is 3√3;
    # t2 is in the case sets of {2} and {4}: best is 4.
    assert result.test_scores == pytest.approx([3 * root3, 3 * root3, 4.0])
    # Codes 0 and 1 tie on score and tests passed (3 each); lower sample index first.
    assert result.order == [0, 1, 2, 4, 3]
    assert result.ranker == "codet"
    assert top_group(result) == [0, 1]


def test_solution_count_is_under_a_square_root_test_count_is_not() -> None:
    # Group A: code 0 with m = 4 passes t0 (f = 1)              → √4 · 1 = 2
    # Group B: code 1 with m = 1 passes t0 and t1 (f = 1, 1)    → √1 · 2 = 2  (a tie)
    # Group C: code 2 with m = 9 passes t2 (f = 1)              → √9 · 1 = 3  (best)
    a = np.array([[True, False, False], [True, True, False], [False, False, True]])
    result = CodeTRanker().rank(a, [4, 1, 9], [1, 1, 1])
    assert result.code_scores == [2.0, 2.0, 3.0]
    # The A/B tie goes to B: it passes more tests.
    assert result.order == [2, 1, 0]


def test_equal_scores_of_different_groups_merge_into_the_top_group() -> None:
    # Group A: code 0 (m = 4) passes t0 (f = 3)           → √4 · 3 = 6
    # Group B: code 1 (m = 1) passes t0, t1 (f = 3, 3)    → √1 · 6 = 6
    # Code 2 passes t1 only (m = 1)                       → √1 · 3 = 3
    a = np.array([[True, False], [True, True], [False, True]])
    result = CodeTRanker().rank(a, [4, 1, 1], [3, 3])
    assert result.code_scores == [6.0, 6.0, 3.0]
    # CodeT merges equal-score groups; within it, code 1 passes more tests (6 vs 3).
    assert top_group(result) == [1, 0]


def test_mathematically_equal_group_scores_merge_despite_rounding() -> None:
    # Code 0 (m = 27) passes t0..t2: √27 · 3; code 1 (m = 3) passes t0..t8: √3 · 9. Both
    # are 9√3, but in float64 code 0's is 2 ulps higher. CodeT's exact comparison would
    # split the groups; the tie goes to code 1, which passes more tests.
    a = np.zeros((2, 9), dtype=bool)
    a[0, :3] = True
    a[1, :] = True
    result = CodeTRanker().rank(a, [27, 3], [1] * 9)
    assert result.code_scores[0] == result.code_scores[1]
    assert result.code_scores[0] == pytest.approx(9 * math.sqrt(3))
    assert result.order == [1, 0]
    assert top_group(result) == [1, 0]


def test_no_code_passes_anything_top_group_is_everyone() -> None:
    result = CodeTRanker().rank(np.zeros((3, 2), dtype=bool), [1, 1, 1], [1, 1], [2, 0, 1])
    assert result.code_scores == [0.0, 0.0, 0.0]
    assert result.test_scores == [0.0, 0.0]
    assert top_group(result) == [1, 2, 0]


def test_top_group_of_nothing_is_empty() -> None:
    result = CodeTRanker().rank(np.zeros((0, 2), dtype=bool), [], [1, 1])
    assert top_group(result) == []
