"""Focused-DPO pair selection (hand-worked Diff values) and the Target-DPO pair."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from pipeline.config import PairsConfig
from pipeline.errors import ContractViolation
from pipeline.pairing import PairSelection, normalised_scores, select_focused_pairs
from pipeline.ranking import binary_matrix
from pipeline.records import (
    Candidates,
    CellStatus,
    CodeCandidate,
    GenerationInfo,
    PairMethod,
    RankingResult,
    SkipReason,
    TestCandidate,
)
from tests.conftest import HUMANEVAL_DIR, requires_shared_data

GEN = GenerationInfo(model="m", sampler="replay", temperature=1.5, k=10, seed=7)


def _candidates(
    completions: list[str], n_tests: int = 3, programs: list[str] | None = None
) -> Candidates:
    programs = programs or completions
    return Candidates(
        problem_id="p/0",
        codes=[
            CodeCandidate(completion=c, program=prog, count=1, first_sample=i)
            for i, (c, prog) in enumerate(zip(completions, programs, strict=True))
        ],
        tests=[
            TestCandidate(source=f"assert f({j}) == {j}", count=1, first_sample=0)
            for j in range(n_tests)
        ],
    )


def _ranking(scores: list[float], order: list[int] | None = None) -> RankingResult:
    order = order if order is not None else sorted(range(len(scores)), key=lambda i: -scores[i])
    return RankingResult(ranker="pagerank", code_scores=scores, test_scores=[1.0], order=order)


def _select(
    completions: list[str],
    passed: list[list[int]],
    scores: list[float],
    order: list[int] | None = None,
    programs: list[str] | None = None,
    **config: Any,
) -> PairSelection:
    matrix = np.array(passed, dtype=bool)
    return select_focused_pairs(
        _candidates(completions, matrix.shape[1], programs),
        matrix,
        _ranking(scores, order),
        PairsConfig(**config),
        job_id="job",
        prompt="def f(a, b):\n",
        generation=GEN,
    )


# c0, c1 pass all three tests; c2 passes one; c3 passes none.
CODES = [
    "    return a + b\n",  # 17 chars
    "    return b + a\n",
    "    return a - b\n",
    "    return 0\n",  # 13 chars
]
PASSED = [[1, 1, 1], [1, 1, 1], [1, 0, 0], [0, 0, 0]]
SCORES = [4.0, 4.0, 2.0, 1.0]  # ŝ = 1, 1, 0.5, 0.25


def test_ground_truth_split_and_best_diff():
    # Diff(0,2) = 0.5 + (13 + 3)/17 = 1.441; Diff(0,3) = 0.75 + (11 + 1)/17 = 1.456;
    # Diff(1,2) = 0.5 + (11 + 1)/17 = 1.206; Diff(1,3) = 0.75 + 12/17, tied with (0,3).
    sel = _select(CODES, PASSED, SCORES)
    assert sel.skip_reason is None
    assert sel.top_code == 0
    assert sel.ground_truth_tests == [0, 1, 2]
    assert sel.correct == [0, 1] and sel.incorrect == [2, 3]
    [pair] = sel.pairs
    assert (pair.chosen_index, pair.rejected_index) == (0, 3)
    assert (pair.chosen, pair.rejected) == (CODES[0], CODES[3])
    assert (pair.chosen_score, pair.rejected_score) == (1.0, 0.25)
    assert pair.method is PairMethod.FOCUSED_DPO
    assert pair.prompt == "def f(a, b):\n" and pair.generation == GEN
    assert pair.ranker == "pagerank" and pair.job_id == "job" and pair.problem_id == "p/0"
    assert pair.spans is not None
    assert pair.chosen[pair.spans.chosen_mid_start : pair.spans.chosen_mid_end] == "a + b"
    assert pair.rejected[pair.spans.rejected_mid_start : pair.spans.rejected_mid_end] == "0"


def test_lambda_weighs_the_common_length():
    # λ = 2: Diff(0,2) = 0.5 + 32/17 = 2.382 beats Diff(0,3) = 0.75 + 24/17 = 2.162.
    [pair] = _select(CODES, PASSED, SCORES, diff_lambda=2.0).pairs
    assert (pair.chosen_index, pair.rejected_index) == (0, 2)


def test_several_pairs_best_first_with_index_tie_break():
    sel = _select(CODES, PASSED, SCORES, pairs_per_problem=3)
    assert [(p.chosen_index, p.rejected_index) for p in sel.pairs] == [(0, 3), (1, 3), (0, 2)]


def test_equal_diff_prefers_longer_common_length_over_lower_index():
    # λ = 0: both pairs have Diff 0.5; (1,2) shares 16 characters, (0,2) only 12.
    codes = ["    return b + a\n", "    return a + b\n", "    return a - b\n"]
    passed = [[1, 1], [1, 1], [1, 0]]
    [pair] = _select(codes, passed, [2.0, 2.0, 1.0], diff_lambda=0.0).pairs
    assert (pair.chosen_index, pair.rejected_index) == (1, 2)


def test_identical_completions_are_never_paired():
    # c0 and c2 have the same completion (their programs differ): the best Diff pair
    # (0, 2) is identical and skipped for (0, 1).
    codes = ["    return a + b\n", "    return a * b\n", "    return a + b\n"]
    passed = [[1, 1], [0, 1], [1, 0]]
    sel = _select(codes, passed, [3.0, 1.0, 2.0], programs=["p0", "p1", "p2"])
    [pair] = sel.pairs
    assert (pair.chosen_index, pair.rejected_index) == (0, 1)


def test_only_identical_or_unfocused_pairs_give_no_distinct_pair():
    codes = ["    return sum([a, b])\n", "    x = a\n    return x - b\n"]
    sel = _select(codes, [[1, 1], [1, 0]], [2.0, 1.0])
    assert sel.pairs == [] and sel.skip_reason is SkipReason.NO_DISTINCT_PAIR
    kept = _select(codes, [[1, 1], [1, 0]], [2.0, 1.0], unfocused="keep")
    [pair] = kept.pairs
    assert not pair.focused


def test_code_missing_at_the_end_is_flagged_or_dropped():
    # The rejected code lacks the chosen one's last line; the next pair is a real focus.
    codes = ["    x = a\n    return x + b\n", "    x = a\n", "    x = a\n    return x - b\n"]
    passed = [[1, 1], [0, 0], [1, 0]]
    config = {"pairs_per_problem": 2, "max_mid_frac": 1.0}
    flagged = _select(codes, passed, [3.0, 1.0, 2.0], **config)
    assert [(p.chosen_index, p.rejected_index, p.focused) for p in flagged.pairs] == [
        (0, 2, True),
        (0, 1, False),
    ]
    unflagged = flagged.pairs[1]
    assert unflagged.spans is not None
    assert unflagged.spans.rejected_mid_start == unflagged.spans.rejected_mid_end == 10
    dropped = _select(codes, passed, [3.0, 1.0, 2.0], **config, edit_at_end="drop")
    assert [(p.chosen_index, p.rejected_index) for p in dropped.pairs] == [(0, 2)]


P, F, S = CellStatus.PASSED, CellStatus.FAILED, CellStatus.SANDBOX_ERROR


def _select_status(
    completions: list[str], status: list[list[CellStatus]], scores: list[float]
) -> PairSelection:
    return select_focused_pairs(
        _candidates(completions, len(status[0])),
        binary_matrix(status),
        _ranking(scores),
        PairsConfig(pairs_per_problem=3),
        job_id="job",
        prompt="def f(a, b):\n",
        generation=GEN,
        status=status,
    )


def test_sandbox_error_never_makes_a_code_incorrect():
    # c1 passed every ground-truth test it ran; its third cell is infrastructure trouble.
    # It is the closest text to c0, so counting that cell as a failure would make (0, 1)
    # the best pair and push a code that may well be correct down.
    codes = ["    return a + b\n", "    return a + b \n", "    return 0\n"]
    status = [[P, P, P], [P, P, S], [P, F, P]]
    sel = _select_status(codes, status, [3.0, 2.0, 2.0])
    assert sel.ground_truth_tests == [0, 1, 2]
    assert sel.correct == [0] and sel.incorrect == [2] and sel.undetermined == [1]
    assert [(p.chosen_index, p.rejected_index) for p in sel.pairs] == [(0, 2)]


def test_observed_failure_still_counts_beside_a_sandbox_error():
    codes = ["    return a + b\n", "    return a - b\n"]
    sel = _select_status(codes, [[P, P, P], [F, P, S]], [3.0, 1.0])
    assert sel.correct == [0] and sel.incorrect == [1] and sel.undetermined == []
    assert [(p.chosen_index, p.rejected_index) for p in sel.pairs] == [(0, 1)]


def test_every_executed_cell_passing_is_all_pass():
    # Every executed cell passed: nothing observed says any code is wrong.
    codes = ["    return a + b\n", "    return a - b\n"]
    sel = _select_status(codes, [[P, P], [P, S]], [2.0, 1.0])
    assert sel.pairs == [] and sel.skip_reason is SkipReason.ALL_PASS


def test_status_must_match_the_pass_matrix():
    with pytest.raises(ContractViolation, match="status matrix"):
        select_focused_pairs(
            _candidates(CODES, 3),
            np.array(PASSED, dtype=bool),
            _ranking(SCORES),
            PairsConfig(),
            job_id="j",
            prompt="",
            generation=GEN,
            status=[[P, P], [P, P], [P, P], [P, P]],
        )


@pytest.mark.parametrize(
    ("passed", "order", "config", "reason"),
    [
        ([[0, 0], [0, 0]], [0, 1], {}, SkipReason.ALL_FAIL),
        ([[1, 1], [1, 1]], [0, 1], {}, SkipReason.ALL_PASS),
        ([[1, 0], [0, 1]], [0, 1], {"min_ground_truth_tests": 2}, SkipReason.NO_GROUND_TRUTH),
        # The top code passes only test 0, which every code passes.
        ([[1, 0], [1, 1]], [0, 1], {}, SkipReason.NO_INCORRECT),
    ],
)
def test_skip_reasons(passed, order, config, reason):
    sel = _select(["    return a\n", "    return b\n"], passed, [2.0, 1.0], order, **config)
    assert sel.pairs == [] and sel.skip_reason is reason


def test_no_codes_or_no_tests():
    empty = Candidates(problem_id="p", codes=[], tests=[])
    sel = select_focused_pairs(
        empty,
        np.zeros((0, 0), dtype=bool),
        _ranking([]),
        PairsConfig(),
        job_id="j",
        prompt="",
        generation=GEN,
    )
    assert sel.skip_reason is SkipReason.NO_CODES
    sel = select_focused_pairs(
        _candidates(["x"], n_tests=0),
        np.zeros((1, 0), dtype=bool),
        _ranking([1.0]),
        PairsConfig(),
        job_id="j",
        prompt="",
        generation=GEN,
    )
    assert sel.skip_reason is SkipReason.NO_TESTS


def test_mismatched_matrix_or_ranking_is_a_contract_violation():
    narrow = np.array([row[:2] for row in PASSED], dtype=bool)
    with pytest.raises(ContractViolation, match=r"codes x tests = \(4, 3\), got shape \(4, 2\)"):
        select_focused_pairs(
            _candidates(CODES, 3),
            narrow,
            _ranking(SCORES),
            PairsConfig(),
            job_id="j",
            prompt="",
            generation=GEN,
        )
    with pytest.raises(ContractViolation, match="should score and order 4 codes"):
        _select(CODES, PASSED, SCORES[:3], order=[0, 1, 2])


def test_normalised_scores_guard_non_positive_maximum():
    assert normalised_scores([2.0, 1.0, 0.0]).tolist() == [1.0, 0.5, 0.0]
    assert normalised_scores([0.0, 0.0]).tolist() == [0.0, 0.0]
    assert normalised_scores([-1.0, -2.0]).tolist() == [0.0, 0.0]


@requires_shared_data
def test_real_humaneval_completions_give_consistent_pairs():
    rows = [json.loads(line) for line in (HUMANEVAL_DIR / "dev-k100.jsonl").open()][:20]
    rng = np.random.default_rng(0)
    for row in rows:
        codes = list(dict.fromkeys(row["code_completions"]))[:100]
        passed = rng.random((len(codes), 8)) < 0.5
        passed[0] = True  # the top code passes everything, so C- is whatever fails one
        scores = passed.sum(axis=1).astype(float).tolist()
        order = sorted(range(len(codes)), key=lambda i: (-scores[i], i))
        sel = select_focused_pairs(
            _candidates(codes, 8),
            passed,
            _ranking(scores, order),
            PairsConfig(pairs_per_problem=3),
            job_id="job",
            prompt=row["prompt"],
            generation=GEN,
        )
        for pair in sel.pairs:
            assert pair.chosen_index in sel.correct and pair.rejected_index in sel.incorrect
            assert passed[pair.chosen_index].all()
            assert pair.chosen != pair.rejected
            s = pair.spans
            assert s is not None
            assert pair.chosen[: s.chosen_mid_start] == pair.rejected[: s.rejected_mid_start]
