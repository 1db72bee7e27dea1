"""Where a job may write: every output location must resolve under the output root.

The service runs builds on behalf of HTTP callers, so a JobSpec's ``output.uri`` is checked
before anything is written: ``..`` components, absolute paths elsewhere, non-local URIs and
symlinks that lead out of the root are all refused with ``OutputLocationError`` (HTTP 422).

Relative locations resolve against the service's working directory, as they do for
``pairforge build``, so one job file means the same directory either way::

    root = Path("runs")            # PAIRFORGE_OUTPUT_ROOT
    resolve_output_dir("runs/quickstart", root)    # -> /srv/pairforge/runs/quickstart
    resolve_output_dir("runs/../etc", root)        # OutputLocationError
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from pipeline.errors import OutputLocationError


def resolve_root(root: str | Path, *, cwd: Path | None = None) -> Path:
    """The output root as an absolute, symlink-free path (it need not exist yet)."""
    base = cwd or Path.cwd()
    return (base / Path(root).expanduser()).resolve()


def resolve_output_dir(uri: str, root: Path, *, cwd: Path | None = None) -> Path:
    """Resolve ``uri`` to an absolute directory under ``root`` (already resolved).

    Raises:
        OutputLocationError: the location is not a local path, contains ``..`` or a NUL
            byte, or resolves (following symlinks) outside ``root``.
    """
    shown = repr(uri)
    if "\x00" in uri:
        raise OutputLocationError(f"output.uri {shown} contains a NUL byte")
    path_text = uri
    scheme = urlsplit(uri).scheme
    if scheme == "file":
        path_text = urlsplit(uri).path
    elif len(scheme) > 1:  # one letter is a Windows drive, not a scheme
        raise OutputLocationError(
            f"output.uri {shown} uses the `{scheme}://` scheme; this service only writes "
            f"local paths under its output root {root}"
        )
    if not path_text.strip():
        raise OutputLocationError(f"output.uri {shown} names no path")
    if ".." in PurePosixPath(path_text).parts or ".." in Path(path_text).parts:
        raise OutputLocationError(
            f"output.uri {shown} contains `..`; give a path under the output root {root}"
        )
    base = cwd or Path.cwd()
    try:
        resolved = (base / Path(path_text).expanduser()).resolve()
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop
        raise OutputLocationError(f"output.uri {shown} cannot be resolved: {exc}") from exc
    if resolved == root or not resolved.is_relative_to(root):
        raise OutputLocationError(
            f"output.uri {shown} resolves to {resolved}, which is not inside the output "
            f"root {root} (symlinks are followed); use a path such as "
            f"{root / 'my-job'}"
        )
    return resolved


def default_output_dir(root: Path, job_id: str) -> Path:
    """Where a job that names no output goes: ``<root>/<job id>``."""
    return root / job_id
