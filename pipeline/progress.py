"""Progress of a running build, as the driver reports it and the service reads it.

The driver rewrites ``progress.json`` at the output root (atomically) as units finish;
``pairforge build`` prints it and the job service serves it, so nobody guesses progress.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from pipeline.manifest import RefinementCounts

PROGRESS_FILE = "progress.json"
"""Name of the progress file at the output root."""


class BuildProgress(BaseModel):
    """Counts of a build so far; every count only grows while the build runs."""

    model_config = ConfigDict(extra="ignore")

    job_id: str = Field(description="Job being built.")
    state: Literal["running", "succeeded", "failed"] = Field(
        default="running", description="State of the build as the driver sees it."
    )
    units_total: int = Field(default=0, ge=0, description="Work units in the job.")
    units_done: int = Field(default=0, ge=0, description="Work units whose shards are written.")
    units_skipped: int = Field(
        default=0, ge=0, description="Units found already written on resume (counted in done)."
    )
    problems_total: int = Field(default=0, ge=0, description="Problems in the job.")
    problems_sampled: int = Field(default=0, ge=0, description="Problems with candidates.")
    problems_executed: int = Field(default=0, ge=0, description="Problems with a pass matrix.")
    problems_ranked: int = Field(default=0, ge=0, description="Problems ranked and paired.")
    candidates: int = Field(default=0, ge=0, description="Distinct codes + tests parsed.")
    cells: int = Field(default=0, ge=0, description="Code×test cells executed.")
    pairs: int = Field(default=0, ge=0, description="Preference pairs written.")
    fallback_cells: int = Field(
        default=0, ge=0, description="Cells judged on the sandbox's in-process fallback path."
    )
    skips: dict[str, int] = Field(default_factory=dict, description="Skipped problems by reason.")
    refinement: RefinementCounts | None = Field(
        default=None, description="Target-DPO builds: trajectories and versions so far."
    )
    cells_per_s: float = Field(default=0.0, ge=0, description="Execution throughput so far.")
    started_at: float | None = Field(default=None, description="Unix time the build started.")
    updated_at: float | None = Field(default=None, description="Unix time of this report.")
    finished_at: float | None = Field(default=None, description="Unix time the build ended.")
    error: str | None = Field(default=None, description="Why the build failed, if it did.")
