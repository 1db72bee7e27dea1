"""The job API through TestClient: a fake launcher behind ``JobLauncher``, a real SQLite file."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from pipeline.errors import JobChanged
from pipeline.ports import JobState
from services.api.app import create_app
from services.api.deps import ServiceState
from services.api.lifecycle import JobService
from services.api.settings import Settings
from services.store import JobStore, NewJob
from tests.unit.services.conftest import spec
from tests.unit.services.fake_launcher import FakeLauncher


def _progress(output_dir: str, **counts: object) -> None:
    body = {"job_id": Path(output_dir).name, **counts}
    (Path(output_dir) / "progress.json").write_text(json.dumps(body), encoding="utf-8")


def _submit(client: TestClient, body: object) -> dict[str, Any]:
    answer = client.post("/jobs", json=body)
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


# ---------------------------------------------------------------- submission


def test_submit_bare_spec_writes_job_json_and_submits(
    client: TestClient, launcher: FakeLauncher, workdir: Path
) -> None:
    job = _submit(client, spec("a"))
    assert job["id"].startswith("pf-")
    assert job["state"] == "queued"
    assert job["output_uri"] == str(workdir / "runs" / "a")
    assert job["submission_id"] == job["id"]
    assert job["attempts"] == 1
    assert job["dashboard_url"] == f"http://ray.test:8265/#/jobs/{job['id']}"
    (sent,) = launcher.submitted
    assert sent.submission_id == job["id"] and sent.job_id == job["id"]
    assert sent.spec_path == str(workdir / "runs" / "a" / "job.json")
    written = json.loads(Path(sent.spec_path).read_text())
    # The Ray Job runs elsewhere (another cwd): every local path is made absolute.
    assert written["source"]["path"] == str(workdir / "problems.jsonl")
    assert written["output"]["uri"] == str(workdir / "runs" / "a")


def test_submit_envelope_names_the_job(client: TestClient, launcher: FakeLauncher) -> None:
    job = _submit(client, {"spec": spec("named"), "name": "nightly"})
    assert job["name"] == "nightly"
    assert launcher.submitted[0].name == "nightly"


def test_submit_without_output_goes_under_the_root(client: TestClient, workdir: Path) -> None:
    job = _submit(client, spec(output=None))
    assert job["output_uri"] == str(workdir / "runs" / job["id"])


def test_second_job_on_same_output_is_refused(client: TestClient) -> None:
    first = _submit(client, spec("same"))
    answer = client.post("/jobs", json=spec("./same"))
    assert answer.status_code == 409
    assert first["id"] in answer.json()["detail"]


def test_ray_down_at_submit_is_503_and_job_can_resume(
    client: TestClient, launcher: FakeLauncher
) -> None:
    launcher.reachable = False
    answer = client.post("/jobs", json=spec("down"))
    assert answer.status_code == 503
    assert "resume" in answer.json()["detail"]
    launcher.reachable = True
    (job,) = client.get("/jobs").json()["data"]
    assert job["state"] == "failed"
    assert "could not submit" in job["error"]
    resumed = client.post(f"/jobs/{job['id']}/resume")
    assert resumed.status_code == 200, resumed.text
    assert resumed.json()["state"] == "queued"
    assert launcher.submitted[-1].submission_id == f"{job['id']}-r2"


@pytest.mark.parametrize(("first", "second"), [("a", "a/shards"), ("a/b", "a")])
def test_nested_output_is_refused_either_way(client: TestClient, first: str, second: str) -> None:
    owner = _submit(client, spec(first))
    answer = client.post("/jobs", json=spec(second))
    assert answer.status_code == 409
    assert owner["id"] in answer.json()["detail"]
    assert owner["output_uri"] in answer.json()["detail"]
    assert len(client.get("/jobs").json()["data"]) == 1


def test_output_sharing_only_a_string_prefix_is_accepted(client: TestClient) -> None:
    _submit(client, spec("a"))
    assert _submit(client, spec("ab"))["state"] == "queued"


# ---------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("../outside", "`..`"),
        ("a/../../b", "`..`"),
        ("/etc/pairforge", "not inside the output root"),
        ("/elsewhere", "not inside the output root"),
        (".", "not inside the output root"),
        ("s3://bucket/x", "s3://"),
        ("\x00x", "NUL"),
    ],
)
def test_output_outside_root_is_422(client: TestClient, output: str, expected: str) -> None:
    answer = client.post("/jobs", json=spec(output))
    assert answer.status_code == 422
    assert expected in answer.json()["detail"]


def test_symlink_escaping_the_root_is_422(client: TestClient, workdir: Path) -> None:
    (workdir / "outside").mkdir()
    (workdir / "runs" / "link").symlink_to(workdir / "outside")
    answer = client.post("/jobs", json=spec("link/job"))
    assert answer.status_code == 422
    assert str(workdir / "outside" / "job") in answer.json()["detail"]
    assert not (workdir / "outside" / "job").exists()


def test_absolute_path_inside_root_is_accepted(client: TestClient, workdir: Path) -> None:
    job = _submit(client, spec(str(workdir / "runs" / "abs")))
    assert job["output_uri"] == str(workdir / "runs" / "abs")


def test_unknown_fields_are_named(client: TestClient) -> None:
    body = spec()
    body["sampler"]["temprature"] = 1.0
    answer = client.post("/jobs", json=body)
    assert answer.status_code == 422
    assert answer.json()["problems"] == ["sampler.temprature: unknown field"]
    answer = client.post("/jobs", json={"spec": spec(), "nmae": "x"})
    assert answer.status_code == 422
    assert answer.json()["problems"][0].startswith("nmae: unknown field")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"{not json", "not valid JSON"),
        (b"", "no body"),
        (b"[1, 2]", "JSON object"),
        (b'{"a": "\xc3\x28"}', "not usable JSON"),
        (b"[" * 100_000, "JSON"),
    ],
)
def test_malformed_body_is_422(client: TestClient, raw: bytes, expected: str) -> None:
    answer = client.post("/jobs", content=raw, headers={"content-type": "application/json"})
    assert answer.status_code == 422
    assert expected in answer.json()["detail"]


def test_oversized_body_is_413(make_client: Callable[..., TestClient]) -> None:
    client = make_client(max_body_bytes=4096)
    body = spec()
    body["name"] = "x" * 5000
    answer = client.post("/jobs", json=body)
    assert answer.status_code == 413
    assert "4096 bytes" in answer.json()["detail"]

    def chunks() -> Iterator[bytes]:  # no content-length: the limit holds on the bytes read
        yield b'{"name": "'
        for _ in range(10):
            yield b"y" * 1000
        yield b'"}'

    answer = client.post("/jobs", content=chunks(), headers={"content-type": "application/json"})
    assert answer.status_code == 413


def test_k_times_problems_limit_is_422(
    make_client: Callable[..., TestClient], launcher: FakeLauncher
) -> None:
    client = make_client(max_samples_per_job=20)
    # 3 problems in the file x k=10 = 30 > 20
    answer = client.post("/jobs", json=spec("big"))
    assert answer.status_code == 422
    assert "3 problems × k=10 = 30 samples" in answer.json()["detail"]
    assert "20" in answer.json()["detail"]
    # source.limit=2 caps it: 2 x 10 = 20, at the limit
    body = spec("small")
    body["source"]["limit"] = 2
    _submit(client, body)
    assert len(launcher.submitted) == 1


def test_missing_source_file_is_422(client: TestClient, workdir: Path) -> None:
    body = spec()
    body["source"]["path"] = "nope.jsonl"
    answer = client.post("/jobs", json=body)
    assert answer.status_code == 422
    assert str(workdir / "nope.jsonl") in answer.json()["detail"]


# ---------------------------------------------------------------- reads and reconciliation


def test_read_reports_ray_state_and_build_progress(
    client: TestClient, launcher: FakeLauncher
) -> None:
    job = _submit(client, spec())
    launcher.set(job["id"], JobState.RUNNING)
    _progress(
        job["output_uri"],
        problems_total=3,
        problems_sampled=3,
        problems_executed=2,
        problems_ranked=1,
        cells=40,
        pairs=1,
        candidates=12,
        skips={"all_pass": 1},
        units_total=2,
        units_done=1,
    )
    got = client.get(f"/jobs/{job['id']}").json()
    assert got["state"] == "running"
    assert got["started_at"] is not None
    assert got["stages"] == [
        {"stage": "sample", "done": 3, "total": 3},
        {"stage": "execute", "done": 2, "total": 3},
        {"stage": "rank", "done": 1, "total": 3},
    ]
    assert got["counts"] == {
        "problems": 3,
        "candidates": 12,
        "cells": 40,
        "pairs": 1,
        "fallback_cells": 0,
        "skips": {"all_pass": 1},
        "refinement": None,  # a Focused-DPO build
        "units_done": 1,
        "units_total": 2,
    }


def test_reads_that_change_nothing_keep_updated_at(
    client: TestClient, launcher: FakeLauncher
) -> None:
    job = _submit(client, spec())
    launcher.set(job["id"], JobState.RUNNING)
    _progress(job["output_uri"], problems_total=3, problems_sampled=1)
    first = client.get(f"/jobs/{job['id']}").json()
    assert first["updated_at"] > job["updated_at"]
    assert client.get(f"/jobs/{job['id']}").json()["updated_at"] == first["updated_at"]
    _progress(job["output_uri"], problems_total=3, problems_sampled=2)
    assert client.get(f"/jobs/{job['id']}").json()["updated_at"] > first["updated_at"]


def test_final_state_is_kept(client: TestClient, launcher: FakeLauncher) -> None:
    job = _submit(client, spec())
    launcher.set(job["id"], JobState.SUCCEEDED)
    assert client.get(f"/jobs/{job['id']}").json()["state"] == "succeeded"
    launcher.set(job["id"], JobState.FAILED, "late noise")
    got = client.get(f"/jobs/{job['id']}").json()
    assert got["state"] == "succeeded"
    assert got["finished_at"] is not None


def test_failure_reason_comes_from_the_build(client: TestClient, launcher: FakeLauncher) -> None:
    job = _submit(client, spec())
    _progress(job["output_uri"], state="failed", error="sandbox image missing")
    launcher.set(job["id"], JobState.FAILED, "Job entrypoint command failed with exit code 1")
    got = client.get(f"/jobs/{job['id']}").json()
    assert (got["state"], got["error"]) == ("failed", "sandbox image missing")


def test_vanished_ray_job_fails_with_reason_and_resumes(
    client: TestClient, launcher: FakeLauncher
) -> None:
    job = _submit(client, spec())
    launcher.vanish(job["id"])
    got = client.get(f"/jobs/{job['id']}").json()
    assert got["state"] == "failed"
    assert "no longer exists" in got["error"] and "resume" in got["error"]
    resumed = client.post(f"/jobs/{job['id']}/resume").json()
    assert (resumed["state"], resumed["attempts"]) == ("queued", 2)
    assert resumed["submission_id"] == f"{job['id']}-r2"
    assert resumed["error"] is None
    launcher.set(f"{job['id']}-r2", JobState.RUNNING)
    assert client.get(f"/jobs/{job['id']}").json()["state"] == "running"


def test_resume_refuses_live_and_succeeded_jobs(client: TestClient, launcher: FakeLauncher) -> None:
    job = _submit(client, spec())
    assert client.post(f"/jobs/{job['id']}/resume").status_code == 409
    launcher.set(job["id"], JobState.SUCCEEDED)
    client.get(f"/jobs/{job['id']}")
    answer = client.post(f"/jobs/{job['id']}/resume")
    assert answer.status_code == 409
    assert "succeeded" in answer.json()["detail"]


def test_unknown_job_is_404(client: TestClient) -> None:
    for method, path in [
        ("GET", "/jobs/pf-nope"),
        ("DELETE", "/jobs/pf-nope"),
        ("GET", "/jobs/pf-nope/manifest"),
        ("POST", "/jobs/pf-nope/resume"),
    ]:
        answer = client.request(method, path)
        assert answer.status_code == 404, (method, path)
        assert "pf-nope" in answer.json()["detail"]


def test_cancel_stops_ray_job_and_is_idempotent(client: TestClient, launcher: FakeLauncher) -> None:
    job = _submit(client, spec())
    launcher.set(job["id"], JobState.RUNNING)
    first = client.delete(f"/jobs/{job['id']}")
    assert first.status_code == 200
    assert first.json()["state"] == "cancelled"
    assert launcher.stopped == [job["id"]]
    second = client.delete(f"/jobs/{job['id']}")
    assert second.status_code == 200
    assert second.json()["state"] == "cancelled"
    assert launcher.stopped == [job["id"]]


def test_cancel_after_ray_finished_reports_the_real_end(
    client: TestClient, launcher: FakeLauncher
) -> None:
    job = _submit(client, spec())
    launcher.set(job["id"], JobState.SUCCEEDED)  # finished before the service looked
    got = client.delete(f"/jobs/{job['id']}").json()
    assert got["state"] == "succeeded"
    assert launcher.stopped == []


def _state_of(client: TestClient) -> ServiceState:
    state: ServiceState = client.app.state.pairforge  # type: ignore[attr-defined]
    return state


def test_refresh_on_a_stale_read_does_not_undo_a_cancel(
    client: TestClient, launcher: FakeLauncher
) -> None:
    job = _submit(client, spec())
    launcher.set(job["id"], JobState.RUNNING)
    service = _state_of(client)
    before_cancel = service.store.get(job["id"])  # a read that was asking Ray meanwhile
    assert client.delete(f"/jobs/{job['id']}").json()["state"] == "cancelled"
    launcher.set(job["id"], JobState.RUNNING)  # Ray stops a job asynchronously
    seen = service.reconciler.refresh(before_cancel, launcher, force=True)
    assert seen.state is JobState.CANCELLED
    assert client.get(f"/jobs/{job['id']}").json()["state"] == "cancelled"


def test_refresh_on_a_stale_read_does_not_end_a_resumed_run(
    client: TestClient, launcher: FakeLauncher
) -> None:
    job = _submit(client, spec())
    launcher.set(job["id"], JobState.RUNNING)
    service = _state_of(client)
    first_run = service.store.get(job["id"])
    client.delete(f"/jobs/{job['id']}")
    assert client.post(f"/jobs/{job['id']}/resume").status_code == 200
    launcher.set(f"{job['id']}-r2", JobState.RUNNING)
    # The stale read asks about run 1, which Ray reports stopped; run 2 is what is live.
    service.reconciler.refresh(first_run, launcher, force=True)
    got = client.get(f"/jobs/{job['id']}").json()
    assert (got["state"], got["submission_id"]) == ("running", f"{job['id']}-r2")


def test_concurrent_resumes_submit_one_run(client: TestClient, launcher: FakeLauncher) -> None:
    job = _submit(client, spec())
    launcher.vanish(job["id"])
    client.get(f"/jobs/{job['id']}")
    service = _state_of(client)
    failed = service.store.get(job["id"])  # what both resume requests read
    assert client.post(f"/jobs/{job['id']}/resume").status_code == 200
    jobs = JobService(
        store=service.store, launcher=launcher, reconciler=service.reconciler, rules=service.rules
    )
    with pytest.raises(JobChanged, match="resumed or cancelled by another request"):
        jobs.resume(failed)
    assert [s.submission_id for s in launcher.submitted] == [job["id"], f"{job['id']}-r2"]
    stored = service.store.get(job["id"])
    assert (stored.state, stored.attempts, stored.error) == (JobState.QUEUED, 2, None)


def test_manifest_is_404_until_written(client: TestClient) -> None:
    job = _submit(client, spec())
    answer = client.get(f"/jobs/{job['id']}/manifest")
    assert answer.status_code == 404
    assert "no manifest yet" in answer.json()["detail"]
    manifest = {"job_id": job["id"], "counts": {"pairs": 2}}
    (Path(job["output_uri"]) / "manifest.json").write_text(json.dumps(manifest))
    assert client.get(f"/jobs/{job['id']}/manifest").json() == manifest
    assert client.get(f"/jobs/{job['id']}").json()["manifest_ready"] is True


def test_list_pages_and_filters(client: TestClient, launcher: FakeLauncher) -> None:
    ids = [_submit(client, spec(f"j{i}"))["id"] for i in range(5)]
    launcher.set(ids[0], JobState.RUNNING)
    launcher.set(ids[1], JobState.RUNNING)
    page = client.get("/jobs", params={"limit": 2}).json()
    assert page["count"] == 5
    assert [j["id"] for j in page["data"]] == [ids[4], ids[3]]  # newest first
    last = client.get("/jobs", params={"offset": 4, "limit": 2}).json()
    assert [j["id"] for j in last["data"]] == [ids[0]]
    client.get("/jobs", params={"limit": 100})  # reads reconcile ids[0] and ids[1]
    running = client.get("/jobs", params={"state": "running"}).json()
    assert running["count"] == 2
    assert {j["id"] for j in running["data"]} == {ids[0], ids[1]}
    assert client.get("/jobs", params={"limit": 0}).status_code == 422
    bad_state = client.get("/jobs", params={"state": "exploded"})
    assert bad_state.status_code == 422
    assert bad_state.json()["problems"][0].startswith("query.state")


# ---------------------------------------------------------------- auth, health, metrics


def test_token_guards_every_endpoint_but_healthz(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(api_token="s3cret")
    assert client.get("/healthz").status_code == 200
    for method, path in [
        ("GET", "/jobs"),
        ("POST", "/jobs"),
        ("GET", "/jobs/pf-x"),
        ("DELETE", "/jobs/pf-x"),
        ("GET", "/jobs/pf-x/manifest"),
        ("POST", "/jobs/pf-x/resume"),
        ("GET", "/metrics"),
        ("GET", "/openapi.json"),
        ("GET", "/docs"),
    ]:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
            answer = client.request(method, path, headers=headers)
            assert answer.status_code == 401, (method, path, headers)
            assert answer.headers["www-authenticate"] == "Bearer"
    good = {"Authorization": "Bearer s3cret"}
    assert client.get("/jobs", headers=good).status_code == 200
    assert client.get("/metrics", headers=good).status_code == 200
    assert client.get("/openapi.json", headers=good).json()["info"]["title"] == "pairforge"
    assert "swagger" in client.get("/docs", headers=good).text.lower()
    assert client.post("/jobs", json=spec(), headers=good).status_code == 201


def test_metrics_counts_jobs_pairs_and_cells(client: TestClient, launcher: FakeLauncher) -> None:
    a = _submit(client, spec("a"))
    b = _submit(client, spec("b"))
    _submit(client, spec("c"))
    _progress(a["output_uri"], pairs=3, cells=40)
    _progress(b["output_uri"], pairs=2, cells=10)
    launcher.set(a["id"], JobState.SUCCEEDED)
    launcher.set(b["id"], JobState.RUNNING)
    text = client.get("/metrics").text
    assert 'pairforge_jobs{state="succeeded"} 1.0' in text
    assert 'pairforge_jobs{state="running"} 1.0' in text
    assert 'pairforge_jobs{state="queued"} 1.0' in text
    assert 'pairforge_jobs{state="failed"} 0.0' in text
    assert "pairforge_pairs_written_total 5.0" in text
    assert "pairforge_cells_executed_total 50.0" in text


def test_startup_reconciles_jobs_left_by_a_previous_process(
    workdir: Path, launcher: FakeLauncher
) -> None:
    db = f"sqlite:///{workdir / 'jobs.db'}"
    store = JobStore(db)
    for job_id in ("pf-gone", "pf-alive"):
        store.add(NewJob(id=job_id, name="", spec_json="{}", output_dir=str(workdir / job_id)))
        store.update(job_id, submission_id=job_id, attempts=1, state=JobState.RUNNING)
    store.close()
    launcher.set("pf-alive", JobState.SUCCEEDED)
    settings = Settings(database_url=db, output_root="runs", ray_address=None)
    with TestClient(create_app(settings, launcher=launcher, cwd=workdir)):
        pass  # startup alone must reconcile, before any read
    store = JobStore(db)
    gone, alive = store.get("pf-gone"), store.get("pf-alive")
    store.close()
    assert gone.state is JobState.FAILED and "no longer exists" in (gone.error or "")
    assert alive.state is JobState.SUCCEEDED


def test_openapi_documents_bodies_and_fields(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    schemas = doc["components"]["schemas"]
    body = doc["paths"]["/jobs"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/JobCreate"}
    for name in ("JobCreate", "SamplerConfig", "SandboxConfig", "JobPublic", "JobsPublic"):
        for field, prop in schemas[name]["properties"].items():
            # pydantic leaves the description on the referenced model when they coincide
            target = schemas.get(prop.get("$ref", "").rsplit("/", 1)[-1], {})
            described = prop.get("description") or target.get("description")
            assert described, f"{name}.{field} has no description"
    # The output location is optional in a request (it defaults under the output root).
    assert "output" not in schemas["JobCreate"].get("required", [])


def test_every_protected_route_documents_401(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(api_token="s3cret")
    doc = client.get("/openapi.json", headers={"Authorization": "Bearer s3cret"}).json()
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            documented = "401" in operation["responses"]
            assert documented == (path != "/healthz"), (method, path)


def test_reads_serve_the_store_while_ray_is_down(
    client: TestClient, launcher: FakeLauncher
) -> None:
    job = _submit(client, spec())
    launcher.set(job["id"], JobState.RUNNING)
    assert client.get(f"/jobs/{job['id']}").json()["state"] == "running"
    launcher.reachable = False
    got = client.get(f"/jobs/{job['id']}")
    assert got.status_code == 200
    assert got.json()["state"] == "running"
    assert client.get("/jobs").status_code == 200
    cancel = client.delete(f"/jobs/{job['id']}")
    assert cancel.status_code == 503
    assert "unreachable" in cancel.json()["detail"]


def test_blank_token_setting_is_refused() -> None:
    with pytest.raises(ValueError, match="blank"):
        Settings(api_token="   ")
    assert Settings(api_token="").api_token is None


def test_app_import_loads_no_ray() -> None:
    # The service starts without paying for Ray; the launcher imports it on first use.
    code = (
        "import sys, services.api.app, services.cli.serve, services.cli.client; "
        "print('ray' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
