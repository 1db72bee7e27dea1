"""Problem sources: read JSONL or Parquet rows from a local path or a pyarrow filesystem URI.

A malformed input fails the job *before* anything is written (the issue's "no partial
manifest"): the whole input (up to ``limit`` rows) is validated in one streaming pass and
every bad row is listed, with its line, in one ``InputFormatError``. Rows are validated as
``ReplayRow`` for the replay sampler and as ``Problem`` for live samplers, so a replay file
handed to a live sampler is refused with "unknown field" rather than silently ignored.

Ray Data rows carry the validated record as JSON text (``record``), not as a nested dict:
Arrow unifies the struct type of ``metadata`` across rows, adding keys and turning ints
into floats, which would alter a problem's metadata on its way through the pipeline.

    records = read_records(SourceConfig(path="problems.jsonl"), SamplerKind.OPENAI)
    ds = read_source(SourceConfig(path="s3://bucket/replay.parquet"), SamplerKind.REPLAY)
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any

import pyarrow.fs as pafs
import pyarrow.parquet as pq
from pydantic import ValidationError

from pipeline.config import SamplerKind, SourceConfig
from pipeline.errors import InputFormatError
from pipeline.records import Problem, ReplayRow

if TYPE_CHECKING:
    import ray.data

logger = logging.getLogger(__name__)

MAX_LISTED_ERRORS = 20
"""Bad rows listed in one error; a broken 100k-line file should not produce a 100k-line message."""

_PARQUET_BATCH_ROWS = 256
"""Rows decoded at a time from Parquet: replay rows hold up to ~200 completions each."""

_JSONL_SUFFIXES = (".jsonl", ".json", ".ndjson")
_PARQUET_SUFFIXES = (".parquet", ".pq")
_COMPRESSION_SUFFIXES = (".gz", ".bz2", ".zst", ".lz4")

SOURCE_COLUMNS = ("index", "line", "problem_id", "record")
"""Columns of a source row in Ray Data: 0-based position among the problems, 1-based line
(or Parquet row) in the file, the problem id, and the validated record as JSON text."""


@dataclass(frozen=True)
class SourceRecord:
    """One validated input row and where it came from."""

    index: int
    """0-based position among the problems read (work units slice by it)."""
    line: int
    """1-based line of a JSONL file, or 1-based row of a Parquet file."""
    record: Problem | ReplayRow
    """The row, as a ``ReplayRow`` (replay sampler) or a ``Problem`` (live samplers)."""

    def to_ray_row(self) -> dict[str, Any]:
        """The row as Ray Data carries it (see ``SOURCE_COLUMNS``)."""
        return {
            "index": self.index,
            "line": self.line,
            "problem_id": self.record.problem_id,
            "record": self.record.model_dump_json(),
        }


def _open_filesystem(path: str) -> tuple[pafs.FileSystem, str]:
    if "://" in path:
        try:
            return pafs.FileSystem.from_uri(path)  # type: ignore[no-any-return]
        except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, ... by scheme
            raise InputFormatError(
                f"cannot open the filesystem of this URI ({exc}); expected a local path or a "
                "pyarrow filesystem URI such as file:///data/p.jsonl or s3://bucket/p.parquet",
                source=path,
            ) from exc
    return pafs.LocalFileSystem(), str(Path(path).expanduser().resolve())


def _resolve_format(config: SourceConfig) -> str:
    if config.format != "auto":
        return config.format
    name = PurePath(config.path.split("?", 1)[0]).name.lower()
    for suffix in _COMPRESSION_SUFFIXES:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    if name.endswith(_JSONL_SUFFIXES):
        return "jsonl"
    if name.endswith(_PARQUET_SUFFIXES):
        return "parquet"
    raise InputFormatError(
        f"cannot tell the file format from its name; expected a name ending in one of "
        f"{', '.join(_JSONL_SUFFIXES + _PARQUET_SUFFIXES)}, or set `source.format` to "
        "`jsonl` or `parquet`",
        source=config.path,
    )


def _check_is_file(fs: pafs.FileSystem, fs_path: str, shown: str) -> None:
    try:
        info = fs.get_file_info(fs_path)
    except OSError as exc:
        raise InputFormatError(f"cannot read the input file: {exc}", source=shown) from exc
    if info.type == pafs.FileType.NotFound:
        raise InputFormatError(
            "input file not found; check `source.path` (a local path or a pyarrow URI)",
            source=shown,
        )
    if info.type != pafs.FileType.File:
        raise InputFormatError(
            "input is a directory, expected a single JSONL or Parquet file", source=shown
        )


def _iter_jsonl(fs: pafs.FileSystem, fs_path: str, shown: str) -> Iterator[tuple[int, Any]]:
    # Streamed line by line: the file may be far larger than memory.
    with fs.open_input_stream(fs_path, compression="detect") as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8")
        line_no = 0
        while True:
            line_no += 1
            try:
                line = text.readline()
            except UnicodeDecodeError as exc:
                raise InputFormatError(
                    f"not valid UTF-8: {exc}", source=shown, line=line_no
                ) from exc
            if not line:
                return
            if not line.strip():
                continue
            try:
                yield line_no, json.loads(line.strip())
            except json.JSONDecodeError as exc:
                yield line_no, _Malformed(f"not valid JSON: {exc.msg} at column {exc.colno}")


def _iter_parquet(fs: pafs.FileSystem, fs_path: str, shown: str) -> Iterator[tuple[int, Any]]:
    try:
        with fs.open_input_file(fs_path) as handle:
            parquet = pq.ParquetFile(handle)
            row_no = 0
            for batch in parquet.iter_batches(batch_size=_PARQUET_BATCH_ROWS):
                for row in batch.to_pylist():
                    row_no += 1
                    yield row_no, row
    except InputFormatError:
        raise
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise InputFormatError(f"not a readable Parquet file: {exc}", source=shown) from exc


@dataclass(frozen=True)
class _Malformed:
    """A line that could not be decoded; reported with the other bad rows."""

    reason: str


def _iter_decoded(config: SourceConfig) -> Iterator[tuple[int, Any]]:
    fmt = _resolve_format(config)
    fs, fs_path = _open_filesystem(config.path)
    _check_is_file(fs, fs_path, config.path)
    rows = (
        _iter_jsonl(fs, fs_path, config.path)
        if fmt == "jsonl"
        else _iter_parquet(fs, fs_path, config.path)
    )
    for count, (line, row) in enumerate(rows, start=1):
        yield line, row
        if config.limit is not None and count >= config.limit:
            return


def describe_validation_error(exc: ValidationError) -> str:
    """One line per invalid field of a row: ``code_completions: unknown field``."""
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error.get("loc", ()))
        if not where:  # a rule about the whole row: its message says what is wrong
            parts.append(str(error["msg"]).removeprefix("Value error, "))
        elif error["type"] == "extra_forbidden":
            parts.append(f"{where}: unknown field")
        elif error["type"] == "missing":
            parts.append(f"{where}: required field is missing")
        else:
            seen = repr(error.get("input"))
            seen = seen if len(seen) <= 60 else seen[:57] + "..."
            parts.append(f"{where}: {error['msg']} (got {seen})")
    return "; ".join(parts)


def _validate(row: Mapping[str, Any], kind: SamplerKind) -> Problem | ReplayRow:
    if kind is SamplerKind.REPLAY:
        return ReplayRow.model_validate(row)
    return Problem.model_validate(row)


def read_records(config: SourceConfig, kind: SamplerKind) -> list[SourceRecord]:
    """Read and validate the whole source (up to ``limit`` rows) for a sampler kind.

    Every row is validated before any is returned, so a job never starts on a broken input.

    Raises:
        InputFormatError: naming the file and, for each bad row (at most
            ``MAX_LISTED_ERRORS`` listed), its line and the offending fields; also for a
            duplicate ``problem_id``, a missing or unreadable file, and an empty input.
    """
    records: list[SourceRecord] = []
    first_line_of: dict[str, int] = {}
    errors: list[str] = []
    for line, row in _iter_decoded(config):
        if isinstance(row, _Malformed):
            errors.append(f"line {line}: {row.reason}")
            continue
        if not isinstance(row, dict):
            errors.append(f"line {line}: expected a JSON object, got {type(row).__name__}")
            continue
        try:
            record = _validate(row, kind)
        except ValidationError as exc:
            errors.append(f"line {line}: {describe_validation_error(exc)}")
            continue
        earlier = first_line_of.setdefault(record.problem_id, line)
        if earlier != line:
            errors.append(
                f"line {line}: duplicate problem_id {record.problem_id!r} "
                f"(first seen on line {earlier}); problem ids must be unique"
            )
            continue
        records.append(SourceRecord(index=len(records), line=line, record=record))
    if errors:
        listed = errors[:MAX_LISTED_ERRORS]
        more = len(errors) - len(listed)
        if more:
            listed.append(f"... and {more} more bad rows")
        what = "replay rows" if kind is SamplerKind.REPLAY else "problems"
        raise InputFormatError(
            f"{len(errors)} malformed input row(s); expected {what} as described in "
            "DESIGN.md §3.1-3.2:\n  " + "\n  ".join(listed),
            source=config.path,
        )
    if not records:
        raise InputFormatError("the input holds no rows", source=config.path)
    logger.info("read %d %s from %s", len(records), kind.value, config.path)
    return records


def read_source(config: SourceConfig, kind: SamplerKind) -> ray.data.Dataset:
    """The validated source as a Ray Dataset of ``SOURCE_COLUMNS`` rows, in input order.

    Validation happens here, in the driver, before any block is created (see
    ``read_records``); rows then live in Ray's object store, not in the driver.
    """
    import ray.data

    records = read_records(config, kind)
    return ray.data.from_items([r.to_ray_row() for r in records])
