"""The job store on a real SQLite file: output-directory overlap, DB failures, update times."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from pipeline.errors import OutputInUse, StorageError
from pipeline.ports import JobState
from services.store import JobStore, NewJob


@pytest.fixture
def store(tmp_path: Path) -> Iterator[JobStore]:
    opened = JobStore(f"sqlite:///{tmp_path / 'jobs.db'}")
    yield opened
    opened.close()


def _job(job_id: str, output_dir: str) -> NewJob:
    return NewJob(id=job_id, name=job_id, spec_json="{}", output_dir=output_dir)


@pytest.mark.parametrize(
    "new_dir",
    ["/srv/runs/a", "/srv/runs/a/shards", "/srv/runs/a/x/y", "/srv/runs", "/srv"],
)
def test_overlapping_output_is_refused_naming_the_other_job(store: JobStore, new_dir: str) -> None:
    store.add(_job("pf-a", "/srv/runs/a"))
    with pytest.raises(OutputInUse) as refused:
        store.add(_job("pf-b", new_dir))
    assert refused.value.job_id == "pf-a"
    assert "pf-a" in str(refused.value) and "/srv/runs/a" in str(refused.value)
    with pytest.raises(KeyError):
        store.get("pf-b")


@pytest.mark.parametrize("new_dir", ["/srv/runs/ab", "/srv/runs/a-b", "/srv/runs/b", "/srv/run"])
def test_sibling_with_a_common_string_prefix_is_accepted(store: JobStore, new_dir: str) -> None:
    store.add(_job("pf-a", "/srv/runs/a"))
    assert store.add(_job("pf-b", new_dir)).output_dir == new_dir


def test_like_wildcards_in_a_directory_match_only_themselves(store: JobStore) -> None:
    store.add(_job("pf-a", "/srv/runs/a_b/x"))
    # `_` is a LIKE wildcard: a prefix match written with LIKE would see `a_b` in `axb`.
    assert store.add(_job("pf-b", "/srv/runs/axb")).state is JobState.QUEUED
    with pytest.raises(OutputInUse):
        store.add(_job("pf-c", "/srv/runs/a_b"))


def test_overlap_is_refused_whatever_the_other_jobs_state(store: JobStore) -> None:
    store.add(_job("pf-a", "/srv/runs/a"))
    store.update("pf-a", state=JobState.CANCELLED)
    with pytest.raises(OutputInUse):
        store.add(_job("pf-b", "/srv/runs/a/inner"))


def test_database_failure_while_looking_for_the_owner_is_a_storage_error(
    store: JobStore,
) -> None:
    store.add(_job("pf-a", "/srv/runs/a"))

    def fail_reads(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            raise sqlite3.OperationalError("disk I/O error")

    event.listen(store._engine, "before_cursor_execute", fail_reads)
    with pytest.raises(StorageError, match="disk I/O error"):
        store.add(_job("pf-b", "/srv/runs/a"))


def test_update_without_a_change_keeps_updated_at(store: JobStore) -> None:
    added = store.add(_job("pf-a", "/srv/runs/a"))
    same = store.update("pf-a", state=JobState.QUEUED, error=None, progress_json=None)
    assert same.updated_at == added.updated_at
    changed = store.update("pf-a", progress_json='{"job_id": "pf-a"}')
    assert changed.updated_at > added.updated_at
    again = store.update("pf-a", read=changed, progress_json='{"job_id": "pf-a"}')
    assert again.updated_at == changed.updated_at
