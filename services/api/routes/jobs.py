"""The ``/jobs`` resource: submit, list, read, cancel and resume dataset builds.

Each route translates HTTP to one call of ``services.api.lifecycle.JobService`` and the job
it returns to ``JobPublic``; errors are domain errors, mapped to HTTP by the app.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import ValidationError

from pipeline.manifest import MANIFEST_FILE
from pipeline.ports import JobState
from pipeline.progress import BuildProgress
from services.api.deps import JobDep, JobsDep, require_token
from services.api.errors import UNAUTHORIZED
from services.api.lifecycle import JobService
from services.api.reconcile import read_manifest
from services.api.schemas import (
    ErrorBody,
    JobCounts,
    JobCreate,
    JobPublic,
    JobsPublic,
    StageProgress,
    TrainingPublic,
)
from services.store import StoredJob

logger = logging.getLogger(__name__)

_ERRORS: dict[int | str, dict[str, Any]] = {
    **UNAUTHORIZED,
    422: {"model": ErrorBody, "description": "Invalid request; `problems` lists each field."},
    503: {"model": ErrorBody, "description": "The Ray cluster cannot be reached."},
}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "No job with this id."}
}

router = APIRouter(prefix="/jobs", tags=["jobs"], dependencies=[Depends(require_token)])


def _progress(job: StoredJob) -> BuildProgress | None:
    if not job.progress_json:
        return None
    try:
        return BuildProgress.model_validate_json(job.progress_json)
    except ValidationError as exc:
        logger.warning("job %s: ignoring a stored progress report: %s", job.id, exc)
        return None


def _manifest_ready(output_dir: str) -> bool:
    try:
        return (Path(output_dir) / MANIFEST_FILE).is_file()
    except (OSError, ValueError):  # a name too long, a NUL byte: no manifest to be had
        return False


def _stages(progress: BuildProgress | None) -> list[StageProgress]:
    p = progress or BuildProgress(job_id="")
    done = {"sample": p.problems_sampled, "execute": p.problems_executed, "rank": p.problems_ranked}
    return [StageProgress(stage=s, done=n, total=p.problems_total) for s, n in done.items()]


def _training(job: StoredJob, jobs: JobService) -> TrainingPublic | None:
    if job.training_state is None:
        return None
    submission = job.training_id or None
    return TrainingPublic(
        id=submission,
        state=job.training_state,
        dashboard_url=jobs.launcher.dashboard_url(submission) if submission else None,
        error=job.training_error,
    )


def to_public(job: StoredJob, jobs: JobService) -> JobPublic:
    """The job as the API shows it; never fails on what a stored record holds."""
    progress = _progress(job)
    return JobPublic(
        id=job.id,
        name=job.name,
        state=job.state,
        error=job.error,
        output_uri=job.output_dir,
        submission_id=job.submission_id,
        attempts=job.attempts,
        dashboard_url=jobs.launcher.dashboard_url(job.submission_id) if job.submission_id else None,
        manifest_ready=_manifest_ready(job.output_dir),
        stages=_stages(progress),
        counts=JobCounts.of(progress) if progress is not None else None,
        progress=progress,
        created_at=job.created_at,
        updated_at=job.updated_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        training=_training(job, jobs),
    )


@router.post(
    "",
    status_code=201,
    responses={
        **_ERRORS,
        409: {"model": ErrorBody, "description": "Another job owns this output directory."},
        413: {"model": ErrorBody, "description": "The body is larger than the service allows."},
        422: {
            "model": ErrorBody,
            "description": "Invalid JobSpec, location, limit or input file; `problems` lists "
            "each field or bad input line.",
        },
        503: {
            "model": ErrorBody,
            "description": "The Ray cluster cannot be reached, or the service is busy "
            "validating other inputs (retry).",
        },
    },
)
def create_job(body: JobCreate, jobs: JobsDep) -> JobPublic:
    """Submit a dataset build; it runs as a Ray Job named after the job id.

    The body is a JobSpec (``output`` may be omitted); ``{"spec": JobSpec, "name": ...}`` is
    accepted too.
    """
    return to_public(jobs.submit(body), jobs)


@router.get("", responses=_ERRORS)
def list_jobs(
    jobs: JobsDep,
    offset: Annotated[int, Query(ge=0, le=10**9, description="Jobs to skip.")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000, description="Jobs per page.")] = 100,
    state: Annotated[JobState | None, Query(description="Only jobs in this state.")] = None,
) -> JobsPublic:
    """List jobs, newest first."""
    page, count = jobs.page(offset=offset, limit=limit, state=state)
    return JobsPublic(data=[to_public(job, jobs) for job in page], count=count)


@router.get("/{job_id}", responses={**_ERRORS, **_NOT_FOUND})
def read_job(job: JobDep, jobs: JobsDep) -> JobPublic:
    """A job's state, progress by stage, counts, error, Ray dashboard link and training job."""
    return to_public(jobs.refresh(job), jobs)


@router.delete("/{job_id}", responses={**_ERRORS, **_NOT_FOUND})
def cancel_job(job: JobDep, jobs: JobsDep) -> JobPublic:
    """Cancel a job: stop its Ray Job. Cancelling a finished job changes nothing."""
    return to_public(jobs.cancel(job), jobs)


@router.get(
    "/{job_id}/manifest",
    responses={
        **UNAUTHORIZED,
        404: {"model": ErrorBody, "description": "No such job, or no manifest yet."},
    },
)
def read_manifest_of(job: JobDep) -> dict[str, Any]:
    """The dataset's ``manifest.json``, once the build has written it (404 until then)."""
    manifest = read_manifest(job.output_dir)
    if manifest is None:
        raise HTTPException(
            status_code=404,
            detail=f"job {job.id} has no manifest yet (state {job.state.value}); it is "
            "written last, when the dataset is complete",
        )
    return manifest


@router.post(
    "/{job_id}/resume",
    responses={
        **_ERRORS,
        **_NOT_FOUND,
        409: {
            "model": ErrorBody,
            "description": "The job is not failed or cancelled, still runs, or its record is "
            "damaged.",
        },
        422: {
            "model": ErrorBody,
            "description": "Its output or input is no longer allowed (a symlink appeared, the "
            "roots or limits changed).",
        },
    },
)
def resume_job(job: JobDep, jobs: JobsDep) -> JobPublic:
    """Run a failed or cancelled job again; units whose shards exist are skipped."""
    return to_public(jobs.resume(job), jobs)
