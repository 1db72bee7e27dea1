"""`pairforge build` next to a local Ray that is already running (issue 10).

A bare ``ray.init()`` joins the cluster named in Ray's ``ray_current_cluster`` file and
then refuses the local runtime's resources. The build must decide deliberately: join a
running cluster that offers the sandbox resource (and say so), or start its own runtime.

The running cluster here is a real ``ray start --head`` whose Ray temp dir
(``RAY_TMPDIR``) is private to the test, so it never meets another Ray on the machine.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO_ROOT, SANDBOX_IMAGE, requires_sandbox_image
from tests.integration.services.ray_head import head_argv

pytestmark = [requires_sandbox_image, pytest.mark.ray, pytest.mark.docker]


def _running_head(ray_tmpdir: Path, resources: dict[str, float]) -> subprocess.Popen[bytes]:
    argv = [*head_argv(resources), "--include-dashboard", "false", "--num-cpus", "1"]
    env = {**os.environ, "RAY_TMPDIR": str(ray_tmpdir)}
    env.pop("RAY_ADDRESS", None)
    log = (ray_tmpdir / "head.log").open("wb")
    head = subprocess.Popen(
        argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    address_file = ray_tmpdir / "ray" / "ray_current_cluster"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and head.poll() is None:
        if address_file.exists():
            time.sleep(2)  # the GCS answers shortly after the file appears
            return head
        time.sleep(0.5)
    os.killpg(head.pid, signal.SIGKILL)
    pytest.fail(f"ray start did not come up: {(ray_tmpdir / 'head.log').read_text()[-2000:]}")


@pytest.fixture(params=[{}, {"sandbox": 2.0}], ids=["no-sandbox", "with-sandbox"])
def running_cluster(request) -> Iterator[tuple[Path, dict[str, float]]]:
    # Short: Ray's Unix socket paths live under it and must stay under 107 bytes.
    ray_tmpdir = Path(tempfile.mkdtemp(prefix="pfr", dir="/tmp"))
    head = _running_head(ray_tmpdir, request.param)
    try:
        yield ray_tmpdir, request.param
    finally:
        head.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            head.wait(timeout=30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(head.pid, signal.SIGKILL)
        head.wait()


def test_build_next_to_a_running_local_ray_never_crashes(running_cluster, tmp_path) -> None:
    ray_tmpdir, resources = running_cluster
    data = yaml.safe_load((REPO_ROOT / "examples/quickstart/job.yaml").read_text())
    data["source"] = {"path": str(REPO_ROOT / "examples/quickstart/problems.jsonl"), "limit": 4}
    data["sandbox"] = {**data["sandbox"], "image": SANDBOX_IMAGE}
    data["output"] = {"uri": str(tmp_path / "out")}
    job = tmp_path / "job.yaml"
    job.write_text(yaml.safe_dump(data))
    env = {**os.environ, "RAY_TMPDIR": str(ray_tmpdir)}
    env.pop("RAY_ADDRESS", None)

    done = subprocess.run(
        [sys.executable, "-m", "services.cli", "build", str(job)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert done.returncode == 0, done.stderr[-3000:]
    assert "resources must not be provided" not in done.stderr
    if resources:
        assert "joined the local Ray cluster" in done.stderr
    else:
        assert "offers no `sandbox` resource; starting a private Ray runtime" in done.stderr
    assert (tmp_path / "out" / "manifest.json").exists()
    # A healthy build logs nothing at error level (Ray's own `E` lines included), but for
    # the one Ray prints for every restartable Ray Data actor (ray-project/ray#53727): its
    # constructor arguments are Ray Data's own object refs, and the restarts are what lets
    # a dead executor be replaced, so the build keeps them.
    errors = [
        line
        for line in done.stderr.splitlines()
        if (" E " in line[:40] or "ERROR" in line) and "has constructor arguments" not in line
    ]
    assert errors == []
