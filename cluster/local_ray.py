"""Find or start a local Ray head for ``pairforge serve`` when no cluster address is given.

The head runs as its own daemon processes (``ray start --head``), not inside the service,
so the service can restart, or crash, without killing the builds running on it. Stop it
with ``ray stop``.
"""

from __future__ import annotations

import contextlib
import json
import logging
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

import httpx

from pipeline.errors import ClusterUnavailable

logger = logging.getLogger(__name__)

DEFAULT_DASHBOARD_PORT = 8265
DEFAULT_RESOURCES: Mapping[str, float] = {"sandbox": 2}


def dashboard_answers(url: str, timeout_s: float = 2.0) -> bool:
    """True when something answers HTTP at the dashboard's version endpoint.

    Any answer counts, 401 included: a token-protected dashboard is still up.
    """
    try:
        httpx.get(f"{url}/api/version", timeout=timeout_s)
    except httpx.HTTPError:
        return False
    return True


def ensure_local_ray(
    *,
    dashboard_port: int = DEFAULT_DASHBOARD_PORT,
    resources: Mapping[str, float] = DEFAULT_RESOURCES,
    wait_s: float = 60.0,
) -> str:
    """Return the dashboard URL of a local Ray head, starting one if none answers.

    Raises:
        ClusterUnavailable: ``ray start`` failed or the dashboard did not come up.
    """
    url = f"http://127.0.0.1:{dashboard_port}"
    if dashboard_answers(url):
        logger.info("using the Ray head already running at %s", url)
        return url
    argv = [
        sys.executable,
        "-m",
        "ray.scripts.scripts",
        "start",
        "--head",
        "--dashboard-host",
        "127.0.0.1",
        "--dashboard-port",
        str(dashboard_port),
        "--resources",
        json.dumps(dict(resources)),
        "--disable-usage-stats",
    ]
    logger.info("starting a local Ray head: %s", " ".join(argv))
    started = subprocess.run(argv, capture_output=True, text=True, check=False)
    if started.returncode != 0:
        raise ClusterUnavailable(
            f"`ray start --head` exited with {started.returncode}: "
            f"{(started.stderr or started.stdout)[-2000:]}. Is another Ray instance using "
            "port 6379? Stop it with `ray stop` or pass --ray-address."
        )
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if dashboard_answers(url):
            return url
        time.sleep(0.5)
    raise ClusterUnavailable(
        f"the Ray dashboard did not answer at {url} within {wait_s:.0f} s after `ray start`; "
        "see /tmp/ray/session_latest/logs/dashboard.log"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class PrivateRayHead:
    """A Ray head owned by this process, for tests and benchmarks: stopped by ``stop()``.

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
            sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block",
            "--port", str(_free_port()),
            "--dashboard-host", "127.0.0.1",
            "--dashboard-port", str(dashboard_port),
            "--include-dashboard", "true",
            "--ray-client-server-port", str(_free_port()),
            "--dashboard-agent-listen-port", str(_free_port()),
            "--dashboard-agent-grpc-port", str(_free_port()),
            "--runtime-env-agent-port", str(_free_port()),
            "--metrics-export-port", str(_free_port()),
            "--node-manager-port", str(_free_port()),
            "--object-manager-port", str(_free_port()),
            "--temp-dir", self._temp_dir,
            "--resources", json.dumps(self.resources),
            "--disable-usage-stats",
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
