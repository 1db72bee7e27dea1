"""The code–test pass graph: components and consensus sets, worked by hand."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from pipeline.errors import ContractViolation
from pipeline.ranking.graph import pass_graph, pass_graph_stats
from pipeline.records import PassGraphStats


def _matrix(rows: list[list[int]]) -> np.ndarray:
    return np.array(rows, dtype=bool)


def test_graph_nodes_edges_and_multiplicities() -> None:
    graph = pass_graph(_matrix([[1, 0], [0, 0]]), [3, 1], [2, 5])
    assert set(graph.edges) == {(("code", 0), ("test", 0))}
    assert graph.nodes["code", 0] == {"count": 3, "bipartite": 0}
    assert graph.nodes["test", 1] == {"count": 5, "bipartite": 1}
    assert graph.number_of_nodes() == 4  # code 1 and test 1 are there, without edges
    assert nx.is_bipartite(graph)


def test_two_groups_sharing_no_test_are_two_components() -> None:
    # Codes 0, 1 pass t0 (code 1 also t1); code 2 passes t2 only; code 3 passes nothing.
    passed = _matrix([[1, 0, 0], [1, 1, 0], [0, 0, 1], [0, 0, 0]])
    stats = pass_graph_stats(passed, [1, 2, 5, 9])
    # Consensus sets {t0}, {t0, t1}, {t2}; the largest by samples is code 2's (5); code 3,
    # passing nothing, is in no set however many samples it has.
    assert stats == PassGraphStats(components=2, consensus_sets=3, largest_consensus_samples=5)


def test_identical_rows_form_one_consensus_set_with_their_samples_summed() -> None:
    passed = _matrix([[1, 1, 0], [1, 1, 0], [1, 1, 1]])
    stats = pass_graph_stats(passed, [2, 3, 1])
    assert stats == PassGraphStats(components=1, consensus_sets=2, largest_consensus_samples=5)


def test_nothing_passed_has_no_component_and_no_consensus() -> None:
    stats = pass_graph_stats(np.zeros((3, 2), dtype=bool), [1, 1, 1])
    assert stats == PassGraphStats(components=0, consensus_sets=0, largest_consensus_samples=0)
    assert pass_graph_stats(np.zeros((0, 0), dtype=bool), []).components == 0


def test_counts_must_match_the_matrix() -> None:
    with pytest.raises(ContractViolation, match="one count per matrix row and column"):
        pass_graph(_matrix([[1, 0]]), [1, 1], [1, 1])
