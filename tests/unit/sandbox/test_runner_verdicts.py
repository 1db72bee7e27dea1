"""The runner's pure parts: how a cell's end becomes a status, and which records count.

The runner's process handling needs its container and is tested in
tests/integration/sandbox; here it must refuse to run anywhere else.
"""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from sandbox import runner

TOKEN = "ab" * 16


def record(index: int = 0, status: str = "passed", detail: str = "", token: str = TOKEN,
           pid: int = 100) -> bytes:  # fmt: skip
    return runner.format_record(token, pid, index, status, detail).rstrip(b"\n")


def test_short_detail_keeps_the_last_line_and_cuts_it() -> None:
    assert runner.short_detail("Traceback\n  line\nValueError: bad\n\n") == "ValueError: bad"
    cut = runner.short_detail("x" * 500)
    assert len(cut) == runner.DETAIL_CHARS and cut.endswith("...")
    assert runner.short_detail("") == ""


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (AssertionError(), ("failed", "AssertionError")),
        (AssertionError("inc(1) was 3"), ("failed", "AssertionError: inc(1) was 3")),
        (AssertionError("first\nlast"), ("failed", "last")),
        (MemoryError(), ("memory", "MemoryError")),
        (SystemExit(0), ("error", "SystemExit(0) before the test finished")),
        (ValueError("nope"), ("error", "ValueError: nope")),
        (KeyboardInterrupt(), ("error", "KeyboardInterrupt")),
        (Exception(" "), ("error", "Exception")),
    ],
)
def test_exceptions_map_to_statuses(exc: BaseException, expected: tuple[str, str]) -> None:
    assert runner.describe_exception(exc) == expected


def test_only_records_with_the_token_and_pid_count() -> None:
    data = b"\n".join(
        [
            b"garbage",
            record(token="0" * 32),  # forged token
            record(pid=101),  # a grandchild, not the cell
            record(index=1, status="splendid"),  # unknown status
            TOKEN.encode() + b" 100 x passed ",  # index not a number
            record(index=0, status="failed", detail="AssertionError: 1 != 2"),
            record(index=0, status="passed"),  # a second record for index 0 does not override
            record(index=2, status="passed"),
            TOKEN.encode() + b" 100 3 pass",  # torn write
        ]
    )
    assert runner.parse_records(data, TOKEN, 100) == {
        0: ("failed", "AssertionError: 1 != 2"),
        2: ("passed", ""),
    }


def test_a_record_is_one_line_whatever_the_detail() -> None:
    line = runner.format_record(TOKEN, 7, 3, "error", runner.short_detail("a\nb: c d"))
    assert line == TOKEN.encode() + b" 7 3 error b: c d\n"
    assert runner.parse_records(line, TOKEN, 7) == {3: ("error", "b: c d")}


def test_precompile_leaves_future_imports_and_bad_code_to_the_cell() -> None:
    assert runner.precompile("x = 1") is not None
    assert runner.precompile("from __future__ import annotations\nx: int = 1") is None
    assert runner.precompile("def f(:") is None
    assert runner.precompile("    indented = 1") is None
    # The runner's own `from __future__ import annotations` must not leak into cells.
    namespace: dict[str, object] = {}
    exec(runner.precompile("def f(x: int): pass"), namespace)  # type: ignore[arg-type]
    assert namespace["f"].__annotations__ == {"x": int}


def test_cells_run_compiled_halves_only_when_both_compile_alone() -> None:
    program, tests = "def f():\n    return 1\n", ["assert f() == 1", "    x = 2"]
    codes = [runner.precompile(test) for test in tests]
    program_code = runner.precompile(program)
    assert runner.cell_steps(program, tests, 0, False, program_code, codes) == [
        (0, (program_code, codes[0]))
    ]
    # An indented "test" continues the program's last block: only the joined text says so.
    assert runner.cell_steps(program, tests, 1, False, program_code, codes) == [
        (1, (program + "\n" + tests[1],))
    ]
    shared = runner.cell_steps(program, tests, 0, True, program_code, codes)
    assert shared == [(None, (program_code,)), (0, (codes[0],)), (1, (tests[1],))]


@pytest.mark.parametrize(
    ("wait_status", "timed_out", "oom", "expected"),
    [
        (None, True, False, ("timeout", "no result within the 1.5 s wall-clock limit")),
        (signal.SIGXCPU, False, False, ("timeout", "CPU time limit exceeded")),
        (signal.SIGKILL, False, True, ("memory", "killed by the container's memory limit")),
        (signal.SIGKILL, False, False, ("error", "killed by signal SIGKILL")),
        (signal.SIGSEGV, False, False, ("error", "killed by signal SIGSEGV")),
        (signal.SIGXFSZ, False, False, ("error", "file size limit exceeded")),
        (0 << 8, False, False, ("error", "exited with code 0 before the test finished")),
        (3 << 8, False, False, ("error", "exited with code 3 before the test finished")),
        (None, False, False, ("sandbox_error", "the cell process was lost")),
    ],
)
def test_a_cell_without_a_record_never_passes(
    wait_status: int | None, timed_out: bool, oom: bool, expected: tuple[str, str]
) -> None:
    assert runner.verdict_from_exit(wait_status, timed_out, 1.5, oom) == expected


def test_cpu_limit_covers_every_test_of_a_child() -> None:
    assert runner.cpu_limit_s(1.0, 1) == 2
    assert runner.cpu_limit_s(0.5, 5) == 3


def test_the_runner_refuses_to_run_outside_its_container() -> None:
    done = subprocess.run(
        [sys.executable, runner.__file__], input=b"", capture_output=True, timeout=30
    )
    assert done.returncode == 2
    assert b"must be PID 1" in done.stderr


def test_the_cell_uid_comes_from_the_host_or_defaults_to_the_image_user() -> None:
    assert runner.cell_uid_from(None) == 10001
    assert runner.cell_uid_from("1900000123") == 1_900_000_123
    assert runner.cell_uid_from(str(runner.CELL_UID_MIN)) == runner.CELL_UID_MIN


@pytest.mark.parametrize("value", ["0", "", "999", "65534", "65535", "-20000", "2147483647", "x1"])
def test_an_unsafe_cell_uid_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="PAIRFORGE_CELL_UID must be a uid in"):
        runner.cell_uid_from(value)


def counting_runner(monkeypatch: pytest.MonkeyPatch, counts: list[int]) -> runner.Runner:
    """A Runner whose OOM-kill counter reads ``counts`` in turn (the first at start)."""
    readings = iter(counts)
    monkeypatch.setattr(runner.Runner, "_read_oom_kills", staticmethod(lambda: next(readings)))
    return runner.Runner()


def test_an_oom_kill_is_blamed_only_on_the_child_it_happened_in(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cells = counting_runner(monkeypatch, [0, 1, 1, 2])
    # The counter rose during a child that recorded its result (a grandchild was killed)...
    assert cells._outcomes([0], {0: ("passed", "")}, 0, False, False, 1.0) == [("passed", "")]
    # ... so a later SIGKILL without a rise is not a memory kill ...
    killed = cells._outcomes([0], {}, signal.SIGKILL, False, False, 1.0)
    assert killed == [("error", "killed by signal SIGKILL")]
    # ... and one during which it rose is.
    oom = cells._outcomes([0], {}, signal.SIGKILL, False, False, 1.0)
    assert oom == [("memory", "killed by the container's memory limit")]


def test_an_oom_kill_during_a_timed_out_child_is_absorbed(monkeypatch: pytest.MonkeyPatch) -> None:
    cells = counting_runner(monkeypatch, [0, 1, 1])
    timed_out = cells._outcomes([0], {}, None, True, False, 1.0)
    assert timed_out == [("timeout", "no result within the 1 s wall-clock limit")]
    killed = cells._outcomes([0], {}, signal.SIGKILL, False, False, 1.0)
    assert killed == [("error", "killed by signal SIGKILL")]
