"""The host's half of the runner protocol: what goes out, what is accepted back."""

from __future__ import annotations

import json

import pytest

from sandbox.errors import ContainerLost
from sandbox.limits import SandboxLimits
from sandbox.protocol import answer_deadline_s, decode_answer, encode_request, is_ready
from sandbox.runner import PROTOCOL
from sandbox.types import CellMode, CellStatus, ExecutionRequest, Isolation


def test_request_line_carries_program_tests_and_cell_limits() -> None:
    request = ExecutionRequest(
        program="x = 1", tests=["assert x"], timeout_s=2.0, isolation=Isolation.SHARED
    )
    limits = SandboxLimits(memory_mb=300, cell_processes=7, fsize_mb=3, nofile=20)
    line = encode_request(41, request, limits)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert json.loads(line) == {
        "id": 41,
        "program": "x = 1",
        "tests": ["assert x"],
        "timeout_s": 2.0,
        "isolation": "shared",
        "budget_s": None,
        "split": True,
        "limits": {"address_space_mb": 236, "nproc": 7, "fsize_mb": 3, "nofile": 20},
    }


def test_a_request_can_ask_for_the_fallback_path_everywhere() -> None:
    request = ExecutionRequest(program="x = 1", tests=["assert x"], split=False)
    assert json.loads(encode_request(1, request, SandboxLimits()))["split"] is False


def test_newlines_in_code_stay_inside_one_line() -> None:
    request = ExecutionRequest(program="a = 1\nb = 2\n", tests=["assert a\nassert b"])
    line = encode_request(1, request, SandboxLimits())
    assert line.count(b"\n") == 1
    assert json.loads(line)["program"] == "a = 1\nb = 2\n"


def test_deadline_allows_twice_each_timeout_plus_overhead_and_margin() -> None:
    request = ExecutionRequest(program="", tests=["pass"] * 4, timeout_s=1.5)
    # 4 tests x (2 x 1.5 + 0.25) + 5 = 18
    assert answer_deadline_s(request, margin_s=5.0) == pytest.approx(18.0)


def test_deadline_with_a_budget_is_the_budget_plus_one_test() -> None:
    request = ExecutionRequest(program="", tests=["pass"] * 100, timeout_s=1.0, budget_s=3.0)
    # budget 3 + one test (2 x 1 + 0.25) + margin 1 = 6.25
    assert answer_deadline_s(request, margin_s=1.0) == pytest.approx(6.25)


def test_ready_greeting_must_match_the_protocol_version() -> None:
    assert is_ready(json.dumps({"ready": True, "protocol": PROTOCOL}).encode())
    # An image built before the runner changed greets with an older version.
    assert not is_ready(json.dumps({"ready": True, "protocol": PROTOCOL - 1}).encode())
    assert not is_ready(b"ready")


def test_a_well_formed_answer_is_decoded() -> None:
    line = json.dumps(
        {
            "id": 3,
            "statuses": ["passed", "timeout"],
            "details": ["", "slow"],
            "modes": ["split", "fallback"],
            "retire": True,
        }
    ).encode()
    answer = decode_answer(line, request_id=3, n_tests=2)
    assert answer.statuses == [CellStatus.PASSED, CellStatus.TIMEOUT]
    assert answer.details == ["", "slow"]
    assert answer.modes == [CellMode.SPLIT, CellMode.FALLBACK]
    assert answer.retire is True
    assert answer.budget_exceeded is False


@pytest.mark.parametrize(
    ("line", "complaint"),
    [
        (b"not json", "expected a JSON answer"),
        (b"[1, 2]", "expected a JSON object"),
        (b'{"id": 4, "statuses": ["passed"], "details": [""], "modes": ["split"]}', "request 3"),
        (b'{"id": 3, "statuses": ["passed", "passed"], "details": ["", ""], "modes": []}', "of 1"),
        (b'{"id": 3, "statuses": ["great"], "details": [""], "modes": ["split"]}', "unknown"),
        (b'{"id": 3, "statuses": ["passed"], "details": [""], "modes": ["own"]}', "unknown"),
        (b'{"id": 3, "details": [""], "modes": ["split"]}', "lacks"),
        (b'{"id": 3, "statuses": ["passed"], "details": [""]}', "lacks"),
        (b'{"error": "malformed request"}', "rejected"),
    ],
)
def test_anything_else_means_the_container_is_lost(line: bytes, complaint: str) -> None:
    with pytest.raises(ContainerLost, match=complaint):
        decode_answer(line, request_id=3, n_tests=1)
