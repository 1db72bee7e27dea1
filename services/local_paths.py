"""A caller's location string as a local path, checked before anything is opened.

Inputs (``source.path``) and outputs (``output.uri``) of a submitted JobSpec share these
checks: no NUL or control characters (a newline in a directory name breaks every log line
and listing that shows it), ``file://`` URIs only without a host, query or fragment (pyarrow
would silently drop them and use the local disk), percent-escapes decoded as pyarrow
decodes them (so ``%2e%2e`` is seen as the ``..`` the build would follow), and no name or
path longer than the file system takes.

    local_path_text("file:///srv/runs/a%20b", "output.uri", OutputLocationError, where)
    # -> "/srv/runs/a b"
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote, urlsplit

from pipeline.errors import ConfigError

Refuse = Callable[[str], ConfigError]
"""Builds the error a refusal raises, from its message."""

_CONTROL_CATEGORIES = frozenset({"Cc", "Zl", "Zp"})
"""Control characters, and the Unicode line and paragraph separators that act as newlines."""

SHOWN_CHARS = 120
"""Longest rendering of a caller's location in a message; a 5000-character one is cut."""

OUTPUT_HEADROOM_BYTES = 256
"""Bytes of path an output directory leaves for the files the build writes inside it."""


def shown(text: str) -> str:
    """``text`` as a message shows it: quoted, escaped, cut to ``SHOWN_CHARS``."""
    quoted = repr(text)
    return quoted if len(quoted) <= SHOWN_CHARS else quoted[: SHOWN_CHARS - 4] + "...'"


def local_path_text(uri: str, field: str, refuse: Refuse, where: str) -> str:
    """The local path a location string names, or a refusal saying why it names none.

    Args:
        uri: a plain path or a ``file://`` URI, as the caller wrote it.
        field: the JobSpec field, for messages (``output.uri``).
        refuse: builds the error to raise from a message.
        where: what the service accepts instead, for messages ("local paths under ...").
    """
    for char in uri:
        if char == "\x00" or unicodedata.category(char) in _CONTROL_CATEGORIES:
            name = "NUL" if char == "\x00" else unicodedata.name(char, f"U+{ord(char):04X}")
            raise refuse(
                f"{field} {shown(uri)} contains a control character ({name}); names of "
                "directories and files must be printable"
            )
    parts = urlsplit(uri)
    path_text = uri
    if parts.scheme == "file":
        if parts.netloc:
            raise refuse(
                f"{field} {shown(uri)} has a host part ({parts.netloc!r}); this service "
                f"uses {where}: write file:///absolute/path or a plain path"
            )
        if parts.query or parts.fragment:
            raise refuse(
                f"{field} {shown(uri)} has a query or fragment (`?` or `#`), which would be "
                "dropped; write a plain path"
            )
        path_text = unquote(parts.path)
        if "\x00" in path_text:
            raise refuse(f"{field} {shown(uri)} decodes to a path with a NUL byte")
    elif len(parts.scheme) > 1:  # one letter is a Windows drive, not a scheme
        raise refuse(
            f"{field} {shown(uri)} uses the `{parts.scheme}://` scheme; this service uses {where}"
        )
    if not path_text.strip():
        raise refuse(f"{field} {shown(uri)} names no path")
    return path_text


def _limit(path: Path, name: str, default: int) -> int:
    # Ask the nearest existing directory: the limits belong to its file system.
    for candidate in (path, *path.parents):
        try:
            return os.pathconf(candidate, name)
        except (OSError, ValueError):
            continue
    return default


def check_length(path: Path, field: str, refuse: Refuse, *, headroom: int = 0) -> None:
    """Refuse ``path`` (absolute) if a name or the whole is longer than its file system takes.

    Args:
        headroom: bytes to leave for names the service or the build append below ``path``.
    """
    name_max = _limit(path, "PC_NAME_MAX", 255)
    path_max = _limit(path, "PC_PATH_MAX", 4096) - headroom
    for part in path.parts:
        size = len(os.fsencode(part))
        if size > name_max:
            raise refuse(
                f"{field}: the name {shown(part)} is {size} bytes, longer than this file "
                f"system allows ({name_max}); use a shorter name"
            )
    size = len(os.fsencode(str(path)))
    if size > path_max:
        raise refuse(
            f"{field}: the path {shown(str(path))} is {size} bytes, longer than this file "
            f"system allows here ({path_max}, leaving room for the files written inside); "
            "use a shorter path"
        )
