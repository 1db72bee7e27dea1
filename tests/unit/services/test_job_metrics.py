"""Each build's progress on ``/metrics``: per-job gauges read from its ``progress.json``.

The job runs on a fake launcher; the test writes the ``progress.json`` a build would, and
reads the scrape back with Prometheus' own text parser.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from pipeline.ports import JobState
from pipeline.progress import BuildProgress
from tests.conftest import REPO_ROOT
from tests.unit.services.conftest import spec
from tests.unit.services.fake_launcher import FakeLauncher

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _scrape(client: TestClient) -> Samples:
    answer = client.get("/metrics")
    assert answer.status_code == 200, answer.text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def _job(samples: Samples, job_id: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """The samples of one job, keyed by name and their labels other than job_id and name."""
    found = {}
    for (name, labels), value in samples.items():
        as_dict = dict(labels)
        if as_dict.pop("job_id", None) == job_id:
            as_dict.pop("name")
            found[(name, frozenset(as_dict.items()))] = value
    return found


def _key(name: str, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return name, frozenset(labels.items())


def _write_progress(output_dir: str, progress: BuildProgress) -> None:
    (Path(output_dir) / "progress.json").write_text(progress.model_dump_json(), encoding="utf-8")


def _submit(client: TestClient, name: str, output: str) -> dict[str, Any]:
    answer = client.post("/jobs", json={"spec": spec(output), "name": name})
    assert answer.status_code == 201, answer.text
    job: dict[str, Any] = answer.json()
    return job


def test_a_running_jobs_progress_is_exported_with_its_values(
    client: TestClient, launcher: FakeLauncher
) -> None:
    job = _submit(client, "nightly", "a")
    launcher.set(job["id"], JobState.RUNNING)
    _write_progress(
        job["output_uri"],
        BuildProgress(
            job_id=job["id"],
            units_total=4,
            units_done=1,
            problems_total=30,
            problems_sampled=17,
            problems_executed=12,
            problems_ranked=8,
            candidates=311,
            cells=4321,
            pairs=6,
            skips={"no_passing_code": 1, "all_pass": 2},
            cells_per_s=123.5,
        ),
    )
    mine = _job(_scrape(client), job["id"])
    assert mine == {
        _key("pairforge_job_state", state="running"): 1.0,
        _key("pairforge_job_problems", stage="sampled"): 17.0,
        _key("pairforge_job_problems", stage="executed"): 12.0,
        _key("pairforge_job_problems", stage="ranked"): 8.0,
        _key("pairforge_job_input_problems"): 30.0,
        _key("pairforge_job_units_done"): 1.0,
        _key("pairforge_job_units"): 4.0,
        _key("pairforge_job_candidates"): 311.0,
        _key("pairforge_job_cells_executed"): 4321.0,
        _key("pairforge_job_cells_per_second"): 123.5,
        _key("pairforge_job_pairs_written"): 6.0,
        _key("pairforge_job_skipped_problems", reason="no_passing_code"): 1.0,
        _key("pairforge_job_skipped_problems", reason="all_pass"): 2.0,
    }


def test_the_name_label_and_progress_follow_the_build(
    client: TestClient, launcher: FakeLauncher
) -> None:
    job = _submit(client, "weekly", "b")
    samples = _scrape(client)
    # Queued, nothing reported yet: only its state.
    assert _job(samples, job["id"]) == {_key("pairforge_job_state", state="queued"): 1.0}
    assert ("pairforge_job_state", frozenset(
        {("job_id", job["id"]), ("name", "weekly"), ("state", "queued")}
    )) in samples  # fmt: skip

    launcher.set(job["id"], JobState.RUNNING)
    progress = BuildProgress(job_id=job["id"], problems_total=3, units_total=1)
    _write_progress(job["output_uri"], progress)
    assert _job(_scrape(client), job["id"])[_key("pairforge_job_problems", stage="ranked")] == 0

    _write_progress(
        job["output_uri"],
        progress.model_copy(
            update={"state": "succeeded", "problems_ranked": 3, "units_done": 1, "pairs": 2}
        ),
    )
    launcher.set(job["id"], JobState.SUCCEEDED)
    mine = _job(_scrape(client), job["id"])
    assert mine[_key("pairforge_job_state", state="succeeded")] == 1
    assert mine[_key("pairforge_job_problems", stage="ranked")] == 3
    assert mine[_key("pairforge_job_pairs_written")] == 2
    assert _key("pairforge_job_state", state="running") not in mine


def test_finished_jobs_leave_after_the_window(
    make_client: Callable[..., TestClient], launcher: FakeLauncher
) -> None:
    client = make_client(metrics_keep_finished_s=0)
    done = _submit(client, "old", "c")
    live = _submit(client, "live", "d")
    launcher.set(done["id"], JobState.SUCCEEDED)
    launcher.set(live["id"], JobState.RUNNING)
    samples = _scrape(client)
    assert _job(samples, done["id"]) == {}
    assert _job(samples, live["id"]) == {_key("pairforge_job_state", state="running"): 1.0}
    # The totals still count every job.
    assert samples[_key("pairforge_jobs", state="succeeded")] == 1


def test_a_damaged_progress_report_drops_only_that_jobs_progress(
    client: TestClient, launcher: FakeLauncher
) -> None:
    good = _submit(client, "good", "e")
    bad = _submit(client, "bad", "f")
    for job in (good, bad):
        launcher.set(job["id"], JobState.RUNNING)
    _write_progress(good["output_uri"], BuildProgress(job_id=good["id"], pairs=4))
    # Valid JSON the reconciler stores, but not a BuildProgress any more once read back
    # (what an older version could have left): written straight into the store.
    client.get(f"/jobs/{bad['id']}")
    state = client.app.state.pairforge  # type: ignore[attr-defined]
    state.store.update(bad["id"], progress_json=json.dumps({"job_id": 5, "cells": -3}))
    samples = _scrape(client)
    assert _job(samples, good["id"])[_key("pairforge_job_pairs_written")] == 4
    assert _job(samples, bad["id"]) == {_key("pairforge_job_state", state="running"): 1.0}


def test_every_metric_is_documented_in_the_readme(
    client: TestClient, launcher: FakeLauncher
) -> None:
    job = _submit(client, "doc", "g")
    launcher.set(job["id"], JobState.RUNNING)
    _write_progress(job["output_uri"], BuildProgress(job_id=job["id"], skips={"all_pass": 1}))
    names = {name for name, _labels in _scrape(client)}
    assert {"pairforge_job_problems", "pairforge_jobs", "pairforge_pairs_written_total"} <= names
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `(pairforge_[a-z_]+)", readme, re.MULTILINE))
    assert names <= documented, sorted(names - documented)
