"""The host's half of the runner protocol: request lines out, answer lines back (pure).

The runner's half lives in ``sandbox.runner`` (stdlib-only, inside the container); the
message shapes and the version (``PROTOCOL``, imported from there) are documented there.
Anything unexpected in an answer means the container cannot be trusted any more, so it
raises ``ContainerLost`` and the pool replaces it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sandbox import feedback
from sandbox.errors import ContainerLost
from sandbox.limits import SandboxLimits
from sandbox.runner import PROTOCOL
from sandbox.types import CellMode, CellStatus, ExecutionRequest

# Fork, reap and wipe per test, on top of the test's own limit (measured: ~2 ms; a wipe of
# full tmpfs mounts, bounded by their inode limits, stays well under this).
_PER_TEST_OVERHEAD_S = 0.25


@dataclass(frozen=True)
class RunnerAnswer:
    """One decoded answer: a status, a detail and a mode per test, and whether to retire."""

    statuses: list[CellStatus]
    details: list[str]
    modes: list[CellMode]
    retire: bool
    budget_exceeded: bool
    errors: list[str]
    """Per test with feedback (cut again here: the container is not trusted); else empty."""
    outputs: list[str]


def encode_request(request_id: int, request: ExecutionRequest, limits: SandboxLimits) -> bytes:
    """The request line the runner reads, newline included."""
    message = {
        "id": request_id,
        "program": request.program,
        "tests": request.tests,
        "timeout_s": request.timeout_s,
        "isolation": request.isolation.value,
        "budget_s": request.budget_s,
        "split": request.split,
        "limits": {
            "address_space_mb": limits.address_space_mb,
            "nproc": limits.cell_processes,
            "fsize_mb": limits.fsize_mb,
            "nofile": limits.nofile,
        },
    }
    if request.feedback:  # absent otherwise: a pass matrix's lines stay as they were
        message["feedback"] = True
    return json.dumps(message).encode() + b"\n"


def answer_deadline_s(request: ExecutionRequest, margin_s: float) -> float:
    """How long a healthy runner can take to answer ``request``, at worst.

    Each test may use its time limit twice (in shared mode the program and the first test
    share a child's first deadline) plus the per-test clean-up; with a budget, the runner
    starts no test after it, so one more test's worth is the most it can overrun.
    """
    per_test = 2 * request.timeout_s + _PER_TEST_OVERHEAD_S
    worst = len(request.tests) * per_test
    if request.budget_s is not None:
        worst = min(worst, request.budget_s + per_test)
    return worst + margin_s


def is_ready(line: bytes) -> bool:
    """Whether ``line`` is the runner's start-up greeting for this protocol version."""
    try:
        message = json.loads(line)
    except ValueError:
        return False
    return isinstance(message, dict) and message == {"ready": True, "protocol": PROTOCOL}


def decode_answer(
    line: bytes, request_id: int, n_tests: int, with_feedback: bool = False
) -> RunnerAnswer:
    """Check and decode the runner's answer to request ``request_id`` with ``n_tests`` tests.

    With feedback, the answer must carry ``errors`` and ``outputs`` (strings, one per
    test), each cut here to its bound whatever the runner sent.

    Raises:
        ContainerLost: the line is not a well-formed answer to that request.
    """
    try:
        message = json.loads(line)
    except ValueError as exc:
        raise ContainerLost(f"expected a JSON answer from the runner, got {line[:120]!r}") from exc
    if not isinstance(message, dict):
        raise ContainerLost(f"expected a JSON object from the runner, got {line[:120]!r}")
    if "error" in message:
        raise ContainerLost(f"the runner rejected request {request_id}: {message['error']}")
    if message.get("id") != request_id:
        raise ContainerLost(
            f"expected the answer to request {request_id}, got one for {message.get('id')!r}"
        )
    statuses, details, modes = (message.get(key) for key in ("statuses", "details", "modes"))
    if not (isinstance(statuses, list) and isinstance(details, list) and isinstance(modes, list)):
        raise ContainerLost(f"answer {request_id} lacks its statuses, details or modes lists")
    if any(len(values) != n_tests for values in (statuses, details, modes)):
        raise ContainerLost(
            f"expected statuses, details and modes of {n_tests} tests in answer "
            f"{request_id}, got {len(statuses)}, {len(details)} and {len(modes)}"
        )
    try:
        decoded = [CellStatus(status) for status in statuses]
        decoded_modes = [CellMode(mode) for mode in modes]
    except ValueError as exc:
        raise ContainerLost(f"answer {request_id} has an unknown status or mode: {exc}") from exc
    errors: list[str] = []
    outputs: list[str] = []
    if with_feedback:
        errors = _texts(message, "errors", request_id, n_tests, feedback.error_text)
        outputs = _texts(message, "outputs", request_id, n_tests, feedback.output_text)
    return RunnerAnswer(
        statuses=decoded,
        details=[str(detail) for detail in details],
        modes=decoded_modes,
        retire=bool(message.get("retire")),
        budget_exceeded=bool(message.get("budget_exceeded")),
        errors=errors,
        outputs=outputs,
    )


def _texts(message: dict[str, Any], key: str, request_id: int, n_tests: int,
           cut: Callable[[str], str]) -> list[str]:  # fmt: skip
    """The answer's list of ``n_tests`` strings under ``key``, each ``cut``."""
    values = message.get(key)
    if not isinstance(values, list) or len(values) != n_tests:
        seen = len(values) if isinstance(values, list) else type(values).__name__
        raise ContainerLost(
            f"expected {key} of {n_tests} tests in answer {request_id} (feedback was "
            f"asked for), got {seen}"
        )
    if not all(isinstance(value, str) for value in values):
        raise ContainerLost(f"answer {request_id} has {key} that are not all strings")
    return [cut(value) for value in values]
