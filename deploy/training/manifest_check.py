"""Trust a dataset before training on it: the manifest, then every shard against it.

A manifest is accepted only when it parses as ``pipeline.manifest.Manifest``, comes from a
schema version this job reads, lists a complete dataset (every work unit in both tables,
the pairs total equal to the pairs shards' rows), and every shard on storage has the
listed size, SHA-256 and row count and is readable Parquet. The first thing that fails is
reported as a ``ManifestError`` naming the shard. The manifest may be a local path or any
URI ``pyarrow.fs`` resolves (``file://``, ``s3://``, ``gs://``, ``hdfs://``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pyarrow.fs as pafs
import pyarrow.parquet as pq
from pydantic import ValidationError

from deploy.training.errors import ManifestError
from pipeline.manifest import MANIFEST_FILE, Manifest, ShardInfo
from pipeline.records import SCHEMA_VERSION

PAIRS_COLUMNS = ("problem_id", "method", "prompt", "chosen", "rejected")
"""Columns a pairs shard must have for any method; the method's own span columns are
checked when the method is resolved."""

_READ_CHUNK = 1 << 20


@dataclass(frozen=True)
class VerifiedDataset:
    """A manifest whose shards all checked out."""

    manifest: Manifest
    manifest_sha256: str
    """SHA-256 of the ``manifest.json`` bytes: names exactly this dataset."""
    filesystem: pafs.FileSystem
    root: str
    """The output root on ``filesystem`` (the manifest's directory)."""
    pairs_paths: list[str]
    """Paths of the ``pairs`` shards on ``filesystem``, in unit order."""
    pairs_uris: list[str]
    """The same shards as paths or URIs a ``datasets`` loader opens."""
    pairs_rows: list[int]
    """Rows of each of those shards (a unit whose problems gave no pair has 0)."""


def _resolve(location: str) -> tuple[pafs.FileSystem, str, str]:
    """Filesystem, path of manifest.json on it, and the URI prefix of its directory."""
    if "://" in location:
        try:
            fs, path = pafs.FileSystem.from_uri(location)
        except (ValueError, OSError) as exc:
            raise ManifestError(f"cannot open the manifest URI {location!r}: {exc}") from exc
        scheme = location.split("://", 1)[0]
    else:
        fs, path, scheme = pafs.LocalFileSystem(), str(Path(location).expanduser().resolve()), ""
    if fs.get_file_info(path).type == pafs.FileType.Directory:
        path = f"{path.rstrip('/')}/{MANIFEST_FILE}"
    prefix = "" if scheme in ("", "file") else f"{scheme}://"
    return fs, path, prefix


def _read_bytes(fs: pafs.FileSystem, path: str, what: str) -> bytes:
    try:
        with fs.open_input_stream(path) as stream:
            data: bytes = stream.read()
            return data
    except FileNotFoundError as exc:
        raise ManifestError(f"{what} {path} does not exist") from exc
    except OSError as exc:
        raise ManifestError(f"cannot read {what} {path}: {exc}") from exc


def _newer_than_ours(version: object) -> bool:
    try:
        return int(str(version)) > int(SCHEMA_VERSION)
    except ValueError as exc:
        raise ManifestError(
            f"the manifest's schema_version must be an integer string like {SCHEMA_VERSION!r}, "
            f"got {version!r}"
        ) from exc


def parse_manifest(data: bytes, where: str) -> Manifest:
    """The manifest in ``data``, refusing a newer schema before validating its fields.

    Raises:
        ManifestError: not JSON, from a newer schema version, or not a valid manifest.
    """
    try:
        raw = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ManifestError(f"the manifest {where} is not JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise ManifestError(f"the manifest {where} must be a JSON object, got {type(raw).__name__}")
    # A newer writer may add fields this reader's model forbids; say why, not which field.
    version = raw.get("schema_version", SCHEMA_VERSION)
    if _newer_than_ours(version):
        raise ManifestError(
            f"the manifest {where} has schema_version {version!r}, newer than the "
            f"{SCHEMA_VERSION!r} this training job reads; update pairforge"
        )
    try:
        return Manifest.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(manifest)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ManifestError(f"the manifest {where} is invalid: {problems}") from exc


def check_complete(manifest: Manifest, where: str) -> None:
    """Refuse a manifest that does not describe a whole dataset.

    Raises:
        ManifestError: a table misses a work unit, the two tables list different units,
            or the pairs shards' rows do not add up to the pairs count.
    """
    pairs = manifest.shards_of("pairs")
    problems = manifest.shards_of("problems")
    if not pairs:
        raise ManifestError(f"the manifest {where} lists no pairs shards")
    for table, shards in (("pairs", pairs), ("problems", problems)):
        units = [s.unit for s in shards]
        missing = sorted(set(range(max(units, default=-1) + 1)) - set(units))
        if missing:
            raise ManifestError(
                f"the manifest {where} is incomplete: no {table} shard for work unit(s) {missing}"
            )
    pair_units = {s.unit for s in pairs}
    problem_units = {s.unit for s in problems}
    if pair_units != problem_units:
        raise ManifestError(
            f"the manifest {where} is incomplete: pairs shards cover units {sorted(pair_units)} "
            f"but problems shards cover {sorted(problem_units)}"
        )
    rows = sum(s.rows for s in pairs)
    if rows != manifest.counts.pairs:
        raise ManifestError(
            f"the manifest {where} is inconsistent: its pairs shards list {rows} rows but "
            f"counts.pairs is {manifest.counts.pairs}"
        )


def check_shard(fs: pafs.FileSystem, root: str, shard: ShardInfo) -> str:
    """Verify one shard's size, SHA-256, Parquet footer, row count (and pairs columns).

    Returns:
        The shard's path on ``fs``.

    Raises:
        ManifestError: naming the shard and what differs.
    """
    path = f"{root}/{shard.path}"
    digest = hashlib.sha256()
    size = 0
    try:
        with fs.open_input_stream(path) as stream:
            while chunk := stream.read(_READ_CHUNK):
                digest.update(chunk)
                size += len(chunk)
    except FileNotFoundError as exc:
        raise ManifestError(f"shard {shard.path} is listed in the manifest but missing") from exc
    except OSError as exc:
        raise ManifestError(f"cannot read shard {shard.path}: {exc}") from exc
    if size != shard.bytes:
        raise ManifestError(
            f"shard {shard.path} has {size} bytes, the manifest lists {shard.bytes}: "
            f"it changed after the build"
        )
    if digest.hexdigest() != shard.sha256:
        raise ManifestError(
            f"shard {shard.path} does not match its checksum: sha256 {digest.hexdigest()}, "
            f"the manifest lists {shard.sha256}"
        )
    try:
        with fs.open_input_file(path) as handle:
            meta = pq.ParquetFile(handle).metadata
            rows, names = meta.num_rows, set(meta.schema.names)
    except Exception as exc:  # pyarrow raises several types for a damaged footer
        raise ManifestError(f"shard {shard.path} is not readable Parquet: {exc}") from exc
    if rows != shard.rows:
        raise ManifestError(
            f"shard {shard.path} holds {rows} rows, the manifest lists {shard.rows}"
        )
    if shard.table == "pairs":
        absent = [c for c in PAIRS_COLUMNS if c not in names]
        if absent:
            raise ManifestError(f"shard {shard.path} lacks the pairs column(s) {absent}")
    return path


def verify_dataset(location: str) -> VerifiedDataset:
    """Read a manifest (path, directory or URI) and verify every shard it lists.

    Raises:
        ManifestError: the first problem found, naming the manifest or the shard.
    """
    fs, path, prefix = _resolve(location)
    data = _read_bytes(fs, path, "the manifest")
    manifest = parse_manifest(data, path)
    check_complete(manifest, path)
    root = str(PurePosixPath(path).parent)
    pairs_paths: list[tuple[int, str, int]] = []
    for shard in manifest.shards:
        checked = check_shard(fs, root, shard)
        if shard.table == "pairs":
            pairs_paths.append((shard.unit, checked, shard.rows))
    pairs_paths.sort()
    ordered = [p for _, p, _ in pairs_paths]
    return VerifiedDataset(
        manifest=manifest,
        manifest_sha256=hashlib.sha256(data).hexdigest(),
        filesystem=fs,
        root=root,
        pairs_paths=ordered,
        pairs_uris=[f"{prefix}{p}" for p in ordered],
        pairs_rows=[rows for _, _, rows in pairs_paths],
    )
