"""Problem sources: JSONL or Parquet rows from a local path or a pyarrow filesystem URI.

Two streaming passes, both in bounded memory whatever the input's size:

    n = scan_source(spec.source, spec.sampler.kind)            # validate everything first
    for record in iter_records(spec.source, spec.sampler.kind):  # then read it per work unit
        ...

``scan_source`` validates the whole input (up to ``limit`` rows) before a build writes
anything, and lists every bad row with its line in one ``InputFormatError``: a malformed
line, an undecodable byte, a row longer than ``max_row_bytes``, an unknown or missing field,
a duplicate ``problem_id``. Rows are validated as ``ReplayRow`` for the replay sampler and
as ``Problem`` for live samplers, so a replay file handed to a live sampler is refused
with "unknown field" rather than silently ignored. ``iter_records`` then yields the rows
one at a time, so the driver holds one window of problems, never the whole input.
"""

from __future__ import annotations

import array
import json
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

import numpy as np
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from pydantic import ValidationError

from cluster.storage import resolve_uri
from pipeline.config import SamplerKind, SourceConfig
from pipeline.errors import InputFormatError, StorageError
from pipeline.job_limits import JobLimits
from pipeline.records import Problem, ReplayRow
from pipeline.validation_errors import describe_validation_errors
from pipeline.verified_tests import ProblemTestsError, problem_tests

logger = logging.getLogger(__name__)

MAX_LISTED_ERRORS = 20
"""Bad rows listed in one error; a broken 100k-line file should not produce a 100k-line message."""

DEFAULT_MAX_ROW_BYTES = JobLimits().max_row_bytes
"""Largest input row unless the operator says otherwise (``PAIRFORGE_MAX_ROW_BYTES``)."""

_READ_CHUNK_BYTES = 1 << 20
_PARQUET_BATCH_ROWS = 16
"""Rows read at a time from Parquet; each is measured in Arrow before it becomes Python."""

_JSONL_SUFFIXES = (".jsonl", ".json", ".ndjson")
_PARQUET_SUFFIXES = (".parquet", ".pq")
_COMPRESSION_SUFFIXES = (".gz", ".bz2", ".zst", ".lz4")


@dataclass(frozen=True)
class SourceRecord:
    """One validated input row and where it came from."""

    index: int
    """0-based position among the problems read (work units slice by it)."""
    line: int
    """1-based line of a JSONL file, or 1-based row of a Parquet file."""
    record: Problem | ReplayRow
    """The row, as a ``ReplayRow`` (replay sampler) or a ``Problem`` (live samplers)."""


@dataclass(frozen=True)
class _Bad:
    """A row that could not be decoded; reported with the other bad rows."""

    reason: str


def _resolve_format(config: SourceConfig) -> str:
    if config.format != "auto":
        return config.format
    name = PurePath(config.path.split("?", 1)[0]).name.lower()
    for suffix in _COMPRESSION_SUFFIXES:
        name = name.removesuffix(suffix)
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


def _open_file(config: SourceConfig) -> tuple[pafs.FileSystem, str]:
    try:
        fs, path = resolve_uri(config.path)
        info = fs.get_file_info(path)
    except (StorageError, OSError) as exc:
        raise InputFormatError(f"cannot read the input file: {exc}", source=config.path) from exc
    if info.type == pafs.FileType.NotFound:
        raise InputFormatError(
            "input file not found; check `source.path` (a local path or a pyarrow URI)",
            source=config.path,
        )
    if info.type != pafs.FileType.File:
        raise InputFormatError(
            "input is not a regular file; expected a single JSONL or Parquet file",
            source=config.path,
        )
    return fs, path


def _jsonl_lines(stream: Any, max_row_bytes: int) -> Iterator[tuple[int, bytes | None]]:
    """``(line number, line)`` for every line; ``None`` for a line over ``max_row_bytes``.

    Reads fixed-size chunks, so a file without newlines costs ``max_row_bytes`` of memory,
    not its size; lines are numbered before decoding, so a bad byte is blamed on its line.
    """
    line_no = 0
    pending = bytearray()
    too_long = False
    while chunk := stream.read(_READ_CHUNK_BYTES):
        start = 0
        while (end := chunk.find(b"\n", start)) >= 0:
            line_no += 1
            piece = chunk[start:end]
            if too_long or len(pending) + len(piece) > max_row_bytes:
                yield line_no, None
            else:
                yield line_no, bytes(pending) + piece if pending else piece
            pending.clear()
            too_long = False
            start = end + 1
        if not too_long:
            pending += chunk[start:]
            if len(pending) > max_row_bytes:
                too_long = True
                pending.clear()
    if pending or too_long:
        yield line_no + 1, None if too_long else bytes(pending)


def _iter_jsonl(fs: pafs.FileSystem, path: str, max_row_bytes: int) -> Iterator[tuple[int, object]]:
    with fs.open_input_stream(path, compression="detect") as stream:
        for line_no, raw in _jsonl_lines(stream, max_row_bytes):
            if raw is None:
                yield line_no, _Bad(f"row longer than the limit of {max_row_bytes} bytes")
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield line_no, _Bad(f"not valid UTF-8 (byte {exc.start + 1} of the line)")
                continue
            if not text.strip():
                continue
            try:
                yield line_no, json.loads(text)
            except json.JSONDecodeError as exc:
                yield line_no, _Bad(f"not valid JSON: {exc.msg} at column {exc.colno}")


def _iter_parquet(
    fs: pafs.FileSystem, path: str, shown: str, max_row_bytes: int
) -> Iterator[tuple[int, object]]:
    try:
        with fs.open_input_file(path) as handle:
            row_no = 0
            for batch in pq.ParquetFile(handle).iter_batches(batch_size=_PARQUET_BATCH_ROWS):
                for i in range(batch.num_rows):
                    row_no += 1
                    # Arrow's size bounds the Python objects before they exist; the JSON
                    # size then measures the row exactly as a JSONL line would be.
                    one = batch.slice(i, 1)
                    row = one.to_pylist()[0] if one.nbytes <= max_row_bytes else None
                    if row is None or _json_bytes(row) > max_row_bytes:
                        yield row_no, _Bad(f"row longer than the limit of {max_row_bytes} bytes")
                    else:
                        yield row_no, row
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise InputFormatError(f"not a readable Parquet file: {exc}", source=shown) from exc


def _json_bytes(row: object) -> int:
    return len(json.dumps(row, default=str, ensure_ascii=False, separators=(",", ":")).encode())


def _iter_rows(config: SourceConfig, max_row_bytes: int) -> Iterator[tuple[int, object]]:
    """``(line, decoded row or _Bad)`` for each row, up to ``config.limit`` rows."""
    fmt = _resolve_format(config)
    fs, path = _open_file(config)
    rows = (
        _iter_jsonl(fs, path, max_row_bytes)
        if fmt == "jsonl"
        else _iter_parquet(fs, path, config.path, max_row_bytes)
    )
    for count, item in enumerate(rows, start=1):
        yield item
        if config.limit is not None and count >= config.limit:
            return


def _validate(row: object, kind: SamplerKind) -> Problem | ReplayRow | str:
    """The validated record, or one line saying what is wrong with the row."""
    if isinstance(row, _Bad):
        return row.reason
    if not isinstance(row, Mapping):
        return f"expected a JSON object, got {type(row).__name__}"
    try:
        record = (ReplayRow if kind is SamplerKind.REPLAY else Problem).model_validate(row)
    except ValidationError as exc:
        return "; ".join(describe_validation_errors(exc))
    try:
        problem_tests(record)  # a problem's own tests must become runnable tests up front
    except ProblemTestsError as exc:
        return str(exc)
    return record


def _bad_rows_error(
    config: SourceConfig, kind: SamplerKind, errors: list[str], total: int
) -> InputFormatError:
    listed = errors[:MAX_LISTED_ERRORS]
    if total > len(listed):
        listed.append(f"... and {total - len(listed)} more bad rows")
    what = "replay rows" if kind is SamplerKind.REPLAY else "problems"
    return InputFormatError(
        f"{total} malformed input row(s); expected {what} as described in DESIGN.md "
        "§3.1-3.2:\n  " + "\n  ".join(listed),
        source=config.path,
    )


def scan_source(
    config: SourceConfig, kind: SamplerKind, *, max_row_bytes: int = DEFAULT_MAX_ROW_BYTES
) -> int:
    """Validate the whole source (up to ``limit`` rows) and return how many problems it holds.

    Memory stays bounded: rows are decoded one at a time and problem ids are remembered as
    64-bit hashes; only when two hashes collide does a second pass name the duplicates.

    Raises:
        InputFormatError: naming the file and, for each bad row (at most
            ``MAX_LISTED_ERRORS`` listed), its line and what is wrong; also for a missing,
            unreadable or empty input.
    """
    errors: list[str] = []
    bad = 0
    id_hashes = array.array("q")
    for line, row in _iter_rows(config, max_row_bytes):
        record = _validate(row, kind)
        if isinstance(record, str):
            bad += 1
            if len(errors) < MAX_LISTED_ERRORS:
                errors.append(f"line {line}: {record}")
            continue
        id_hashes.append(hash(record.problem_id))
    duplicated = _duplicated(id_hashes)
    if duplicated:
        duplicates = _duplicate_lines(config, kind, duplicated, max_row_bytes)
        bad += len(duplicates)
        errors = sorted(errors + duplicates, key=_line_of)[:MAX_LISTED_ERRORS]
    if bad:
        raise _bad_rows_error(config, kind, errors, bad)
    if not id_hashes:
        raise InputFormatError("the input holds no rows", source=config.path)
    logger.info("validated %d %s in %s", len(id_hashes), kind.value, config.path)
    return len(id_hashes)


def _duplicated(hashes: array.array[int]) -> set[int]:
    values = np.frombuffer(hashes, dtype=np.int64) if len(hashes) else np.empty(0, np.int64)
    ordered = np.sort(values)
    return set(ordered[1:][ordered[1:] == ordered[:-1]].tolist())


def _duplicate_lines(
    config: SourceConfig, kind: SamplerKind, hashes: set[int], max_row_bytes: int
) -> list[str]:
    first_line_of: dict[str, int] = {}
    found = []
    for line, row in _iter_rows(config, max_row_bytes):
        record = _validate(row, kind)
        if isinstance(record, str) or hash(record.problem_id) not in hashes:
            continue
        earlier = first_line_of.setdefault(record.problem_id, line)
        if earlier != line:
            found.append(
                f"line {line}: duplicate problem_id {record.problem_id!r} "
                f"(first seen on line {earlier}); problem ids must be unique"
            )
    return found


def _line_of(message: str) -> int:
    return int(message.split(":", 1)[0].removeprefix("line "))


def iter_records(
    config: SourceConfig, kind: SamplerKind, *, max_row_bytes: int = DEFAULT_MAX_ROW_BYTES
) -> Iterator[SourceRecord]:
    """The validated rows, one at a time, in input order (call ``scan_source`` first).

    Raises:
        InputFormatError: a row no longer validates (the file changed after the scan).
    """
    for index, (line, row) in enumerate(_iter_rows(config, max_row_bytes)):
        record = _validate(row, kind)
        if isinstance(record, str):
            raise InputFormatError(
                f"{record}; the input changed after it was validated, run the build again",
                source=config.path,
                line=line,
            )
        yield SourceRecord(index=index, line=line, record=record)
