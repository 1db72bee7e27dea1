"""Ranking plumbing: tie-break, pass matrix, input checks, factory, PassCount, doc examples."""

from __future__ import annotations

import doctest
import importlib

import numpy as np
import pytest

from pipeline.config import RankingConfig
from pipeline.errors import ContractViolation
from pipeline.ranking import (
    CodeTRanker,
    HitsRanker,
    PageRankRanker,
    PassCountRanker,
    binary_matrix,
    make_ranker,
    tie_break_order,
)
from pipeline.records import CellStatus

P, F, E, T, MEM, SB = (
    CellStatus.PASSED,
    CellStatus.FAILED,
    CellStatus.ERROR,
    CellStatus.TIMEOUT,
    CellStatus.MEMORY,
    CellStatus.SANDBOX_ERROR,
)


def test_tie_break_score_then_weighted_tests_then_sample_index() -> None:
    passed = np.array(
        [
            [True, False, False],  # code 0: passes t0 (f = 3)      → 3 weighted tests
            [False, True, True],  # code 1: passes t1, t2 (f = 1, 1) → 2 weighted tests
            [True, False, False],  # code 2: same as code 0
            [False, False, False],  # code 3: passes nothing
        ]
    )
    scores = np.array([5.0, 5.0, 5.0, 7.0])
    # Code 3 wins on score. Among 0, 1, 2: codes 0 and 2 pass 3 weighted tests, code 1 only 2
    # (unweighted it would pass more: 2 vs 1). Codes 0 and 2 tie: sample 4 < sample 8.
    assert tie_break_order(scores, passed, [8, 1, 4, 0], [3, 1, 1]) == [3, 2, 0, 1]
    # Without multiplicities the count is unweighted: code 1 (2 tests) beats 0 and 2 (1).
    assert tie_break_order(scores, passed, [8, 1, 4, 0]) == [3, 1, 2, 0]


def test_tie_break_treats_scores_a_rounding_apart_as_equal() -> None:
    passed = np.array([[True, False], [True, True], [False, False]])
    one = 1.0
    scores = np.array([np.nextafter(one, 2.0), one, one * (1 - 1e-6)])
    # Codes 0 and 1 are one ulp apart: a tie, so code 1 (more tests passed) goes first.
    # Code 2 is a real millionth lower and stays last.
    assert tie_break_order(scores, passed, [0, 1, 2]) == [1, 0, 2]


def test_tie_break_is_stable_on_fully_equal_keys() -> None:
    passed = np.zeros((3, 1), dtype=bool)
    assert tie_break_order(np.zeros(3), passed, [0, 0, 0]) == [0, 1, 2]


def test_tie_break_rejects_nan_and_wrong_lengths() -> None:
    passed = np.zeros((2, 1), dtype=bool)
    with pytest.raises(ContractViolation, match="NaN"):
        tie_break_order(np.array([1.0, np.nan]), passed, [0, 1])
    with pytest.raises(ContractViolation, match="one score"):
        tie_break_order(np.array([1.0]), passed, [0, 1])


def test_binary_matrix_only_passed_is_true() -> None:
    status = [[P, F, E], [T, MEM, SB], [P, P, F]]
    expected = np.array(
        [[True, False, False], [False, False, False], [True, True, False]], dtype=bool
    )
    matrix = binary_matrix(status)
    assert matrix.dtype == np.bool_
    np.testing.assert_array_equal(matrix, expected)


def test_binary_matrix_shapes_and_ragged_rows() -> None:
    assert binary_matrix([]).shape == (0, 0)
    assert binary_matrix([[], []]).shape == (2, 0)
    with pytest.raises(ContractViolation, match=r"rectangular.*\[1, 2\]"):
        binary_matrix([[P], [P, F]])


@pytest.mark.parametrize(
    ("codes", "tests", "order", "match"),
    [
        ([1], [1, 1], None, "code_counts must have one entry per matrix row"),
        ([1, 1], [1], None, "test_counts must have one entry per matrix column"),
        ([1, 1], [1, 1], [0], "sample_order"),
        ([0, 1], [1, 1], None, "multiplicities must be >= 1"),
    ],
)
def test_rankers_check_their_inputs(
    codes: list[int], tests: list[int], order: list[int] | None, match: str
) -> None:
    passed = np.eye(2, dtype=bool)
    for ranker in (PageRankRanker(), CodeTRanker(), HitsRanker(), PassCountRanker()):
        with pytest.raises(ContractViolation, match=match):
            ranker.rank(passed, codes, tests, order)


def test_rankers_refuse_a_non_boolean_matrix() -> None:
    with pytest.raises(ContractViolation, match="2-D boolean"):
        PageRankRanker().rank(np.eye(2), [1, 1], [1, 1])  # type: ignore[arg-type]


def test_make_ranker_follows_the_config() -> None:
    pagerank = make_ranker(RankingConfig(damping=0.5, iterations=3, early_stop=False))
    assert pagerank == PageRankRanker(damping=0.5, iterations=3, early_stop=False)
    assert isinstance(make_ranker(RankingConfig(ranker="codet")), CodeTRanker)
    assert isinstance(make_ranker(RankingConfig(ranker="hits")), HitsRanker)
    assert isinstance(make_ranker(RankingConfig(ranker="passcount")), PassCountRanker)
    for name in ("pagerank", "codet", "hits", "passcount"):
        ranker = make_ranker(RankingConfig(ranker=name))
        assert ranker.name == name
        assert ranker.rank(np.eye(2, dtype=bool), [1, 1], [1, 1]).ranker == name


def test_passcount_by_hand() -> None:
    # f = (1, 2, 4), m = (1, 3, 1).
    # codes: 0 passes t0, t2 → 1 + 4 = 5; 1 passes t1 → 2; 2 passes t0, t1 → 1 + 2 = 3
    # tests: t0 passed by codes 0, 2 → 1 + 1 = 2; t1 by 1, 2 → 3 + 1 = 4; t2 by 0 → 1
    passed = np.array([[True, False, True], [False, True, False], [True, True, False]])
    result = PassCountRanker().rank(passed, [1, 3, 1], [1, 2, 4])
    assert result.code_scores == [5.0, 2.0, 3.0]
    assert result.test_scores == [2.0, 4.0, 1.0]
    assert result.order == [0, 2, 1]
    assert result.ranker == "passcount"


@pytest.mark.parametrize(
    "module",
    [
        "pipeline.ranking",
        "pipeline.ranking.codet",
        "pipeline.ranking.graph",
        "pipeline.skip_rules",
        "pipeline.ranking.hits",
        "pipeline.ranking.pagerank",
        "pipeline.ranking.passcount",
    ],
)
def test_docstring_examples_hold(module: str) -> None:
    failures, attempted = doctest.testmod(importlib.import_module(module))
    assert attempted > 0
    assert failures == 0
