"""The hand-off: once a build succeeds, its training job runs as a Ray Job of its own.

A JobSpec with ``handoff: {submit: true, training_config: PATH}`` is checked at submission
(``check_handoff``: the config confined to the input roots like ``source.path``, its
``num_gpus`` within the operator's GPU limit, the entrypoint one the operator allows),
stored with its hand-off ``waiting``, and handed off by ``Handoff.advance`` the first time
the service sees the build stored as succeeded (on a read, at start-up, or on the
periodic sweep):

    waiting ──build succeeded──▶ submitting ──Ray accepted──▶ queued ▶ running ▶ succeeded
                                                                              ▶ failed/cancelled

The move out of ``waiting`` is one conditional update, so only one request submits; the
training submission id is fixed (``<job id>-train``) and Ray never reuses one, so a
service that died while ``submitting`` asks Ray first and submits only what Ray does not
have. A cancelled or failed build stays ``waiting`` (a resume that succeeds hands off), and
the training job's own failure is its state, never the build's.

The command is ``handoff.entrypoint`` (a leading ``python`` is this interpreter) with the
manifest and the config appended, run from the project root; see ``services.training_job``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Protocol

from pipeline.config import HandoffConfig, JobSpec, parse_job_spec
from pipeline.errors import ConfigError, InfrastructureError, JobChanged, JobSpecError
from pipeline.job_limits import JobLimits, training_gpus_problem
from pipeline.manifest import MANIFEST_FILE
from pipeline.ports import JobLauncher, JobState
from services.api.submission import Locations
from services.store import JobStore, StoredJob, TrainingState
from services.training_job import (
    CONFIG_FIELD,
    PROJECT_ROOT,
    read_training_gpus,
    training_argv,
    training_shell_line,
)

logger = logging.getLogger(__name__)

TRAINING_SUFFIX = "-train"
"""A build's training job is submitted as ``<job id>-train``."""


class TrainingLauncher(JobLauncher, Protocol):
    """A ``JobLauncher`` that also starts training jobs (``cluster.launcher.RayJobLauncher``)."""

    def submit_training(
        self, *, submission_id: str, training_of: str, command: str, num_gpus: int, name: str
    ) -> None:
        """Run the shell line ``command`` as ``submission_id`` with ``num_gpus`` GPUs."""
        ...


def training_submission_id(job_id: str) -> str:
    return job_id + TRAINING_SUFFIX


def confine_training_config(path: str, where: Locations) -> Path:
    """``handoff.training_config`` confined to the input roots exactly as ``source.path`` is.

    Raises:
        JobSpecError: not a regular file under an input root (named as the hand-off's field).
    """
    try:
        return where.source(path)
    except JobSpecError as exc:
        # The confinement's messages name the field they were written for.
        def renamed(line: str) -> str:
            return CONFIG_FIELD + line.removeprefix("source.path")

        problems = [renamed(p) for p in exc.problems] or [renamed(str(exc))]
        raise JobSpecError("\n".join(problems), problems) from None


def check_handoff(
    spec: JobSpec, *, where: Locations, limits: JobLimits, entrypoints: Collection[str]
) -> JobSpec:
    """``spec`` with its training config's path absolute and checked, when it hands off.

    Raises:
        JobSpecError: the entrypoint is not one the operator allows, the training config is
            not an allowed file, or it asks for more GPUs than ``limits`` allow.
    """
    handoff = spec.handoff
    if handoff is None or not handoff.submit:
        return spec
    config, _gpus = _checked(handoff, where=where, limits=limits, entrypoints=entrypoints)
    checked = handoff.model_copy(update={"training_config": str(config)})
    return spec.model_copy(update={"handoff": checked})


def _checked(
    handoff: HandoffConfig, *, where: Locations, limits: JobLimits, entrypoints: Collection[str]
) -> tuple[Path, int]:
    """The training config's confined path and the GPUs it asks for (see ``check_handoff``)."""
    problems = []
    if handoff.entrypoint not in entrypoints:
        allowed = ", ".join(repr(e) for e in entrypoints) or "none"
        problems.append(
            f"handoff.entrypoint: {handoff.entrypoint!r} is not a training command this "
            f"service runs; its operator allows {allowed} (PAIRFORGE_TRAINING_ENTRYPOINTS)"
        )
    config = confine_training_config(handoff.training_config, where)
    gpus = read_training_gpus(config)
    too_many = training_gpus_problem(gpus, limits)
    if too_many is not None:
        problems.append(too_many)
    if problems:
        raise JobSpecError("this job cannot run:\n  " + "\n  ".join(problems), problems)
    return config, gpus


@dataclasses.dataclass(frozen=True)
class HandoffRules:
    """What a hand-off may run: the operator's entrypoints, locations and limits."""

    where: Locations
    limits: JobLimits
    entrypoints: tuple[str, ...]
    workdir: Path = PROJECT_ROOT
    """Where the training command runs (the training job's contract: the project root)."""


class Handoff:
    """Moves each job's hand-off along; one instance per service, shared by requests."""

    def __init__(self, store: JobStore, rules: HandoffRules, *, interval_s: float) -> None:
        self._store = store
        self._rules = rules
        self._interval_s = interval_s
        self._last: dict[str, float] = {}
        self._timers = threading.Lock()
        # One submission per job at a time in this process; Ray's refusal of a reused
        # submission id covers other processes.
        self._submitting: dict[str, threading.Lock] = {}

    def _due(self, job_id: str) -> bool:
        now = time.monotonic()
        with self._timers:
            if now - self._last.get(job_id, float("-inf")) < self._interval_s:
                return False
            self._last[job_id] = now
            return True

    def advance(self, job: StoredJob, launcher: TrainingLauncher) -> StoredJob:
        """The job with its hand-off moved on as far as it can go now (stored as well)."""
        state = job.training_state
        if state is None or state.final or job.state is not JobState.SUCCEEDED:
            return job
        if state is TrainingState.WAITING:
            try:
                job = self._store.update_training(
                    job.id,
                    expect=TrainingState.WAITING,
                    training_state=TrainingState.SUBMITTING,
                    training_id=training_submission_id(job.id),
                    training_error=None,
                )
            except JobChanged:
                return self._store.get(job.id)
            logger.info("job %s succeeded: handing off to training", job.id)
            return self._submit(job, launcher)
        if not self._due(job.id):
            return job
        if state is TrainingState.SUBMITTING:
            return self._submit(job, launcher)
        return self._follow(job, state, launcher)

    def advance_open(
        self, launcher: TrainingLauncher, refresh: Callable[[StoredJob], StoredJob]
    ) -> int:
        """Advance every hand-off that may still move; ``refresh`` brings a build up to date.

        Returns how many jobs were looked at.
        """
        jobs = self._store.open_handoffs()
        for job in jobs:
            if not job.state.final:
                job = refresh(job)
            self.advance(job, launcher)
        return len(jobs)

    # ------------------------------------------------------------------ internals

    def _lock(self, job_id: str) -> threading.Lock:
        with self._timers:
            return self._submitting.setdefault(job_id, threading.Lock())

    def _submit(self, job: StoredJob, launcher: TrainingLauncher) -> StoredJob:
        lock = self._lock(job.id)
        if not lock.acquire(blocking=False):
            return job  # another request of this process is submitting it right now
        try:
            try:
                known = launcher.status(job.training_id)
            except InfrastructureError as exc:
                return self._retry_later(job, f"could not reach Ray to submit it: {exc}")
            if known is None:
                try:
                    command, gpus = self._command(job)
                except ConfigError as exc:
                    return self._end(job, TrainingState.SUBMITTING, TrainingState.FAILED, str(exc))
                try:
                    launcher.submit_training(
                        submission_id=job.training_id,
                        training_of=job.id,
                        command=command,
                        num_gpus=gpus,
                        name=f"{job.name or job.id} (training)",
                    )
                except InfrastructureError as exc:
                    return self._retry_later(job, f"could not submit it to Ray: {exc}")
                logger.info("job %s: submitted training job %s", job.id, job.training_id)
                state, error = TrainingState.QUEUED, None
            else:
                # Submitted before this process could record it (it died in between).
                state = TrainingState(known.state.value)
                error = (known.message or "failed") if state is TrainingState.FAILED else None
            return self._end(job, TrainingState.SUBMITTING, state, error)
        finally:
            lock.release()

    def _command(self, job: StoredJob) -> tuple[str, int]:
        """The training job's shell line and GPUs, from the job's stored spec.

        Raises:
            ConfigError: the stored spec no longer reads, or the training config is no
                longer allowed or readable.
        """
        try:
            spec = parse_job_spec(json.loads(job.spec_json))
        except ValueError as exc:
            raise JobSpecError(f"the stored spec of job {job.id} is damaged: {exc}") from None
        handoff = spec.handoff
        if handoff is None:
            raise JobSpecError(f"the stored spec of job {job.id} has no handoff section")
        rules = self._rules
        # Checked again: the file, the roots or the limits may have changed since then.
        config, gpus = _checked(
            handoff, where=rules.where, limits=rules.limits, entrypoints=rules.entrypoints
        )
        manifest = str(Path(job.output_dir) / MANIFEST_FILE)
        try:
            argv = training_argv(handoff.entrypoint, manifest, str(config))
        except ValueError as exc:
            raise JobSpecError(f"handoff.entrypoint: {exc}") from None
        return training_shell_line(argv, rules.workdir), gpus

    def _follow(
        self, job: StoredJob, state: TrainingState, launcher: TrainingLauncher
    ) -> StoredJob:
        """Bring a submitted training job's state (``state`` as stored) up to date from Ray."""
        try:
            remote = launcher.status(job.training_id)
        except InfrastructureError as exc:
            logger.warning("cannot reach Ray to follow training job %s: %s", job.training_id, exc)
            return job
        error: str | None
        if remote is None:
            now = TrainingState.FAILED
            error = (
                f"training job {job.training_id} no longer exists on the cluster (the Ray "
                "head was restarted or the job was deleted)"
            )
        else:
            now = TrainingState(remote.state.value)
            error = (remote.message or "failed") if now is TrainingState.FAILED else None
        if now is state and error == job.training_error:
            return job
        return self._end(job, state, now, error)

    def _end(
        self, job: StoredJob, expect: TrainingState, state: TrainingState, error: str | None
    ) -> StoredJob:
        try:
            updated = self._store.update_training(
                job.id, expect=expect, training_state=state, training_error=error
            )
        except JobChanged:
            return self._store.get(job.id)
        if state is not expect:
            logger.info("job %s: training %s -> %s", job.id, expect.value, state.value)
        return updated

    def _retry_later(self, job: StoredJob, reason: str) -> StoredJob:
        logger.warning("job %s: training job %s: %s", job.id, job.training_id, reason)
        message = f"{reason}; the service retries"
        if message == job.training_error:
            return job
        return self._end(job, TrainingState.SUBMITTING, TrainingState.SUBMITTING, message)
