"""The execute stage on the pool's scripted backend: statuses, retries and the time budget."""

from __future__ import annotations

import time
from typing import Any

import pytest

from cluster.executor_actor import ExecuteStage
from pipeline.config import SandboxConfig
from pipeline.problem_state import ProblemState
from pipeline.records import CellStatus, Problem
from pipeline.stages import parse_step
from sandbox.errors import ContainerLost
from tests.unit.sandbox.fakes import FakeBackend, by_prefix

P, F, SB = CellStatus.PASSED, CellStatus.FAILED, CellStatus.SANDBOX_ERROR


class Tally:
    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def add(self, key: str, n: int = 1) -> None:
        self.counts[key] = self.counts.get(key, 0) + n


def state_with(codes: list[str], tests: list[str]) -> ProblemState:
    """A parsed problem whose programs are ``def f(): return <code>`` and tests assert f()."""
    problem = Problem(problem_id="p", prompt="def f():\n", entry_point="f")
    state = ProblemState(
        index=0,
        problem=problem,
        code_completions=[f"    return {c}\n" for c in codes],
        test_completions=tests,
    )
    return parse_step(state)


def verdict_by_return_value(request: dict[str, Any]) -> list[str]:
    """Cell i passes when the program's returned literal equals the test's expected one."""
    returned = request["program"].rsplit("return ", 1)[1].strip()
    return ["passed" if t.endswith(f"== {returned}") else "failed" for t in request["tests"]]


def stage(backend: FakeBackend, tally: Tally | None = None, **config: Any) -> ExecuteStage:
    return ExecuteStage(SandboxConfig(**config), tally, backend.factory)  # type: ignore[arg-type]


def test_each_code_runs_against_every_test_and_cells_are_counted() -> None:
    tally = Tally()
    executor = stage(FakeBackend(verdict_by_return_value), tally)
    state = state_with(["1", "2"], ["assert f() == 1", "assert f() == 2"])
    row = executor({"state": state})
    done: ProblemState = row["state"]
    assert done.status == [[P, F], [F, P]]
    assert not done.budget_exceeded and "execute" in done.timings
    assert tally.counts == {"executed": 1, "cells": 4}


def test_a_problem_without_tests_is_passed_on_with_empty_rows_and_runs_nothing() -> None:
    backend = FakeBackend(by_prefix)
    executor = stage(backend)
    done = executor.execute(state_with(["1", "2"], ["print('no assert')"]))
    assert done.status == [[], []]
    assert all(not c.requests for c in backend.containers)


def test_a_lost_container_is_replaced_and_the_request_retried() -> None:
    calls = {"n": 0}

    def lose_first(request: dict[str, Any]) -> list[str]:
        calls["n"] += 1
        if calls["n"] == 1:
            raise ContainerLost("container died")
        return verdict_by_return_value(request)

    backend = FakeBackend(lose_first)
    done = stage(backend).execute(state_with(["1"], ["assert f() == 1", "assert f() == 3"]))
    assert done.status == [[P, F]]
    assert len(backend.containers) == 2


def test_running_past_the_problem_budget_marks_the_problem_and_leaves_cells_unrun() -> None:
    def slow(request: dict[str, Any]) -> list[str]:
        time.sleep(0.15)
        return verdict_by_return_value(request)

    executor = stage(FakeBackend(slow), problem_budget_s=0.2)
    done = executor.execute(
        state_with(["1", "2", "3", "4"], ["assert f() == 1", "assert f() == 2"])
    )
    assert done.budget_exceeded
    assert done.status is not None and done.status[-1] == [SB, SB]


@pytest.mark.parametrize("budget", [0.2, 30.0])
def test_the_budget_only_marks_problems_that_ran_out(budget: float) -> None:
    done = stage(FakeBackend(verdict_by_return_value), problem_budget_s=budget).execute(
        state_with(["1"], ["assert f() == 1"])
    )
    assert not done.budget_exceeded and done.status == [[P]]
