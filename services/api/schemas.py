"""Request and response bodies of the job API (``JobCreate`` / ``JobPublic`` / ``JobsPublic``).

Every field carries a description, so the OpenAPI document at ``/docs`` explains the API.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from pipeline.config import JobSpec
from pipeline.ports import JobState
from pipeline.progress import BuildProgress


class JobCreate(BaseModel):
    """Body of ``POST /jobs`` when it names the job; a bare JobSpec is accepted too."""

    model_config = ConfigDict(extra="forbid")

    spec: JobSpec = Field(
        description="The dataset build. `output.uri` may be omitted: it defaults to "
        "`<output root>/<job id>`."
    )
    name: str = Field(
        default="", max_length=200, description="Name shown in listings and the Ray dashboard."
    )


class StageProgress(BaseModel):
    """How far one stage of the build has got, in problems."""

    stage: str = Field(description="`sample`, `execute` or `rank`.")
    done: int = Field(description="Problems through this stage.")
    total: int = Field(description="Problems in the job (0 until the build has counted them).")


class JobCounts(BaseModel):
    """Totals so far, as the build reports them."""

    problems: int = Field(description="Problems in the job.")
    candidates: int = Field(description="Distinct codes and tests parsed.")
    cells: int = Field(description="Code×test cells executed.")
    pairs: int = Field(description="Preference pairs written.")
    skips: dict[str, int] = Field(description="Problems that produced no pair, by reason.")
    units_done: int = Field(description="Work units whose shards are written.")
    units_total: int = Field(description="Work units in the job.")


class JobPublic(BaseModel):
    """A job as the API shows it."""

    id: str = Field(description="Job id (`pf-...`), also the Ray Job submission id.")
    name: str = Field(description="Job name.")
    state: JobState = Field(description="`queued`, `running`, `succeeded`, `failed`, `cancelled`.")
    error: str | None = Field(description="Why the job failed, when it did.")
    output_uri: str = Field(description="Directory holding the shards and the manifest.")
    submission_id: str = Field(
        description="Ray Job submission id of the latest run (`<id>-r<n>` after a resume)."
    )
    attempts: int = Field(description="Runs submitted so far (resumes included).")
    dashboard_url: str | None = Field(description="The latest run's page in the Ray dashboard.")
    manifest_ready: bool = Field(description="True once `manifest.json` is written.")
    stages: list[StageProgress] = Field(description="Progress of each stage.")
    counts: JobCounts | None = Field(description="Totals so far; null before the build reports.")
    progress: BuildProgress | None = Field(
        description="The build's latest `progress.json`, as written."
    )
    created_at: datetime = Field(description="When the job was submitted (UTC).")
    updated_at: datetime = Field(description="When the service last changed this record (UTC).")
    started_at: datetime | None = Field(description="When the build started running (UTC).")
    finished_at: datetime | None = Field(description="When the job reached a final state (UTC).")


class JobsPublic(BaseModel):
    """A page of jobs."""

    data: list[JobPublic] = Field(description="Jobs on this page, newest first.")
    count: int = Field(description="Jobs matching the filter, on all pages.")


class ErrorBody(BaseModel):
    """Body of every 4xx/5xx answer from the service's own checks."""

    detail: str = Field(description="What was expected, what was seen, what to do.")
    problems: list[str] = Field(
        default_factory=list, description="One line per invalid field, when there are several."
    )


class Health(BaseModel):
    """Liveness of the service process."""

    status: str = Field(description="`ok` when the service answers and its database opens.")
