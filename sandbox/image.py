"""Builds the sandbox image: from ``deploy/sandbox/Dockerfile``, or offline on a local base.

Drives the ``docker`` command line (and ``debootstrap``) through subprocesses, so it needs
no SDK. The image is labelled with a digest of the runner and the Dockerfile: an image with
the current digest is reused as is, and the offline base (a Debian rootfs made with
debootstrap and loaded with ``docker import``) is cached under its own tag, so building
twice costs a second or two.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import subprocess
import tempfile
from enum import Enum
from pathlib import Path
from typing import IO

from sandbox.errors import ImageBuildError, SandboxUnavailable

logger = logging.getLogger(__name__)

OFFLINE_BASE_TAG = "pairforge-sandbox-base:bookworm"
DEBIAN_SUITE = "bookworm"
RUNNER_PATH = Path(__file__).resolve().with_name("runner.py")
DOCKERFILE_PATH = Path(__file__).resolve().parents[1] / "deploy" / "sandbox" / "Dockerfile"
DIGEST_LABEL = "pairforge.runner-sha"
# Parts of the rootfs nothing in the sandbox reads (about half its size).
_ROOTFS_TRIM = ("usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale",
                "var/cache/apt", "var/lib/apt/lists")  # fmt: skip


class BuildMethod(str, Enum):
    """How ``build_image`` gets the image."""

    AUTO = "auto"
    """Reuse an up-to-date image; else the Dockerfile; else, if its base cannot be pulled,
    the offline path."""
    DOCKERFILE = "dockerfile"
    """``docker build`` on the Dockerfile's default base (python:3.11-slim): needs a registry."""
    OFFLINE = "offline"
    """The same Dockerfile on a local Debian base made with debootstrap: needs only a
    Debian package mirror (and root, for debootstrap)."""


def source_digest() -> str:
    """Digest of what goes into the image (runner and Dockerfile), for the image label."""
    digest = hashlib.sha256()
    for path in (RUNNER_PATH, DOCKERFILE_PATH):
        digest.update(_read_source(path))
    return digest.hexdigest()[:16]


def build_image(tag: str, method: BuildMethod = BuildMethod.AUTO) -> str:
    """Make sure image ``tag`` exists and holds this checkout's runner; say what was done.

    Raises:
        SandboxUnavailable: the docker command or engine is missing.
        ImageBuildError: every applicable build path failed (the message has their output).
    """
    digest = source_digest()
    if method is BuildMethod.AUTO and _image_label(tag, DIGEST_LABEL) == digest:
        return f"{tag} is up to date (runner {digest}); nothing to build"
    if method is BuildMethod.DOCKERFILE:
        _build(tag, digest, base=None)
        return f"built {tag} from {DOCKERFILE_PATH}"
    if method is BuildMethod.AUTO:
        try:
            _build(tag, digest, base=None)
            return f"built {tag} from {DOCKERFILE_PATH}"
        except ImageBuildError as exc:
            logger.info("Dockerfile build failed (%s); trying the offline path", exc)
    made_base = _ensure_offline_base()
    _build(tag, digest, base=OFFLINE_BASE_TAG)
    how = "made with debootstrap" if made_base else "reused"
    return f"built {tag} offline on {OFFLINE_BASE_TAG} ({how})"


def _build(tag: str, digest: str, base: str | None) -> None:
    """``docker build`` on a context holding only the Dockerfile and the runner."""
    with tempfile.TemporaryDirectory(prefix="pairforge-image-") as context:
        shutil.copy(DOCKERFILE_PATH, Path(context) / "Dockerfile")
        shutil.copy(RUNNER_PATH, Path(context) / "runner.py")
        command = ["docker", "build", "--quiet", "--tag", tag]
        command += ["--build-arg", f"RUNNER_SHA={digest}"]
        if base is not None:
            command += ["--build-arg", f"BASE_IMAGE={base}"]
        _run([*command, context], what=f"docker build of {tag}")


def _ensure_offline_base() -> bool:
    """Create the offline base image unless it exists; whether it had to be created."""
    if _image_exists(OFFLINE_BASE_TAG):
        return False
    if shutil.which("debootstrap") is None:
        raise ImageBuildError(
            "the offline build needs debootstrap (`sudo apt-get install debootstrap`), "
            "or a registry for the Dockerfile's base image"
        )
    rootfs = Path(tempfile.mkdtemp(prefix="pairforge-rootfs-"))
    try:
        logger.info("debootstrap %s into %s (about a minute)", DEBIAN_SUITE, rootfs)
        _run(
            ["debootstrap", "--variant=minbase", "--include=python3", DEBIAN_SUITE, str(rootfs)],
            what="debootstrap (it needs root and a Debian mirror)",
        )
        for part in _ROOTFS_TRIM:
            shutil.rmtree(rootfs / part, ignore_errors=True)
        with subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE) as tar:
            _run(
                ["docker", "import", "-", OFFLINE_BASE_TAG], what="docker import", stdin=tar.stdout
            )
        if tar.returncode != 0:
            raise ImageBuildError(f"tar of the rootfs failed with exit code {tar.returncode}")
    finally:
        _remove_rootfs(rootfs)
    return True


def _remove_rootfs(rootfs: Path) -> None:
    # An interrupted debootstrap can leave /proc or /sys mounted inside the rootfs:
    # deleting through those mounts would reach the host's, so leave such a tree alone.
    mounts = Path("/proc/mounts").read_text().split("\n")
    if any(f" {rootfs}/" in line or f" {rootfs} " in line for line in mounts):
        logger.warning("%s still has mounts inside; not deleting it", rootfs)
        return
    shutil.rmtree(rootfs, ignore_errors=True)


def _image_exists(tag: str) -> bool:
    return _run_quietly(["docker", "image", "inspect", tag]).returncode == 0


def _image_label(tag: str, label: str) -> str | None:
    probe = _run_quietly(
        ["docker", "image", "inspect", "--format", f'{{{{index .Config.Labels "{label}"}}}}', tag]
    )
    if probe.returncode != 0:
        return None
    return probe.stdout.strip() or None


def _run_quietly(command: list[str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(command, capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        raise SandboxUnavailable(
            f"`{command[0]}` is not installed: install Docker (`sudo apt-get install docker.io`)"
        ) from exc


def _run(command: list[str], what: str, stdin: IO[bytes] | None = None) -> None:
    try:
        done = subprocess.run(command, stdin=stdin, capture_output=True, check=False)
    except FileNotFoundError as exc:
        raise SandboxUnavailable(f"`{command[0]}` is not installed (needed for {what})") from exc
    if done.returncode != 0:
        output = (done.stderr or done.stdout).decode(errors="replace").strip().splitlines()
        raise ImageBuildError(f"{what} failed (exit {done.returncode}): {' | '.join(output[-5:])}")


def _read_source(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise ImageBuildError(
            f"expected {path} (build the image from a pairforge checkout)"
        ) from exc
