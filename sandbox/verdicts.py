"""Cell outcomes: the status vocabulary, and how an exception or a process's end maps to one.

Stdlib only: it runs inside the sandbox image, where nothing else is installed. This is
the one definition of the statuses; ``sandbox.types.CellStatus`` is built from it, and
``pipeline.records.CellStatus`` (which may not import the sandbox) is checked against it
by ``tests/unit/test_shared_vocabulary.py``.
"""

from __future__ import annotations

import os
import signal

PASSED = "passed"
FAILED = "failed"
ERROR = "error"
TIMEOUT = "timeout"
MEMORY = "memory"
SANDBOX_ERROR = "sandbox_error"
STATUSES = (PASSED, FAILED, ERROR, TIMEOUT, MEMORY, SANDBOX_ERROR)
# What an exception escaping the code under test can mean: never `passed` (only the judge
# says that), never `sandbox_error` (a program could otherwise disguise its failures as
# infrastructure trouble, which the ranking does not count against it).
RAISED_STATUSES = (FAILED, ERROR, MEMORY)

SPLIT = "split"
"""The program ran in one process and the test was judged in another (the default)."""
FALLBACK = "fallback"
"""The test ran in the program's own process, which reported the outcome (tests that are
not a single splittable assert): weaker, because the program can reach its reporter."""
MODES = (SPLIT, FALLBACK)

DETAIL_CHARS = 200


def short_detail(text: str) -> str:
    """The last non-empty line of ``text``, cut to DETAIL_CHARS characters."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    last = lines[-1] if lines else ""
    return last if len(last) <= DETAIL_CHARS else last[: DETAIL_CHARS - 3] + "..."


def describe_exception(exc: BaseException) -> tuple[str, str]:
    """Status and detail for an exception that escaped a cell's code.

    The detail is built by hand rather than with ``traceback``: it runs in every failing
    cell, and most cells of a pass matrix fail.
    """
    name = type(exc).__name__
    if isinstance(exc, SystemExit):
        return ERROR, f"SystemExit({exc.code!r}) before the test finished"
    try:
        message = str(exc)
    except BaseException:  # a cell's own exception class may break __str__
        message = ""
    detail = short_detail(f"{name}: {message}" if message.strip() else name)
    if isinstance(exc, AssertionError):
        return FAILED, detail
    if isinstance(exc, MemoryError):
        return MEMORY, detail
    return ERROR, detail


def verdict_from_exit(wait_status: int | None, timed_out: bool, timeout_s: float,
                      oom_killed: bool) -> tuple[str, str]:  # fmt: skip
    """Status of a test whose process ended before it had an outcome.

    Args:
        wait_status: the process's status from ``waitpid`` (None if it was never reaped).
        timed_out: the runner killed it at the wall-clock deadline.
        timeout_s: that deadline, for the detail.
        oom_killed: the container's OOM-kill counter rose while it ran.
    """
    if timed_out:
        return TIMEOUT, f"no result within the {timeout_s:g} s wall-clock limit"
    if wait_status is None:
        return SANDBOX_ERROR, "the cell process was lost"
    if os.WIFSIGNALED(wait_status):
        sig = os.WTERMSIG(wait_status)
        if sig == signal.SIGXCPU:
            return TIMEOUT, "CPU time limit exceeded"
        if sig == signal.SIGKILL and oom_killed:
            return MEMORY, "killed by the container's memory limit"
        if sig == signal.SIGXFSZ:
            return ERROR, "file size limit exceeded"
        return ERROR, f"killed by signal {signal.Signals(sig).name}"
    code = os.WEXITSTATUS(wait_status) if os.WIFEXITED(wait_status) else -1
    return ERROR, f"exited with code {code} before the test finished"
