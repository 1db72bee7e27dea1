"""The job lifecycle: submit, read, cancel and resume builds, on the store and the launcher.

The routes in ``services/api/routes/jobs.py`` only translate HTTP to these calls and back;
every rule about jobs lives here and is stated as a domain error (``JobChanged`` for a job
not in the state a request needs, ``OutputLocationError`` for an output that is no longer
safe to write), which the app maps to HTTP at its boundary.

    jobs = JobService(store=..., launcher=..., reconciler=..., rules=SubmissionRules(...))
    job = jobs.submit(create)          # checked, stored, spec written, Ray Job submitted
    jobs.cancel(job); jobs.resume(job)

A job's spec is written to ``<output dir>/job.json`` and run as a Ray Job
(``pairforge build <output dir>/job.json --job-id ID --resume``). A job whose spec hands
off to training has its training job submitted once the build succeeds
(``services.api.handoff``), when a read, start-up or the periodic sweep sees it.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from pathlib import Path

import pyarrow.fs as pafs

from cluster.storage import write_text
from pipeline.config import JobSpec, parse_job_spec
from pipeline.errors import ConfigError, InfrastructureError, JobChanged, StorageError
from pipeline.job_limits import JobLimits, require_runnable
from pipeline.ports import JobState
from services.api.handoff import Handoff, HandoffRules, TrainingLauncher, check_handoff
from services.api.reconcile import Reconciler
from services.api.schemas import JobCreate
from services.api.submission import InputChecker, Locations, prepare_spec
from services.output_root import recheck_output_dir
from services.store import JobStore, NewJob, StoredJob, utcnow
from services.training_job import DEFAULT_ENTRYPOINT

SPEC_FILE = "job.json"
"""Name of the JobSpec the service writes into each job's output directory."""

_RESUMABLE = (JobState.FAILED, JobState.CANCELLED)


def new_job_id() -> str:
    return f"pf-{uuid.uuid4().hex[:12]}"


def write_spec(output_dir: Path, spec_json: str) -> Path:
    """Write ``job.json`` into ``output_dir`` atomically.

    The file is written under a random temporary name and renamed into place, and a
    rename replaces a symlink planted at ``job.json`` instead of following it.

    Raises:
        StorageError: the directory or the file could not be written.
    """
    path = output_dir / SPEC_FILE
    write_text(pafs.LocalFileSystem(), str(path), spec_json)
    return path


@dataclasses.dataclass(frozen=True)
class SubmissionRules:
    """What a job may do here: where it reads and writes, and the operator's limits."""

    where: Locations
    limits: JobLimits
    inputs: InputChecker
    training_entrypoints: tuple[str, ...] = (DEFAULT_ENTRYPOINT,)
    """Training commands a hand-off may run (``Settings.training_entrypoints``)."""

    def handoff(self) -> HandoffRules:
        return HandoffRules(
            where=self.where, limits=self.limits, entrypoints=self.training_entrypoints
        )


class JobService:
    """Jobs of one service: every method returns the job as stored after the change."""

    def __init__(
        self,
        *,
        store: JobStore,
        launcher: TrainingLauncher,
        reconciler: Reconciler,
        rules: SubmissionRules,
        handoff: Handoff | None = None,
    ) -> None:
        """``handoff`` is the service's own (shared timers); default one for this object."""
        self.store = store
        self.launcher = launcher
        self._reconciler = reconciler
        self._rules = rules
        self._handoff = handoff or Handoff(store, rules.handoff(), interval_s=0.0)

    # ------------------------------------------------------------------ reads

    def refresh(self, job: StoredJob) -> StoredJob:
        """The job brought up to date with Ray and its progress file, hand-off included."""
        job = self._reconciler.refresh(job, self.launcher)
        return self._handoff.advance(job, self.launcher)

    def page(
        self, *, offset: int, limit: int, state: JobState | None
    ) -> tuple[list[StoredJob], int]:
        """A page of jobs, newest first, each brought up to date; and how many match."""
        jobs, count = self.store.page(offset=offset, limit=limit, state=state)
        return [self.refresh(job) for job in jobs], count

    def advance_handoffs(self) -> int:
        """Move on every hand-off that can move (start-up, periodic sweep); how many seen."""
        return self._handoff.advance_open(self.launcher, self._refresh_if_known)

    def _refresh_if_known(self, job: StoredJob) -> StoredJob:
        """``job`` refreshed, but only once Ray knows its run.

        A run is stored queued before it is submitted, and submitting may wait a minute for
        the cluster's job agent; a sweep in between must not take it for a vanished run
        and fail it. Ray never forgets a run it accepted (short of a head restart, which
        a read still reports), so asking first is safe.
        """
        try:
            known = self.launcher.status(job.submission_id) is not None
        except InfrastructureError:
            return job
        return self._reconciler.refresh(job, self.launcher) if known else job

    # ------------------------------------------------------------------ changes

    def submit(self, create: JobCreate) -> StoredJob:
        """Check a job request, store it, write its spec and submit its first run.

        Raises:
            ConfigError: the request is refused (output, source, limits, input file).
            OutputInUse: another job's output overlaps this one.
            InfrastructureError: storage or Ray failed (the job is stored failed and can
                be resumed when Ray was the problem).
        """
        rules = self._rules
        job_id = new_job_id()
        spec = prepare_spec(create, job_id=job_id, where=rules.where, limits=rules.limits)
        spec = check_handoff(
            spec, where=rules.where, limits=rules.limits, entrypoints=rules.training_entrypoints
        )
        rules.inputs.count_problems(spec, rules.limits)
        spec_json = spec.model_dump_json(indent=2)
        job = self.store.add(
            NewJob(
                id=job_id,
                name=spec.name or job_id,
                spec_json=spec_json,
                output_dir=spec.output.uri,
                training=spec.handoff is not None and spec.handoff.submit,
            )
        )
        try:
            write_spec(Path(spec.output.uri), spec_json)
        except StorageError as exc:
            self.store.update(job.id, state=JobState.FAILED, error=str(exc), finished_at=utcnow())
            raise
        return self._launch(job)

    def cancel(self, job: StoredJob) -> StoredJob:
        """Stop a job's Ray Job; a finished job is returned unchanged."""
        if job.state.final:
            return job
        stopped = self.launcher.stop(job.submission_id) if job.submission_id else False
        if not stopped:
            # Ray had nothing running: it may have just finished, so learn how.
            job = self._reconciler.refresh(job, self.launcher, force=True)
        return self._mark_cancelled(job)

    def resume(self, job: StoredJob) -> StoredJob:
        """Run a failed or cancelled job again (its written units are skipped).

        Raises:
            JobChanged: the job is not failed or cancelled, its previous run still runs, its
                record is damaged, or another request resumed it meanwhile.
            ConfigError: its output or input is no longer allowed (a symlink was planted,
                the roots or the limits changed).
        """
        if job.damage is not None:
            raise JobChanged(f"job {job.id} cannot resume: {job.error}", job_id=job.id)
        if job.state not in _RESUMABLE:
            raise JobChanged(
                f"job {job.id} is {job.state.value}; only failed or cancelled jobs resume",
                job_id=job.id,
            )
        if job.submission_id:
            previous = self.launcher.status(job.submission_id)
            if previous is not None and not previous.state.final:
                raise JobChanged(
                    f"job {job.id}'s previous run {job.submission_id} is still "
                    f"{previous.state.value} on Ray; retry once it has stopped",
                    job_id=job.id,
                )
        spec = self._stored_spec(job)
        output_dir = recheck_output_dir(job.output_dir, self._rules.where.output_root)
        rules = self._rules
        rules.where.source(spec.source.path)
        require_runnable(spec, rules.limits)
        check_handoff(
            spec, where=rules.where, limits=rules.limits, entrypoints=rules.training_entrypoints
        )
        write_spec(output_dir, job.spec_json)
        job = self._launch(job)
        self._reconciler.forget(job.id)
        return job

    # ------------------------------------------------------------------ internals

    @staticmethod
    def _stored_spec(job: StoredJob) -> JobSpec:
        try:
            return parse_job_spec(json.loads(job.spec_json))
        except (ValueError, ConfigError) as exc:
            raise JobChanged(
                f"job {job.id} cannot resume: its stored spec no longer reads as a JobSpec "
                f"({str(exc).splitlines()[0]}); submit the job again",
                job_id=job.id,
            ) from exc

    def _launch(self, job: StoredJob) -> StoredJob:
        """Submit the next run of ``job`` (its first, or a resume) as a fresh Ray Job."""
        attempt = job.attempts + 1
        submission_id = job.id if attempt == 1 else f"{job.id}-r{attempt}"
        # Stored before submitting: if the service dies in between, reconciliation finds a
        # submission Ray does not know and marks the job failed (and resumable). Conditional
        # on ``job`` being current, so two concurrent resumes cannot both submit this run.
        try:
            job = self.store.update(
                job.id,
                read=job,
                state=JobState.QUEUED,
                submission_id=submission_id,
                attempts=attempt,
                error=None,
                finished_at=None,
            )
        except JobChanged as exc:
            raise JobChanged(
                f"{exc}; it was resumed or cancelled by another request", job_id=job.id
            ) from exc
        try:
            self.launcher.submit(
                submission_id=submission_id,
                job_id=job.id,
                spec_path=str(Path(job.output_dir) / SPEC_FILE),
                name=job.name,
            )
        except InfrastructureError as exc:
            reason = f"could not submit to Ray: {exc}"
            self.store.update(job.id, state=JobState.FAILED, error=reason, finished_at=utcnow())
            raise InfrastructureError(
                f"job {job.id} is stored but {reason}; resume it with POST /jobs/{job.id}/resume "
                "once the cluster is reachable"
            ) from exc
        return job

    def _mark_cancelled(self, job: StoredJob) -> StoredJob:
        """Store ``job``'s run as cancelled, unless it ended or was resumed meanwhile."""
        submission_id = job.submission_id
        while not job.state.final and job.submission_id == submission_id:
            try:
                return self.store.update(
                    job.id, read=job, state=JobState.CANCELLED, error=None, finished_at=utcnow()
                )
            except JobChanged:
                # A read moved it on (queued -> running) or ended it; decide on what is stored.
                job = self.store.get(job.id)
        return job
