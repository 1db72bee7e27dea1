"""The runner's pure parts: how an exception or a process's end becomes a status.

The runner's process handling needs its container and is tested in
tests/integration/sandbox; here it must refuse to run anywhere else.
"""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from sandbox import judge, runner, verdicts


def test_short_detail_keeps_the_last_line_and_cuts_it() -> None:
    assert verdicts.short_detail("Traceback\n  line\nValueError: bad\n\n") == "ValueError: bad"
    cut = verdicts.short_detail("x" * 500)
    assert len(cut) == verdicts.DETAIL_CHARS and cut.endswith("...")
    assert verdicts.short_detail("") == ""


class BrokenMessage(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no")


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
        (BrokenMessage(), ("error", "BrokenMessage")),
    ],
)
def test_exceptions_map_to_statuses(exc: BaseException, expected: tuple[str, str]) -> None:
    assert verdicts.describe_exception(exc) == expected


def test_an_exception_never_means_passed_or_sandbox_error() -> None:
    assert verdicts.PASSED not in verdicts.RAISED_STATUSES
    assert verdicts.SANDBOX_ERROR not in verdicts.RAISED_STATUSES


def test_compile_alone_leaves_bad_and_huge_code_to_the_cell() -> None:
    assert judge.compile_alone("x = 1") is not None
    assert judge.compile_alone("from __future__ import annotations\nx: int = 1") is not None
    assert judge.compile_alone("def f(:") is None
    assert judge.compile_alone("    indented = 1") is None
    assert judge.compile_alone("x = 1\n" * (judge.PRECOMPILE_MAX_CHARS // 6 + 1)) is None
    # The runner's own `from __future__ import annotations` must not leak into cells.
    code = judge.compile_alone("def f(x: int): pass")
    assert code is not None
    namespace: dict[str, object] = {}
    exec(code, namespace)
    assert namespace["f"].__annotations__ == {"x": int}  # type: ignore[attr-defined]


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
def test_a_process_that_ends_before_its_outcome_never_passes(
    wait_status: int | None, timed_out: bool, oom: bool, expected: tuple[str, str]
) -> None:
    assert verdicts.verdict_from_exit(wait_status, timed_out, 1.5, oom) == expected


def test_outcomes_stop_at_the_first_test_without_one() -> None:
    records = {0: ("passed", ""), 1: ("failed", "AssertionError")}
    crash = ("error", "killed by signal SIGSEGV")
    assert runner.outcomes_of([0, 1, 2, 3], records, crash, over_budget=False) == [
        ("passed", ""),
        ("failed", "AssertionError"),
        crash,
    ]
    # Stopped between tests for the budget: the rest were never run.
    assert runner.outcomes_of([0, 1, 2], records, None, over_budget=True) == [
        ("passed", ""),
        ("failed", "AssertionError"),
    ]


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
    assert runner.cell_uid_from("1900000122") == 1_900_000_122
    assert runner.cell_uid_from(str(runner.CELL_UID_MIN)) == runner.CELL_UID_MIN
    assert runner.judge_uid_of(1_900_000_122) == 1_900_000_123


@pytest.mark.parametrize(
    "value", ["0", "", "999", "65533", "65534", "65535", "-20000", "2147483646", "x1"]
)
def test_an_unsafe_cell_uid_is_refused(value: str) -> None:
    # 65533: its judge would run as 65534 (nobody); 2147483646: its judge as 2**31 - 1.
    with pytest.raises(ValueError, match="PAIRFORGE_CELL_UID must be a uid in"):
        runner.cell_uid_from(value)


def test_the_oom_counter_is_absorbed_at_each_reading(monkeypatch: pytest.MonkeyPatch) -> None:
    readings = iter([0, 1, 1, 3])
    monkeypatch.setattr(runner.Runner, "_read_oom_kills", lambda self: next(readings))
    cells = runner.Runner()
    # A rise is reported once: a later cell that sees no rise is not blamed for it.
    assert [cells._oom_rose(), cells._oom_rose(), cells._oom_rose()] == [True, False, True]
