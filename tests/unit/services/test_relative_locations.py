"""Relative paths in a submitted spec mean the same wherever the service was started.

A relative ``output.uri`` is under the output root and a relative ``source.path`` under
the first input root; the service's working directory plays no part (issue 10).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from services.api.app import create_app
from services.api.deps import get_launcher
from services.api.settings import Settings
from tests.unit.services.conftest import PROBLEMS, spec
from tests.unit.services.fake_launcher import FakeLauncher


@pytest.fixture
def places(tmp_path: Path) -> dict[str, Path]:
    """An output root and two input roots, none of them the service's working directory."""
    found = {name: tmp_path / name for name in ("cwd", "out", "data", "shared")}
    for directory in found.values():
        directory.mkdir()
    rows = "".join(json.dumps(p) + "\n" for p in PROBLEMS)
    (found["data"] / "mine.jsonl").write_text(rows, encoding="utf-8")
    (found["shared"] / "theirs.jsonl").write_text(rows, encoding="utf-8")
    # A file by the same name in the working directory must not be what a relative path finds.
    (found["cwd"] / "problems.jsonl").write_text(rows, encoding="utf-8")
    return found


@pytest.fixture
def client(places: dict[str, Path]) -> Iterator[TestClient]:
    settings = Settings(
        database_url=f"sqlite:///{places['cwd'] / 'jobs.db'}",
        output_root=str(places["out"]),
        input_roots=[str(places["data"]), str(places["shared"])],
        ray_address=None,
        reconcile_interval_s=0,
    )
    app = create_app(settings, cwd=places["cwd"])
    app.dependency_overrides[get_launcher] = FakeLauncher
    with TestClient(app) as test_client:
        yield test_client


def _body(source: str, output: str) -> dict[str, object]:
    body = spec(output)
    body["source"] = {"path": source}
    return body


def test_relative_output_lands_under_the_output_root(
    client: TestClient, places: dict[str, Path]
) -> None:
    answer = client.post("/jobs", json=_body("mine.jsonl", "quickstart"))
    assert answer.status_code == 201, answer.text
    assert answer.json()["output_uri"] == str(places["out"] / "quickstart")
    nested = client.post("/jobs", json=_body("mine.jsonl", "runs/nightly"))
    assert nested.status_code == 201, nested.text
    assert nested.json()["output_uri"] == str(places["out"] / "runs" / "nightly")
    assert not (places["cwd"] / "quickstart").exists()


def test_relative_source_is_read_under_the_first_input_root(
    client: TestClient, places: dict[str, Path]
) -> None:
    answer = client.post("/jobs", json=_body("mine.jsonl", "a"))
    assert answer.status_code == 201, answer.text
    written = json.loads((places["out"] / "a" / "job.json").read_text(encoding="utf-8"))
    assert written["source"]["path"] == str(places["data"] / "mine.jsonl")


def test_other_roots_are_reached_by_absolute_paths(
    client: TestClient, places: dict[str, Path]
) -> None:
    relative = client.post("/jobs", json=_body("theirs.jsonl", "b"))
    assert relative.status_code == 422
    assert str(places["data"] / "theirs.jsonl") in relative.json()["detail"]
    absolute = client.post("/jobs", json=_body(str(places["shared"] / "theirs.jsonl"), "c"))
    assert absolute.status_code == 201, absolute.text


def test_the_working_directory_is_not_searched(client: TestClient, places: dict[str, Path]) -> None:
    answer = client.post("/jobs", json=_body("problems.jsonl", "d"))
    assert answer.status_code == 422
    detail = answer.json()["detail"]
    assert "first input root" in detail and str(places["data"]) in detail
    # Absolute paths keep their confinement: the working directory is no input root.
    outside = client.post("/jobs", json=_body(str(places["cwd"] / "problems.jsonl"), "e"))
    assert outside.status_code == 422
    assert "input roots" in outside.json()["detail"]
