"""Fixtures for the job API: a real SQLite file in tmp_path, a fake launcher, a TestClient."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from services.api.app import create_app
from services.api.deps import get_launcher
from services.api.settings import Settings
from tests.unit.services.fake_launcher import FakeLauncher

PROBLEMS = [{"problem_id": f"p{i}", "prompt": f"def f{i}():\n"} for i in range(3)]


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """The service's working directory: a 3-problem source and an output root `runs/`."""
    (tmp_path / "problems.jsonl").write_text(
        "".join(json.dumps(p) + "\n" for p in PROBLEMS) + "\n", encoding="utf-8"
    )
    (tmp_path / "runs").mkdir()
    return tmp_path


def spec(output: str | None = "runs/a", **sections: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "source": {"path": "problems.jsonl"},
        "sampler": {"kind": "replay", "k": 10},
    }
    if output is not None:
        body["output"] = {"uri": output}
    body.update(sections)
    return body


@pytest.fixture
def launcher() -> FakeLauncher:
    return FakeLauncher()


@pytest.fixture
def make_client(workdir: Path, launcher: FakeLauncher) -> Iterator[Callable[..., TestClient]]:
    clients: list[TestClient] = []

    def make(**overrides: Any) -> TestClient:
        values: dict[str, Any] = {
            "database_url": f"sqlite:///{workdir / 'jobs.db'}",
            "output_root": "runs",
            "ray_address": None,
            "api_token": None,
            "reconcile_interval_s": 0,
        }
        settings = Settings(**{**values, **overrides})
        app: FastAPI = create_app(settings, cwd=workdir)
        app.dependency_overrides[get_launcher] = lambda: launcher
        client = TestClient(app)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client()
