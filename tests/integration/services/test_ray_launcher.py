"""``RayJobLauncher`` against a real Ray head: states, stops, vanished ids, errors."""

from __future__ import annotations

import shlex
import sys
import time

import pytest

from cluster.launcher import RayJobLauncher
from pipeline.errors import ClusterUnavailable
from pipeline.ports import JobState
from tests.integration.services.conftest import free_port

pytestmark = [pytest.mark.ray]

# `sh -c SCRIPT sh build SPEC --job-id ID --resume`: the script ignores the build arguments.
SLEEP = ["sh", "-c", "sleep 60", "sh"]
FAIL = ["sh", "-c", "echo broken input >&2; exit 3", "sh"]


def _until(launcher: RayJobLauncher, sid: str, states: set[JobState], timeout_s: float = 60):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = launcher.status(sid)
        if status is not None and status.state in states:
            return status
        time.sleep(0.5)
    raise AssertionError(f"{sid} never reached {states}: {launcher.status(sid)}")


def test_entrypoint_runs_pairforge_build_with_this_interpreter() -> None:
    launcher = RayJobLauncher("http://127.0.0.1:1")  # connects on first use only
    argv = [sys.executable, "-m", "services.cli", "build", "/r/x y/job.json"]
    assert launcher.entrypoint("pf-1", "/r/x y/job.json") == shlex.join(
        [*argv, "--job-id", "pf-1", "--resume"]
    )
    assert launcher.dashboard_url("pf-1") == "http://127.0.0.1:1/#/jobs/pf-1"


def test_running_job_stops_and_reports_cancelled(ray_head: str) -> None:
    launcher = RayJobLauncher(ray_head, build_command=SLEEP)
    launcher.submit(submission_id="pf-sleep", job_id="pf-sleep", spec_path="/x.json", name="nap")
    _until(launcher, "pf-sleep", {JobState.RUNNING})
    assert launcher.stop("pf-sleep") is True
    _until(launcher, "pf-sleep", {JobState.CANCELLED})
    # Stopping again is harmless; Ray may still answer True while its supervisor winds down.
    launcher.stop("pf-sleep")
    after = launcher.status("pf-sleep")
    assert after is not None and after.state is JobState.CANCELLED
    with pytest.raises(ClusterUnavailable, match="pf-sleep"):
        launcher.submit(submission_id="pf-sleep", job_id="pf-sleep", spec_path="/x", name="")


def test_failed_job_reports_its_message(ray_head: str) -> None:
    launcher = RayJobLauncher(ray_head, build_command=FAIL)
    launcher.submit(submission_id="pf-fail", job_id="pf-fail", spec_path="/x.json", name="")
    status = _until(launcher, "pf-fail", {JobState.FAILED, JobState.SUCCEEDED})
    assert status.state is JobState.FAILED
    assert "exit code 3" in status.message


def test_unknown_submission_is_none_not_an_error(ray_head: str) -> None:
    launcher = RayJobLauncher(ray_head)
    assert launcher.status("pf-never-submitted") is None
    assert launcher.stop("pf-never-submitted") is False


def test_unreachable_cluster_is_cluster_unavailable() -> None:
    launcher = RayJobLauncher(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(ClusterUnavailable, match="ray status"):
        launcher.status("pf-x")
