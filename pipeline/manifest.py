"""The dataset manifest: what a finished build contains, and the shard file layout.

``manifest.json`` sits at the output root and is written last, atomically, by the shard
writer in ``cluster``: its presence means the dataset is complete (DESIGN.md §3.5). It is
what the training job reads. This module only models it; it does no I/O.

Layout under the output root::

    manifest.json
    pairs/part-00000.parquet      one file per work unit, same unit number in both tables
    problems/part-00000.parquet

so ``datasets.load_dataset("parquet", data_files="out/pairs/*.parquet")`` loads all pairs.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pipeline.records import SCHEMA_VERSION

MANIFEST_FILE = "manifest.json"
"""Name of the manifest at the output root."""

TableName = Literal["pairs", "problems"]


TABLES: tuple[TableName, ...] = ("pairs", "problems")


def shard_name(table: str, unit: int) -> str:
    """Path of a unit's shard relative to the output root.

    >>> shard_name("pairs", 3)
    'pairs/part-00003.parquet'

    Raises:
        ValueError: ``table`` is not one of ``TABLES`` or ``unit`` is negative.
    """
    if table not in TABLES:
        raise ValueError(f"table must be one of {TABLES}, got {table!r}")
    if unit < 0:
        raise ValueError(f"a work unit number is >= 0, got {unit}")
    return f"{table}/part-{unit:05d}.parquet"


class ShardInfo(BaseModel):
    """One Parquet shard of the dataset."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str = Field(description="Path relative to the output root, `pairs/part-00003.parquet`.")
    table: TableName = Field(description="Which table the shard belongs to.")
    unit: int = Field(ge=0, description="Work unit (slice of the input problems) it holds.")
    rows: int = Field(ge=0, description="Rows in the shard.")
    bytes: int = Field(ge=0, description="File size in bytes.")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="Hex SHA-256 of the file's bytes.")

    @field_validator("path")
    @classmethod
    def _relative(cls, path: str) -> str:
        parts = PurePosixPath(path).parts
        if not parts or path.startswith("/") or ".." in parts or "\\" in path:
            raise ValueError(
                f"a shard path must be relative to the output root, without `..`, using `/`; "
                f"got {path!r}"
            )
        return path


class RefinementCounts(BaseModel):
    """A Target-DPO build's refinement loop in numbers: its trajectories and versions."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    trajectories: int = Field(default=0, ge=0, description="Trajectories started (v0 run).")
    versions_per_round: dict[str, int] = Field(
        default_factory=dict, description="Versions executed, by round (`0` is v0)."
    )
    refined: int = Field(default=0, ge=0, description="Trajectories that passed after a fix.")
    passed_first: int = Field(default=0, ge=0, description="Trajectories whose v0 passed.")
    not_refined: int = Field(
        default=0, ge=0, description="Trajectories that never passed (after the last round)."
    )

    def __add__(self, other: RefinementCounts) -> RefinementCounts:
        rounds = Counter(self.versions_per_round)
        rounds.update(other.versions_per_round)
        return RefinementCounts(
            trajectories=self.trajectories + other.trajectories,
            versions_per_round=dict(sorted(rounds.items(), key=lambda item: int(item[0]))),
            refined=self.refined + other.refined,
            passed_first=self.passed_first + other.passed_first,
            not_refined=self.not_refined + other.not_refined,
        )


class ManifestCounts(BaseModel):
    """Totals over the whole dataset."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    problems: int = Field(default=0, ge=0, description="Problems processed.")
    candidates: int = Field(default=0, ge=0, description="Distinct codes + distinct tests.")
    cells: int = Field(default=0, ge=0, description="Code x test cells in the status matrices.")
    pairs: int = Field(default=0, ge=0, description="Preference pairs written.")
    fallback_cells: int = Field(
        default=0,
        ge=0,
        description="Cells judged on the sandbox's in-process fallback path (share: "
        "fallback_cells / cells); the rest were judged outside the program's process.",
    )
    skips: dict[str, int] = Field(
        default_factory=dict, description="Problems without a pair, by skip reason."
    )
    refinement: RefinementCounts | None = Field(
        default=None, description="Target-DPO builds: what became of the trajectories."
    )

    def __add__(self, other: ManifestCounts) -> ManifestCounts:
        """Totals of two disjoint sets of problems (units on disk plus units just written)."""
        skips = Counter(self.skips)
        skips.update(other.skips)
        return ManifestCounts(
            problems=self.problems + other.problems,
            candidates=self.candidates + other.candidates,
            cells=self.cells + other.cells,
            pairs=self.pairs + other.pairs,
            fallback_cells=self.fallback_cells + other.fallback_cells,
            skips=dict(skips),
            refinement=(
                self.refinement + other.refinement
                if self.refinement and other.refinement
                else self.refinement or other.refinement
            ),
        )


class Manifest(BaseModel):
    """Everything a reader needs to trust and load a finished dataset."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: str = Field(
        default=SCHEMA_VERSION, description="Version of the shard and record layout."
    )
    job_id: str = Field(min_length=1, description="Job that built the dataset.")
    spec: dict[str, Any] = Field(
        description="The full JobSpec, as `JobSpec.model_dump(mode='json')`."
    )
    counts: ManifestCounts = Field(description="Totals over all shards.")
    shards: list[ShardInfo] = Field(description="Every shard, sorted by (table, unit).")
    started_at: datetime = Field(description="When the build started (timezone-aware).")
    finished_at: datetime = Field(description="When the last shard was written.")

    @model_validator(mode="after")
    def _consistent(self) -> Manifest:
        seen: set[tuple[str, int]] = set()
        for shard in self.shards:
            if (shard.table, shard.unit) in seen:
                raise ValueError(f"two {shard.table} shards for unit {shard.unit}")
            seen.add((shard.table, shard.unit))
        if self.finished_at < self.started_at:
            raise ValueError(
                f"finished_at ({self.finished_at}) is before started_at ({self.started_at})"
            )
        return self

    def shards_of(self, table: TableName) -> list[ShardInfo]:
        """The shards of one table, in unit order."""
        return sorted((s for s in self.shards if s.table == table), key=lambda s: s.unit)
