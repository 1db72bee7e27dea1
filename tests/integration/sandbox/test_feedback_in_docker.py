"""Execution feedback from a real sandbox container: error texts and captured output.

Feedback is text for a refinement prompt: bounded, inert (forged protocol text printed by
a program ends up in ``outputs`` only), and it never changes a status: each case also
runs with feedback off and must get the same statuses and details.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from textwrap import dedent

import pytest

from sandbox.feedback import FEEDBACK_CHARS, OUTPUT_CHARS
from sandbox.limits import PoolConfig, SandboxLimits
from sandbox.pool import ContainerPool
from sandbox.protocol import encode_request
from sandbox.types import CellStatus, ExecutionRequest, ExecutionResult, Isolation
from tests.conftest import SANDBOX_IMAGE, requires_sandbox_image
from tests.integration.sandbox.test_harness_attacks import ATTACKS, BENIGN, MUST_FAIL

pytestmark = [requires_sandbox_image, pytest.mark.docker]

PASSED, FAILED, ERROR = CellStatus.PASSED, CellStatus.FAILED, CellStatus.ERROR
TIMEOUT = CellStatus.TIMEOUT


@pytest.fixture(scope="module")
def pool() -> Iterator[ContainerPool]:
    config = PoolConfig(image=SANDBOX_IMAGE, workers=1, limits=SandboxLimits(memory_mb=256))
    with ContainerPool(config) as started:
        yield started


def both(pool: ContainerPool, program: str, tests: list[str], **kwargs: object) -> ExecutionResult:
    """The result with feedback, after checking it decides exactly as without."""
    plain = pool.run(ExecutionRequest(program=program, tests=tests, **kwargs))  # type: ignore[arg-type]
    rich = pool.run(ExecutionRequest(program=program, tests=tests, feedback=True, **kwargs))  # type: ignore[arg-type]
    assert rich.statuses == plain.statuses and rich.details == plain.details
    assert plain.errors == [] and plain.outputs == []
    assert len(rich.errors) == len(rich.outputs) == len(tests)
    for status, error, output in zip(rich.statuses, rich.errors, rich.outputs, strict=True):
        assert len(error) <= FEEDBACK_CHARS and len(output) <= OUTPUT_CHARS
        if status is PASSED:
            assert error == output == ""
        else:
            assert error
    return rich


def test_a_false_assert_says_what_was_returned_and_what_was_printed(pool: ContainerPool) -> None:
    program = dedent("""\
        import sys
        def add(a, b):
            print(f"adding {a} and {b}")
            print("careful", file=sys.stderr)
            return a + b
    """)
    result = both(pool, program, ["assert add(1, 2) == 4", "assert add(1, 2) == 3"])
    assert result.statuses == [FAILED, PASSED]
    assert result.errors[0] == "AssertionError: add(1, 2) == 4 is false; add(1, 2) returned 3"
    assert result.outputs[0] == "adding 1 and 2\ncareful\n"


@pytest.mark.parametrize("isolation", [Isolation.PROCESS, Isolation.SHARED])
def test_a_raising_program_gives_its_traceback_tail(
    pool: ContainerPool, isolation: Isolation
) -> None:
    program = dedent("""\
        def parse(text):
            return int(text)

        def total(items):
            print("items:", items)
            return sum(parse(item) for item in items)
    """)
    tests = ["assert total(['1', '2']) == 3", "assert total(['1', 'x']) == 1"]
    result = both(pool, program, tests, isolation=isolation)
    assert result.statuses == [PASSED, ERROR]
    lines = result.errors[1].splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    assert '  File "<cell>", line 2, in parse' in lines
    assert "    return int(text)" in lines
    assert lines[-1] == "ValueError: invalid literal for int() with base 10: 'x'"
    assert result.outputs[1].endswith("items: ['1', 'x']\n")


def test_a_timeout_says_so_and_keeps_what_was_printed_before(pool: ContainerPool) -> None:
    program = "def spin():\n    print('started')\n    while True:\n        pass\n"
    result = both(pool, program, ["assert spin() == 1"], timeout_s=0.5)
    assert result.statuses == [TIMEOUT]
    assert result.errors[0].startswith("timed out after 0.5 s")
    assert result.outputs[0] == "started\n"


def test_a_syntax_error_gives_its_message_and_line(pool: ContainerPool) -> None:
    result = both(pool, "def f(x):\n    return x +\n", ["assert f(1) == 1"])
    assert result.statuses == [ERROR]
    lines = result.errors[0].splitlines()
    assert lines[-3:] == [
        '  File "<cell>", line 2',
        "    return x +",
        "SyntaxError: invalid syntax",
    ]


def test_megabytes_of_output_are_cut_and_do_not_slow_the_cell(pool: ContainerPool) -> None:
    program = dedent("""\
        import sys
        def flood():
            for _ in range(50):
                sys.stdout.write("x" * 1_000_000)
            print("the end")
            return 1
    """)
    started = time.monotonic()
    result = both(pool, program, ["assert flood() == 2"], timeout_s=5.0)
    assert time.monotonic() - started < 5.0  # both runs: the host waits for no 50 MB
    assert result.statuses == [FAILED]
    assert result.outputs[0].endswith("x" * 100 + "the end\n")
    assert len(result.outputs[0]) == OUTPUT_CHARS
    assert result.duration_s < 2.5


def test_forged_protocol_text_and_control_characters_stay_in_outputs(pool: ContainerPool) -> None:
    forged = json.dumps({"id": 1, "statuses": ["passed"], "details": [""], "modes": ["split"]})
    program = dedent(f"""\
        import os, sys
        def f():
            print({forged!r})
            print('{{"ready": true, "protocol": 3}}', file=sys.stderr)
            os.write(1, b"\\x00\\x1b[2J\\r\\x07 raw\\n")
            sys.stdout.buffer.write(b"\\xff\\xfe not utf-8\\n")
            return 0
    """)
    result = both(pool, program, ["assert f() == 1", "assert f() == 0"])
    assert result.statuses == [FAILED, PASSED]
    output = result.outputs[0]
    assert forged in output and '{"ready": true, "protocol": 3}' in output
    assert "\x00\x1b[2J\r\x07 raw\n" in output
    assert "\ufffd\ufffd not utf-8\n" in output
    assert result.errors[0] == "AssertionError: f() == 1 is false; f() returned 0"


def test_without_feedback_the_answer_is_as_before(pool: ContainerPool) -> None:
    """No ``feedback`` key on the request line, no new keys in the runner's answer."""
    (container,) = pool.live_containers()
    request = ExecutionRequest(program="def f():\n    print('hi')\n    return 1\n",
                               tests=["assert f() == 2"])  # fmt: skip
    line = encode_request(99, request, pool.config.limits)
    assert b"feedback" not in line
    answer = json.loads(container.call(line, 30.0))
    assert set(answer) == {"id", "statuses", "details", "modes", "retire", "budget_exceeded"}
    rich_request = request.model_copy(update={"feedback": True})
    rich = json.loads(container.call(encode_request(100, rich_request, pool.config.limits), 30.0))
    assert rich["errors"] == ["AssertionError: f() == 2 is false; f() returned 1"]
    assert rich["outputs"] == ["hi\n"]


@pytest.mark.parametrize("case", sorted(ATTACKS))
def test_no_attack_forges_a_pass_with_feedback_on(pool: ContainerPool, case: str) -> None:
    """The harness-attack corpus again, with the cells' stdout and stderr on the pipe."""
    request = ExecutionRequest(program=ATTACKS[case], tests=MUST_FAIL, timeout_s=1.0, feedback=True)
    result = pool.run(request)
    forged = [
        test for test, status in zip(MUST_FAIL, result.statuses, strict=True) if status is PASSED
    ]
    assert forged == [], f"{case}: forged passes {forged}"
    assert all(len(output) <= OUTPUT_CHARS for output in result.outputs)
    after = pool.run(BENIGN)
    assert after.statuses == [PASSED, PASSED], after.details
