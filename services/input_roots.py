"""Where a job may read: a local source must be a regular file under one of the input roots.

The service reads ``source.path`` on behalf of HTTP callers, with its own permissions. So a
source must resolve (symlinks followed) to a regular file under a configured input root
(``PAIRFORGE_INPUT_ROOTS``, default the service's working directory), and is refused even
there when it is hidden (a name starting with ``.``: ``.env``, ``.git``, ``.ssh``), is the
job database, or lies under ``/proc``, ``/sys`` or ``/dev``. Remote URIs are refused: the
service's cloud credentials are not the caller's.

A refusal says the same words whatever the file is: that it exists, is unreadable, is a
FIFO or holds a token is never revealed about a path the caller may not read. Only under a
root, where the caller may read anyway, does a message name a missing file.

A relative ``source.path`` is relative to the first input root, not to the service's
working directory (which a caller cannot know)::

    roots = resolve_input_roots(["data", "/srv/shared"], cwd=Path("/srv"))
    confine_source("problems.jsonl", roots)       # /srv/data/problems.jsonl
    confine_source("/srv/shared/he.jsonl", roots) # absolute: under any root
    confine_source("/etc/shadow", roots)          # JobSpecError
"""

from __future__ import annotations

import stat
from collections.abc import Collection, Sequence
from pathlib import Path

from pipeline.errors import JobSpecError
from services.local_paths import check_length, local_path_text, shown

SYSTEM_TREES = (Path("/proc"), Path("/sys"), Path("/dev"))
"""Never inputs, whatever the roots: their files describe the machine and its processes
(``/proc/self/environ`` holds the service's own API token)."""


def resolve_input_roots(roots: Sequence[str], *, cwd: Path) -> list[Path]:
    """The input roots as absolute, symlink-free paths (they need not exist)."""
    return [(cwd / Path(root).expanduser()).resolve() for root in roots]


def _problem(message: str) -> JobSpecError:
    return JobSpecError(message, [message])


def confine_source(path: str, roots: Sequence[Path], *, private: Collection[Path] = ()) -> Path:
    """The absolute, symlink-free path of a regular file under an input root.

    Args:
        path: ``source.path`` as the caller wrote it (a plain path or ``file://`` URI);
            a relative one is relative to the first root.
        roots: the resolved input roots (at least one).
        private: files under a root the service still never reads (its job database).

    Raises:
        JobSpecError: ``path`` is not such a file; the message tells nothing about what
            lies outside the roots.
    """
    shown_roots = ", ".join(str(r) for r in roots)
    where = f"local files under its input roots ({shown_roots})"
    text = local_path_text(path, "source.path", _problem, where)
    refused = _problem(
        f"source.path {shown(path)}: this service reads inputs only from regular files "
        f"under its input roots ({shown_roots}), never hidden files, special files or "
        "system directories; put the file under a root and give its path there"
    )
    try:
        resolved = (roots[0] / text).resolve()
    except (OSError, RuntimeError, ValueError):  # RuntimeError: a symlink loop
        raise refused from None
    root = next((r for r in roots if resolved.is_relative_to(r)), None)
    if (
        root is None
        or any(resolved.is_relative_to(tree) for tree in SYSTEM_TREES)
        or any(part.startswith(".") for part in resolved.relative_to(root).parts)
        or resolved in private
    ):
        raise refused
    check_length(resolved, "source.path", _problem)
    try:
        mode = resolved.stat().st_mode
    except FileNotFoundError:
        raise _problem(
            f"source.path: no file at {resolved} (a relative path is relative to the "
            f"first input root, {roots[0]})"
        ) from None
    except OSError:
        raise refused from None
    if not stat.S_ISREG(mode):
        raise refused
    return resolved
