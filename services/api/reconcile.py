"""Bring stored job states in line with Ray and with what each build reports.

Runs at startup (every unfinished job) and on reads (the jobs being read, at most once per
``interval_s`` each). Ray decides the state (PENDING→queued, RUNNING→running,
SUCCEEDED→succeeded, FAILED→failed, STOPPED→cancelled); the build's ``progress.json``
gives the counts and, on failure, the reason. A submission Ray no longer knows is marked
failed with a reason and can be resumed. Final states are stored and never refreshed.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cluster.shard_store import ShardStore
from pipeline.errors import InfrastructureError, JobChanged, StorageError
from pipeline.manifest import MANIFEST_FILE
from pipeline.ports import JobLauncher, JobState
from pipeline.progress import PROGRESS_FILE, BuildProgress
from services.store import JobStore, StoredJob, utcnow

logger = logging.getLogger(__name__)


def read_progress(output_dir: str | Path) -> BuildProgress | None:
    """The build's latest ``progress.json``, or None if absent or unreadable."""
    try:
        text = ShardStore(str(output_dir)).read_text(PROGRESS_FILE)
        return None if text is None else BuildProgress.model_validate_json(text)
    except (StorageError, ValueError) as exc:  # ValidationError is a ValueError
        # The build replaces the file atomically, so this is a real problem, not a race.
        logger.warning("ignoring unreadable %s in %s: %s", PROGRESS_FILE, output_dir, exc)
        return None


def read_manifest(output_dir: str | Path) -> dict[str, Any] | None:
    """``manifest.json`` as written, or None until the build has written it."""
    try:
        loaded = ShardStore(str(output_dir)).read_json(MANIFEST_FILE)
    except (StorageError, ValueError) as exc:
        logger.warning("ignoring unreadable %s in %s: %s", MANIFEST_FILE, output_dir, exc)
        return None
    return loaded if isinstance(loaded, dict) else None


def _from_unix(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if value is not None else None


def vanished_reason(job: StoredJob) -> str:
    return (
        f"Ray Job {job.submission_id} no longer exists on the cluster (the Ray head was "
        f"restarted or the job was deleted); resume it with POST /jobs/{job.id}/resume"
    )


class Reconciler:
    """Refreshes unfinished jobs from the launcher and the build's progress file."""

    def __init__(self, store: JobStore, *, interval_s: float) -> None:
        self._store = store
        self._interval_s = interval_s
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def _due(self, job_id: str, force: bool) -> bool:
        now = time.monotonic()
        with self._lock:
            if not force and now - self._last.get(job_id, float("-inf")) < self._interval_s:
                return False
            self._last[job_id] = now
            return True

    def refresh(self, job: StoredJob, launcher: JobLauncher, *, force: bool = False) -> StoredJob:
        """The job with its state and progress brought up to date (stored as well)."""
        if job.state.final or not job.submission_id or not self._due(job.id, force):
            return job
        progress = read_progress(job.output_dir)
        changes: dict[str, Any] = {}
        if progress is not None:
            changes["progress_json"] = progress.model_dump_json()
        try:
            remote = launcher.status(job.submission_id)
        except InfrastructureError as exc:
            # Keep serving what we know; the next read tries again.
            logger.warning("cannot reach Ray to refresh job %s: %s", job.id, exc)
            return self._store.update(job.id, **changes) if changes else job
        if remote is None:
            state, error = JobState.FAILED, vanished_reason(job)
        else:
            state, error = remote.state, None
            if state is JobState.FAILED:
                error = (progress.error if progress else None) or remote.message or "failed"
        changes["state"] = state
        if error is not None:
            changes["error"] = error
        if state is not JobState.QUEUED and job.started_at is None:
            changes["started_at"] = (progress and _from_unix(progress.started_at)) or utcnow()
        if state.final:
            changes["finished_at"] = (progress and _from_unix(progress.finished_at)) or utcnow()
            with self._lock:
                self._last.pop(job.id, None)
        try:
            updated = self._store.update(job.id, read=job, **changes)
        except JobChanged:
            # Cancelled or resumed while Ray was asked: what Ray said is about the old read.
            return self._store.get(job.id)
        if state is not job.state:
            logger.info("job %s: %s -> %s", job.id, job.state.value, state.value)
        return updated

    def refresh_unfinished(self, launcher: JobLauncher, *, force: bool = True) -> int:
        """Refresh every queued or running job; returns how many were looked at."""
        jobs = self._store.unfinished()
        for job in jobs:
            self.refresh(job, launcher, force=force)
        return len(jobs)

    def forget(self, job_id: str) -> None:
        """Drop the refresh timer of a job (after a resume, so the next read refreshes)."""
        with self._lock:
            self._last.pop(job_id, None)
