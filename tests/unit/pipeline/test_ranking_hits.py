"""HITS ranker: the converged limit of the PageRank update (leading singular vectors)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline.ranking import HitsRanker, PageRankRanker


def _expand(a: np.ndarray, m: list[int], f: list[int]) -> np.ndarray:
    """Write every code out m times and every test f times."""
    return np.repeat(np.repeat(a, m, axis=0), f, axis=1)


def test_golden_ratio_example_by_hand() -> None:
    # A = [[1, 1], [1, 0]]: A·Aᵀ = [[2, 1], [1, 1]], and [[2,1],[1,1]]·(φ, 1) = (2φ+1, φ+1)
    # = φ²·(φ, 1) since φ² = φ + 1. So hubs ∝ (φ, 1); A is symmetric so authorities too.
    # Scaled so the largest score is 1: (1, 1/φ) = (1, 0.618034...).
    result = HitsRanker().rank(np.array([[True, True], [True, False]]), [1, 1], [1, 1])
    phi = (1 + math.sqrt(5)) / 2
    assert result.code_scores == pytest.approx([1.0, 1 / phi], rel=1e-12)
    assert result.test_scores == pytest.approx([1.0, 1 / phi], rel=1e-12)
    assert result.order == [0, 1]
    assert result.ranker == "hits"


def test_matches_numpy_svd_of_the_expanded_matrix() -> None:
    # Multiplicities must act like repeated nodes: compare with the plain leading singular
    # vectors of the matrix in which each code/test is written out m/f times.
    rng = np.random.default_rng(11)
    a = rng.random((9, 7)) < 0.45
    a[0, :] = True  # keeps the graph connected, so the top singular value is simple
    m, f = rng.integers(1, 4, 9).tolist(), rng.integers(1, 4, 7).tolist()
    result = HitsRanker().rank(a, m, f)

    u, sigma, vt = np.linalg.svd(_expand(a, m, f).astype(float))
    assert sigma[0] > sigma[1] * (1 + 1e-6)
    hub, authority = np.abs(u[:, 0]), np.abs(vt[0])
    first_copy_of_code = np.cumsum([0, *m[:-1]])
    first_copy_of_test = np.cumsum([0, *f[:-1]])
    expected_codes = hub[first_copy_of_code]
    expected_tests = authority[first_copy_of_test]
    # Equal up to one common scale (hubs and authorities share it: ‖u‖ = ‖v‖ = 1).
    scale = max(expected_codes.max(), expected_tests.max())
    np.testing.assert_allclose(result.code_scores, expected_codes / scale, rtol=1e-9)
    np.testing.assert_allclose(result.test_scores, expected_tests / scale, rtol=1e-9)


def test_is_the_limit_of_the_pagerank_update() -> None:
    rng = np.random.default_rng(5)
    a = rng.random((10, 8)) < 0.5
    m, f = rng.integers(1, 3, 10).tolist(), rng.integers(1, 3, 8).tolist()
    hits = HitsRanker().rank(a, m, f)
    limit = PageRankRanker(iterations=1000, early_stop=False).rank(a, m, f)
    scale = max(max(limit.code_scores), max(limit.test_scores))
    np.testing.assert_allclose(np.array(limit.code_scores) / scale, hits.code_scores, atol=1e-9)
    np.testing.assert_allclose(np.array(limit.test_scores) / scale, hits.test_scores, atol=1e-9)
    assert hits.order == limit.order


def test_weaker_block_scores_zero_and_orders_by_tests_passed() -> None:
    # Two disconnected blocks: codes 0-1 pass test 0 (block σ = √2 by m = (1, 1)), code 2
    # passes test 1 with m = 3 (block σ = √3). Only the stronger block survives the limit.
    # Written out, that block is the all-ones 3×1 matrix: u = (1, 1, 1)/√3, v = (1), so per
    # copy code 2 scores 1/√3 and test 1 scores 1. Codes 0 and 1 score 0, tie, keep order.
    a = np.array([[True, False], [True, False], [False, True]])
    result = HitsRanker().rank(a, [1, 1, 3], [1, 1])
    assert result.code_scores == pytest.approx([0.0, 0.0, 1 / math.sqrt(3)], abs=1e-12)
    assert result.code_scores[:2] == [0.0, 0.0]
    assert result.test_scores == pytest.approx([0.0, 1.0], abs=1e-12)
    assert result.order == [2, 0, 1]


def test_repeated_top_singular_value_keeps_both_blocks_like_the_iteration() -> None:
    # A = I₂: σ₁ = σ₂ = 1 and SVD may return any rotation of the two blocks; projecting the
    # all-ones start keeps both at equal weight, exactly as the PageRank update does.
    result = HitsRanker().rank(np.eye(2, dtype=bool), [1, 1], [1, 1], sample_order=[3, 1])
    assert result.code_scores == pytest.approx([1.0, 1.0], rel=1e-12)
    assert result.order == [1, 0]


def test_all_fail_gives_zero_scores() -> None:
    result = HitsRanker().rank(np.zeros((3, 2), dtype=bool), [1, 1, 1], [1, 1])
    assert result.code_scores == [0.0, 0.0, 0.0]
    assert result.test_scores == [0.0, 0.0]
    assert result.order == [0, 1, 2]
