"""The job launcher port: how the job service starts, stops and watches dataset builds.

The service (``services.api``) talks to this Protocol only; ``cluster.launcher`` implements
it on Ray Jobs and tests implement it with a fake. Pure: no Ray, no HTTP, no I/O here.

A *submission id* names one run of a build on the cluster. The first run of job
``pf-3f2a`` is submitted as ``pf-3f2a``; a resumed run gets a fresh one (``pf-3f2a-r2``)
because a cluster never reuses a submission id.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field


class JobState(StrEnum):
    """Lifecycle of a job as the service reports it."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def final(self) -> bool:
        """True once the job cannot change state by itself any more."""
        return self in FINAL_STATES


FINAL_STATES = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})


class RemoteStatus(BaseModel):
    """What the cluster says about one submission."""

    model_config = ConfigDict(frozen=True)

    state: JobState = Field(description="State of the submission, mapped to the service's.")
    message: str = Field(default="", description="The cluster's status message, if any.")


class JobLauncher(Protocol):
    """Runs ``pairforge build SPEC --job-id ID --resume`` somewhere and reports on it.

    Every method raises ``pipeline.errors.InfrastructureError`` (or a subclass) when the
    cluster cannot be reached; none of them raises for an unknown submission id except
    ``submit`` for a duplicate.
    """

    def submit(self, *, submission_id: str, job_id: str, spec_path: str, name: str) -> None:
        """Start the build of the JobSpec at ``spec_path`` (absolute) as ``submission_id``."""
        ...

    def stop(self, submission_id: str) -> bool:
        """Ask a submission to stop; False when it was not running (finished or unknown)."""
        ...

    def status(self, submission_id: str) -> RemoteStatus | None:
        """Current status, or None when the cluster has no such submission (it vanished)."""
        ...

    def dashboard_url(self, submission_id: str) -> str | None:
        """Link to the submission's page in the cluster's dashboard, when there is one."""
        ...
