"""Requests to and results from the sandbox: what one execution asks for and what it got.

A request is one program and all its tests; the runner answers one status per test.
A cell is one test of one program. These types carry no notion of preference pairs. The
status and mode values are the runner's own (``sandbox.verdicts``, stdlib-only, which
runs in the container): one vocabulary on both sides of the protocol.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from sandbox import verdicts


class CellStatus(StrEnum):
    """Outcome of one test of one program."""

    PASSED = verdicts.PASSED
    FAILED = verdicts.FAILED
    """The assertion was false."""
    ERROR = verdicts.ERROR
    """Another exception, a syntax error, or the process died."""
    TIMEOUT = verdicts.TIMEOUT
    """The wall-clock or CPU limit was hit."""
    MEMORY = verdicts.MEMORY
    """The memory limit was hit (MemoryError or killed for memory)."""
    SANDBOX_ERROR = verdicts.SANDBOX_ERROR
    """Infrastructure trouble (container lost, runner crashed): never the code's fault."""


class CellMode(StrEnum):
    """How a cell's outcome was established (see ``sandbox.runner``)."""

    SPLIT = verdicts.SPLIT
    """The judge, in a process of its own, evaluated the test on the program's values."""
    FALLBACK = verdicts.FALLBACK
    """The program's own process ran the test and reported it (tests that cannot be
    split): a determined program can forge these."""


class Isolation(StrEnum):
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
    split: bool = Field(
        default=True,
        description="Judge every test that can be split in a process the program cannot "
        "reach (the default). False runs every test on the fallback path, in the "
        "program's own process: only for measuring what the split costs.",
    )
    feedback: bool = Field(
        default=False,
        description="Also return, per test that does not pass, its error text and what the "
        "program printed (ExecutionResult.errors and .outputs), for refinement prompts. Off "
        "by default: pass matrices do not need it.",
    )


class ExecutionResult(BaseModel):
    """The runner's answer: one status (and a short detail) per test."""

    model_config = ConfigDict(frozen=True)

    statuses: list[CellStatus] = Field(description="One status per test, in request order.")
    details: list[str] = Field(
        default_factory=list,
        description="Per test: the last line of the error (empty when passed), truncated.",
    )
    modes: list[CellMode] = Field(
        default_factory=list,
        description="Per test: how its outcome was established; empty when no cell ran "
        "(results the host made up: retries exhausted, budget spent).",
    )
    duration_s: float = Field(default=0.0, ge=0, description="Wall time of the whole request.")
    attempts: int = Field(default=1, ge=1, description="Containers tried (retries + 1).")
    budget_exceeded: bool = Field(
        default=False, description="Some tests were not run because budget_s ran out."
    )
    errors: list[str] = Field(
        default_factory=list,
        description="With feedback, per test (same length as statuses): for a test that did "
        "not pass, its error text: the traceback tail with the exception line last, or for "
        "a false assert judged outside the program what the program's calls returned "
        "('AssertionError: add(1, 2) == 4 is false; add(1, 2) returned 3'), or how the "
        "process ended ('timed out after 1 s ...'); at most FEEDBACK_LINES lines and "
        "FEEDBACK_CHARS characters, the end kept. Empty for passed tests; an empty list "
        "without feedback. Untrusted text: for prompts only.",
    )
    outputs: list[str] = Field(
        default_factory=list,
        description="With feedback, per test (same length as statuses): for a test that did "
        "not pass, what the program and the test wrote to stdout and stderr (one stream), "
        "the last OUTPUT_CHARS characters; bytes that are not UTF-8 are replacement "
        "characters, control characters are kept. Empty for passed tests; an empty list "
        "without feedback. Untrusted text: for prompts only.",
    )
