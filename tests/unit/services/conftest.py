"""Fixtures for the job API: a real SQLite file in tmp_path, a fake launcher, a TestClient."""

from __future__ import annotations

import json
import sqlite3
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


def replay_row(problem_id: str) -> dict[str, Any]:
    """A valid replay row (one recorded code and one test completion)."""
    return {
        "problem_id": problem_id,
        "prompt": f"def {problem_id}():\n",
        "code_completions": ["    return 1\n"],
        "test_completions": [f"assert {problem_id}() == 1"],
    }


PROBLEMS = [replay_row(f"p{i}") for i in range(3)]


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """The service's working directory: a 3-problem source and an output root `runs/`."""
    (tmp_path / "problems.jsonl").write_text(
        "".join(json.dumps(p) + "\n" for p in PROBLEMS) + "\n", encoding="utf-8"
    )
    (tmp_path / "runs").mkdir()
    return tmp_path


def spec(output: str | None = "a", **sections: Any) -> dict[str, Any]:
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


_COLUMNS = (
    "id, name, state, spec_json, output_dir, submission_id, attempts, error, progress_json, "
    "created_at, updated_at, started_at, finished_at"
)


def insert_damaged_records(db: Path, workdir: Path) -> None:
    """Write rows straight into the job table, as an older version or a hand edit left them:
    ``pf-toolong`` (an output path too long to look at), ``pf-garbage`` (nonsense in every
    column) and ``pf-progress`` (a progress report that is not one)."""
    now = "2026-01-02 03:04:05.000000"
    rows = [
        # What the old service stored for an over-long output.uri: every field valid, but
        # the directory cannot even be looked at (ENAMETOOLONG).
        (
            "pf-toolong", "", "failed", "{}", "/" + "a" * 5000, "pf-toolong", 1,
            "could not write", None, now, now, None, now,
        ),
        # Garbage in every column SQLite lets through.
        (
            "pf-garbage", 123, "exploded", "not json", "relative\x00dir", 7, "many",
            None, "{broken", "yesterday", "", "later", 42,
        ),
        # A valid row whose progress snapshot is not a BuildProgress.
        (
            "pf-progress", "p", "running", "{}", str(workdir / "runs" / "p"), "pf-progress", 1,
            None, '{"job_id": 5, "cells": -3}', now, now, now, None,
        ),
    ]  # fmt: skip
    with sqlite3.connect(db) as connection:
        connection.executemany(
            f"INSERT INTO pairforge_jobs ({_COLUMNS}) VALUES ({', '.join('?' * 13)})", rows
        )
