"""Builds the sandbox image: from ``deploy/sandbox/Dockerfile``, or offline on a local base.

Drives the ``docker`` command line (and ``debootstrap``) through a ``Commands`` object
(subprocesses by default), so it needs no SDK. The image is labelled with a digest of its
sources (the runner's modules and the Dockerfile): an image with the current digest is
reused as is, and the offline base (a Debian rootfs made with debootstrap and loaded with
``docker import``) is cached under its own tag, so building twice costs a second or two.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import subprocess
import tempfile
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from sandbox.errors import DockerUnavailable, ImageBuildError

logger = logging.getLogger(__name__)

OFFLINE_BASE_TAG = "pairforge-sandbox-base:bookworm"
DEBIAN_SUITE = "bookworm"
PACKAGE_DIR = Path(__file__).resolve().parent
RUNNER_MODULES = ("__init__.py", "runner.py", "cell.py", "judge.py", "split.py", "wire.py",
                  "verdicts.py", "feedback.py")  # fmt: skip
"""The stdlib-only modules of ``sandbox`` that run inside the container (its ``sandbox/``)."""
DOCKERFILE_PATH = PACKAGE_DIR.parent / "deploy" / "sandbox" / "Dockerfile"
DIGEST_LABEL = "pairforge.runner-sha"
# Parts of the rootfs nothing in the sandbox reads (about half its size).
_ROOTFS_TRIM = ("usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale",
                "var/cache/apt", "var/lib/apt/lists")  # fmt: skip


class BuildMethod(StrEnum):
    """How ``build_image`` gets the image."""

    AUTO = "auto"
    """Reuse an up-to-date image; else the Dockerfile; else, if its base cannot be pulled,
    the offline path."""
    DOCKERFILE = "dockerfile"
    """``docker build`` on the Dockerfile's default base (python:3.11-slim): needs a registry."""
    OFFLINE = "offline"
    """The same Dockerfile on a local Debian base made with debootstrap: needs only a
    Debian package mirror (and root, for debootstrap)."""


class Commands(Protocol):
    """Runs one command line to completion, capturing its output (``SubprocessCommands``)."""

    def run(self, command: list[str]) -> subprocess.CompletedProcess[bytes]:
        """Raises ``FileNotFoundError`` when the program does not exist."""
        ...


class SubprocessCommands:
    """``Commands`` as real subprocesses."""

    def run(self, command: list[str]) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(command, capture_output=True, check=False)


def source_paths() -> list[Path]:
    """Everything that goes into the image from this checkout."""
    return [PACKAGE_DIR / name for name in RUNNER_MODULES] + [DOCKERFILE_PATH]


def source_digest(paths: list[Path] | None = None) -> str:
    """Digest of what goes into the image, for its label (names and contents of ``paths``)."""
    digest = hashlib.sha256()
    for path in paths if paths is not None else source_paths():
        digest.update(path.name.encode() + b"\0")
        digest.update(_read_source(path))
    return digest.hexdigest()[:16]


def build_image(
    tag: str, method: BuildMethod = BuildMethod.AUTO, commands: Commands | None = None
) -> str:
    """Make sure image ``tag`` exists and holds this checkout's runner; say what was done.

    Raises:
        DockerUnavailable: the docker command (or debootstrap, offline) is missing.
        ImageBuildError: every applicable build path failed (the message has their output).
    """
    builder = _Builder(commands or SubprocessCommands())
    digest = source_digest()
    if method is BuildMethod.AUTO and builder.image_label(tag, DIGEST_LABEL) == digest:
        return f"{tag} is up to date (runner {digest}); nothing to build"
    if method is BuildMethod.DOCKERFILE:
        builder.build(tag, digest, base=None)
        return f"built {tag} from {DOCKERFILE_PATH}"
    if method is BuildMethod.AUTO:
        try:
            builder.build(tag, digest, base=None)
            return f"built {tag} from {DOCKERFILE_PATH}"
        except ImageBuildError as exc:
            logger.info("Dockerfile build failed (%s); trying the offline path", exc)
    made_base = builder.ensure_offline_base()
    builder.build(tag, digest, base=OFFLINE_BASE_TAG)
    how = "made with debootstrap" if made_base else "reused"
    return f"built {tag} offline on {OFFLINE_BASE_TAG} ({how})"


class _Builder:
    def __init__(self, commands: Commands) -> None:
        self._commands = commands

    def build(self, tag: str, digest: str, base: str | None) -> None:
        """``docker build`` on a context holding only the Dockerfile and the runner modules."""
        with tempfile.TemporaryDirectory(prefix="pairforge-image-") as context:
            shutil.copy(DOCKERFILE_PATH, Path(context) / "Dockerfile")
            package = Path(context) / "sandbox"
            package.mkdir()
            for name in RUNNER_MODULES:
                shutil.copy(PACKAGE_DIR / name, package / name)
            command = ["docker", "build", "--quiet", "--tag", tag]
            command += ["--build-arg", f"RUNNER_SHA={digest}"]
            if base is not None:
                command += ["--build-arg", f"BASE_IMAGE={base}"]
            self._run([*command, context], what=f"docker build of {tag}")

    def ensure_offline_base(self) -> bool:
        """Create the offline base image unless it exists; whether it had to be created."""
        if self._quietly(["docker", "image", "inspect", OFFLINE_BASE_TAG]).returncode == 0:
            return False
        if shutil.which("debootstrap") is None:
            raise ImageBuildError(
                "the offline build needs debootstrap (`sudo apt-get install debootstrap`), "
                "or a registry for the Dockerfile's base image"
            )
        workdir = Path(tempfile.mkdtemp(prefix="pairforge-rootfs-"))
        rootfs = workdir / "rootfs"
        try:
            logger.info("debootstrap %s into %s (about a minute)", DEBIAN_SUITE, rootfs)
            self._run(
                ["debootstrap", "--variant=minbase", "--include=python3", DEBIAN_SUITE,
                 str(rootfs)],
                what="debootstrap (it needs root and a Debian mirror)",
            )  # fmt: skip
            for part in _ROOTFS_TRIM:
                shutil.rmtree(rootfs / part, ignore_errors=True)
            tarball = workdir / "rootfs.tar"
            self._run(["tar", "-C", str(rootfs), "-cf", str(tarball), "."], what="tar")
            self._run(["docker", "import", str(tarball), OFFLINE_BASE_TAG], what="docker import")
        finally:
            _remove_workdir(workdir, rootfs)
        return True

    def image_label(self, tag: str, label: str) -> str | None:
        probe = self._quietly(
            ["docker", "image", "inspect", "--format", f'{{{{index .Config.Labels "{label}"}}}}',
             tag]
        )  # fmt: skip
        if probe.returncode != 0:
            return None
        return probe.stdout.decode(errors="replace").strip() or None

    def _quietly(self, command: list[str]) -> subprocess.CompletedProcess[bytes]:
        try:
            return self._commands.run(command)
        except FileNotFoundError as exc:
            raise DockerUnavailable(
                f"`{command[0]}` is not installed: install Docker "
                "(`sudo apt-get install docker.io`)"
            ) from exc

    def _run(self, command: list[str], what: str) -> None:
        try:
            done = self._commands.run(command)
        except FileNotFoundError as exc:
            raise DockerUnavailable(f"`{command[0]}` is not installed (needed for {what})") from exc
        if done.returncode != 0:
            output = (done.stderr or done.stdout).decode(errors="replace").strip().splitlines()
            raise ImageBuildError(
                f"{what} failed (exit {done.returncode}): {' | '.join(output[-5:])}"
            )


def _remove_workdir(workdir: Path, rootfs: Path) -> None:
    # An interrupted debootstrap can leave /proc or /sys mounted inside the rootfs:
    # deleting through those mounts would reach the host's, so leave such a tree alone.
    mounts = Path("/proc/mounts").read_text().split("\n")
    if any(f" {rootfs}/" in line or f" {rootfs} " in line for line in mounts):
        logger.warning("%s still has mounts inside; not deleting it", rootfs)
        return
    shutil.rmtree(workdir, ignore_errors=True)


def _read_source(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise ImageBuildError(
            f"expected {path} (build the image from a pairforge checkout)"
        ) from exc
