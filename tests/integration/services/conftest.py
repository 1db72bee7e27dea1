"""A private Ray head per module and the job service as a real uvicorn subprocess.

The Ray head is started with ``ray start --head --block`` on free ports and its own temp
dir (``tests.integration.services.ray_head.PrivateRayHead``) and stopped by ending its
process group, so it never touches another Ray instance on the machine (``ray stop`` would
end them all).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import REPO_ROOT, SHARED_DATA

QUICKSTART = REPO_ROOT / "examples" / "quickstart" / "job.yaml"
MISSING_IMAGE = "pairforge-no-such-image:never"
"""A sandbox image no machine has: a build using it fails fast, in its pre-flight check."""


@pytest.fixture(scope="module")
def ray_head() -> Iterator[str]:
    """Dashboard URL of a Ray head owned by this module (4 CPUs, 2 sandbox slots)."""
    from tests.integration.services.ray_head import PrivateRayHead

    head = PrivateRayHead(resources={"sandbox": 2}, num_cpus=4)
    yield head.start()
    head.stop()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Service:
    """``pairforge serve`` in a subprocess on a loopback port, restartable on one database."""

    def __init__(self, workdir: Path, ray_address: str, token: str | None = None) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = token
        self.env = {
            **os.environ,
            "PAIRFORGE_DATABASE_URL": f"sqlite:///{workdir / 'jobs.db'}",
            "PAIRFORGE_OUTPUT_ROOT": "runs",
            # The working directory, the bundled examples and the shared data sets.
            "PAIRFORGE_INPUT_ROOTS": os.pathsep.join(
                [".", str(REPO_ROOT / "examples"), str(SHARED_DATA)]
            ),
            "PAIRFORGE_RAY_ADDRESS": ray_address,
            "PAIRFORGE_SERVER": self.url,
        }
        self.env.pop("PAIRFORGE_API_TOKEN", None)
        if token:
            self.env["PAIRFORGE_API_TOKEN"] = token
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        log = (self.workdir / f"service-{self.starts}.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "serve", "--port", str(self.port)],
            cwd=self.workdir,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError(f"service did not start: {self.log_tail()}")

    def log_tail(self) -> str:
        return (self.workdir / f"service-{self.starts}.log").read_text(errors="replace")[-3000:]

    def kill(self) -> None:
        """End the service abruptly, as a crash would (SIGKILL)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    def client(self) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)


@pytest.fixture
def service(tmp_path: Path, ray_head: str) -> Iterator[Service]:
    (tmp_path / "runs").mkdir()
    running = Service(tmp_path, ray_head)
    running.start()
    yield running
    running.stop()


def quickstart_spec(uri: str, **changes: Any) -> dict[str, Any]:
    """The quickstart JobSpec, its source absolute, writing to ``uri`` (relative: under the
    output root); ``changes`` per section."""
    spec: dict[str, Any] = yaml.safe_load(QUICKSTART.read_text(encoding="utf-8"))
    spec["source"]["path"] = str(REPO_ROOT / spec["source"]["path"])
    for section, values in changes.items():
        spec[section] = {**spec.get(section, {}), **values}
    spec["output"]["uri"] = uri
    return spec


def wait_for(
    client: httpx.Client, job_id: str, states: set[str], timeout_s: float
) -> dict[str, Any]:
    """Poll ``GET /jobs/{id}`` until the job is in one of ``states``."""
    deadline = time.monotonic() + timeout_s
    job: dict[str, Any] = {}
    while time.monotonic() < deadline:
        job = client.get(f"/jobs/{job_id}").raise_for_status().json()
        if job["state"] in states:
            return job
        time.sleep(1)
    raise AssertionError(f"job {job_id} never reached {states} in {timeout_s} s: {job}")
