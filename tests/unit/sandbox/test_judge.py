"""The judge against a real cell process: outcomes only the judge decides.

Each cell here is a forked process serving ``sandbox.cell`` on two pipes, as in the
container but without the container's privilege drop and limits (those are tested in
tests/integration/sandbox, where the programs are hostile). The judge's side runs in
this process. Programs here are the tests' own, written to probe the boundary.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
from textwrap import dedent

from sandbox import cell, judge

Outcome = tuple[str, str]
DEADLINE_S = 5.0


def run(program: str, tests: list[str], shared: bool = False, split: bool = True) -> list[Outcome]:
    """Each test's (status, detail) as the judge reports it; ("lost", "") if the cell died.

    A cell still busy after DEADLINE_S is killed (in the container, the runner's deadline
    makes that a timeout).
    """
    job = judge.Planner().job(program, tests, shared, split_tests=split)
    outcomes: dict[int, Outcome] = {}
    pending = list(range(len(tests)))
    while pending:
        indexes = pending if shared else pending[:1]
        reports: list[dict[str, object]] = []
        ours, pid = _serve_a_cell()
        watchdog = threading.Timer(DEADLINE_S, os.kill, (pid, signal.SIGKILL))
        watchdog.start()
        try:
            judge._judge_cell(job, indexes, judge._Channel(ours.fileno()), reports.append)
        finally:
            watchdog.cancel()
            ours.close()
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        for report in reports:
            index = int(str(report["index"]))
            if "status" in report:
                outcomes[index] = (str(report["status"]), str(report["detail"]))
            else:
                outcomes[index] = ("lost", "")
        pending = [index for index in range(len(tests)) if index not in outcomes]
    return [outcomes[index] for index in range(len(tests))]


def _serve_a_cell() -> tuple[socket.socket, int]:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the cell process
        try:
            devnull = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(devnull, fd)
            os.dup2(theirs.fileno(), cell.FD)
            os.closerange(cell.FD + 1, 1 << 16)
            cell.serve()
        finally:
            os._exit(70)
    theirs.close()
    return ours, pid


IDENTITY = "def f(x):\n    return x\n"


def statuses(outcomes: list[Outcome]) -> list[str]:
    return [status for status, _ in outcomes]


def test_ordinary_outcomes() -> None:
    program = "def inc(x):\n    return x + 1\n"
    tests = [
        "assert inc(1) == 2",
        "assert inc(1) == 3",
        "assert inc(None) == 1",
        "assert nope(1) == 1",
        "assert inc(1) == 3, f'inc(1) is {inc(1)}'",
    ]
    outcomes = run(program, tests)
    assert outcomes == [
        ("passed", ""),
        ("failed", "AssertionError"),
        ("error", "TypeError: unsupported operand type(s) for +: 'NoneType' and 'int'"),
        ("error", "NameError: name 'nope' is not defined"),
        ("failed", "AssertionError: inc(1) is 2"),
    ]


def test_exceptions_inside_the_program_keep_their_meaning() -> None:
    program = dedent("""\
        import sys
        def check(kind):
            if kind == 'assert':
                assert False, 'inner'
            if kind == 'memory':
                raise MemoryError()
            if kind == 'exit':
                sys.exit(0)
            raise ValueError(kind)
    """)
    tests = [f"assert check({kind!r})" for kind in ("assert", "memory", "exit", "other")]
    assert run(program, tests) == [
        ("failed", "AssertionError: inner"),
        ("memory", "MemoryError"),
        ("error", "SystemExit(0) before the test finished"),
        ("error", "ValueError: other"),
    ]


def test_a_program_that_fails_to_load_fails_every_test() -> None:
    assert statuses(run("raise RuntimeError('boom')", ["assert f(1)", "assert True"])) == [
        "error",
        "error",
    ]
    assert statuses(run("def f(:\n", ["assert f(1)"])) == ["error"]


def test_floats_compare_exactly_as_in_python() -> None:
    program = "import math\ndef f():\n    return 0.1 + 0.2\ndef nan():\n    return math.nan\n"
    tests = ["assert f() == 0.3", "assert f() == 0.1 + 0.2", "assert nan() != nan()",
             "assert nan() == nan()", "assert abs(f() - 0.3) < 1e-9"]  # fmt: skip
    assert statuses(run(program, tests)) == ["failed", "passed", "passed", "failed", "passed"]


def test_an_object_that_always_says_yes_cannot_pass() -> None:
    program = dedent("""\
        class Yes:
            def __eq__(self, other):
                return True
            def __ne__(self, other):
                return False
        class YesInt(int):
            def __eq__(self, other):
                return True
            __hash__ = int.__hash__
        def f(x):
            return Yes()
        def g(x):
            return YesInt(x)
    """)
    tests = ["assert f(1) == 2", "assert f(1) != 2", "assert [f(1)] == [2]", "assert g(1) == 2"]
    outcomes = run(program, tests)
    assert statuses(outcomes) == ["error", "error", "error", "failed"]
    assert "cannot compare the program's Yes object" in outcomes[0][1]


def test_other_objects_stay_in_the_program_but_can_be_used() -> None:
    program = dedent("""\
        class Box:
            def __init__(self, side):
                self.side = side
            def __bool__(self):
                return self.side > 0
            def area(self):
                return self.side ** 2
        def area(box):
            return box.area()
        def make(side):
            return Box(side)
        def gen(n):
            yield from range(n)
    """)
    tests = [
        "assert make(2) is not None",
        "assert make(2)",
        "assert not make(0)",
        "assert area(make(3)) == 9",
        "assert make(3).area() == 9",
        "assert make(4).side == 4",
        "assert list(gen(3)) == [0, 1, 2]",
        "assert gen(3) == [0, 1, 2]",
        "assert make(2) is None",
    ]
    assert statuses(run(program, tests)) == ["passed"] * 7 + ["failed", "failed"]


def test_a_patched_harness_in_the_cell_cannot_say_passed() -> None:
    program = dedent("""\
        import builtins, sys
        for module in list(sys.modules.values()):
            for name in ('describe_exception', 'dumps', 'send'):
                if hasattr(module, name):
                    setattr(module, name, lambda *a, **k: ('passed', ''))
        builtins.AssertionError = type('Fake', (Exception,), {})
        def f(x):
            return x
    """)
    # The cell's harness no longer says anything: the test is lost (a timeout in the
    # container), never passed.
    assert run(program, ["assert f(1) == 2"]) == [("lost", "")]


def test_forged_messages_from_the_cell_are_errors() -> None:
    program = dedent("""\
        import json, os, struct
        def frame(message):
            body = b'j' + json.dumps(message).encode()
            os.write(3, struct.pack('>I', len(body)) + body)
        def f(x):
            frame(['raised', 'passed', ''])
            os._exit(0)
        def g(x):
            frame(['ran', '0' * 32])
            os._exit(0)
        def h(x):
            frame(['raised', 'sandbox_error', 'not my fault'])
            os._exit(0)
    """)
    tests = ["assert f(1) == 2", "assert g(1) == 2", "assert h(1) == 2"]
    outcomes = run(program, tests)
    assert statuses(outcomes) == ["error", "error", "error"]


def test_a_cell_that_dies_is_lost_never_passed() -> None:
    program = "import os\ndef f(x):\n    os._exit(0)\n"
    assert run(program, ["assert f(1) == 2"]) == [("lost", "")]
    assert run("import os\nos._exit(0)", ["assert f(1) == 2"]) == [("lost", "")]


def test_fallback_tests_pass_only_when_their_code_returns() -> None:
    tests = ["x = f(1)\nassert x == 1", "x = f(1)\nassert x == 2", "import os\nos._exit(0)"]
    outcomes = run(IDENTITY, tests)
    assert outcomes[:2] == [("passed", ""), ("failed", "AssertionError")]
    assert outcomes[2] == ("lost", "")


def test_a_fallback_forgery_without_the_token_is_an_error() -> None:
    program = dedent("""\
        import json, os, struct
        def forge():
            body = b'j' + json.dumps(['ran', 'f' * 32]).encode()
            os.write(3, struct.pack('>I', len(body)) + body)
            os._exit(0)
    """)
    assert run(program, ["forge()\nassert 1 == 2"]) == [
        ("error", "the test's process reported a return it did not make")
    ]


def test_a_program_asking_for_the_token_twice_is_caught() -> None:
    # The token is handed out once per test: a program that asks for it as well as the
    # harness cannot turn the test's failure into a pass.
    program = dedent("""\
        import json, os, struct
        def ask():
            body = b'j' + json.dumps(['token?']).encode()
            os.write(3, struct.pack('>I', len(body)) + body)
            size = struct.unpack('>I', os.read(3, 4))[0]
            return json.loads(os.read(3, size)[1:])[1]
    """)
    tests = ["token = ask()\nassert True"]
    assert statuses(run(program, tests)) == ["error"]


def test_shared_mode_runs_the_program_once() -> None:
    program = "calls = []\ndef f(x):\n    calls.append(x)\n    return len(calls)\n"
    tests = ["assert f(0) == 1", "assert f(0) == 2", "assert calls == [0, 0]"]
    assert statuses(run(program, tests, shared=True)) == ["passed", "passed", "passed"]
    assert statuses(run(program, tests, shared=False)) == ["passed", "failed", "failed"]


def test_without_the_split_every_test_falls_back_with_the_same_outcome() -> None:
    tests = ["assert f(1) == 1", "assert f(1) == 2", "assert f(None) + 1"]
    assert run(IDENTITY, tests, split=False) == run(IDENTITY, tests, split=True)


def test_values_the_judge_cannot_send_are_errors() -> None:
    outcome = run(IDENTITY, ["assert f(len) == 1"])
    assert outcome == [("error", "TypeError: the test passes a builtin_function_or_method "
                                 "object to the program, which cannot cross")]  # fmt: skip
