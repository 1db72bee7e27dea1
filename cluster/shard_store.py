"""Durable output of a build: shards, progress and the manifest, and the rules for resuming.

Every file appears atomically (``cluster.storage``). A work unit is done once its
`problems` shard exists; that shard is moved last, so a build killed at any moment leaves
either a whole unit or nothing that counts, and a resumed build redoes exactly the units
that are not done. Before anything is written, ``check_output`` and ``check_done_unit``
make sure the output holds nothing but this very build.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from pydantic import ValidationError

from cluster.storage import TEMP_PREFIX, read_text, resolve_uri, write_atomically, write_text
from pipeline.config import JobSpec
from pipeline.errors import OutputLocationError
from pipeline.manifest import (
    MANIFEST_FILE,
    Manifest,
    ManifestCounts,
    RefinementCounts,
    ShardInfo,
    shard_name,
)

logger = logging.getLogger(__name__)

TABLES = ("pairs", "problems")


class ShardStore:
    """Reads and writes one build's output directory.

    Layout under the root::

        job.json                    the JobSpec (written by the service, optional)
        progress.json               BuildProgress, rewritten as the build runs
        pairs/part-00000.parquet    one pairs shard per work unit
        problems/part-00000.parquet one problems shard per work unit
        manifest.json               written last: its presence means the dataset is complete
    """

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.fs, self.root = resolve_uri(uri)

    def path(self, relative: str) -> str:
        return f"{self.root}/{relative}"

    # ------------------------------------------------------------------ units
    def done_units(self) -> list[int]:
        return sorted(self._units("problems"))

    def _units(self, table: str) -> Iterator[int]:
        selector = pafs.FileSelector(self.path(table), allow_not_found=True)
        for info in self.fs.get_file_info(selector):
            name = info.base_name
            if name.startswith("part-") and name.endswith(".parquet"):
                yield int(name[len("part-") : -len(".parquet")])

    def write_unit(self, unit: int, pairs: pa.Table, problems: pa.Table) -> None:
        """Write a unit's two shards; the problems shard last, as the unit's commit."""
        for table_name, table in (("pairs", pairs), ("problems", problems)):
            write_atomically(
                self.fs, self.path(shard_name(table_name, unit)), self._parquet_writer(table)
            )

    def _parquet_writer(self, table: pa.Table) -> Callable[[str], None]:
        def write(path: str) -> None:
            if table.num_rows:
                pq.write_table(table, path, filesystem=self.fs)
            else:
                # No row group at all: readers such as `datasets` take a first row group
                # of 0 rows as a batch size of 0 and refuse the whole dataset.
                pq.ParquetWriter(path, table.schema, filesystem=self.fs).close()

        return write

    def remove_temporaries(self) -> int:
        """Delete files a killed build left under temporary names; returns how many."""
        removed = 0
        for table in TABLES:
            selector = pafs.FileSelector(self.path(table), allow_not_found=True)
            for info in self.fs.get_file_info(selector):
                if info.base_name.startswith(TEMP_PREFIX):
                    self.fs.delete_file(info.path)
                    removed += 1
        return removed

    def has_output(self) -> bool:
        """Whether any shard or manifest is already there."""
        return self.read_text(MANIFEST_FILE) is not None or self._has_shards()

    def _has_shards(self) -> bool:
        return any(True for table in TABLES for _ in self._units(table))

    def read_table(self, table: str, unit: int, columns: list[str] | None = None) -> pa.Table:
        return pq.read_table(
            self.path(shard_name(table, unit)), columns=columns, filesystem=self.fs
        )

    def shard_info(self, table: str, unit: int) -> ShardInfo:
        """Rows, bytes and sha256 of one shard, read back from storage."""
        relative = shard_name(table, unit)
        digest = hashlib.sha256()
        size = 0
        with self.fs.open_input_stream(self.path(relative)) as stream:
            while chunk := stream.read(1 << 20):
                digest.update(chunk)
                size += len(chunk)
        rows = pq.ParquetFile(self.path(relative), filesystem=self.fs).metadata.num_rows
        return ShardInfo(
            path=relative, table=table, unit=unit, rows=rows, bytes=size, sha256=digest.hexdigest()
        )

    # ------------------------------------------------------------------ text files
    def write_text(self, relative: str, text: str) -> None:
        write_text(self.fs, self.path(relative), text)

    def read_text(self, relative: str) -> str | None:
        return read_text(self.fs, self.path(relative))

    def read_json(self, relative: str) -> object | None:
        text = self.read_text(relative)
        return None if text is None else json.loads(text)

    # ------------------------------------------------------------------ resuming
    def check_output(self, *, resume: bool) -> Manifest | None:
        """The finished manifest when there is one to return; raises when the output is taken.

        Raises:
            OutputLocationError: the output holds a dataset or shards and ``resume`` is off.
        """
        text = self.read_text(MANIFEST_FILE)
        if text is not None:
            try:
                manifest = Manifest.model_validate_json(text)
            except ValidationError as exc:
                raise OutputLocationError(
                    f"{self.uri} holds a {MANIFEST_FILE} that is not a pairforge manifest "
                    f"({exc.error_count()} problems, first: {exc.errors()[0]['msg']}); choose "
                    "another output.uri"
                ) from exc
            if resume:
                return manifest
            raise OutputLocationError(
                f"{self.uri} already holds a complete dataset (manifest.json of job "
                f"{manifest.job_id!r}); choose another output.uri, or pass --resume to accept it"
            )
        if not resume and self._has_shards():  # the manifest was read above
            raise OutputLocationError(
                f"{self.uri} holds shards of an earlier, unfinished build; pass --resume to "
                "continue it, or choose another output.uri"
            )
        return None

    def check_done_units(self, units_total: int) -> list[int]:
        """Units already on disk; raises when some lie beyond this input's units.

        Raises:
            OutputLocationError: a shard's unit number is beyond this input's last unit.
        """
        on_disk = self.done_units()
        beyond = [u for u in on_disk if u >= units_total]
        if beyond:
            raise OutputLocationError(
                f"{self.uri} holds shards of units {beyond[:5]}, beyond this input's "
                f"{units_total} units: the output belongs to a build of another input or "
                "layout; choose another output.uri"
            )
        return on_disk

    def check_done_unit(self, unit: int, job_id: str, problem_ids: Sequence[str]) -> None:
        """Check that a unit on disk is this build's: same job, same problems in input order.

        Anything else (another job id, a changed input, limit or ``problems_per_unit``)
        would mix two builds, losing or duplicating rows on resume.

        Raises:
            OutputLocationError: the unit was written by another build.
        """
        table = self.read_table("problems", unit, columns=["job_id", "problem_id"])
        found = table.column("problem_id").to_pylist()
        jobs = set(table.column("job_id").to_pylist())
        if found != list(problem_ids) or jobs - {job_id}:
            raise OutputLocationError(
                f"{self.uri}: unit {unit} was written by job {sorted(jobs)} for problems "
                f"{found[:3]}..., but this build is job {job_id!r} with problems "
                f"{list(problem_ids)[:3]}...; resume only with the same spec, input and job "
                "id, or choose another output.uri"
            )

    # ------------------------------------------------------------------ totals and manifest
    def counts_on_disk(self, units: Sequence[int]) -> ManifestCounts:
        """Totals of units already written, read back from their problems shards."""
        totals = ManifestCounts()
        for unit in units:
            totals = totals + counts_of(self.read_table("problems", unit))
        return totals

    def write_manifest(
        self, spec: JobSpec, job_id: str, units_total: int, started: datetime
    ) -> Manifest:
        """Write ``manifest.json`` over every unit's shards: the dataset is then complete."""
        units = range(units_total)
        manifest = Manifest(
            job_id=job_id,
            spec=spec.model_dump(mode="json"),
            counts=self.counts_on_disk(units),
            shards=[self.shard_info(table, u) for table in TABLES for u in units],
            started_at=started,
            finished_at=datetime.now(UTC),
        )
        self.write_text(MANIFEST_FILE, manifest.model_dump_json(indent=2))
        return manifest


def counts_of(problems: pa.Table) -> ManifestCounts:
    """Totals of one problems table; the manifest and live progress both count this way."""
    skips: dict[str, int] = {}
    for reason in problems.column("skip_reason").to_pylist():
        if reason is not None:
            skips[reason] = skips.get(reason, 0) + 1
    n_codes = pc.list_value_length(problems.column("codes")).fill_null(0).to_pylist()
    n_tests = pc.list_value_length(problems.column("tests")).fill_null(0).to_pylist()
    return ManifestCounts(
        problems=problems.num_rows,
        candidates=sum(n_codes) + sum(n_tests),
        cells=sum(c * t for c, t in zip(n_codes, n_tests, strict=True)),
        pairs=int(pc.sum(problems.column("pairs_emitted")).as_py() or 0),
        fallback_cells=int(pc.sum(problems.column("fallback_cells")).as_py() or 0),
        skips=skips,
        refinement=_refinement_of(problems),
    )


def _refinement_of(problems: pa.Table) -> RefinementCounts | None:
    """The trajectories of a problems table counted; None when it holds none (Focused-DPO)."""
    trajectories = [t for row in problems.column("trajectories").to_pylist() for t in row]
    if not trajectories:
        return None
    rounds: Counter[str] = Counter()
    outcomes: Counter[str] = Counter()
    for trajectory in trajectories:
        executed = [v for v in trajectory["versions"] if v["statuses"]]
        rounds.update(str(v["round"]) for v in executed)
        passed = bool(executed) and all(s == "passed" for s in executed[-1]["statuses"])
        if not passed:
            outcomes["not_refined"] += 1
        else:
            outcomes["refined" if len(executed) > 1 else "passed_first"] += 1
    return RefinementCounts(
        trajectories=len(trajectories),
        versions_per_round=dict(sorted(rounds.items(), key=lambda item: int(item[0]))),
        **outcomes,
    )
