"""The training hand-off on a real local Ray: a build with ``handoff`` succeeds through the
real service, its training job runs as a Ray Job of its own, and its state is reported.

The stand-in keeps ``deploy/training/train.py``'s contract (argv, working directory, exit
codes) and trains nothing, so the wiring is checked in seconds; one test runs the real
training job with ``deploy/training/cpu-smoke.yaml`` and skips while it is not there.
`pairforge train --address` submits the same command from the command line.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from services.training_job import DEFAULT_ENTRYPOINT, PROJECT_ROOT
from tests.conftest import requires_sandbox_image
from tests.integration.services.conftest import Service, quickstart_spec, wait_for
from tests.unit.services.training_stand_in import write_stand_in

pytestmark = [pytest.mark.ray, pytest.mark.slow]

FINAL = {"succeeded", "failed", "cancelled"}
TRAIN = PROJECT_ROOT / "deploy" / "training" / "train.py"
CPU_SMOKE = PROJECT_ROOT / "deploy" / "training" / "cpu-smoke.yaml"


@pytest.fixture
def stand_in(tmp_path: Path) -> Path:
    return write_stand_in(tmp_path)


@pytest.fixture
def service(tmp_path: Path, ray_head: str, stand_in: Path) -> Iterator[Service]:
    (tmp_path / "runs").mkdir()
    running = Service(tmp_path, ray_head)
    running.env["PAIRFORGE_TRAINING_ENTRYPOINTS"] = json.dumps(
        [f"python {stand_in}", DEFAULT_ENTRYPOINT]
    )
    running.env["PAIRFORGE_HANDOFF_POLL_S"] = "1"
    running.start()
    yield running
    running.stop()


def _ray_job_info(ray_address: str, submission_id: str) -> Any:
    from ray.job_submission import JobSubmissionClient

    from cluster.launcher import ray_auth_token

    token = ray_auth_token()
    headers = {"Authorization": f"Bearer {token}"} if token else None
    return JobSubmissionClient(ray_address, headers=headers).get_job_info(submission_id)


def _wait_for_training(client: httpx.Client, job_id: str, timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    job: dict[str, Any] = {}
    while time.monotonic() < deadline:
        job = client.get(f"/jobs/{job_id}").raise_for_status().json()
        if job["training"]["state"] in FINAL:
            return job
        time.sleep(1)
    raise AssertionError(f"training of {job_id} never ended in {timeout_s} s: {job}")


def _build_with_handoff(
    service: Service, training_config: Path, entrypoint: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Submit the quickstart with a hand-off; the job once built, and once trained."""
    spec = quickstart_spec(
        "quickstart",
        handoff={
            "submit": True,
            "training_config": str(training_config),
            "entrypoint": entrypoint,
        },
    )
    with service.client() as client:
        created = client.post("/jobs", json=spec)
        assert created.status_code == 201, created.text
        job_id = created.json()["id"]
        built = wait_for(client, job_id, FINAL, timeout_s=480)
        assert built["state"] == "succeeded", built
        trained = _wait_for_training(client, job_id, timeout_s=900)
    return built, trained


@requires_sandbox_image
def test_a_build_hands_off_to_its_training_job_on_ray(
    service: Service, ray_head: str, stand_in: Path, tmp_path: Path
) -> None:
    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump({"output_dir": str(tmp_path / "model")}), encoding="utf-8")
    built, trained = _build_with_handoff(service, config, f"python {stand_in}")

    job_id = built["id"]
    submission = f"{job_id}-train"
    assert trained["state"] == "succeeded"  # the build's own state is untouched
    assert trained["training"] == {
        "id": submission,
        "state": "succeeded",
        "dashboard_url": f"{ray_head}/#/jobs/{submission}",
        "error": None,
    }
    # It ran as its own Ray Job, tagged with the build it trains on.
    info = _ray_job_info(ray_head, submission)
    assert info.status == "SUCCEEDED"
    assert info.metadata["pairforge_job_id"] == submission
    assert info.metadata["pairforge_training_of"] == job_id
    assert info.submission_id != _ray_job_info(ray_head, job_id).submission_id
    # With the training job's contract: MANIFEST CONFIG, from the project root.
    manifest = Path(built["output_uri"]) / "manifest.json"
    summary = json.loads((tmp_path / "model" / "training_summary.json").read_text())
    assert summary == {
        "argv": [str(manifest), str(config)],
        "cwd": str(PROJECT_ROOT),
        "job_id": job_id,
    }


@requires_sandbox_image
def test_a_failed_training_job_is_reported_and_leaves_the_build_succeeded(
    service: Service, stand_in: Path, tmp_path: Path
) -> None:
    config = tmp_path / "train.yaml"
    config.write_text(
        yaml.safe_dump({"output_dir": str(tmp_path / "model"), "exit_code": 2}), encoding="utf-8"
    )
    _built, trained = _build_with_handoff(service, config, f"python {stand_in}")
    assert trained["state"] == "succeeded"
    assert trained["training"]["state"] == "failed"
    assert "exit code 2" in trained["training"]["error"]


@requires_sandbox_image
@pytest.mark.skipif(
    not (TRAIN.is_file() and CPU_SMOKE.is_file()),
    reason=f"the training job ({TRAIN}) or its CPU config ({CPU_SMOKE}) is not written yet",
)
def test_the_real_training_job_trains_on_the_handed_off_dataset(
    service: Service, tmp_path: Path
) -> None:
    config = yaml.safe_load(CPU_SMOKE.read_text(encoding="utf-8"))
    config["output_dir"] = str(tmp_path / "model")
    smoke = tmp_path / "cpu-smoke.yaml"
    smoke.write_text(yaml.safe_dump(config), encoding="utf-8")
    _built, trained = _build_with_handoff(service, smoke, DEFAULT_ENTRYPOINT)
    assert trained["training"]["state"] == "succeeded", trained["training"]
    summary = json.loads((tmp_path / "model" / "training_summary.json").read_text())
    assert summary["losses"], summary


def test_pairforge_train_address_runs_it_as_a_ray_job(
    ray_head: str, stand_in: Path, tmp_path: Path
) -> None:
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"job_id": "pf-cli"}), encoding="utf-8")
    config = tmp_path / "train.yaml"
    config.write_text(
        yaml.safe_dump({"output_dir": str(tmp_path / "model"), "exit_code": 3}), encoding="utf-8"
    )
    done = subprocess.run(
        [sys.executable, "-m", "services.cli", "train", str(manifest), str(config),
         "--address", ray_head, "--wait", "--entrypoint", f"python {stand_in}"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 3, done.stdout + done.stderr  # the training job's own code
    submission = done.stdout.splitlines()[0]
    assert submission.startswith("pf-cli-train-")
    assert f"stand-in trained on {manifest}" in done.stdout
    assert f"dashboard  {ray_head}/#/jobs/{submission}" in done.stderr
    info = _ray_job_info(ray_head, submission)
    assert (info.status, info.metadata["pairforge_training_of"]) == ("FAILED", "pf-cli")
    summary = json.loads((tmp_path / "model" / "training_summary.json").read_text())
    assert summary["cwd"] == str(PROJECT_ROOT)
