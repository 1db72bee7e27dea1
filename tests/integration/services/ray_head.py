"""``PrivateRayHead``: a Ray head owned by one test module (or benchmark), for real-Ray tests.

Test infrastructure, not production code: ``pairforge serve`` finds or starts a shared head
with ``cluster.local_ray.ensure_local_ray``; tests need a head of their own that never meets
another Ray instance on the machine and can be stopped without stopping the others, which
``ray stop`` would.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from cluster.local_ray import DEFAULT_RESOURCES, dashboard_answers
from pipeline.errors import ClusterUnavailable


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def head_argv(resources: Mapping[str, float]) -> list[str]:
    """``ray start --head --block`` on free ports for every service a head opens."""
    return [
        sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block",
        "--port", str(_free_port()),
        "--ray-client-server-port", str(_free_port()),
        "--dashboard-agent-listen-port", str(_free_port()),
        "--dashboard-agent-grpc-port", str(_free_port()),
        "--runtime-env-agent-port", str(_free_port()),
        "--metrics-export-port", str(_free_port()),
        "--node-manager-port", str(_free_port()),
        "--object-manager-port", str(_free_port()),
        "--resources", json.dumps(dict(resources)),
        "--disable-usage-stats",
    ]  # fmt: skip


class PrivateRayHead:
    """A Ray head owned by this process: stopped by ``stop()``.

    Unlike ``ensure_local_ray`` it runs ``ray start --head --block`` as a child process
    group on free ports with its own temp dir, so it never meets another Ray instance on
    the machine, and stopping it (the group) leaves every other instance running, which
    ``ray stop`` would not.

        with PrivateRayHead(resources={"sandbox": 2}) as url:   # http://127.0.0.1:PORT
            ...
    """

    def __init__(
        self,
        *,
        resources: Mapping[str, float] = DEFAULT_RESOURCES,
        num_cpus: int | None = None,
        wait_s: float = 90.0,
    ) -> None:
        self.resources = dict(resources)
        self.num_cpus = num_cpus
        self.wait_s = wait_s
        self.url = ""
        self._process: subprocess.Popen[bytes] | None = None
        self._temp_dir = ""

    def start(self) -> str:
        # Short path: Ray's Unix sockets live under it and must stay under 107 bytes.
        self._temp_dir = tempfile.mkdtemp(prefix="pfray-", dir="/tmp")
        dashboard_port = _free_port()
        argv = [
            *head_argv(self.resources),
            "--dashboard-host", "127.0.0.1",
            "--dashboard-port", str(dashboard_port),
            "--include-dashboard", "true",
            "--temp-dir", self._temp_dir,
        ]  # fmt: skip
        if self.num_cpus is not None:
            argv += ["--num-cpus", str(self.num_cpus)]
        log = Path(self._temp_dir) / "ray-start.log"
        with log.open("wb") as sink:
            self._process = subprocess.Popen(
                argv, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.url = f"http://127.0.0.1:{dashboard_port}"
        deadline = time.monotonic() + self.wait_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                break
            if dashboard_answers(self.url):
                return self.url
            time.sleep(0.5)
        tail = log.read_text(errors="replace")[-2000:]
        self.stop()
        raise ClusterUnavailable(f"private Ray head did not come up at {self.url}: {tail}")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            # SIGTERM to `ray start --block` alone makes it stop its node (about 5 s);
            # the same signal to the whole group leaves it waiting on dead children.
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=30)
            # Forkserver children of the dashboard outlive it; end the whole group.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        if self._temp_dir:
            shutil.rmtree(self._temp_dir, ignore_errors=True)
            self._temp_dir = ""

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
