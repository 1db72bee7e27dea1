"""Properties every ranker must have, checked on random pass matrices with hypothesis."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.ranking import CodeTRanker, HitsRanker, PageRankRanker, PassCountRanker, Ranker

RANKERS: list[Ranker] = [
    PageRankRanker(),
    PageRankRanker(iterations=25, early_stop=False),
    CodeTRanker(),
    HitsRanker(),
    PassCountRanker(),
]


@st.composite
def problems(draw: st.DrawFn) -> tuple[np.ndarray, list[int], list[int]]:
    n_codes = draw(st.integers(1, 6))
    n_tests = draw(st.integers(1, 6))
    cells = draw(st.lists(st.booleans(), min_size=n_codes * n_tests, max_size=n_codes * n_tests))
    m = draw(st.lists(st.integers(1, 4), min_size=n_codes, max_size=n_codes))
    f = draw(st.lists(st.integers(1, 4), min_size=n_tests, max_size=n_tests))
    return np.array(cells, dtype=bool).reshape(n_codes, n_tests), m, f


@settings(max_examples=60, deadline=None)
@given(problem=problems(), data=st.data())
def test_permuting_codes_permutes_scores_and_order(
    problem: tuple[np.ndarray, list[int], list[int]], data: st.DataObject
) -> None:
    a, m, f = problem
    n_codes = a.shape[0]
    perm = data.draw(st.permutations(range(n_codes)))
    # Distinct sample indices that travel with their codes, so the order is fully decided.
    samples = data.draw(st.permutations(range(n_codes)))
    for ranker in RANKERS:
        before = ranker.rank(a, m, f, samples)
        after = ranker.rank(a[perm], [m[i] for i in perm], f, [samples[i] for i in perm])
        assert after.code_scores == [before.code_scores[i] for i in perm], ranker
        assert [perm[k] for k in after.order] == before.order, ranker
        np.testing.assert_allclose(after.test_scores, before.test_scores, rtol=1e-12)


@settings(max_examples=60, deadline=None)
@given(problem=problems(), data=st.data())
def test_splitting_a_multiplicity_into_copies_changes_nothing(
    problem: tuple[np.ndarray, list[int], list[int]], data: st.DataObject
) -> None:
    # A code with count c + 1 scores like two identical codes with counts c and 1; the same
    # for tests. The split problem appends a copy of one row and one column with count 1.
    a, m, f = problem
    code = data.draw(st.integers(0, a.shape[0] - 1))
    test = data.draw(st.integers(0, a.shape[1] - 1))
    with_row = np.vstack([a, a[code : code + 1]])
    a_split = np.hstack([with_row, with_row[:, test : test + 1]])
    m_split, f_split = [*m, 1], [*f, 1]
    m_raised = [c + (1 if i == code else 0) for i, c in enumerate(m)]
    f_raised = [c + (1 if j == test else 0) for j, c in enumerate(f)]
    # The copy keeps its original's sample index, as a merged duplicate would: otherwise
    # the two problems tie-break differently and PageRank may stop early at another round.
    whole_samples = list(range(a.shape[0]))
    split_samples = [*whole_samples, code]
    for ranker in RANKERS:
        whole = ranker.rank(a, m_raised, f_raised, whole_samples)
        split = ranker.rank(a_split, m_split, f_split, split_samples)
        expected_codes = [*whole.code_scores, whole.code_scores[code]]
        expected_tests = [*whole.test_scores, whole.test_scores[test]]
        np.testing.assert_allclose(split.code_scores, expected_codes, rtol=1e-12, atol=1e-300)
        np.testing.assert_allclose(split.test_scores, expected_tests, rtol=1e-12, atol=1e-300)


@settings(max_examples=60, deadline=None)
@given(problem=problems())
def test_scores_are_finite_non_negative_and_order_is_a_permutation(
    problem: tuple[np.ndarray, list[int], list[int]],
) -> None:
    a, m, f = problem
    for ranker in RANKERS:
        result = ranker.rank(a, m, f)
        scores = np.array(result.code_scores + result.test_scores)
        assert np.isfinite(scores).all() and (scores >= 0).all(), ranker
        assert sorted(result.order) == list(range(a.shape[0]))
        ordered = [result.code_scores[i] for i in result.order]
        assert ordered == sorted(ordered, reverse=True), ranker
