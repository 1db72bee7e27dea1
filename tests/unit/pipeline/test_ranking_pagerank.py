"""PageRank ranker: hand-worked updates, multiplicities, early stop, large-T stability."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.ranking import HitsRanker, PageRankRanker, PassCountRanker

D = 0.85


def _matrix(rows: list[list[int]]) -> np.ndarray:
    return np.array(rows, dtype=bool)


def _reference_pagerank(
    a: list[list[int]], m: list[int], f: list[int], rounds: int
) -> tuple[list[float], list[float]]:
    """The §1.4 update written out with Python floats, one cell at a time (the test oracle)."""
    n_codes, n_tests = len(a), len(a[0])
    codes, tests = [1.0] * n_codes, [1.0] * n_tests
    for _ in range(rounds):
        new_codes = [
            (1 - D) * codes[i] + D * sum(a[i][j] * f[j] * tests[j] for j in range(n_tests))
            for i in range(n_codes)
        ]
        new_tests = [
            (1 - D) * tests[j] + D * sum(a[i][j] * m[i] * codes[i] for i in range(n_codes))
            for j in range(n_tests)
        ]
        codes, tests = new_codes, new_tests
    return codes, tests


def test_two_by_two_two_rounds_by_hand() -> None:
    # A = [[1, 1], [1, 0]], m = f = 1, start s_c = s_t = (1, 1).
    # τ=1: s_c = 0.15·(1,1) + 0.85·A(1,1)   = (0.15 + 1.7, 0.15 + 0.85) = (1.85, 1.0)
    #      s_t = 0.15·(1,1) + 0.85·Aᵀ(1,1)  = (1.85, 1.0)            (A is symmetric)
    # τ=2: s_c = 0.15·(1.85, 1) + 0.85·A(1.85, 1)
    #          = (0.2775 + 0.85·2.85, 0.15 + 0.85·1.85) = (0.2775 + 2.4225, 0.15 + 1.5725)
    #          = (2.7, 1.7225);  s_t = (2.7, 1.7225)
    result = PageRankRanker(iterations=2).rank(_matrix([[1, 1], [1, 0]]), [1, 1], [1, 1])
    assert result.code_scores == pytest.approx([2.7, 1.7225], rel=1e-12)
    assert result.test_scores == pytest.approx([2.7, 1.7225], rel=1e-12)
    assert result.order == [0, 1]
    assert result.iterations == 2
    assert result.ranker == "pagerank"


def test_three_by_three_with_multiplicities_by_hand() -> None:
    # A = [[1,1,0],[0,1,1],[0,0,1]], m = (2,1,1), f = (1,1,3).
    # τ=1: A f = (1+1, 1+3, 3) = (2, 4, 3)        → s_c = 0.15 + 0.85·(2,4,3) = (1.85, 3.55, 2.7)
    #      Aᵀ m = (2, 2+1, 1+1) = (2, 3, 2)       → s_t = 0.15 + 0.85·(2,3,2) = (1.85, 2.7, 1.85)
    # τ=2: f⊙s_t = (1.85, 2.7, 5.55); A(f⊙s_t) = (4.55, 8.25, 5.55)
    #      s_c = 0.15·(1.85, 3.55, 2.7) + 0.85·(4.55, 8.25, 5.55)
    #          = (0.2775 + 3.8675, 0.5325 + 7.0125, 0.405 + 4.7175) = (4.145, 7.545, 5.1225)
    #      m⊙s_c = (3.7, 3.55, 2.7); Aᵀ(m⊙s_c) = (3.7, 7.25, 6.25)
    #      s_t = 0.15·(1.85, 2.7, 1.85) + 0.85·(3.7, 7.25, 6.25)
    #          = (0.2775 + 3.145, 0.405 + 6.1625, 0.2775 + 5.3125) = (3.4225, 6.5675, 5.59)
    a = _matrix([[1, 1, 0], [0, 1, 1], [0, 0, 1]])
    result = PageRankRanker(iterations=2).rank(a, [2, 1, 1], [1, 1, 3])
    assert result.code_scores == pytest.approx([4.145, 7.545, 5.1225], rel=1e-12)
    assert result.test_scores == pytest.approx([3.4225, 6.5675, 5.59], rel=1e-12)
    assert result.order == [1, 2, 0]


def test_duplicated_row_and_column_equal_multiplicities() -> None:
    # The 3×3 problem above with code 0 written out twice and test 2 three times.
    compact = PageRankRanker(iterations=7, early_stop=False).rank(
        _matrix([[1, 1, 0], [0, 1, 1], [0, 0, 1]]), [2, 1, 1], [1, 1, 3]
    )
    expanded = PageRankRanker(iterations=7, early_stop=False).rank(
        _matrix([[1, 1, 0, 0, 0], [1, 1, 0, 0, 0], [0, 1, 1, 1, 1], [0, 0, 1, 1, 1]]),
        [1, 1, 1, 1],
        [1, 1, 1, 1, 1],
    )
    c, t = compact.code_scores, compact.test_scores
    np.testing.assert_allclose(expanded.code_scores, [c[0], c[0], c[1], c[2]], rtol=1e-12)
    np.testing.assert_allclose(expanded.test_scores, [t[0], t[1], t[2], t[2], t[2]], rtol=1e-12)
    reference_codes, _ = _reference_pagerank(
        [[1, 1, 0], [0, 1, 1], [0, 0, 1]], [2, 1, 1], [1, 1, 3], rounds=7
    )
    np.testing.assert_allclose(c, reference_codes, rtol=1e-12)


def test_early_stop_after_order_unchanged_twice() -> None:
    # Orders: τ=1 (0,1), τ=2 (0,1) unchanged once, τ=3 (0,1) unchanged twice → stop at 3.
    # τ=3: s_c = 0.15·(2.7, 1.7225) + 0.85·A(2.7, 1.7225)
    #          = (0.405 + 0.85·4.4225, 0.258375 + 0.85·2.7) = (4.164125, 2.553375)
    result = PageRankRanker(iterations=10).rank(_matrix([[1, 1], [1, 0]]), [1, 1], [1, 1])
    assert result.iterations == 3
    assert result.code_scores == pytest.approx([4.164125, 2.553375], rel=1e-12)


def test_early_stop_waits_out_an_oscillating_order() -> None:
    # Code 0 alone passes tests 0 and 1; codes 1-3 all pass test 2 (nobody else does).
    # τ=1: s_c = (0.15 + 0.85·2, 0.15 + 0.85·1) = (1.85, 1.0 ...): code 0 first.
    #      s_t = (1.0, 1.0, 0.15 + 0.85·3 = 2.7)
    # τ=2: code 0 = 0.15·1.85 + 0.85·(1 + 1) = 1.9775; code 1 = 0.15·1 + 0.85·2.7 = 2.445
    #      → codes 1-3 first.  s_t = (0.15 + 0.85·1.85, same, 0.15·2.7 + 0.85·3) =
    #      (1.7225, 1.7225, 2.955)
    # τ=3: code 0 = 0.15·1.9775 + 0.85·2·1.7225 = 3.224875; code 1 = 0.15·2.445 + 0.85·2.955
    #      = 2.8785 → code 0 first again (the bipartite graph alternates).
    # From τ=4 the 3-code block (σ = √3 > √2) leads for good: τ=4,5,6 agree → stop at 6.
    a = [[1, 1, 0], [0, 0, 1], [0, 0, 1], [0, 0, 1]]
    ones4, ones3 = [1, 1, 1, 1], [1, 1, 1]
    for rounds, expected_order in ((1, [0, 1, 2, 3]), (2, [1, 2, 3, 0]), (3, [0, 1, 2, 3])):
        result = PageRankRanker(iterations=rounds).rank(_matrix(a), ones4, ones3)
        assert result.order == expected_order, rounds
    assert PageRankRanker(iterations=2).rank(_matrix(a), ones4, ones3).code_scores[
        :2
    ] == pytest.approx([1.9775, 2.445], rel=1e-12)
    assert PageRankRanker(iterations=3).rank(_matrix(a), ones4, ones3).code_scores[
        :2
    ] == pytest.approx([3.224875, 2.8785], rel=1e-12)

    stopped = PageRankRanker(iterations=10).rank(_matrix(a), ones4, ones3)
    assert stopped.iterations == 6
    assert stopped.order == [1, 2, 3, 0]
    reference_codes, _ = _reference_pagerank(a, ones4, ones3, rounds=6)
    np.testing.assert_allclose(stopped.code_scores, reference_codes, rtol=1e-12)

    full = PageRankRanker(iterations=10, early_stop=False).rank(_matrix(a), ones4, ones3)
    assert full.iterations == 10
    reference_codes, _ = _reference_pagerank(a, ones4, ones3, rounds=10)
    np.testing.assert_allclose(full.code_scores, reference_codes, rtol=1e-12)


def test_one_round_orders_like_passcount() -> None:
    rng = np.random.default_rng(7)
    a = rng.random((12, 9)) < 0.4
    m, f = rng.integers(1, 4, 12).tolist(), rng.integers(1, 4, 9).tolist()
    one_round = PageRankRanker(iterations=1).rank(a, m, f)
    assert one_round.order == PassCountRanker().rank(a, m, f).order


def test_identical_rows_tie_and_fall_back_to_sample_order() -> None:
    a = _matrix([[1, 0, 1], [1, 1, 0], [1, 0, 1]])
    result = PageRankRanker().rank(a, [1, 1, 1], [1, 1, 1], sample_order=[9, 4, 2])
    assert result.code_scores[0] == result.code_scores[2]  # bit-identical, not just close
    assert result.order.index(2) < result.order.index(0)


@pytest.mark.parametrize("iterations", [2, 3, 10])
def test_mathematically_equal_scores_tie_despite_rounding(iterations: int) -> None:
    # Code i fails test i only; the rows differ, but by symmetry every code's score is the
    # same number. Float rounding makes them differ by an ulp (code 2 was ahead after 2
    # and 3 rounds): the documented tie-break, not the rounding, must decide.
    a = np.ones((3, 6), dtype=bool)
    a[[0, 1, 2], [0, 1, 2]] = False
    result = PageRankRanker(iterations=iterations).rank(a, [1, 1, 1], [1] * 6, [0, 1, 2])
    assert result.code_scores[0] == result.code_scores[1] == result.code_scores[2]
    assert result.order == [0, 1, 2]
    shuffled = PageRankRanker(iterations=iterations).rank(a, [1, 1, 1], [1] * 6, [2, 0, 1])
    assert shuffled.order == [1, 2, 0]


def test_large_t_is_finite_and_keeps_the_converged_order() -> None:
    # Dense 20×15 with multiplicities up to 50: unscaled scores would pass 1e308 within
    # about 100 rounds (each round multiplies them by about 0.85·σ₁ ≈ 10²).
    rng = np.random.default_rng(3)
    a = rng.random((20, 15)) < 0.5
    m, f = rng.integers(1, 51, 20).tolist(), rng.integers(1, 51, 15).tolist()
    long_run = PageRankRanker(iterations=1000, early_stop=False).rank(a, m, f)
    medium_run = PageRankRanker(iterations=200, early_stop=False).rank(a, m, f)
    scores = np.array(long_run.code_scores + long_run.test_scores)
    assert np.isfinite(scores).all()
    assert scores.max() > 0
    assert long_run.iterations == 1000
    assert long_run.order == medium_run.order
    assert long_run.order == HitsRanker().rank(a, m, f).order


def test_all_zero_matrix_decays_uniformly() -> None:
    # A = 0: every score is 0.15^T; T = 400 would underflow without rescaling.
    result = PageRankRanker(iterations=400, early_stop=False).rank(
        np.zeros((3, 2), dtype=bool), [1, 2, 1], [1, 1], sample_order=[5, 3, 4]
    )
    assert len(set(result.code_scores)) == 1
    assert result.code_scores[0] > 0
    assert result.order == [1, 2, 0]


@pytest.mark.parametrize(("damping", "iterations"), [(0.0, 10), (1.5, 10), (0.85, 0)])
def test_rejects_bad_parameters(damping: float, iterations: int) -> None:
    with pytest.raises(ValueError, match="must be"):
        PageRankRanker(damping=damping, iterations=iterations)
