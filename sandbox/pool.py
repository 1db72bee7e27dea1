"""A thread-safe pool of warm sandbox containers that survives losing them.

``ContainerPool.run`` takes an idle container, sends the request, and returns the runner's
answer. A container that dies, goes silent past the request's deadline or breaks the
protocol is removed and replaced, and the request is retried on the fresh one; after
``PoolConfig.retries`` such losses every cell of the request is ``sandbox_error`` (never
``failed``: it says nothing about the code).

    with ContainerPool(PoolConfig(workers=2)) as pool:
        result = pool.run(ExecutionRequest(program="def f(): return 1", tests=["assert f() == 1"]))
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Protocol

from sandbox.errors import SandboxError
from sandbox.limits import PoolConfig
from sandbox.protocol import answer_deadline_s, decode_answer, encode_request
from sandbox.types import CellStatus, ExecutionRequest, ExecutionResult

logger = logging.getLogger(__name__)

# The least budget a retry is sent with: what is left of the request's budget may be a
# sliver, and the runner must still get a positive one.
_MIN_RETRY_BUDGET_S = 0.01


class Container(Protocol):
    """A started container with a ready runner (``docker_backend.WarmContainer``)."""

    name: str

    def call(self, line: bytes, timeout_s: float) -> bytes: ...

    def kill(self) -> None: ...

    def remove(self) -> None: ...


class Backend(Protocol):
    """Starts containers for one pool and removes them (``docker_backend.DockerBackend``)."""

    def start(self) -> Container: ...

    def remove_pool_containers(self) -> int: ...

    def close(self) -> None: ...


BackendFactory = Callable[[PoolConfig, str], Backend]


def _docker_backend(config: PoolConfig, pool_id: str) -> Backend:
    # Imported here so the pool's pure logic (and its unit tests) never load the SDK.
    from sandbox.docker_backend import DockerBackend

    return DockerBackend(config, pool_id)


class _Slot:
    """One worker place in the pool; holds a container or, after a loss, none yet."""

    def __init__(self, container: Container | None) -> None:
        self.container = container


class ContainerPool:
    """``PoolConfig.workers`` warm containers, each serving one request at a time."""

    def __init__(
        self, config: PoolConfig | None = None, backend_factory: BackendFactory | None = None
    ) -> None:
        self.config = config or PoolConfig()
        self.pool_id = uuid.uuid4().hex[:12]
        self._backend_factory = backend_factory or _docker_backend
        self._backend: Backend | None = None
        self._idle: queue.Queue[_Slot] = queue.Queue()
        self._live: set[Container] = set()
        self._lock = threading.Lock()
        self._request_ids = itertools.count(1)
        self._closed = False
        self.replacements = 0
        """Containers started to replace lost ones (for tests and metrics)."""

    def __enter__(self) -> ContainerPool:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> None:
        """Start every container (in parallel); on any failure remove them all and raise.

        Raises:
            DockerUnavailable: no engine, no image, or containers cannot be created.
            ContainerLost: a container started but its runner never became ready.
        """
        self._backend = self._backend_factory(self.config, self.pool_id)
        with ThreadPoolExecutor(max_workers=min(self.config.workers, 8)) as starter:
            futures = [starter.submit(self._backend.start) for _ in range(self.config.workers)]
        failures = [error for future in futures if (error := future.exception()) is not None]
        for future in futures:
            if future.exception() is None:
                try:
                    self._adopt(future.result())
                except SandboxError as exc:  # closed meanwhile
                    failures.append(exc)
                    continue
                self._idle.put(_Slot(future.result()))
        if failures:
            self.close()
            raise failures[0]
        logger.info("sandbox pool %s: %d warm containers", self.pool_id, self.config.workers)

    def run(self, request: ExecutionRequest) -> ExecutionResult:
        """Run one program's tests; blocks while every container is busy.

        Never raises for anything the code does, nor for a lost container: after
        ``retries`` losses the result's statuses are all ``sandbox_error``.

        Raises:
            SandboxError: the pool was closed or never started.
        """
        if self._backend is None or self._closed:
            raise SandboxError("the sandbox pool is not running: use it inside `with`")
        started = time.monotonic()
        if not request.tests:
            return ExecutionResult(statuses=[], details=[], duration_s=0.0)
        last_problem = ""
        for attempt in range(1, self.config.retries + 2):
            attempt_request = request
            if attempt > 1 and request.budget_s is not None:
                # A retry gets what is left of the budget, not the whole of it again.
                left_s = request.budget_s - (time.monotonic() - started)
                if left_s <= 0:
                    return _budget_spent(request, started, attempt - 1)
                budget_s = max(left_s, _MIN_RETRY_BUDGET_S)
                attempt_request = request.model_copy(update={"budget_s": budget_s})
            deadline = answer_deadline_s(attempt_request, self.config.answer_margin_s)
            slot = self._idle.get()
            try:
                container = self._ensure_container(slot)
                request_id = next(self._request_ids)
                line = encode_request(request_id, attempt_request, self.config.limits)
                reply = container.call(line, deadline)
                answer = decode_answer(reply, request_id, len(request.tests), request.feedback)
                if answer.retire:  # it could not clean up after this request: replace it
                    self._discard(slot)
            except SandboxError as exc:
                last_problem = str(exc)
                logger.warning("sandbox attempt %d failed: %s", attempt, exc)
                self._discard(slot)
                continue
            finally:
                self._idle.put(slot)
            return ExecutionResult(
                statuses=answer.statuses,
                details=answer.details,
                modes=answer.modes,
                duration_s=time.monotonic() - started,
                attempts=attempt,
                budget_exceeded=answer.budget_exceeded,
                errors=answer.errors,
                outputs=answer.outputs,
            )
        detail = f"sandbox failed {self.config.retries + 1} times: {last_problem}"[:200]
        return ExecutionResult(
            statuses=[CellStatus.SANDBOX_ERROR] * len(request.tests),
            details=[detail] * len(request.tests),
            duration_s=time.monotonic() - started,
            attempts=self.config.retries + 1,
            **host_feedback(request, detail),
        )

    def live_containers(self) -> list[Container]:
        """The pool's containers now (tests kill one of these to simulate a loss)."""
        with self._lock:
            return list(self._live)

    def close(self) -> None:
        """Remove every container of this pool, tracked or merely labelled with its id."""
        with self._lock:
            self._closed = True
            live, self._live = list(self._live), set()
        for container in live:
            container.remove()
        if self._backend is not None:
            leftovers = self._backend.remove_pool_containers()
            if leftovers:
                logger.info("sandbox pool %s: removed %d more by label", self.pool_id, leftovers)
            self._backend.close()
            self._backend = None

    def _ensure_container(self, slot: _Slot) -> Container:
        if slot.container is None:
            backend = self._backend
            if backend is None or self._closed:
                raise SandboxError("the sandbox pool was closed")
            container = backend.start()
            self._adopt(container)
            with self._lock:
                self.replacements += 1
            slot.container = container
        return slot.container

    def _adopt(self, container: Container) -> None:
        """Track ``container``; one that started after ``close`` is removed at once.

        Raises:
            SandboxError: the pool was closed meanwhile (the container is gone).
        """
        with self._lock:
            if not self._closed:
                self._live.add(container)
                return
        container.remove()
        raise SandboxError("the sandbox pool was closed while a container started")

    def _discard(self, slot: _Slot) -> None:
        container, slot.container = slot.container, None
        if container is None:
            return
        with self._lock:
            self._live.discard(container)
        container.remove()


def _budget_spent(request: ExecutionRequest, started: float, attempts: int) -> ExecutionResult:
    """Every cell "not run" (as in ``sandbox.matrix``): the budget ran out before a retry."""
    n_tests = len(request.tests)
    reason = f"not run: the time budget of {request.budget_s:g} s ran out"
    return ExecutionResult(
        statuses=[CellStatus.SANDBOX_ERROR] * n_tests,
        details=[reason] * n_tests,
        duration_s=time.monotonic() - started,
        attempts=attempts,
        budget_exceeded=True,
        **host_feedback(request, reason),
    )


def host_feedback(request: ExecutionRequest, reason: str) -> dict[str, list[str]]:
    """``errors`` and ``outputs`` of a result the host made up (no cell ran): the reason."""
    if not request.feedback:
        return {}
    return {"errors": [reason] * len(request.tests), "outputs": [""] * len(request.tests)}
