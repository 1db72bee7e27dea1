"""Warm sandbox containers on a Docker engine: the only module that imports ``docker``.

Each container runs ``sandbox.runner`` as PID 1 and talks to the host over its attached
stdin/stdout (no network, no shared files): we write request lines to the attach socket
and read answer lines back, demultiplexing Docker's 8-byte stream headers (tty=False).
Docker's errors are mapped here onto ``sandbox.errors`` with ``raise ... from exc``.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import random
import socket
import threading
import time
from typing import Any

import docker
import docker.errors

from sandbox.errors import ContainerLost, DockerUnavailable
from sandbox.limits import POOL_LABEL, PoolConfig
from sandbox.protocol import is_ready
from sandbox.runner import CELL_UID_ENV

logger = logging.getLogger(__name__)

POOL_ID_LABEL = "pairforge.pool"
OWNER_LABEL = "pairforge.owner"
# The runner needs exactly these (see sandbox/runner.py): setuid/setgid to drop each cell
# to the `cell` user, kill to kill every cell process after each test.
RUNNER_CAPABILITIES = ["SETUID", "SETGID", "KILL"]
_STDOUT, _STDERR = 1, 2
# Each container's cells run as a uid of their own: the kernel counts RLIMIT_NPROC per uid
# across the whole host, so containers sharing one would eat each other's allowance. The
# range lies above login users (to 60000), the subordinate uids useradd hands out (to
# 600100000) and systemd-nspawn's range (to 1879048191), and below 2**31; drawing at
# random keeps pools in different processes apart too. Even uids only: the container's
# judge runs as the odd uid after its cells' (sandbox.runner.judge_uid_of), which is so
# never another container's cell uid.
CELL_UIDS = range(1_900_000_000, 2_100_000_000, 2)
_ENGINE_HINT = (
    "start the Docker engine (`sudo systemctl start docker`, or `sudo dockerd &`) and check "
    "that `docker info` works for this user"
)


def connect(max_connections: int = 16) -> Any:
    """A client for the local Docker engine (DOCKER_HOST and friends are honoured).

    Raises:
        DockerUnavailable: no engine answers.
    """
    try:
        client = docker.from_env(max_pool_size=max_connections)
        client.ping()
    except docker.errors.DockerException as exc:
        raise DockerUnavailable(f"cannot reach a Docker engine ({exc}); {_ENGINE_HINT}") from exc
    return client


class WarmContainer:
    """One started container and the runner's line channel on its attach socket."""

    def __init__(self, container: Any, attach: Any, cell_uid: int) -> None:
        self._container = container
        self.cell_uid = cell_uid
        """The uid (and gid) its cells run as."""
        # Keep the docker SDK's wrapper alive: dropping it closes the connection.
        self._attach = attach
        self._sock: socket.socket = attach._sock
        self._inbox = bytearray()
        self._stdout = bytearray()
        self._stderr_tail: list[str] = []
        self.id: str = container.id
        self.name: str = container.name

    def call(self, line: bytes, timeout_s: float) -> bytes:
        """Send one request line and return the runner's next answer line.

        Raises:
            ContainerLost: the runner died, closed the stream, or did not answer in time.
        """
        deadline = time.monotonic() + timeout_s
        try:
            self._sock.settimeout(timeout_s)
            self._sock.sendall(line)
        except OSError as exc:
            raise ContainerLost(f"cannot write to container {self.name}: {exc}") from exc
        return self.read_line(deadline)

    def read_line(self, deadline: float) -> bytes:
        """The runner's next stdout line, without its newline."""
        while True:
            end = self._stdout.find(b"\n")
            if end >= 0:
                line = bytes(self._stdout[:end])
                del self._stdout[: end + 1]
                return line
            header = self._receive(8, deadline)
            payload = self._receive(int.from_bytes(header[4:8], "big"), deadline)
            if header[0] == _STDOUT:
                self._stdout += payload
            else:
                self._note_stderr(payload)

    def stderr_tail(self) -> str:
        """The runner's last few stderr lines (for error messages)."""
        return " | ".join(self._stderr_tail)

    def kill(self) -> None:
        """Kill the container now (tests use it to simulate losing one)."""
        try:
            self._container.kill()
        except docker.errors.DockerException as exc:
            logger.debug("killing %s: %s", self.name, exc)

    def remove(self) -> None:
        """Close the channel and remove the container (killing it if it still runs)."""
        _close_attach(self._attach)
        _remove(self._container)
        _cell_uids.release(self.cell_uid)

    def _receive(self, size: int, deadline: float) -> bytes:
        while len(self._inbox) < size:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ContainerLost(f"container {self.name} did not answer in time")
            try:
                self._sock.settimeout(remaining)
                chunk = self._sock.recv(1 << 16)
            except TimeoutError as exc:
                raise ContainerLost(f"container {self.name} did not answer in time") from exc
            except OSError as exc:
                raise ContainerLost(f"lost the stream of container {self.name}: {exc}") from exc
            if not chunk:
                tail = self.stderr_tail()
                raise ContainerLost(
                    f"container {self.name} closed its stream (runner exited)"
                    + (f"; its last words: {tail}" if tail else "")
                )
            self._inbox += chunk
        data = bytes(self._inbox[:size])
        del self._inbox[:size]
        return data

    def _note_stderr(self, payload: bytes) -> None:
        for text in payload.decode(errors="replace").splitlines():
            if text.strip():
                logger.debug("%s stderr: %s", self.name, text)
                self._stderr_tail = [*self._stderr_tail[-4:], text.strip()]


class DockerBackend:
    """Starts and removes the warm containers of one pool, all labelled with its id."""

    def __init__(self, config: PoolConfig, pool_id: str, client: Any | None = None) -> None:
        self._config = config
        self.pool_id = pool_id
        self._client = client if client is not None else connect(config.workers + 4)
        self._serials = itertools.count(1)  # next() is atomic: pools start containers in threads
        self._check_image()

    def start(self) -> WarmContainer:
        """Create, attach to and start one container; return it once its runner is ready.

        Raises:
            DockerUnavailable: the engine refused to create or start it.
            ContainerLost: it started but its runner never said it was ready.
        """
        name = f"pairforge-sbx-{self.pool_id}-{next(self._serials)}"
        cell_uid = _cell_uids.take()
        try:
            return self._start(name, cell_uid)
        except BaseException:
            _cell_uids.release(cell_uid)
            raise

    def _start(self, name: str, cell_uid: int) -> WarmContainer:
        try:
            container = self._create(name, cell_uid)
        except docker.errors.ImageNotFound as exc:
            raise DockerUnavailable(self._image_hint()) from exc
        except docker.errors.DockerException as exc:
            raise DockerUnavailable(f"cannot create sandbox container {name}: {exc}") from exc
        attach = None
        try:
            attach = self._client.api.attach_socket(
                container.id, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}
            )
            container.start()
        except docker.errors.DockerException as exc:
            if attach is not None:
                _close_attach(attach)
            _remove(container)
            raise DockerUnavailable(f"cannot start sandbox container {name}: {exc}") from exc
        warm = WarmContainer(container, attach, cell_uid)
        try:
            greeting = warm.read_line(time.monotonic() + self._config.start_timeout_s)
        except ContainerLost:
            warm.remove()
            raise
        if not is_ready(greeting):
            warm.remove()
            raise ContainerLost(
                f"the runner in {name} greeted with {greeting[:120]!r}, expected the ready "
                f"message; is {self._config.image} built from this checkout (pairforge image)?"
            )
        return warm

    def list_pool_containers(self) -> list[str]:
        """Ids of every container (running or not) labelled with this pool's id."""
        return list_containers(self._client, {POOL_ID_LABEL: self.pool_id})

    def remove_pool_containers(self) -> int:
        """Force-remove every container labelled with this pool's id; how many there were."""
        ids = self.list_pool_containers()
        for container_id in ids:
            try:
                _remove(self._client.containers.get(container_id))
            except docker.errors.NotFound:
                continue
            except docker.errors.DockerException as exc:
                logger.warning("could not remove sandbox container %s: %s", container_id, exc)
        return len(ids)

    def close(self) -> None:
        """Release the engine connection."""
        self._client.close()

    def _check_image(self) -> None:
        try:
            self._client.images.get(self._config.image)
        except docker.errors.ImageNotFound as exc:
            raise DockerUnavailable(self._image_hint()) from exc
        except docker.errors.DockerException as exc:
            raise DockerUnavailable(f"cannot inspect image {self._config.image}: {exc}") from exc

    def _image_hint(self) -> str:
        return (
            f"the sandbox image {self._config.image!r} does not exist on this engine; "
            f"build it with `pairforge image --tag {self._config.image}`"
        )

    def _create(self, name: str, cell_uid: int) -> Any:
        """Create (not start) one container with every isolation option; its SDK model."""
        limits = self._config.limits
        # Inode limits bound what a cell can leave behind (a flood of empty directories
        # costs no size), so the runner's wipe after each test stays short.
        tmpfs = (
            f"rw,nosuid,nodev,noexec,size={limits.tmpfs_mb}m,nr_inodes={limits.tmpfs_inodes},"
            "mode=1777"
        )
        memory = f"{limits.memory_mb}m"
        labels = {POOL_LABEL: "1", POOL_ID_LABEL: self.pool_id}
        if self._config.label:
            labels[OWNER_LABEL] = self._config.label
        api = self._client.api
        host_config = api.create_host_config(
            network_mode="none",
            read_only=True,
            # /dev/shm too: Docker's own shm mount has no inode limit.
            tmpfs={"/work": tmpfs, "/tmp": tmpfs, "/dev/shm": tmpfs},
            cap_drop=["ALL"],
            cap_add=RUNNER_CAPABILITIES,
            security_opt=["no-new-privileges"],
            pids_limit=limits.pids,
            mem_limit=memory,
            memswap_limit=memory,
            nano_cpus=int(limits.cpus * 1e9),
            # System V IPC outlives processes and the runner cannot wipe it: segments die
            # with their last user, message queues and semaphore sets cannot be made.
            sysctls={"kernel.shm_rmid_forced": "1", "kernel.msgmni": "0", "kernel.sem": "0 0 0 0"},
            # Answers travel over the attach stream; a log driver would also store every
            # one of them on the engine's disk.
            log_config={"type": "none", "config": {}},
            auto_remove=True,
        )
        # detach=False with stdin_open sets StdinOnce (as `docker run -i` does; the high-level
        # SDK cannot): when this process dies, its attach connection closes, the runner
        # reads EOF and exits, and auto_remove deletes the container: no orphans left.
        created = api.create_container(
            self._config.image,
            name=name,
            detach=False,
            stdin_open=True,
            tty=False,
            labels=labels,
            environment={CELL_UID_ENV: str(cell_uid)},
            host_config=host_config,
        )
        return self._client.containers.prepare_model({"Id": created["Id"], "Name": name})


class _CellUidRegistry:
    """The cell uids of this process's live containers: no two of them share one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._taken: set[int] = set()

    def take(self) -> int:
        """A uid from CELL_UIDS that no live container of this process has."""
        with self._lock:
            while True:
                uid = random.choice(CELL_UIDS)
                if uid not in self._taken:
                    self._taken.add(uid)
                    return uid

    def release(self, uid: int) -> None:
        with self._lock:
            self._taken.discard(uid)


_cell_uids = _CellUidRegistry()


def _close_attach(attach: Any) -> None:
    """Close an attach socket (the SDK's wrapper and the socket under it)."""
    for closable in (attach, getattr(attach, "_sock", None)):
        if closable is not None:
            with contextlib.suppress(OSError):
                closable.close()


def _remove(container: Any) -> None:
    """Force-remove ``container``; one already gone (auto-removed) is fine."""
    try:
        container.remove(force=True)
    except docker.errors.NotFound:
        return
    except docker.errors.APIError as exc:
        if exc.status_code == 409:  # the engine is already removing it (auto_remove)
            return
        logger.warning("could not remove sandbox container %s: %s", container.name, exc)
    except docker.errors.DockerException as exc:
        logger.warning("could not remove sandbox container %s: %s", container.name, exc)


def list_containers(client: Any, labels: dict[str, str]) -> list[str]:
    """Ids of every container carrying all of ``labels`` (those removed meanwhile left out).

    The SDK lists ids, then inspects each one: a container removed in between (our own
    are auto-removed when they stop) must not fail the listing (issue 9, finding 6b).
    """
    filters = {"label": [f"{key}={value}" for key, value in labels.items()]}
    try:
        found = client.containers.list(all=True, filters=filters, ignore_removed=True)
        return [container.id for container in found]
    except docker.errors.DockerException as exc:
        raise DockerUnavailable(f"cannot list containers: {exc}; {_ENGINE_HINT}") from exc
