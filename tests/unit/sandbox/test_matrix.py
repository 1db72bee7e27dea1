"""MatrixBuilder over a scripted backend: shape, streaming, budgets, early stop."""

from __future__ import annotations

import time
from typing import Any

from sandbox.limits import PoolConfig
from sandbox.matrix import MatrixBuilder, MatrixProblem
from sandbox.pool import ContainerPool
from sandbox.types import CellStatus
from tests.unit.sandbox.fakes import FakeBackend, by_prefix

P, F = CellStatus.PASSED, CellStatus.FAILED


def sleepy(request: dict[str, Any]) -> list[str]:
    """Programs named "sleep N" take N seconds; tests pass when they start with "ok"."""
    if request["program"].startswith("sleep"):
        time.sleep(float(request["program"].split()[1]))
    return by_prefix(request)


def make_pool(backend: FakeBackend, workers: int) -> ContainerPool:
    return ContainerPool(PoolConfig(workers=workers), backend_factory=backend.factory)


def test_rows_are_programs_and_columns_are_tests() -> None:
    problem = MatrixProblem(problem_id="p", programs=["a", "b"], tests=["ok", "no", "ok too"])
    backend = FakeBackend()
    with make_pool(backend, workers=2) as pool:
        result = MatrixBuilder(pool, timeout_s=0.7).build(problem)
    assert result.problem_id == "p"
    assert result.status == [[P, F, P], [P, F, P]]
    assert result.timings.cells == 6
    assert not result.budget_exceeded
    requests = [r for c in backend.containers for r in c.requests]
    assert sorted(r["program"] for r in requests) == ["a", "b"]  # one request per program
    assert {r["timeout_s"] for r in requests} == {0.7}


def test_problems_stream_out_as_they_finish() -> None:
    slow = MatrixProblem(problem_id="slow", programs=["sleep 0.4"], tests=["ok"])
    fast = MatrixProblem(problem_id="fast", programs=["sleep 0"], tests=["ok"])
    with make_pool(FakeBackend(sleepy), workers=2) as pool:
        order = [r.problem_id for r in MatrixBuilder(pool).build_many([slow, fast])]
    assert order == ["fast", "slow"]


def test_programs_starting_after_the_budget_are_not_run() -> None:
    problem = MatrixProblem(
        problem_id="p", programs=["sleep 0.15"] * 4, tests=["ok", "ok"], budget_s=0.25
    )
    backend = FakeBackend(sleepy)
    with make_pool(backend, workers=1) as pool:
        result = MatrixBuilder(pool).build(problem)
    # Starts at 0 and 0.15 are inside the 0.25 s budget; 0.30 and 0.45 are not.
    assert result.status[:2] == [[P, P], [P, P]]
    assert result.status[2:] == [[CellStatus.SANDBOX_ERROR] * 2] * 2
    assert result.details[3][0].startswith("not run: the problem's time budget")
    assert result.budget_exceeded
    budgets = [request["budget_s"] for request in backend.containers[0].requests]
    assert len(budgets) == 2 and budgets[0] <= 0.25 and budgets[1] < budgets[0]


def test_empty_problems_need_no_sandbox() -> None:
    problems = [
        MatrixProblem(problem_id="no programs", programs=[], tests=["ok"]),
        MatrixProblem(problem_id="no tests", programs=["a", "b"], tests=[]),
    ]
    backend = FakeBackend()
    with make_pool(backend, workers=1) as pool:
        results = list(MatrixBuilder(pool).build_many(problems))
    assert [r.status for r in results] == [[], [[], []]]
    assert backend.containers[0].requests == []


def test_stopping_early_drops_queued_work() -> None:
    problems = [MatrixProblem(problem_id=str(i), programs=["sleep 0.05"], tests=["ok"])
                for i in range(20)]  # fmt: skip
    backend = FakeBackend(sleepy)
    with make_pool(backend, workers=1) as pool:
        stream = MatrixBuilder(pool, max_open_problems=2).build_many(problems)
        first = next(stream)
        stream.close()  # joins the worker threads
    assert first.status == [[P]]
    assert len(backend.containers[0].requests) <= 3


def test_the_fallback_cells_of_a_problem_are_counted() -> None:
    def fallback_for_plain_statements(request: dict[str, Any]) -> list[str]:
        return [
            "split" if test.startswith("ok assert") else "fallback" for test in request["tests"]
        ]

    problem = MatrixProblem(problem_id="p", programs=["a", "b", "c"], tests=["ok assert", "ok x"])
    backend = FakeBackend(by_prefix, modes=fallback_for_plain_statements)
    with make_pool(backend, workers=2) as pool:
        result = MatrixBuilder(pool).build(problem)
    assert result.status == [[P, P]] * 3
    assert result.fallback_cells == 3
    assert result.timings.cells == 6
    assert {request["split"] for c in backend.containers for request in c.requests} == {True}


def test_the_split_can_be_turned_off_to_measure_it() -> None:
    backend = FakeBackend()
    problem = MatrixProblem(problem_id="p", programs=["a"], tests=["ok"])
    with make_pool(backend, workers=1) as pool:
        MatrixBuilder(pool, split=False).build(problem)
    assert [r["split"] for c in backend.containers for r in c.requests] == [False]
