"""The job service end to end: real uvicorn, a real Ray head, real SQLite, real builds.

Builds run the quickstart (or HumanEval replay rows) in the Docker sandbox, so these tests
need the sandbox image; the HTTP refusal tests need only the service.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from tests.conftest import HUMANEVAL_DIR, requires_sandbox_image, requires_shared_data
from tests.integration.services.conftest import Service, quickstart_spec, wait_for

pytestmark = [pytest.mark.ray, pytest.mark.slow]

FINAL = {"succeeded", "failed", "cancelled"}


def _cli(service: Service, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        cwd=service.workdir,
        env=service.env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _ray_job_info(ray_address: str, submission_id: str):
    from ray.job_submission import JobSubmissionClient

    from cluster.launcher import ray_auth_token

    token = ray_auth_token()
    headers = {"Authorization": f"Bearer {token}"} if token else None
    return JobSubmissionClient(ray_address, headers=headers).get_job_info(submission_id)


def _files(directory: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(directory)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in directory.rglob("*")
        if p.is_file()
    }


@requires_sandbox_image
def test_quickstart_lifecycle(service: Service, ray_head: str) -> None:
    job_file = service.workdir / "job.yaml"
    job_file.write_text(yaml.safe_dump(quickstart_spec("quickstart")), encoding="utf-8")
    submitted = _cli(service, "submit", str(job_file))
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip()
    assert job_id.startswith("pf-")

    with service.client() as client:
        job = wait_for(client, job_id, FINAL, timeout_s=480)
        assert job["state"] == "succeeded", job
        manifest = client.get(f"/jobs/{job_id}/manifest")
        assert manifest.status_code == 200
        manifest_body = manifest.json()

    # Counts agree across the manifest, the shards on disk and the service's view.
    output = Path(job["output_uri"])
    assert output == service.workdir / "runs" / "quickstart"
    pair_rows = sum(pq.read_metadata(p).num_rows for p in (output / "pairs").glob("*.parquet"))
    problem_rows = sum(
        pq.read_metadata(p).num_rows for p in (output / "problems").glob("*.parquet")
    )
    assert manifest_body["job_id"] == job_id
    assert manifest_body["counts"]["pairs"] == pair_rows == job["counts"]["pairs"]
    assert problem_rows == 30 == job["counts"]["problems"]
    assert pair_rows > 0
    assert job["manifest_ready"] is True
    assert job["stages"][-1] == {"stage": "rank", "done": 30, "total": 30}

    # The build ran as a Ray Job tagged with the pairforge id (what the dashboard lists).
    info = _ray_job_info(ray_head, job_id)
    assert info.metadata["pairforge_job_id"] == job_id
    assert info.metadata["job_name"] == info.metadata["name"]  # the dashboard's Name column
    assert info.status == "SUCCEEDED"
    assert job["dashboard_url"] == f"{ray_head}/#/jobs/{job_id}"

    status = _cli(service, "status", job_id, "--json")
    assert json.loads(status.stdout)["state"] == "succeeded"
    summary = _cli(service, "status", job_id).stdout
    assert "state      succeeded" in summary
    assert "ranked     [####################]  30/30" in summary
    assert f"dashboard  {ray_head}/#/jobs/{job_id}" in summary
    watched = _cli(service, "status", job_id, "--watch")
    assert watched.returncode == 0, watched.stdout + watched.stderr
    listed = _cli(service, "jobs").stdout.splitlines()
    assert listed[0].split() == ["ID", "STATE", "RANKED", "CREATED", "NAME"]
    assert listed[1].split()[:3] == [job_id, "succeeded", "30/30"]
    with service.client() as client:
        metrics = client.get("/metrics").text
    assert f"pairforge_pairs_written_total {float(pair_rows)}" in metrics


@requires_sandbox_image
@requires_shared_data
def test_cancel_stops_the_ray_job_and_writing(service: Service, ray_head: str) -> None:
    # 82 HumanEval problems x 100 replayed samples, one problem per unit: minutes of work.
    spec = quickstart_spec(
        "long",
        source={"path": str(HUMANEVAL_DIR / "dev-k100.jsonl")},
        sampler={"k": 100},
        output={"problems_per_unit": 1},
    )
    with service.client() as client:
        created = client.post("/jobs", json=spec)
        assert created.status_code == 201, created.text
        job_id = created.json()["id"]
        output = Path(created.json()["output_uri"])
        wait_for(client, job_id, {"running"}, timeout_s=120)
        deadline = time.monotonic() + 180
        while not (output / "progress.json").exists() and time.monotonic() < deadline:
            time.sleep(1)
        assert (output / "progress.json").exists(), "the build never reported progress"

        cancelled = client.delete(f"/jobs/{job_id}")
        assert cancelled.status_code == 200
        assert cancelled.json()["state"] == "cancelled"

        deadline = time.monotonic() + 60
        while _ray_job_info(ray_head, job_id).status != "STOPPED":
            assert time.monotonic() < deadline, "Ray never stopped the job"
            time.sleep(1)
        before = _files(output)
        time.sleep(8)
        assert _files(output) == before, "files changed after the Ray Job stopped"
        assert not (output / "manifest.json").exists()
        assert client.get(f"/jobs/{job_id}").json()["state"] == "cancelled"
        again = client.delete(f"/jobs/{job_id}")
        assert (again.status_code, again.json()["state"]) == (200, "cancelled")


@requires_sandbox_image
def test_restarted_service_finds_and_finishes_its_job(service: Service) -> None:
    with service.client() as client:
        created = client.post("/jobs", json=quickstart_spec("restart"))
        assert created.status_code == 201, created.text
        job_id = created.json()["id"]
        wait_for(client, job_id, {"running", *FINAL}, timeout_s=120)

    service.kill()  # a crash: no shutdown hooks run
    service.start()

    with service.client() as client:
        listed = client.get("/jobs").json()
        assert [j["id"] for j in listed["data"]] == [job_id]
        job = wait_for(client, job_id, FINAL, timeout_s=480)
    assert job["state"] == "succeeded", job
    assert (Path(job["output_uri"]) / "manifest.json").is_file()


def test_http_refusals(tmp_path: Path, ray_head: str) -> None:
    (tmp_path / "runs").mkdir()
    (tmp_path / "outside").mkdir()
    (tmp_path / "runs" / "link").symlink_to(tmp_path / "outside")
    (tmp_path / "problems.jsonl").write_text('{"problem_id": "p"}\n', encoding="utf-8")
    service = Service(tmp_path, ray_head, token="integration-token")
    service.start()
    try:
        body = {"source": {"path": "problems.jsonl"}, "sampler": {"kind": "replay"}}
        with service.client() as client:
            anonymous = client.get("/jobs", headers={"Authorization": ""})
            assert anonymous.status_code == 401
            assert client.get("/healthz", headers={"Authorization": ""}).status_code == 200
            for uri, expected in [
                ("runs/../x", "`..`"),
                ("/tmp/elsewhere", "not inside the output root"),
                ("link/x", "not inside the output root"),
                ("runs/" + "x" * 300, "longer than"),
                ("runs/a\nb", "control character"),
            ]:
                refused = client.post("/jobs", json={**body, "output": {"uri": uri}})
                assert refused.status_code == 422, uri
                assert expected in refused.json()["detail"]
            huge = client.post("/jobs", json={**body, "name": "x" * 2_000_000})
            assert huge.status_code == 413
            assert "bytes" in huge.json()["detail"]
            broken = client.post(
                "/jobs", content=b'{"source": ', headers={"content-type": "application/json"}
            )
            assert broken.status_code == 422
            assert "not valid JSON" in broken.json()["detail"]
            unknown = client.post("/jobs", json={**body, "sampler": {"kind": "replay", "n": 1}})
            assert unknown.status_code == 422
            assert unknown.json()["problems"] == ["sampler.n: unknown field"]
            # The input is read at submission: a replay row without completions is line 1.
            malformed = client.post("/jobs", json=body)
            assert malformed.status_code == 422
            assert "line 1:" in malformed.json()["detail"]
            for private in ("/etc/shadow", "/proc/self/environ"):
                secret = client.post("/jobs", json={**body, "source": {"path": private}})
                assert secret.status_code == 422
                assert "input roots" in secret.json()["detail"]
            lifted = client.post("/jobs", json={**body, "sandbox": {"memory_mb": 10_000_000}})
            assert lifted.status_code == 422
            assert "PAIRFORGE_MAX_MEMORY_MB" in lifted.json()["detail"]
            assert client.get("/jobs").json()["count"] == 0
            assert not any((tmp_path / "outside").iterdir())
    finally:
        service.stop()
