"""The pairforge error tree: every error the domain raises on purpose.

Callers catch the branch they can act on; adapters (Docker, Ray, HTTP) map third-party
errors onto these at their boundary with ``raise ... from exc``::

    PairforgeError                  base of everything raised on purpose
    ├── ConfigError                 the user's input is wrong: fix it and run again
    │   ├── JobSpecError            a JobSpec field is unknown, missing or of the wrong type
    │   ├── InputFormatError        an input row or file is malformed (names source and line)
    │   └── OutputLocationError     an output location is not allowed
    │       └── OutputInUse         another job's output is, contains or is inside this one
    ├── InfrastructureError         something we depend on is down: retrying later may help
    │   ├── SandboxUnavailable      no Docker engine, image or healthy container
    │   ├── SamplerUnavailable      a model endpoint or engine failed after its retries
    │   ├── ClusterUnavailable      the Ray cluster or its job API cannot be reached
    │   └── StorageError            reading or writing shards or the manifest failed
    ├── JobChanged                  a job is not (or no longer) in the state a request needs
    └── ContractViolation           data broke a documented invariant: a bug, not bad input

Messages say what was expected, what was seen, and what to do.
"""

from __future__ import annotations

from pathlib import PurePath


class PairforgeError(Exception):
    """Base class of every error pairforge raises on purpose."""


class ConfigError(PairforgeError):
    """The user's input (a JobSpec, an input file, a location) is wrong."""


class JobSpecError(ConfigError):
    """A JobSpec could not be validated.

    Attributes:
        problems: one human-readable line per invalid field, ``"sampler.k: ..."``.
    """

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


class InputFormatError(ConfigError):
    """An input row or file is malformed.

    Attributes:
        source: the file or URI the row came from.
        line: 1-based line (or row) number, when known.
    """

    def __init__(self, message: str, *, source: str | None = None, line: int | None = None):
        where = ""
        if source is not None:
            where = f"{source}:{line}: " if line is not None else f"{source}: "
        super().__init__(where + message)
        self.source = source
        self.line = line


class OutputLocationError(ConfigError):
    """An output location escapes its allowed root or cannot be used."""


class OutputInUse(OutputLocationError):
    """Another job's output directory is this one, is inside it or contains it.

    Attributes:
        output_dir: the directory asked for.
        job_id: the job owning the overlapping directory, when known.
        other_dir: that job's output directory, when known.
    """

    def __init__(self, output_dir: str, job_id: str | None, other_dir: str | None = None) -> None:
        owner = f"job {job_id}" if job_id else "another job"
        if other_dir is None or other_dir == output_dir:
            clash = f"output directory {output_dir} already belongs to {owner}"
        elif PurePath(other_dir).is_relative_to(output_dir):
            clash = f"output directory {output_dir} contains {other_dir}, the output of {owner}"
        else:
            clash = f"output directory {output_dir} is inside {other_dir}, the output of {owner}"
        super().__init__(
            f"{clash}; choose an output.uri that neither contains nor is inside another "
            f"job's, or resume that job with POST /jobs/{job_id or '{id}'}/resume"
        )
        self.output_dir = output_dir
        self.job_id = job_id
        self.other_dir = other_dir


class JobChanged(PairforgeError):
    """A job is not in the state a request needs: its state forbids the change (resuming a
    running job), or another request changed it after this one read it.

    Attributes:
        job_id: the job concerned.
    """

    def __init__(self, message: str, *, job_id: str) -> None:
        super().__init__(message)
        self.job_id = job_id


class InfrastructureError(PairforgeError):
    """A dependency (sandbox, model endpoint, storage) is unavailable."""


class SandboxUnavailable(InfrastructureError):
    """No Docker engine, sandbox image or healthy container could be had."""


class SamplerUnavailable(InfrastructureError):
    """A model endpoint or engine kept failing after its retries."""


class ClusterUnavailable(InfrastructureError):
    """The Ray cluster, or its job API, could not be reached or refused the request."""


class StorageError(InfrastructureError):
    """Reading or writing shards or the manifest failed."""


class ContractViolation(PairforgeError):
    """Data broke a documented invariant; this is a bug in pairforge, not bad input."""
