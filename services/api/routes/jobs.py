"""The ``/jobs`` resource: submit, list, read, cancel and resume dataset builds.

A job's spec is written to ``<output dir>/job.json`` and run as a Ray Job
(``pairforge build <output dir>/job.json --job-id ID --resume``); reads reconcile the stored
state with Ray and the build's ``progress.json``.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query

from pipeline.errors import InfrastructureError, JobChanged, StorageError
from pipeline.manifest import MANIFEST_FILE
from pipeline.ports import JobLauncher, JobState
from pipeline.progress import BuildProgress
from services.api.deps import LauncherDep, StateDep, StoreDep, json_body, require_token
from services.api.reconcile import Reconciler, read_manifest
from services.api.schemas import ErrorBody, JobCounts, JobPublic, JobsPublic, StageProgress
from services.api.submission import parse_submission
from services.store import JobStore, NewJob, StoredJob, utcnow

SPEC_FILE = "job.json"
"""Name of the JobSpec the service writes into each job's output directory."""

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "Missing or wrong bearer token."},
    422: {"model": ErrorBody, "description": "Invalid request; `problems` lists each field."},
    503: {"model": ErrorBody, "description": "The Ray cluster cannot be reached."},
}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "No job with this id."}
}

router = APIRouter(prefix="/jobs", tags=["jobs"], dependencies=[Depends(require_token)])


def new_job_id() -> str:
    return f"pf-{uuid.uuid4().hex[:12]}"


def _write_spec(output_dir: Path, spec_json: str) -> Path:
    path = output_dir / SPEC_FILE
    partial = output_dir / f".{SPEC_FILE}.partial"
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        partial.write_text(spec_json, encoding="utf-8")
        partial.replace(path)
    except OSError as exc:
        raise StorageError(f"cannot write the job spec to {path}: {exc}") from exc
    return path


def _stages(progress: BuildProgress | None) -> list[StageProgress]:
    p = progress or BuildProgress(job_id="")
    done = {"sample": p.problems_sampled, "execute": p.problems_executed, "rank": p.problems_ranked}
    return [StageProgress(stage=s, done=n, total=p.problems_total) for s, n in done.items()]


def to_public(job: StoredJob, launcher: JobLauncher) -> JobPublic:
    progress = BuildProgress.model_validate_json(job.progress_json) if job.progress_json else None
    counts = None
    if progress is not None:
        counts = JobCounts(
            problems=progress.problems_total,
            candidates=progress.candidates,
            cells=progress.cells,
            pairs=progress.pairs,
            skips=progress.skips,
            units_done=progress.units_done,
            units_total=progress.units_total,
        )
    return JobPublic(
        id=job.id,
        name=job.name,
        state=job.state,
        error=job.error,
        output_uri=job.output_dir,
        submission_id=job.submission_id,
        attempts=job.attempts,
        dashboard_url=launcher.dashboard_url(job.submission_id) if job.submission_id else None,
        manifest_ready=(Path(job.output_dir) / MANIFEST_FILE).is_file(),
        stages=_stages(progress),
        counts=counts,
        progress=progress,
        created_at=job.created_at,
        updated_at=job.updated_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
    )


def _launch(job: StoredJob, store: JobStore, launcher: JobLauncher) -> StoredJob:
    """Submit the next run of ``job`` (its first, or a resume) as a fresh Ray Job."""
    attempt = job.attempts + 1
    submission_id = job.id if attempt == 1 else f"{job.id}-r{attempt}"
    # Stored before submitting: if the service dies in between, reconciliation finds a
    # submission Ray does not know and marks the job failed (and resumable). Conditional on
    # ``job`` being current, so two concurrent resumes cannot both submit this run.
    try:
        job = store.update(
            job.id,
            read=job,
            state=JobState.QUEUED,
            submission_id=submission_id,
            attempts=attempt,
            error=None,
            finished_at=None,
        )
    except JobChanged as exc:
        raise HTTPException(
            status_code=409, detail=f"{exc}; it was resumed or cancelled by another request"
        ) from exc
    try:
        launcher.submit(
            submission_id=submission_id,
            job_id=job.id,
            spec_path=str(Path(job.output_dir) / SPEC_FILE),
            name=job.name,
        )
    except InfrastructureError as exc:
        reason = f"could not submit to Ray: {exc}"
        store.update(job.id, state=JobState.FAILED, error=reason, finished_at=utcnow())
        raise InfrastructureError(
            f"job {job.id} is stored but {reason}; resume it with POST /jobs/{job.id}/resume "
            "once the cluster is reachable"
        ) from exc
    return job


def _get(store: JobStore, job_id: str) -> StoredJob:
    try:
        return store.get(job_id)
    except KeyError:
        raise HTTPException(status_code=404, detail=f"no job with id {job_id!r}") from None


async def _reconciler(state: StateDep) -> Reconciler:
    return state.reconciler


ReconcilerDep = Annotated[Reconciler, Depends(_reconciler)]

_BODY_SCHEMA = {
    "anyOf": [
        {"$ref": "#/components/schemas/JobCreate"},
        {"$ref": "#/components/schemas/JobSpec"},
    ]
}


@router.post(
    "",
    status_code=201,
    responses={
        **_ERRORS,
        409: {"model": ErrorBody, "description": "Another job owns this output directory."},
        413: {"model": ErrorBody, "description": "The body is larger than the service allows."},
        422: {"model": ErrorBody, "description": "Invalid JobSpec, location or limit."},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": 'A JobSpec, or `{"spec": JobSpec, "name": ...}`.',
            "content": {"application/json": {"schema": _BODY_SCHEMA}},
        }
    },
)
def create_job(
    payload: Annotated[Any, Depends(json_body)],
    state: StateDep,
    store: StoreDep,
    launcher: LauncherDep,
) -> JobPublic:
    """Submit a dataset build; it runs as a Ray Job named after the job id."""
    job_id = new_job_id()
    submission = parse_submission(
        payload,
        job_id=job_id,
        root=state.output_root,
        cwd=state.cwd,
        max_samples=state.settings.max_samples_per_job,
    )
    spec_json = submission.spec.model_dump_json(indent=2)
    job = store.add(
        NewJob(
            id=job_id,
            name=submission.name,
            spec_json=spec_json,
            output_dir=str(submission.output_dir),
        )
    )
    try:
        _write_spec(submission.output_dir, spec_json)
    except StorageError as exc:
        store.update(job.id, state=JobState.FAILED, error=str(exc), finished_at=utcnow())
        raise
    return to_public(_launch(job, store, launcher), launcher)


@router.get("", responses=_ERRORS)
def list_jobs(
    store: StoreDep,
    launcher: LauncherDep,
    reconciler: ReconcilerDep,
    offset: Annotated[int, Query(ge=0, le=10**9, description="Jobs to skip.")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000, description="Jobs per page.")] = 100,
    state: Annotated[JobState | None, Query(description="Only jobs in this state.")] = None,
) -> JobsPublic:
    """List jobs, newest first."""
    jobs, count = store.page(offset=offset, limit=limit, state=state)
    jobs = [reconciler.refresh(job, launcher) for job in jobs]
    return JobsPublic(data=[to_public(job, launcher) for job in jobs], count=count)


@router.get("/{job_id}", responses={**_ERRORS, **_NOT_FOUND})
def read_job(
    job_id: str, store: StoreDep, launcher: LauncherDep, reconciler: ReconcilerDep
) -> JobPublic:
    """A job's state, progress by stage, counts, error and Ray dashboard link."""
    job = reconciler.refresh(_get(store, job_id), launcher)
    return to_public(job, launcher)


@router.delete("/{job_id}", responses={**_ERRORS, **_NOT_FOUND})
def cancel_job(
    job_id: str, store: StoreDep, launcher: LauncherDep, reconciler: ReconcilerDep
) -> JobPublic:
    """Cancel a job: stop its Ray Job. Cancelling a finished job changes nothing."""
    job = _get(store, job_id)
    if not job.state.final:
        stopped = launcher.stop(job.submission_id) if job.submission_id else False
        if not stopped:
            # Ray had nothing running: it may have just finished, so learn how.
            job = reconciler.refresh(job, launcher, force=True)
        job = _mark_cancelled(store, job)
    return to_public(job, launcher)


def _mark_cancelled(store: JobStore, job: StoredJob) -> StoredJob:
    """Store ``job``'s run as cancelled, unless it ended or was resumed meanwhile."""
    submission_id = job.submission_id
    while not job.state.final and job.submission_id == submission_id:
        try:
            return store.update(
                job.id, read=job, state=JobState.CANCELLED, error=None, finished_at=utcnow()
            )
        except JobChanged:
            # A read moved it on (queued -> running) or ended it; decide on what is stored.
            job = store.get(job.id)
    return job


@router.get(
    "/{job_id}/manifest",
    responses={
        **_ERRORS,
        404: {"model": ErrorBody, "description": "No such job, or no manifest yet."},
    },
)
def read_manifest_of(job_id: str, store: StoreDep) -> dict[str, Any]:
    """The dataset's ``manifest.json``, once the build has written it (404 until then)."""
    job = _get(store, job_id)
    manifest = read_manifest(job.output_dir)
    if manifest is None:
        raise HTTPException(
            status_code=404,
            detail=f"job {job_id} has no manifest yet (state {job.state.value}); it is "
            "written last, when the dataset is complete",
        )
    return manifest


@router.post(
    "/{job_id}/resume",
    responses={
        **_ERRORS,
        **_NOT_FOUND,
        409: {"model": ErrorBody, "description": "The job is not failed or cancelled."},
    },
)
def resume_job(
    job_id: str, store: StoreDep, launcher: LauncherDep, reconciler: ReconcilerDep
) -> JobPublic:
    """Run a failed or cancelled job again; units whose shards exist are skipped."""
    job = _get(store, job_id)
    if job.state not in (JobState.FAILED, JobState.CANCELLED):
        raise HTTPException(
            status_code=409,
            detail=f"job {job_id} is {job.state.value}; only failed or cancelled jobs resume",
        )
    if job.submission_id:
        previous = launcher.status(job.submission_id)
        if previous is not None and not previous.state.final:
            raise HTTPException(
                status_code=409,
                detail=f"job {job_id}'s previous run {job.submission_id} is still "
                f"{previous.state.value} on Ray; retry once it has stopped",
            )
    _write_spec(Path(job.output_dir), job.spec_json)
    job = _launch(job, store, launcher)
    reconciler.forget(job.id)
    return to_public(job, launcher)
