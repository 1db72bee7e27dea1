"""The pure scoring helpers of ``benchmarks/ranking_quality.py`` on hand-worked inputs."""

from __future__ import annotations

import pytest

from benchmarks.ranking_quality import (
    PairPrecision,
    group_pass_at_1,
    pair_precision,
    random_pass_at_1,
    ranked_pick,
)
from pipeline.records import CellStatus

P, F, E = CellStatus.PASSED, CellStatus.FAILED, CellStatus.ERROR


def test_random_baseline_counts_every_sample_including_duplicates() -> None:
    # 100 samples, 23 of them correct (say 20 copies of one code and 3 singletons).
    samples = [True] * 20 + [False] * 40 + [True] * 3 + [False] * 37
    assert random_pass_at_1(samples) == pytest.approx(0.23)


def test_random_baseline_of_no_samples_is_zero() -> None:
    assert random_pass_at_1([]) == 0.0


def test_group_expectation_weighs_codes_by_multiplicity() -> None:
    # Codes 0 (3 samples, correct) and 2 (1 sample, wrong): 3 of 4 samples are correct.
    assert group_pass_at_1([0, 2], [3, 5, 1], [True, False, False]) == pytest.approx(0.75)


def test_codet_merges_equal_score_groups_and_draws_a_sample() -> None:
    # Tests: t0 sampled 4 times, t1 twice.
    # Group A = {code 0} (m=1) passes {t0}: sqrt(1)·4 = 4.
    # Group B = {codes 1, 2} (m=2 each, |S_x| = 4) passes {t1}: sqrt(4)·2 = 4.
    # Equal scores merge: 1 + 2 + 2 = 5 samples, of which 1 (code 0) is correct.
    # Code 3 passes nothing, is never ranked by CodeT, and its correctness must not count.
    status = [[P, F], [F, P], [F, P], [F, E]]
    pick = ranked_pick(
        "codet",
        status,
        code_counts=[1, 2, 2, 3],
        test_counts=[4, 2],
        correct=[True, False, False, True],
        random_estimate=0.5,
    )
    assert pick.group == pytest.approx(1 / 5)
    assert pick.group_size == 5
    # Tie-break: code 0 passes weight 4 of tests, codes 1 and 2 only weight 2.
    assert pick.top1 == 1.0
    assert not pick.fallback


def test_codet_top_group_is_the_single_best_consensus_when_scores_differ() -> None:
    # Group {0, 1} (m = 1 + 1) passes {t0, t1}: sqrt(2)·2 ≈ 2.83; code 2 (m=5) passes only
    # {t0}: sqrt(5)·1 ≈ 2.24, so the top group is {0, 1} alone and code 2 does not count.
    status = [[P, P], [P, P], [P, F]]
    pick = ranked_pick("codet", status, [1, 1, 5], [1, 1], [True, False, True], random_estimate=0.0)
    assert pick.group == pytest.approx(0.5)
    assert pick.group_size == 2


def test_pagerank_tie_group_expectation_and_top_code() -> None:
    # Codes 0 and 1 have identical rows, so identical scores: the tie group is both,
    # 1 + 3 samples of which 1 is correct. The tie-break picks the lower index, code 0.
    status = [[P, P], [P, P], [F, P]]
    pick = ranked_pick(
        "pagerank", status, [1, 3, 1], [1, 1], [True, False, False], random_estimate=0.1
    )
    assert pick.group == pytest.approx(0.25)
    assert pick.group_size == 4
    assert pick.top1 == 1.0


def test_no_passing_cell_falls_back_to_the_random_estimate() -> None:
    status = [[F, E], [E, F]]
    for ranker in ("codet", "pagerank", "hits", "passcount"):
        pick = ranked_pick(ranker, status, [2, 1], [1, 1], [True, False], random_estimate=0.3)
        assert (pick.top1, pick.group, pick.group_size, pick.fallback) == (0.3, 0.3, 0, True)


def test_no_tests_falls_back_to_the_random_estimate() -> None:
    pick = ranked_pick("codet", [[], []], [1, 1], [], [True, False], random_estimate=0.25)
    assert pick.fallback
    assert pick.group == 0.25


def test_ranked_pick_rejects_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match="one status row, count and verdict per code"):
        ranked_pick("codet", [[P]], [1], [1], [True, False], random_estimate=0.0)


def test_pair_precision_counts_each_side_and_both() -> None:
    labels = [(True, False), (True, True), (False, False), (True, False)]
    assert pair_precision(labels) == PairPrecision(
        pairs=4, chosen_correct=0.75, rejected_wrong=0.75, both=0.5
    )


def test_pair_precision_of_no_pairs_is_zero() -> None:
    assert pair_precision([]) == PairPrecision(0, 0.0, 0.0, 0.0)
