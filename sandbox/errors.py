"""The sandbox's error tree; ``sandbox.docker_backend`` maps Docker's errors onto it.

Callers (the Ray executors) map these onto the pipeline's ``InfrastructureError`` branch
(``DockerUnavailable`` onto its ``SandboxUnavailable``)::

    SandboxError                  base of everything the sandbox raises on purpose
    ├── DockerUnavailable         no Docker engine or no sandbox image: the run cannot start
    ├── ContainerLost             a container died, stopped answering or broke the protocol
    └── ImageBuildError           the sandbox image could not be built

Cell failures are never errors: they are statuses (``CellStatus``) in the result.
"""

from __future__ import annotations


class SandboxError(Exception):
    """Base class of every error the sandbox raises on purpose."""


class DockerUnavailable(SandboxError):
    """The Docker engine or the sandbox image cannot be used; the message says what to do.

    Not ``pipeline.errors.SandboxUnavailable``: that is the domain's name for the same
    trouble, which the Ray executors raise (``from`` this) when a build cannot start.
    """


class ContainerLost(SandboxError):
    """A warm container died, went silent past its deadline, or answered nonsense."""


class ImageBuildError(SandboxError):
    """Building the sandbox image failed; the message carries the tool's last output lines."""
