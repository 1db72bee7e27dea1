"""Execution feedback: the bounds of every text, and the judge's error texts on real cells.

The cells here are forked processes serving ``sandbox.cell`` (as in ``test_judge``),
without the container; the output pipe and the hostile cases are tested in
tests/integration/sandbox/test_feedback_in_docker.py.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from textwrap import dedent

import pytest

from sandbox import cell, feedback, judge
from sandbox.errors import ContainerLost
from sandbox.feedback import FEEDBACK_CHARS, FEEDBACK_LINES, OUTPUT_CHARS
from sandbox.protocol import decode_answer
from tests.unit.sandbox.test_judge import DEADLINE_S

# --------------------------------------------------------------------------- cutting


def test_tail_keeps_the_end_and_marks_the_cut() -> None:
    text = "".join(f"line {n}\n" for n in range(1000)) + "ValueError: last"
    cut = feedback.error_text(text)
    assert len(cut) <= FEEDBACK_CHARS
    assert cut.endswith("ValueError: last") and cut.startswith(feedback.CUT)
    assert cut.count("\n") == FEEDBACK_LINES - 1
    assert feedback.error_text("short\ntext") == "short\ntext"


def test_tail_cuts_long_lines_by_characters() -> None:
    cut = feedback.tail("a" * 10_000 + "END", 2000)
    assert len(cut) == 2000 and cut.endswith("END") and cut.startswith(feedback.CUT)
    assert feedback.tail("x" * 2000, 2000) == "x" * 2000


def test_texts_keep_control_characters_and_replace_what_is_not_utf8() -> None:
    assert feedback.output_text("a\x00\x1b[31m\r\n") == "a\x00\x1b[31m\r\n"
    assert feedback.output_text(b"ok \xff\xfe!") == "ok \ufffd\ufffd!"
    assert feedback.error_text("lone \udcff surrogate") == "lone \ufffd surrogate"
    json.dumps(feedback.error_text("\ud800")).encode("utf-8")


def test_output_tail_is_bounded_whatever_is_written() -> None:
    tail = feedback.OutputTail()
    for index in range(2000):
        tail.add(f"{index:06d}".encode() * 1000)
    assert tail.total == 2000 * 6000
    text = tail.take()
    assert len(text) <= OUTPUT_CHARS and text.endswith("001999")
    assert tail.take() == ""
    tail.add("é".encode() * OUTPUT_CHARS * 3)  # two bytes each: cut mid-character at worst
    assert tail.take().endswith("é" * (OUTPUT_CHARS - len(feedback.CUT)))


def test_bounded_repr_is_short_and_quick_on_huge_values() -> None:
    nested: list[object] = [1]
    for _ in range(90):
        nested = [nested]
    values = [
        list(range(10**6)),
        {str(n): n for n in range(10**6)},
        set(range(10**6)),
        "s" * 10**7,
        b"b" * 10**7,
        10**100_000,
        nested,
    ]
    # Only the reprs are timed, with room for a loaded CI machine: a bounded repr takes
    # milliseconds; the bound only catches one that walks the whole value.
    started = time.monotonic()
    texts = [feedback.bounded_repr(value) for value in values]
    assert time.monotonic() - started < 5.0
    assert all(len(text) <= feedback.REPR_CHARS for text in texts)
    assert texts[0].startswith("[0, 1, 2,") and texts[0].endswith(feedback.CUT)
    assert texts[5] == f"<an int of {(10**100_000).bit_length()} bits>"
    assert feedback.bounded_repr((1,)) == "(1,)"
    assert feedback.bounded_repr({"a": [1, 2.5, None]}) == "{'a': [1, 2.5, None]}"
    assert feedback.bounded_repr(set()) == "set()"


def test_describe_call_shows_the_test_side_of_a_remote_expression() -> None:
    steps = (("n", "Solution"), ("c", (), {}), ("a", "solve"), ("c", ([1, 2],), {"k": 3}))
    assert feedback.describe_call(steps) == "Solution().solve([1, 2], k=3)"
    assert feedback.describe_call((("n", "grid"), ("i", slice(1, None)))) == "grid[1:]"


def test_a_trace_shows_source_lines_and_collapses_recursion() -> None:
    source = "def f(n):\n    return f(n + 1)\n"
    frames = [("<cell>", 2, "f")] * 39 + [("/usr/lib/python3/x.py", 9, "g")]
    text = feedback.format_trace("RecursionError: deep", frames, 960, {"<cell>": source})
    assert text.splitlines() == [
        "Traceback (most recent call last):",
        "  [960 earlier frames left out]",
        '  File "<cell>", line 2, in f',
        "    return f(n + 1)",
        "  [Previous line repeated 38 more times]",
        '  File "/usr/lib/python3/x.py", line 9, in g',
        "RecursionError: deep",
    ]


# --------------------------------------------------------------------------- the host


def _answer(**extra: object) -> bytes:
    message = {"id": 1, "statuses": ["failed"], "details": ["x"], "modes": ["split"]}
    return json.dumps({**message, **extra}).encode()


def test_the_host_cuts_every_text_of_the_answer_again() -> None:
    line = _answer(errors=["E" * 100_000 + "\udcff"], outputs=["O\n" * 100_000])
    answer = decode_answer(line, 1, 1, with_feedback=True)
    assert len(answer.errors[0]) <= FEEDBACK_CHARS and answer.errors[0].endswith("\ufffd")
    assert len(answer.outputs[0]) <= OUTPUT_CHARS
    assert decode_answer(line, 1, 1).errors == []  # not asked for: not taken


@pytest.mark.parametrize(
    "extra",
    [{}, {"errors": ["e"]}, {"errors": ["e"], "outputs": []}, {"errors": [1], "outputs": [""]}],
)
def test_an_answer_without_well_formed_feedback_loses_the_container(extra: dict) -> None:
    with pytest.raises(ContainerLost):
        decode_answer(_answer(**extra), 1, 1, with_feedback=True)


# --------------------------------------------------------------------------- the judge


def _serve_a_cell() -> tuple[socket.socket, int]:
    """A cell process with feedback on (its output pipe is /dev/null here)."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the cell process
        try:
            devnull = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(devnull, fd)
            os.dup2(theirs.fileno(), cell.FD)
            os.closerange(cell.FD + 1, 1 << 16)
            cell.serve(capture=True)
        finally:
            os._exit(70)
    theirs.close()
    return ours, pid


def judged(program: str, tests: list[str], with_feedback: bool = True) -> list[tuple[str, str]]:
    """Each test's (status, error) as the judge reports them, one cell process per test."""
    job = judge.Planner().job(program, tests, False, True, with_feedback)
    outcomes: list[tuple[str, str]] = []
    for index in range(len(tests)):
        reports: list[dict[str, object]] = []
        ours, pid = _serve_a_cell()
        watchdog = threading.Timer(DEADLINE_S, os.kill, (pid, signal.SIGKILL))
        watchdog.start()
        try:
            judge._judge_cell(job, [index], judge._Channel(ours.fileno()), reports.append)
        finally:
            watchdog.cancel()
            ours.close()
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        (report,) = reports
        outcomes.append((str(report["status"]), str(report.get("error", "<none>"))))
    return outcomes


def test_a_false_comparison_says_what_the_program_returned() -> None:
    program = "def add(a, b):\n    return a + b\n"
    tests = ["assert add(1, 2) == 4", "assert add(1, 2) == 3", "assert add(1, 2) == 4, 'sum'"]
    assert judged(program, tests) == [
        ("failed", "AssertionError: add(1, 2) == 4 is false; add(1, 2) returned 3"),
        ("passed", ""),
        ("failed", "AssertionError: sum; add(1, 2) == 4 is false; add(1, 2) returned 3"),
    ]


def test_without_feedback_the_judge_reports_no_error_text() -> None:
    program = "def add(a, b):\n    return a + b\n"
    assert judged(program, ["assert add(1, 2) == 4"], with_feedback=False) == [("failed", "<none>")]


def test_objects_of_the_program_are_named_never_asked_to_describe_themselves() -> None:
    program = dedent("""\
        class Liar:
            def __repr__(self):
                while True:
                    pass
            def __eq__(self, other):
                return True
        def make():
            return Liar()
    """)
    ((status, error),) = judged(program, ["assert make() == 1"])
    assert status == "error"
    assert error == (
        "TypeError: cannot compare the program's Liar object with a value; make() returned a Liar"
    )


def test_a_huge_returned_value_is_shown_cut_and_does_not_change_the_status() -> None:
    program = "def f():\n    return {str(n): [n] * 3 for n in range(200_000)}\n"
    ((status, error),) = judged(program, ["assert f() == {}"])
    assert status == "failed"
    assert error.startswith("AssertionError: f() == {} is false; f() returned {'0': [0, 0, 0],")
    assert len(error) < 400


def test_an_exception_in_the_program_gives_its_traceback_with_the_exception_last() -> None:
    program = dedent("""\
        def outer(x):
            return inner(x)

        def inner(x):
            raise KeyError(f"no {x}")
    """)
    ((status, error),) = judged(program, ["assert outer(7) == 1"])
    assert status == "error"
    assert error.splitlines() == [
        "Traceback (most recent call last):",
        '  File "<cell>", line 2, in outer',
        "    return inner(x)",
        '  File "<cell>", line 5, in inner',
        '    raise KeyError(f"no {x}")',
        "KeyError: 'no 7'",
    ]


def test_deep_recursion_keeps_the_tail_of_the_traceback() -> None:
    program = "def down(n):\n    return down(n + 1)\n"
    ((status, error),) = judged(program, ["assert down(0) == 1"])
    assert status == "error"
    lines = error.splitlines()
    assert len(lines) <= FEEDBACK_LINES and len(error) <= FEEDBACK_CHARS
    assert lines[-1].startswith("RecursionError: maximum recursion depth exceeded")
    assert any("Previous line repeated" in line for line in lines)


def test_a_syntax_error_gives_its_message_and_line() -> None:
    ((status, error),) = judged("def ok():\n    return 1\ndef f(:\n    pass\n", ["assert f()"])
    assert status == "error"
    assert error.splitlines() == [
        "Traceback (most recent call last):",
        '  File "<cell>", line 3',
        "    def f(:",
        "SyntaxError: invalid syntax",
    ]


def test_a_fallback_test_shows_its_own_line() -> None:
    program = "def f():\n    return 2\n"
    ((status, error),) = judged(program, ["x = f()\nassert x == 3, f'x={x}'"])
    assert status == "failed"
    assert error.splitlines()[-3:] == [
        '  File "<test>", line 2, in <module>',
        "    assert x == 3, f'x={x}'",
        "AssertionError: x=2",
    ]
