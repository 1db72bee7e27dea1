"""Request and response bodies of the job API (``JobCreate`` / ``JobPublic`` / ``JobsPublic``).

Every field carries a description, so the OpenAPI document at ``/docs`` explains the API.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, model_validator

from pipeline.config import JobSpec, OutputConfig, parse_job_spec
from pipeline.manifest import ManifestCounts
from pipeline.ports import JobState
from pipeline.progress import BuildProgress
from services.store import TrainingState

_ENVELOPE_KEYS = frozenset({"spec", "name"})


class OutputRequest(OutputConfig):
    """Where shards and the manifest go; the location may be left to the service."""

    uri: str | None = Field(  # type: ignore[assignment]
        default=None,
        min_length=1,
        description="Output directory under the service's output root; a relative path is "
        "relative to that root. Default: `<output root>/<job id>`.",
    )


class JobCreate(JobSpec):
    """Body of ``POST /jobs``: a JobSpec whose ``output`` may be omitted.

    The older envelope ``{"spec": JobSpec, "name": str}`` is still accepted: its ``name``
    becomes the spec's, and its other keys are reported as unknown JobSpec fields.
    """

    output: OutputRequest = Field(
        default_factory=OutputRequest,
        description="Where shards and the manifest go (default: under the output root).",
    )

    @model_validator(mode="before")
    @classmethod
    def _unwrap_envelope(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            raise ValueError(
                'expected a JSON object: a JobSpec, or {"spec": JobSpec, "name": ...}; '
                f"got {type(data).__name__}"
            )
        if "spec" not in data:
            return data
        spec = data["spec"]
        if not isinstance(spec, Mapping):
            raise ValueError(f"`spec` must be a JobSpec object, got {type(spec).__name__}")
        extra = {k: v for k, v in data.items() if k not in _ENVELOPE_KEYS}
        name = data.get("name") or spec.get("name", "")
        return {**spec, **extra, "name": name}

    def to_spec(self, *, output_uri: str, source_path: str) -> JobSpec:
        """The JobSpec to run, writing to ``output_uri`` and reading ``source_path``."""
        data = self.model_dump()
        data["output"]["uri"] = output_uri
        data["source"]["path"] = source_path
        return parse_job_spec(data)


class StageProgress(BaseModel):
    """How far one stage of the build has got, in problems."""

    stage: str = Field(description="`sample`, `execute` or `rank`.")
    done: int = Field(description="Problems through this stage.")
    total: int = Field(description="Problems in the job (0 until the build has counted them).")


class JobCounts(ManifestCounts):
    """Totals so far: the manifest's counts, as the build reports them, and work units."""

    units_done: int = Field(description="Work units whose shards are written.")
    units_total: int = Field(description="Work units in the job.")

    @classmethod
    def of(cls, progress: BuildProgress) -> JobCounts:
        """The counts in a progress report (``problems`` is the job's total)."""
        same = (cls.model_fields.keys() & BuildProgress.model_fields.keys()) - {"problems"}
        return cls(problems=progress.problems_total, **{k: getattr(progress, k) for k in same})


class TrainingPublic(BaseModel):
    """The training job a build hands off to (JobSpec `handoff.submit: true`)."""

    id: str | None = Field(
        description="Ray Job submission id of the training job (`<job id>-train`); null "
        "until the build has succeeded and the service submits it."
    )
    state: TrainingState = Field(
        description="`waiting` (for the build to succeed; a failed or cancelled build "
        "submits nothing), `submitting`, then the training Ray Job's state: `queued`, "
        "`running`, `succeeded`, `failed`, `cancelled`. It never changes the build's state."
    )
    dashboard_url: str | None = Field(
        description="The training job's page in the Ray dashboard, once it has an id."
    )
    error: str | None = Field(
        description="Why submitting it has not worked yet (it is retried), or why it failed."
    )


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
    training: TrainingPublic | None = Field(
        description="The training job this build hands off to; null when its spec has no "
        "`handoff` with `submit: true`."
    )


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
