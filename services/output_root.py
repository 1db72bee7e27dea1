"""Where a job may write: every output location must resolve under the output root.

The service runs builds on behalf of HTTP callers, so a JobSpec's ``output.uri`` is checked
before anything is written: ``..`` components, absolute paths elsewhere, non-local URIs,
``file://`` URIs with a host, control characters, names longer than the file system takes,
existing files in the way and symlinks that lead out of the root are all refused with
``OutputLocationError`` (HTTP 422).

A relative location is relative to the output root, not to the service's working
directory (which a caller cannot know)::

    root = Path("/srv/pairforge/runs")             # PAIRFORGE_OUTPUT_ROOT, resolved
    resolve_output_dir("quickstart", root)         # -> /srv/pairforge/runs/quickstart
    resolve_output_dir(f"{root}/nightly", root)    # absolute: must lie under the root
    resolve_output_dir("../etc", root)             # OutputLocationError

A resumed job's directory is checked again (``recheck_output_dir``): it must still be the
real directory it was, holding no symlink, since the build follows whatever it finds there.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from pipeline.errors import OutputLocationError
from services.local_paths import OUTPUT_HEADROOM_BYTES, check_length, local_path_text, shown

MAX_ENTRIES_CHECKED = 100_000
"""Entries of a job's output directory looked at for symlinks on resume; a build writes two
shards per work unit, so this covers 50,000 units."""


def resolve_root(root: str | Path, *, cwd: Path | None = None) -> Path:
    """The output root as an absolute, symlink-free path (it need not exist yet)."""
    base = cwd or Path.cwd()
    return (base / Path(root).expanduser()).resolve()


def resolve_output_dir(uri: str, root: Path) -> Path:
    """Resolve ``uri`` to an absolute directory under ``root`` (already resolved).

    A relative ``uri`` is taken relative to ``root``.

    Raises:
        OutputLocationError: the location is not a local path, contains ``..``, a control
            character or a host, is longer than the file system allows, has a file in the
            way, or resolves (following symlinks) outside ``root``.
    """
    where = f"local paths under its output root {root}"
    path_text = local_path_text(uri, "output.uri", OutputLocationError, where)
    if ".." in PurePosixPath(path_text).parts or ".." in Path(path_text).parts:
        raise OutputLocationError(
            f"output.uri {shown(uri)} contains `..`; give a path under the output root {root}"
        )
    try:
        resolved = (root / Path(path_text).expanduser()).resolve()
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop
        raise OutputLocationError(f"output.uri {shown(uri)} cannot be resolved: {exc}") from exc
    if resolved == root or not resolved.is_relative_to(root):
        raise OutputLocationError(
            f"output.uri {shown(uri)} resolves to {shown(str(resolved))}, which is not inside "
            f"the output root {root} (symlinks are followed); use a path such as "
            f"{root / 'my-job'}"
        )
    check_length(resolved, "output.uri", OutputLocationError, headroom=OUTPUT_HEADROOM_BYTES)
    _refuse_files_in_the_way(resolved, root, uri)
    return resolved


def _refuse_files_in_the_way(resolved: Path, root: Path, uri: str) -> None:
    for directory in (resolved, *resolved.parents):
        if directory == root:
            return
        try:
            is_dir = directory.is_dir()
        except OSError as exc:
            raise OutputLocationError(
                f"output.uri {shown(uri)}: cannot look at {directory}: {exc.strerror}"
            ) from exc
        if not is_dir and os.path.lexists(directory):
            raise OutputLocationError(
                f"output.uri {shown(uri)}: {directory} exists and is not a directory; "
                "choose another output location or remove the file"
            )


def recheck_output_dir(output_dir: str, root: Path) -> Path:
    """Check a stored job's output directory again, before a resume writes into it.

    Raises:
        OutputLocationError: the directory, or a directory above it, has become a symlink,
            it no longer lies under ``root``, or it holds a symlink (the build would follow
            it out of the root).
    """
    stored = Path(output_dir)
    try:
        resolved = stored.resolve()
    except (OSError, RuntimeError, ValueError) as exc:
        raise OutputLocationError(
            f"output directory {shown(output_dir)} cannot be resolved: {exc}"
        ) from exc
    if resolved != stored or not resolved.is_relative_to(root) or resolved == root:
        raise OutputLocationError(
            f"output directory {stored} now resolves to {resolved}: it or a directory above "
            "it was replaced by a symlink since the job was submitted, so resuming would "
            "write there; remove the symlink, or submit a new job"
        )
    planted = _first_symlink_below(stored)
    if planted is not None:
        raise OutputLocationError(
            f"output directory {stored} holds a symlink, {planted}, planted since the job was "
            "submitted; the build would follow it, so it does not resume until the symlink "
            "is removed"
        )
    return resolved


def _first_symlink_below(directory: Path) -> Path | None:
    """The first symlink found below ``directory`` (none when it does not exist yet)."""
    seen = 0
    pending = [directory]
    while pending:
        try:
            entries = list(os.scandir(pending.pop()))
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise OutputLocationError(f"cannot look into {directory}: {exc}") from exc
        for entry in entries:
            seen += 1
            if entry.is_symlink():
                return Path(entry.path)
            if entry.is_dir(follow_symlinks=False):
                pending.append(Path(entry.path))
        if seen > MAX_ENTRIES_CHECKED:
            raise OutputLocationError(
                f"output directory {directory} holds more than {MAX_ENTRIES_CHECKED} "
                "entries; it cannot be checked for symlinks before a resume"
            )
    return None


def default_output_dir(root: Path, job_id: str) -> Path:
    """Where a job that names no output goes: ``<root>/<job id>``."""
    return root / job_id
