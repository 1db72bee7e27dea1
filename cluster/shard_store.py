"""Durable output of a build: shards, progress and the manifest on any pyarrow filesystem.

Every file appears atomically: it is written under a temporary name beside its final
name and moved into place (a rename on local disks; on object stores the final key only
appears once the upload is whole). A work unit is done once its `problems` shard exists;
that shard is moved last, so a build killed at any moment leaves either a whole unit or
nothing that counts, and a resumed build redoes exactly the units that are not done.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from pipeline.errors import StorageError
from pipeline.manifest import MANIFEST_FILE, ShardInfo, shard_name

logger = logging.getLogger(__name__)

_TEMP_PREFIX = ".tmp-"
TABLES = ("pairs", "problems")


def resolve_filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """A filesystem and a root path for a local path or any pyarrow filesystem URI."""
    if "://" not in uri:
        return pafs.LocalFileSystem(), str(Path(uri).expanduser().resolve())
    try:
        fs, root = pafs.FileSystem.from_uri(uri)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
        raise StorageError(f"cannot open output location {uri!r}: {exc}") from exc
    return fs, root.rstrip("/")


class ShardStore:
    """Reads and writes one build's output directory.

    Layout under the root::

        job.json                    the JobSpec (written by the service, optional)
        progress.json               BuildProgress, rewritten as units finish
        pairs/part-00000.parquet    one pairs shard per work unit
        problems/part-00000.parquet one problems shard per work unit
        manifest.json               written last: its presence means the dataset is complete
    """

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.fs, self.root = resolve_filesystem(uri)

    def path(self, relative: str) -> str:
        return f"{self.root}/{relative}"

    def _exists(self, relative: str) -> bool:
        info = self.fs.get_file_info(self.path(relative))
        return bool(info.type == pafs.FileType.File)

    def _move_into_place(self, write: object, relative: str) -> None:
        """Write through ``write(tmp_path)`` and move the result to ``relative``."""
        final = self.path(relative)
        parent, _, name = final.rpartition("/")
        temp = f"{parent}/{_TEMP_PREFIX}{uuid.uuid4().hex[:8]}-{name}"
        try:
            self.fs.create_dir(parent, recursive=True)
            write(temp)  # type: ignore[operator]
            self.fs.move(temp, final)
        except OSError as exc:
            raise StorageError(f"could not write {final}: {exc}") from exc

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
            self._move_into_place(
                lambda tmp, t=table: pq.write_table(t, tmp, filesystem=self.fs),
                shard_name(table_name, unit),
            )

    def remove_temporaries(self) -> int:
        """Delete files a killed build left under temporary names; returns how many."""
        removed = 0
        for table in TABLES:
            selector = pafs.FileSelector(self.path(table), allow_not_found=True)
            for info in self.fs.get_file_info(selector):
                if info.base_name.startswith(_TEMP_PREFIX):
                    self.fs.delete_file(info.path)
                    removed += 1
        return removed

    def has_output(self) -> bool:
        """Whether any shard or manifest is already there."""
        return self._exists(MANIFEST_FILE) or any(
            True for table in TABLES for _ in self._units(table)
        )

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

    # ------------------------------------------------------------------ json files
    def write_text(self, relative: str, text: str) -> None:
        def write(tmp: str) -> None:
            with self.fs.open_output_stream(tmp) as out:
                out.write(text.encode("utf-8"))

        self._move_into_place(write, relative)

    def read_text(self, relative: str) -> str | None:
        if not self._exists(relative):
            return None
        with self.fs.open_input_stream(self.path(relative)) as stream:
            return bytes(stream.read()).decode("utf-8")

    def read_json(self, relative: str) -> object | None:
        text = self.read_text(relative)
        return None if text is None else json.loads(text)
