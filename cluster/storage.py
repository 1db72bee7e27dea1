"""Files on any pyarrow filesystem: how a path or URI is opened, and how a file appears atomically.

Everything pairforge reads or writes (inputs, shards, progress, manifests, the service's
``job.json``) goes through these few functions, so a local path, ``file://``, ``s3://`` or
``gs://`` behave alike everywhere::

    fs, path = resolve_uri("s3://bucket/runs/demo")
    write_atomically(fs, f"{path}/manifest.json", lambda tmp: ...)
    text = read_text(fs, f"{path}/progress.json")      # None when absent

Atomic: a file is written under a temporary name beside its final name and then moved
into place (a rename on local disks; on object stores the final key appears only once the
upload is whole), so a reader never sees half a file.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.fs as pafs

from pipeline.errors import StorageError

TEMP_PREFIX = ".tmp-"
"""Name prefix of files being written; a killed writer leaves them, a resumed build removes them."""


def resolve_uri(uri: str) -> tuple[pafs.FileSystem, str]:
    """A filesystem and a path on it for a local path or any pyarrow filesystem URI.

    Raises:
        StorageError: the URI names no filesystem pyarrow can open, or a ``file://`` URI
            names a host (pyarrow would silently drop it and use the local disk).
    """
    if "://" not in uri:
        return pafs.LocalFileSystem(), str(Path(uri).expanduser().resolve())
    parts = urlsplit(uri)
    if parts.scheme == "file" and parts.netloc:
        if parts.netloc != "localhost":
            raise StorageError(
                f"cannot open {uri!r}: a file:// URI must not name a host (got "
                f"{parts.netloc!r}); use file:///absolute/path for this machine's disk"
            )
        # RFC 8089: file://localhost/p is file:///p, which is what pyarrow understands.
        uri = parts._replace(netloc="").geturl()
    try:
        fs, path = pafs.FileSystem.from_uri(uri)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError, ValueError) as exc:
        raise StorageError(
            f"cannot open {uri!r} ({exc}); expected a local path or a pyarrow filesystem URI "
            "such as file:///data/x, s3://bucket/x or gs://bucket/x"
        ) from exc
    return fs, path.rstrip("/") or "/"


def write_atomically(fs: pafs.FileSystem, path: str, write: Callable[[str], None]) -> None:
    """Write a file through ``write(temporary_path)`` and move it to ``path`` when whole.

    Raises:
        StorageError: the directory could not be made or the write or move failed.
    """
    parent, _, name = path.rpartition("/")
    temp = f"{parent}/{TEMP_PREFIX}{uuid.uuid4().hex[:8]}-{name}"
    try:
        fs.create_dir(parent, recursive=True)
        write(temp)
        fs.move(temp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):  # it may never have been created
            fs.delete_file(temp)
        raise StorageError(f"could not write {path}: {exc}") from exc


def write_text(fs: pafs.FileSystem, path: str, text: str) -> None:
    """Write UTF-8 text atomically (see ``write_atomically``)."""

    def write(temp: str) -> None:
        with fs.open_output_stream(temp) as out:
            out.write(text.encode("utf-8"))

    write_atomically(fs, path, write)


def read_text(fs: pafs.FileSystem, path: str) -> str | None:
    """A UTF-8 file's text, or None when there is no such file.

    Raises:
        StorageError: the file exists but could not be read.
    """
    try:
        if fs.get_file_info(path).type != pafs.FileType.File:
            return None
        with fs.open_input_stream(path) as stream:
            return bytes(stream.read()).decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise StorageError(f"could not read {path}: {exc}") from exc
