"""One damaged job record never breaks listing, reading or metrics (issue 9, finding 3).

The rows are written straight into the SQLite file, as an older version (which stored an
``output.uri`` longer than the file system allows) or a hand edit would leave them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.unit.services.conftest import insert_damaged_records, spec
from tests.unit.services.fake_launcher import FakeLauncher


@pytest.fixture
def damaged(make_client: Callable[..., TestClient], workdir: Path) -> TestClient:
    client = make_client()  # creates the table
    good = client.post("/jobs", json=spec("good"))
    assert good.status_code == 201
    insert_damaged_records(workdir / "jobs.db", workdir)
    return client


def test_listing_survives_damaged_records(damaged: TestClient) -> None:
    answer = damaged.get("/jobs")
    assert answer.status_code == 200, answer.text
    page = answer.json()
    assert page["count"] == 4
    shown = {job["id"]: job for job in page["data"]}
    assert {"pf-toolong", "pf-garbage", "pf-progress"} <= set(shown)
    assert shown["pf-toolong"]["manifest_ready"] is False
    garbage = shown["pf-garbage"]
    assert garbage["state"] == "failed"
    assert "damaged" in garbage["error"]
    assert shown["pf-progress"]["progress"] is None


@pytest.mark.parametrize("job_id", ["pf-toolong", "pf-garbage", "pf-progress"])
def test_each_damaged_record_reads_and_cancels(damaged: TestClient, job_id: str) -> None:
    answer = damaged.get(f"/jobs/{job_id}")
    assert answer.status_code == 200, answer.text
    assert damaged.get(f"/jobs/{job_id}/manifest").status_code == 404
    assert damaged.delete(f"/jobs/{job_id}").status_code < 500


def test_a_damaged_record_is_not_resumed(damaged: TestClient, launcher: FakeLauncher) -> None:
    answer = damaged.post("/jobs/pf-garbage/resume")
    assert answer.status_code == 409
    assert "damaged" in answer.json()["detail"]
    assert all(s.job_id != "pf-garbage" for s in launcher.submitted)


def test_metrics_survive_damaged_records(damaged: TestClient) -> None:
    answer = damaged.get("/metrics")
    assert answer.status_code == 200, answer.text
    assert 'pairforge_jobs{state="failed"}' in answer.text
