"""The code–test pass graph of one problem, and how its candidates agree (ALGORITHMS.md §1.3, §3.4).

Nodes are the distinct codes and tests; an edge joins code i and test j when i passed j.
The rankers score this graph from its matrix; here it is a ``networkx`` graph, for what a
graph library answers directly: which codes and tests hang together.

``pass_graph_stats`` summarises it for the problems table (``ProblemOutcome.pass_graph``):

- connected components (codes and tests in at least one passing cell): one component
  means every passing code shares evidence with every other; several mean the codes split
  into groups that pass no common test, and the ground truth (the tests the top code
  passes) speaks for one group only;
- consensus sets (CodeT, §3.4): codes that pass exactly the same non-empty set of tests;
  the samples behind the largest one say how strongly the model agrees with itself.

    >>> import numpy as np
    >>> passed = np.array([[True, True, False], [True, True, False], [False, False, True]])
    >>> pass_graph_stats(passed, [2, 1, 4])
    PassGraphStats(components=2, consensus_sets=2, largest_consensus_samples=4)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import networkx as nx
import numpy as np

from pipeline.errors import ContractViolation
from pipeline.ranking.base import BoolMatrix
from pipeline.records import PassGraphStats

Node = tuple[str, int]
"""``("code", i)`` or ``("test", j)``: the two sides of the bipartite graph."""


def pass_graph(
    passed: BoolMatrix, code_counts: Sequence[int], test_counts: Sequence[int]
) -> nx.Graph:
    """The bipartite pass graph: nodes ``("code", i)`` and ``("test", j)``, edges for passes.

    Every node carries ``count`` (the multiplicity: samples behind the code, occurrences
    of the assert) and ``bipartite`` (0 for codes, 1 for tests, networkx's convention).

    Raises:
        ContractViolation: the counts do not match the matrix.
    """
    matrix = np.asarray(passed, dtype=np.bool_)
    if matrix.ndim != 2 or matrix.shape != (len(code_counts), len(test_counts)):
        raise ContractViolation(
            f"a pass graph needs one count per matrix row and column; got a matrix of shape "
            f"{matrix.shape}, {len(code_counts)} code counts and {len(test_counts)} test counts"
        )
    graph = nx.Graph()
    graph.add_nodes_from(
        (("code", i), {"count": int(count), "bipartite": 0}) for i, count in enumerate(code_counts)
    )
    graph.add_nodes_from(
        (("test", j), {"count": int(count), "bipartite": 1}) for j, count in enumerate(test_counts)
    )
    codes, tests = np.nonzero(matrix)
    graph.add_edges_from(
        (("code", int(i)), ("test", int(j))) for i, j in zip(codes, tests, strict=True)
    )
    return graph


def pass_graph_stats(passed: BoolMatrix, code_counts: Sequence[int]) -> PassGraphStats:
    """Components and consensus sets of a problem's pass graph (see the module docstring).

    Nodes without an edge (a code passing nothing, a test nobody passes) belong to no
    component and no consensus set.
    """
    matrix = np.asarray(passed, dtype=np.bool_)
    graph = pass_graph(matrix, code_counts, [1] * (matrix.shape[1] if matrix.ndim == 2 else 0))
    components = sum(1 for part in nx.connected_components(graph) if len(part) > 1)
    samples_by_tests: Counter[frozenset[Node]] = Counter()
    for i, count in enumerate(code_counts):
        tests = frozenset(graph.adj[("code", i)])
        if tests:
            samples_by_tests[tests] += int(count)
    return PassGraphStats(
        components=components,
        consensus_sets=len(samples_by_tests),
        largest_consensus_samples=max(samples_by_tests.values(), default=0),
    )
