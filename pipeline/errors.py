"""The pairforge error tree: every error the domain raises on purpose.

Callers catch the branch they can act on; adapters (Docker, Ray, HTTP) map third-party
errors onto these at their boundary with ``raise ... from exc``::

    PairforgeError                  base of everything raised on purpose
    ├── ConfigError                 the user's input is wrong: fix it and run again
    │   ├── JobSpecError            a JobSpec field is unknown, missing or of the wrong type
    │   ├── InputFormatError        an input row or file is malformed (names source and line)
    │   └── OutputLocationError     an output location is not allowed
    ├── InfrastructureError         something we depend on is down: retrying later may help
    │   ├── SandboxUnavailable      no Docker engine, image or healthy container
    │   ├── SamplerUnavailable      a model endpoint or engine failed after its retries
    │   ├── ClusterUnavailable      the Ray cluster or its job API cannot be reached
    │   └── StorageError            reading or writing shards or the manifest failed
    └── ContractViolation           data broke a documented invariant: a bug, not bad input

Messages say what was expected, what was seen, and what to do.
"""

from __future__ import annotations


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
