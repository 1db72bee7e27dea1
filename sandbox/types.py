"""Requests to and results from the sandbox: what one execution asks for and what it got.

A request is one program and all its tests; the runner answers one status per test.
A cell is ``program + "\\n" + test``. These types carry no notion of preference pairs.
"""

from __future__ import annotations

from enum import Enum

from pydantic import BaseModel, ConfigDict, Field


class CellStatus(str, Enum):
    """Outcome of one test of one program."""

    PASSED = "passed"
    FAILED = "failed"
    """The assertion was false."""
    ERROR = "error"
    """Another exception, a syntax error, or the process died."""
    TIMEOUT = "timeout"
    """The wall-clock or CPU limit was hit."""
    MEMORY = "memory"
    """The memory limit was hit (MemoryError or killed for memory)."""
    SANDBOX_ERROR = "sandbox_error"
    """Infrastructure trouble (container lost, runner crashed): never the code's fault."""


class Isolation(str, Enum):
    """How tests of one program are isolated from each other."""

    PROCESS = "process"
    """Each test runs in a fresh forked process (the default)."""
    SHARED = "shared"
    """One forked process runs the program once and then every test in turn (faster)."""


class ExecutionRequest(BaseModel):
    """One program and the tests to run against it."""

    model_config = ConfigDict(frozen=True)

    program: str = Field(description="Program text; each cell runs program + newline + test.")
    tests: list[str] = Field(description="Test snippets, typically single assert statements.")
    timeout_s: float = Field(default=1.0, gt=0, description="Wall-clock limit per test.")
    isolation: Isolation = Field(default=Isolation.PROCESS, description="Test isolation mode.")
    budget_s: float | None = Field(
        default=None,
        gt=0,
        description="Start no test after this many seconds; tests not started become "
        "sandbox_error (they say nothing about the code) and budget_exceeded is set.",
    )


class ExecutionResult(BaseModel):
    """The runner's answer: one status (and a short detail) per test."""

    model_config = ConfigDict(frozen=True)

    statuses: list[CellStatus] = Field(description="One status per test, in request order.")
    details: list[str] = Field(
        default_factory=list,
        description="Per test: the last line of the error (empty when passed), truncated.",
    )
    duration_s: float = Field(default=0.0, ge=0, description="Wall time of the whole request.")
    attempts: int = Field(default=1, ge=1, description="Containers tried (retries + 1).")
    budget_exceeded: bool = Field(
        default=False, description="Some tests were not run because budget_s ran out."
    )
