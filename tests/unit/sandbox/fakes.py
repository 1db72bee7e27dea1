"""A scripted container backend behind the pool's own ``Backend`` interface.

Each fake container answers requests through a handler, ``handler(request) -> statuses``,
where ``request`` is the decoded request line; a handler raises ``ContainerLost`` to
simulate losing the container. Every cell's mode is ``split`` unless ``modes`` (also
``modes(request) -> modes``) says otherwise.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

from sandbox.limits import PoolConfig

Handler = Callable[[dict[str, Any]], list[str]]


def all_split(request: dict[str, Any]) -> list[str]:
    return ["split" for _ in request["tests"]]


def by_prefix(request: dict[str, Any]) -> list[str]:
    """Tests starting with "ok" pass, the others fail."""
    return ["passed" if test.startswith("ok") else "failed" for test in request["tests"]]


class FakeContainer:
    def __init__(self, backend: FakeBackend, serial: int) -> None:
        self.backend = backend
        self.name = f"fake-{serial}"
        self.removed = False
        self.retire_next = False
        self.requests: list[dict[str, Any]] = []

    def call(self, line: bytes, timeout_s: float) -> bytes:
        request = json.loads(line)
        self.requests.append(request)
        statuses = self.backend.handler(request)
        retire, self.retire_next = self.retire_next, False
        answer = {
            "id": request["id"],
            "statuses": statuses,
            "details": ["" for _ in statuses],
            "modes": self.backend.modes(request),
            "retire": retire,
        }
        return json.dumps(answer).encode()

    def kill(self) -> None:
        self.removed = True

    def remove(self) -> None:
        self.removed = True


class FakeBackend:
    def __init__(
        self, handler: Handler = by_prefix, fail_start: bool = False, modes: Handler = all_split
    ) -> None:
        self.handler = handler
        self.modes = modes
        self.fail_start = fail_start
        self.containers: list[FakeContainer] = []
        self.closed = False
        self.label_sweeps = 0
        self.before_start: Callable[[], None] | None = None
        """Called (outside any lock) as each container starts, to stall or interleave."""
        self._lock = threading.Lock()

    def factory(self, config: PoolConfig, pool_id: str) -> FakeBackend:
        return self

    def start(self) -> FakeContainer:
        from sandbox.errors import DockerUnavailable

        if self.before_start is not None:
            self.before_start()
        with self._lock:
            if self.fail_start and self.containers:
                raise DockerUnavailable("no more containers")
            container = FakeContainer(self, len(self.containers) + 1)
            self.containers.append(container)
        return container

    def remove_pool_containers(self) -> int:
        self.label_sweeps += 1
        return 0

    def close(self) -> None:
        self.closed = True
