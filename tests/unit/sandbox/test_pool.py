"""ContainerPool's logic over a scripted backend: retries, replacement, closing."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from sandbox.errors import ContainerLost, DockerUnavailable, SandboxError
from sandbox.limits import PoolConfig
from sandbox.pool import ContainerPool
from sandbox.types import CellMode, CellStatus, ExecutionRequest
from tests.unit.sandbox.fakes import FakeBackend, by_prefix

REQUEST = ExecutionRequest(program="x = 1", tests=["ok 1", "bad 2", "ok 3"])
EXPECTED = [CellStatus.PASSED, CellStatus.FAILED, CellStatus.PASSED]


def make_pool(backend: FakeBackend, **config: Any) -> ContainerPool:
    return ContainerPool(PoolConfig(**config), backend_factory=backend.factory)


def test_statuses_come_from_the_runner_answer() -> None:
    backend = FakeBackend()
    with make_pool(backend, workers=2) as pool:
        result = pool.run(REQUEST)
    assert result.statuses == EXPECTED
    assert result.attempts == 1
    assert len(backend.containers) == 2


def test_modes_come_from_the_runner_answer_and_none_from_made_up_results() -> None:
    def fallback_for_bad(request: dict[str, Any]) -> list[str]:
        return ["fallback" if test.startswith("bad") else "split" for test in request["tests"]]

    with make_pool(FakeBackend(modes=fallback_for_bad), workers=1) as pool:
        result = pool.run(REQUEST)
    assert result.modes == [CellMode.SPLIT, CellMode.FALLBACK, CellMode.SPLIT]

    def always_lost(request: dict[str, Any]) -> list[str]:
        raise ContainerLost("gone")

    with make_pool(FakeBackend(always_lost), workers=1, retries=0) as pool:
        assert pool.run(REQUEST).modes == []  # no cell ran: no mode to report


def test_a_lost_container_is_replaced_and_the_request_retried() -> None:
    losses: list[int] = []

    def lose_first(request: dict[str, Any]) -> list[str]:
        if not losses:
            losses.append(request["id"])
            raise ContainerLost("gone")
        return by_prefix(request)

    backend = FakeBackend(lose_first)
    with make_pool(backend, workers=1, retries=2) as pool:
        result = pool.run(REQUEST)
        assert result.statuses == EXPECTED
        assert result.attempts == 2
        assert pool.replacements == 1
        first, second = backend.containers
        assert first.removed and not second.removed
        # The retry is a new request id on the new container.
        assert second.requests[0]["id"] == losses[0] + 1


def test_repeated_losses_give_sandbox_errors_not_failures() -> None:
    def always_lost(request: dict[str, Any]) -> list[str]:
        raise ContainerLost("gone again")

    backend = FakeBackend(always_lost)
    with make_pool(backend, workers=1, retries=2) as pool:
        result = pool.run(REQUEST)
    assert result.statuses == [CellStatus.SANDBOX_ERROR] * 3
    assert result.attempts == 3
    assert result.details[0] == "sandbox failed 3 times: gone again"
    assert len(backend.containers) == 3


def test_a_failed_replacement_counts_as_an_attempt() -> None:
    def always_lost(request: dict[str, Any]) -> list[str]:
        raise ContainerLost("gone")

    backend = FakeBackend(always_lost, fail_start=True)
    with make_pool(backend, workers=1, retries=1) as pool:
        result = pool.run(REQUEST)
    assert result.statuses == [CellStatus.SANDBOX_ERROR] * 3
    assert "no more containers" in result.details[0]


def test_a_retiring_runner_keeps_its_answer_and_is_replaced() -> None:
    backend = FakeBackend()
    with make_pool(backend, workers=1) as pool:
        backend.containers[0].retire_next = True
        assert pool.run(REQUEST).statuses == EXPECTED
        assert backend.containers[0].removed
        assert pool.run(REQUEST).statuses == EXPECTED
        assert len(backend.containers) == 2


def test_requests_run_concurrently_one_per_container() -> None:
    both_inside = threading.Barrier(2, timeout=5)

    def meet(request: dict[str, Any]) -> list[str]:
        both_inside.wait()  # breaks (and fails the test) unless two calls overlap
        return by_prefix(request)

    backend = FakeBackend(meet)
    with make_pool(backend, workers=2) as pool:
        results: list[Any] = []
        threads = [
            threading.Thread(target=lambda: results.append(pool.run(REQUEST))) for _ in range(2)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert [result.statuses for result in results] == [EXPECTED, EXPECTED]


def test_close_removes_every_container_and_sweeps_by_label() -> None:
    backend = FakeBackend()
    pool = make_pool(backend, workers=3)
    with pool:
        pool.run(REQUEST)
    assert [container.removed for container in backend.containers] == [True, True, True]
    assert backend.label_sweeps == 1 and backend.closed
    with pytest.raises(SandboxError, match="not running"):
        pool.run(REQUEST)


def test_a_failing_start_removes_what_started_and_raises() -> None:
    backend = FakeBackend(fail_start=True)
    with pytest.raises(DockerUnavailable, match="no more containers"):
        make_pool(backend, workers=3).start()
    assert all(container.removed for container in backend.containers)


def test_no_tests_need_no_container() -> None:
    def never(request: dict[str, Any]) -> list[str]:
        raise AssertionError("no request expected")

    with make_pool(FakeBackend(never), workers=1) as pool:
        result = pool.run(ExecutionRequest(program="x = 1", tests=[]))
    assert result.statuses == []


def test_a_retry_gets_what_is_left_of_the_budget() -> None:
    budgets: list[float] = []

    def lose_first_slowly(request: dict[str, Any]) -> list[str]:
        budgets.append(request["budget_s"])
        if len(budgets) == 1:
            time.sleep(0.3)
            raise ContainerLost("gone")
        return by_prefix(request)

    backend = FakeBackend(lose_first_slowly)
    request = REQUEST.model_copy(update={"budget_s": 2.0})
    with make_pool(backend, workers=1, retries=2) as pool:
        result = pool.run(request)
    assert result.statuses == EXPECTED
    assert budgets[0] == 2.0
    assert 1.0 < budgets[1] <= 2.0 - 0.3


def test_no_retry_once_the_budget_is_spent() -> None:
    calls: list[float] = []

    def lose_slowly(request: dict[str, Any]) -> list[str]:
        calls.append(request["budget_s"])
        time.sleep(0.3)
        raise ContainerLost("gone")

    backend = FakeBackend(lose_slowly)
    request = REQUEST.model_copy(update={"budget_s": 0.2})
    with make_pool(backend, workers=1, retries=2) as pool:
        result = pool.run(request)
    assert calls == [0.2]
    assert result.statuses == [CellStatus.SANDBOX_ERROR] * 3
    assert result.details == ["not run: the time budget of 0.2 s ran out"] * 3
    assert result.budget_exceeded
    assert result.attempts == 1


def test_a_container_started_while_closing_is_removed() -> None:
    losses: list[int] = []

    def lose_first(request: dict[str, Any]) -> list[str]:
        if not losses:
            losses.append(request["id"])
            raise ContainerLost("gone")
        return by_prefix(request)

    backend = FakeBackend(lose_first)
    pool = make_pool(backend, workers=1, retries=1)
    pool.start()
    starting, release = threading.Event(), threading.Event()

    def stall() -> None:
        starting.set()
        release.wait(5)

    backend.before_start = stall  # only the replacement stalls
    results: list[Any] = []
    caller = threading.Thread(target=lambda: results.append(pool.run(REQUEST)))
    caller.start()
    assert starting.wait(5)
    pool.close()  # the replacement is still starting: the label sweep cannot see it
    release.set()
    caller.join(5)
    assert [container.removed for container in backend.containers] == [True, True]
    assert pool.live_containers() == []
    assert results[0].statuses == [CellStatus.SANDBOX_ERROR] * 3
