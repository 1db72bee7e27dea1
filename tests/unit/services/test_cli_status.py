"""``pairforge status`` and ``pairforge jobs`` as a person reads them, and ``status --watch``.

The views are rendered from what the real API returns (a TestClient on a fake launcher);
the watch loop talks HTTP over loopback to the real app under uvicorn, whose fake launcher
moves the job along one step per refresh, as a running build would.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi.testclient import TestClient

from pipeline.ports import JobState, RemoteStatus
from pipeline.progress import BuildProgress
from services.api.app import create_app
from services.api.settings import Settings
from services.cli import main
from services.cli.job_view import bar, duration, job_summary, jobs_table
from tests.unit.services.conftest import spec
from tests.unit.services.fake_launcher import FakeLauncher


def _write_progress(output_dir: str, **counts: Any) -> None:
    progress = BuildProgress(job_id=Path(output_dir).name, **counts)
    (Path(output_dir) / "progress.json").write_text(progress.model_dump_json(), encoding="utf-8")


RUNNING = {
    "units_total": 4,
    "units_done": 1,
    "problems_total": 30,
    "problems_sampled": 21,
    "problems_executed": 15,
    "problems_ranked": 9,
    "candidates": 300,
    "cells": 2345,
    "pairs": 7,
    "skips": {"no_passing_code": 1, "all_pass": 3},
    "cells_per_s": 56.25,
    "started_at": 1_000.0,
}

# ---------------------------------------------------------------- the views


def test_bar_and_duration() -> None:
    assert bar(0, 30, width=10) == "[----------]"
    assert bar(15, 30, width=10) == "[#####-----]"
    assert bar(29, 30, width=10) == "[#########-]"  # full only when done
    assert bar(30, 30, width=10) == "[##########]"
    assert bar(5, 0, width=4) == "[????]"
    assert [duration(s) for s in (0, 42, 185, 7620)] == ["0s", "42s", "3m 05s", "2h 07m"]


def test_status_summary_of_a_running_job(client: TestClient, launcher: FakeLauncher) -> None:
    job = client.post("/jobs", json={"spec": spec("a"), "name": "quickstart"}).json()
    launcher.set(job["id"], JobState.RUNNING)
    _write_progress(job["output_uri"], **RUNNING)
    shown = client.get(f"/jobs/{job['id']}").json()
    started = datetime.fromisoformat(shown["started_at"])
    text = job_summary(shown, now=started + timedelta(seconds=72))
    lines = text.splitlines()
    assert lines[0] == f"{job['id']}  quickstart"
    assert lines[1] == "state      running, 1m 12s since it started"
    assert lines[2] == "sampled    [##############------]  21/30 problems"
    assert lines[3] == "executed   [##########----------]  15/30"
    assert lines[4] == "ranked     [######--------------]   9/30"
    assert "units      1/4 written" in lines
    assert "cells      2,345 executed, 56.2 cells/s" in lines
    assert "pairs      7" in lines
    assert "skips      all_pass 3, no_passing_code 1" in lines
    assert f"output     {job['output_uri']}" in lines
    assert f"dashboard  http://ray.test:8265/#/jobs/{job['id']}" in lines
    assert any("ray get-auth-token" in line for line in lines)
    assert "error" not in text
    assert not any(line.startswith(("refined", "versions")) for line in lines)


def test_status_summary_of_a_target_dpo_job_shows_its_refinement(
    client: TestClient, launcher: FakeLauncher
) -> None:
    job = client.post("/jobs", json={"spec": spec("t"), "name": "codeflow"}).json()
    launcher.set(job["id"], JobState.RUNNING)
    refinement = {
        "trajectories": 12,
        "versions_per_round": {"0": 12, "1": 7, "2": 4},
        "refined": 5,
        "passed_first": 3,
        "not_refined": 2,
    }
    _write_progress(job["output_uri"], **RUNNING, refinement=refinement)
    lines = job_summary(client.get(f"/jobs/{job['id']}").json()).splitlines()
    assert "refined    5 of 12 trajectories (3 passed at once, 2 not refined)" in lines
    assert "versions   r0 12, r1 7, r2 4" in lines
    assert not any(line.startswith("training") for line in lines)


def test_status_summary_shows_the_training_job_of_a_handoff() -> None:
    job = {
        "id": "pf-1",
        "state": "succeeded",
        "output_uri": "/runs/x",
        "training": {
            "id": "pf-1-train",
            "state": "failed",
            "dashboard_url": "http://ray.test:8265/#/jobs/pf-1-train",
            "error": "exit code 2",
        },
    }
    lines = job_summary(job).splitlines()
    at = lines.index("training   failed  pf-1-train")
    assert lines[at + 1 : at + 3] == [
        "           http://ray.test:8265/#/jobs/pf-1-train",
        "           exit code 2",
    ]


def test_status_summary_before_progress_and_after_failure(
    client: TestClient, launcher: FakeLauncher
) -> None:
    job = client.post("/jobs", json=spec("b")).json()
    queued = job_summary(client.get(f"/jobs/{job['id']}").json())
    assert "state      queued" in queued
    assert "progress   none reported yet" in queued
    assert "[" not in queued

    _write_progress(job["output_uri"], state="failed", error="the sandbox image is missing")
    launcher.set(job["id"], JobState.FAILED, "exit 1")
    failed = job_summary(client.get(f"/jobs/{job['id']}").json())
    assert "state      failed" in failed
    assert "error      the sandbox image is missing" in failed
    assert "sampled    [????????????????????]  0 problems (total not counted yet)" in failed


def test_a_finished_job_shows_its_run_time_and_manifest(
    client: TestClient, launcher: FakeLauncher
) -> None:
    job = client.post("/jobs", json=spec("c")).json()
    done = {**RUNNING, "state": "succeeded", "problems_ranked": 30, "units_done": 4}
    _write_progress(job["output_uri"], **done, finished_at=1_000.0 + 95)
    (Path(job["output_uri"]) / "manifest.json").write_text("{}", encoding="utf-8")
    launcher.set(job["id"], JobState.SUCCEEDED)
    text = job_summary(client.get(f"/jobs/{job['id']}").json())
    assert "state      succeeded, ran 1m 35s" in text
    assert "ranked     [####################]  30/30" in text
    assert f"output     {job['output_uri']} (complete: manifest.json written)" in text


def test_jobs_table_has_a_header_and_aligned_columns(
    client: TestClient, launcher: FakeLauncher
) -> None:
    first = client.post("/jobs", json={"spec": spec("d"), "name": "first"}).json()
    second = client.post("/jobs", json={"spec": spec("e"), "name": "second job"}).json()
    launcher.set(second["id"], JobState.RUNNING)
    _write_progress(second["output_uri"], **RUNNING)
    lines = jobs_table(client.get("/jobs").json()["data"]).splitlines()
    assert lines[0].split() == ["ID", "STATE", "RANKED", "CREATED", "NAME"]
    assert lines[1].split()[:3] == [second["id"], "running", "9/30"]
    assert lines[1].endswith("second job")
    assert lines[2].split()[:3] == [first["id"], "queued", "-"]
    # Every column starts where its header does.
    for header in ("STATE", "RANKED", "CREATED", "NAME"):
        column = lines[0].index(header)
        assert lines[1][column - 2 : column] == "  " and lines[1][column] != " "
    assert jobs_table([]) == "ID  STATE  RANKED  CREATED  NAME"


# ---------------------------------------------------------------- over loopback HTTP


class SteppingLauncher(FakeLauncher):
    """Each status request moves the job one step along ``steps``: (Ray state, progress).

    The service reads ``progress.json`` before it asks Ray, so the progress of a step is
    written when the step before it is taken (the first one at submission).
    """

    def __init__(self, steps: list[tuple[JobState, dict[str, Any] | None]]) -> None:
        super().__init__()
        self.steps = steps
        self.asked = 0

    def _write(self, step: int) -> None:
        progress = self.steps[min(step, len(self.steps) - 1)][1]
        if progress is not None:
            _write_progress(str(Path(self.submitted[-1].spec_path).parent), **progress)

    def submit(self, *, submission_id: str, job_id: str, spec_path: str, name: str) -> None:
        super().submit(submission_id=submission_id, job_id=job_id, spec_path=spec_path, name=name)
        self._write(0)

    def status(self, submission_id: str) -> RemoteStatus | None:
        state = self.steps[min(self.asked, len(self.steps) - 1)][0]
        self.asked += 1
        self._write(self.asked)
        self.set(submission_id, state)
        return super().status(submission_id)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def serve(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[SteppingLauncher], str]]:
    """Start the app under uvicorn on a loopback port with a given launcher; its URL."""
    monkeypatch.delenv("PAIRFORGE_API_TOKEN", raising=False)
    monkeypatch.delenv("PAIRFORGE_SERVER", raising=False)
    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(launcher: SteppingLauncher) -> str:
        settings = Settings(
            database_url=f"sqlite:///{workdir / 'jobs.db'}",
            output_root="runs",
            ray_address=None,
            reconcile_interval_s=0,
        )
        port = _free_port()
        app = create_app(settings, launcher=launcher, cwd=workdir)
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        servers.append((server, thread))
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        return f"http://127.0.0.1:{port}"

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(timeout=30)


def _submit(url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> str:
    job_file = tmp_path / "job.json"
    job_file.write_text(json.dumps(spec("w")), encoding="utf-8")
    assert main(["submit", str(job_file), "--server", url]) == 0
    job_id = capsys.readouterr().out.strip()
    assert job_id.startswith("pf-")
    return job_id


def _progress(ranked: int, state: str = "running") -> dict[str, Any]:
    return {**RUNNING, "problems_ranked": ranked, "state": state}


def test_watch_refreshes_until_success_and_exits_0(
    serve: Callable[[SteppingLauncher], str],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    launcher = SteppingLauncher(
        [
            (JobState.QUEUED, None),
            (JobState.RUNNING, _progress(3)),
            (JobState.RUNNING, _progress(9)),
            (JobState.SUCCEEDED, _progress(30, "succeeded")),
        ]
    )
    url = serve(launcher)
    job_id = _submit(url, capsys, tmp_path)
    started = time.monotonic()
    code = main(["status", job_id, "--watch", "--interval", "0.1", "--server", url])
    out = capsys.readouterr().out
    assert code == 0
    assert time.monotonic() - started < 30
    views = out.split("\n\n")
    states = [view.splitlines()[1].split()[1].rstrip(",") for view in views]
    assert states == ["queued", "running", "running", "succeeded"], out
    assert "3/30" in views[1] and "9/30" in views[2] and "30/30" in views[3]
    assert launcher.asked == 4  # it stopped asking once the job had ended


@pytest.mark.parametrize("final", [JobState.FAILED, JobState.CANCELLED])
def test_watch_exits_1_when_the_job_does_not_succeed(
    serve: Callable[[SteppingLauncher], str],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    final: JobState,
) -> None:
    url = serve(SteppingLauncher([(JobState.RUNNING, _progress(1)), (final, None)]))
    job_id = _submit(url, capsys, tmp_path)
    assert main(["status", job_id, "--watch", "--interval", "0.1", "--server", url]) == 1
    assert f"state      {final.value}" in capsys.readouterr().out


def test_json_keeps_the_api_answer_and_watch_json_prints_one_line_per_change(
    serve: Callable[[SteppingLauncher], str],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    launcher = SteppingLauncher(
        [(JobState.RUNNING, _progress(2)), (JobState.SUCCEEDED, _progress(30, "succeeded"))]
    )
    url = serve(launcher)
    job_id = _submit(url, capsys, tmp_path)
    assert main(["status", job_id, "--json", "--server", url]) == 0
    once = json.loads(capsys.readouterr().out)
    assert once["id"] == job_id and once["state"] == "running"
    assert once["stages"][-1] == {"stage": "rank", "done": 2, "total": 30}
    assert main(["status", job_id, "--json", "--watch", "--interval", "0.1", "--server", url]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line)["state"] for line in lines] == ["succeeded"]


def test_jobs_prints_a_header_row(
    serve: Callable[[SteppingLauncher], str],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    url = serve(SteppingLauncher([(JobState.RUNNING, _progress(4))]))
    job_id = _submit(url, capsys, tmp_path)
    assert main(["jobs", "--server", url]) == 0
    header, row = capsys.readouterr().out.splitlines()
    assert header.split() == ["ID", "STATE", "RANKED", "CREATED", "NAME"]
    assert row.split()[:3] == [job_id, "running", "4/30"]


@pytest.mark.parametrize("interval", ["0", "0.05", "61", "soon"])
def test_watch_interval_is_bounded(interval: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as refused:
        main(["status", "pf-x", "--watch", "--interval", interval])
    assert refused.value.code == 2
    assert "--interval" in capsys.readouterr().err


def test_watch_on_a_terminal_redraws(monkeypatch: pytest.MonkeyPatch) -> None:
    from io import StringIO

    from services.cli.client import watch

    class Terminal(StringIO):
        def isatty(self) -> bool:
            return True

    jobs = iter([{"state": "running", "n": 1}, {"state": "running", "n": 1}, {"state": "failed"}])
    screen = Terminal()
    naps: list[float] = []
    code = watch(
        lambda: next(jobs), lambda job: str(job), interval_s=0.5, out=screen, sleep=naps.append
    )
    assert code == 1
    assert screen.getvalue().count("\x1b[2J") == 3  # redrawn every time, even unchanged
    assert naps == [0.5, 0.5]


def test_ctrl_c_stops_watching_only() -> None:
    from io import StringIO

    from services.cli.client import watch

    def interrupted(_seconds: float) -> None:
        raise KeyboardInterrupt

    out = StringIO()
    code = watch(lambda: {"state": "running"}, str, interval_s=1, out=out, sleep=interrupted)
    assert code == 130
    assert "the job goes on" in out.getvalue()
