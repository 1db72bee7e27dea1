"""The in-container runner: executes one program and its tests at a time, one fork per test.

Stdlib only: it runs inside the sandbox image, where nothing else is installed. It must be
PID 1 of its container (the image's entry point) and run as root with exactly CAP_SETUID,
CAP_SETGID and CAP_KILL; it refuses to start otherwise, because its clean-up step
(``kill(-1, SIGKILL)``) would otherwise hit processes that are not cells.

Protocol (one JSON object per line, on the runner's own stdin/stdout, which no cell can
reach: every cell gets /dev/null as stdin, stdout and stderr)::

    runner -> host   {"ready": true, "protocol": 1}                                  once
    host -> runner   {"id": 7, "program": "...", "tests": ["assert ..."],
                      "timeout_s": 1.0, "isolation": "process", "limits": {...},
                      "budget_s": null}
    runner -> host   {"id": 7, "statuses": ["passed", ...], "details": ["", ...],
                      "retire": false, "budget_exceeded": false}

Why a verdict cannot be forged by ordinary means: a cell process writes its outcome as a
record to a private pipe (fd 3), tagged with a random per-child token and its pid; the
harness writes ``passed`` only after the cell's code returned. ``sys.exit``/``os._exit``
before the asserts, printing protocol-looking text (stdout is /dev/null), killing
processes or crashing all leave no ``passed`` record, and a test without an authentic
record is a failure of some kind (``verdict_from_exit``). Only code written to dig the
token out of the harness's own memory could forge it; the container boundary (no network,
read-only root, no capabilities, separate uid) still holds for such code. In shared mode
the same holds per test, but tests run in the program's process and can tamper with it.

Isolation, fastest safe design: the runner pre-imports common modules and forks one child
per test from this warm interpreter (about 1 ms of CPU here), which runs
``program + "\\n" + test`` as the container's cell uid (its own, given by the host in
PAIRFORGE_CELL_UID; default the image's ``cell`` user) under rlimits. Forking each test from a
per-program child that had already executed the program would save re-running it, but
that child is controlled by untrusted code and would be the one reporting on its own
tests; re-running a small program costs microseconds. The runner compiles the program and
each test once per request (compiling runs nothing) and hands the code objects to the
children, which saves each of them a cold compile (~0.4 ms of page faults).
``isolation="shared"`` runs the program once and every test in turn in one child
(explicitly opted into: tests can then see each other's side effects). Cells run with
``__name__ == "__cell__"``, as in HumanEval's and CodeT's harnesses.

After every child, the runner kills every other process in the container (daemons that
called setsid included), reaps them, and wipes the writable directories. If it cannot
restore a clean state it answers with ``"retire": true`` and exits, so the host replaces
the container.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import resource
import select
import signal
import stat
import sys
import time
from types import CodeType
from typing import Any

PROTOCOL = 1
# The host gives every container its own cell uid (used as the gid too) in this variable:
# the kernel counts RLIMIT_NPROC per uid across the whole host, so cells of containers
# sharing a uid would use up each other's process allowance. Without it, cells run as the
# image's `cell` user.
CELL_UID_ENV = "PAIRFORGE_CELL_UID"
DEFAULT_CELL_UID = 10001
# Never root, a system account or a 16-bit sentinel (65534 nobody, 65535 -1), and below
# 2**31 so no tool reads it as negative.
CELL_UID_MIN = 10000
CELL_UID_MAX = (1 << 31) - 2
WORK_DIR = "/work"
# Every place a cell can write to (the root filesystem is read-only).
WIPE_DIRS = ("/work", "/tmp", "/dev/shm", "/dev/mqueue")
RESULT_FD = 3
PRECOMPILE_MAX_CHARS = 256_000
DETAIL_CHARS = 200
RECORD_BYTES = 1 << 16

PASSED = "passed"
FAILED = "failed"
ERROR = "error"
TIMEOUT = "timeout"
MEMORY = "memory"
SANDBOX_ERROR = "sandbox_error"
STATUSES = (PASSED, FAILED, ERROR, TIMEOUT, MEMORY, SANDBOX_ERROR)

# Modules that model-written code imports most often (typing alone costs ~5 ms to import).
# Importing them once here makes every forked cell find them already loaded. Not `random`
# (nor `statistics`, which imports it): it reseeds in every forked child, a cost per cell.
WARM_MODULES = (
    "typing", "math", "re", "collections", "itertools", "functools", "heapq", "bisect",
    "string", "copy", "operator", "json", "datetime", "fractions", "decimal",
)  # fmt: skip

CELL_MODULE_NAME = "__cell__"
# Set once in the runner (cells inherit it): clearing os.environ in every child costs
# about 0.2 ms of copy-on-write page faults per cell.
CELL_ENV = {"HOME": WORK_DIR, "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}


# --------------------------------------------------------------------------- pure parts


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


def format_record(token: str, pid: int, index: int, status: str, detail: str) -> bytes:
    """One result record: ``token pid index status detail`` on one line."""
    return f"{token} {pid} {index} {status} {detail}\n".encode(errors="replace")


def parse_records(data: bytes, token: str, pid: int) -> dict[int, tuple[str, str]]:
    """Test index -> (status, detail) from the authentic records in ``data``.

    Records are lines ``token pid index status detail`` (see ``format_record``); lines with
    another token or pid, a bad index or an unknown status are ignored, and the first
    authentic record of an index wins.
    """
    records: dict[int, tuple[str, str]] = {}
    expected = (token.encode(), str(pid).encode())
    for line in data.split(b"\n"):
        parts = line.split(b" ", 4)
        if len(parts) != 5 or (parts[0], parts[1]) != expected or not parts[2].isdigit():
            continue
        status = parts[3].decode(errors="replace")
        if status in STATUSES:
            detail = short_detail(parts[4].decode(errors="replace"))
            records.setdefault(int(parts[2]), (status, detail))
    return records


def verdict_from_exit(wait_status: int | None, timed_out: bool, timeout_s: float,
                      oom_killed: bool) -> tuple[str, str]:  # fmt: skip
    """Status of a test that left no authentic record, from how its process ended.

    Args:
        wait_status: the child's status from ``waitpid`` (None if it was never reaped).
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


def cell_uid_from(value: str | None) -> int:
    """The cell uid named by the CELL_UID_ENV value ``value`` (None: the image's default).

    Raises:
        ValueError: ``value`` is not a decimal uid in [CELL_UID_MIN, CELL_UID_MAX] or is a
            16-bit sentinel.
    """
    if value is None:
        return DEFAULT_CELL_UID
    text = value.strip()
    uid = int(text) if text.isascii() and text.isdigit() else -1
    if not CELL_UID_MIN <= uid <= CELL_UID_MAX or uid in (65534, 65535):
        raise ValueError(
            f"{CELL_UID_ENV} must be a uid in [{CELL_UID_MIN}, {CELL_UID_MAX}] other than "
            f"65534 and 65535, got {value!r}"
        )
    return uid


def cpu_limit_s(timeout_s: float, tests_per_child: int) -> int:
    """RLIMIT_CPU seconds for a child running ``tests_per_child`` tests."""
    return int(timeout_s * tests_per_child) + 1


# --------------------------------------------------------------------------- the cell side


Step = tuple[int | None, tuple[CodeType | str, ...]]
"""What a child runs: (test index, or None for a shared program; code run in sequence)."""


def precompile(source: str) -> CodeType | None:
    """``source`` compiled in the runner, or None to leave compiling to the cell.

    Compiling parses but runs nothing, and done once per request here it saves every
    forked cell the page faults of a cold compile (~0.4 ms of a ~1 ms cell). Sources with
    ``__future__`` imports (which would change how the test compiles) and very large ones
    are compiled in the cell instead, as is anything that does not compile alone.
    """
    if len(source) > PRECOMPILE_MAX_CHARS or "__future__" in source:
        return None
    try:
        return compile(source, "<cell>", "exec", dont_inherit=True)
    except BaseException:  # SyntaxError, ValueError (NUL bytes), RecursionError, ...
        return None


def cell_steps(program: str, tests: list[str], first: int, shared: bool,
               program_code: CodeType | None,
               test_codes: list[CodeType | None]) -> list[Step]:  # fmt: skip
    """The steps of one child: test ``first`` alone, or (shared) the program then the rest.

    A process-isolated cell is ``program + "\\n" + test``; running the two compiled halves
    in sequence in one namespace is the same thing whenever both compile on their own
    (the test then starts at column 0 with no construct left open), so the text is joined
    only when one of them does not.
    """
    if shared:
        steps: list[Step] = [(None, (program_code or program,))]
        for offset, test in enumerate(tests[first:]):
            steps.append((first + offset, (test_codes[first + offset] or test,)))
        return steps
    test_code = test_codes[first]
    if program_code is not None and test_code is not None:
        return [(first, (program_code, test_code))]
    return [(first, (program + "\n" + tests[first],))]


def _cell_main(steps: list[Step], token: str, limits: dict[str, Any], result_w: int,
               devnull: int, cpu_s: int, cell_uid: int) -> None:  # fmt: skip
    """Runs in the forked child: drop to the cell user, run ``steps``; never returns.

    Every test that returns writes a ``passed`` record, every exception its status; a
    shared program that fails gives every test its status.
    """
    pid = os.getpid()
    try:
        os.setsid()
        # Make cells, never the runner, the OOM killer's choice (raising needs no privilege).
        adj = os.open("/proc/self/oom_score_adj", os.O_WRONLY)
        os.write(adj, b"1000")
        os.close(adj)
        mb = 1 << 20
        for kind, value in (
            (resource.RLIMIT_CPU, (cpu_s, cpu_s + 1)),
            (resource.RLIMIT_AS, (limits["address_space_mb"] * mb,) * 2),
            (resource.RLIMIT_NPROC, (limits["nproc"],) * 2),
            (resource.RLIMIT_FSIZE, (limits["fsize_mb"] * mb,) * 2),
            (resource.RLIMIT_NOFILE, (limits["nofile"],) * 2),
            (resource.RLIMIT_CORE, (0, 0)),
        ):
            resource.setrlimit(kind, value)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        os.dup2(result_w, RESULT_FD)
        os.closerange(RESULT_FD + 1, 1 << 16)
        os.chdir(WORK_DIR)
        os.setgroups([])
        os.setgid(cell_uid)
        os.setuid(cell_uid)
    except BaseException as exc:
        first = next((index for index, _ in steps if index is not None), 0)
        detail = short_detail(f"cell setup failed: {exc!r}")
        try:
            os.write(result_w, format_record(token, pid, first, SANDBOX_ERROR, detail))
        finally:
            os._exit(1)

    # Not "__main__": like HumanEval's and CodeT's harnesses, so a program's
    # `if __name__ == "__main__":` block (often reading stdin) does not run.
    namespace: dict[str, Any] = {"__name__": CELL_MODULE_NAME, "__builtins__": __builtins__}
    for index, parts in steps:
        try:
            for part in parts:
                if isinstance(part, str):
                    part = compile(part, "<cell>", "exec", dont_inherit=True)
                exec(part, namespace)
        except BaseException as exc:
            status, detail = describe_exception(exc)
            if index is not None:
                os.write(RESULT_FD, format_record(token, pid, index, status, detail))
                continue
            for test_index, _ in steps[1:]:  # the shared program failed: so does every test
                os.write(RESULT_FD, format_record(token, pid, test_index or 0, status, detail))
            break
        if index is not None:
            os.write(RESULT_FD, format_record(token, pid, index, PASSED, ""))
    os._exit(0)


# --------------------------------------------------------------------------- the runner side


class Runner:
    """Runs requests; owns the container's process table and writable directories."""

    def __init__(self, cell_uid: int = DEFAULT_CELL_UID) -> None:
        self.cell_uid = cell_uid
        self.devnull = os.open("/dev/null", os.O_RDWR)
        self.oom_kills = self._read_oom_kills()

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        """One response for one request."""
        program: str = request["program"]
        tests: list[str] = request["tests"]
        timeout_s = float(request["timeout_s"])
        limits: dict[str, Any] = request["limits"]
        shared = request.get("isolation") == "shared"
        budget_s = request.get("budget_s")
        stop_at = None if budget_s is None else time.monotonic() + float(budget_s)
        outcomes: list[tuple[str, str]] = []
        clean = True
        over_budget = False
        program_code = precompile(program)
        test_codes = [precompile(test) for test in tests]
        while len(outcomes) < len(tests) and clean:
            if stop_at is not None and time.monotonic() >= stop_at:
                over_budget = True
                break
            start = len(outcomes)
            steps = cell_steps(program, tests, start, shared, program_code, test_codes)
            outcomes.extend(self._run_child(steps, timeout_s, limits, stop_at))
            clean = self._clean_up()
        if over_budget:
            reason = f"not run: the time budget of {budget_s:g} s ran out"
        else:
            reason = "not run: the sandbox could not be cleaned after an earlier test"
        outcomes.extend([(SANDBOX_ERROR, reason)] * (len(tests) - len(outcomes)))
        return {
            "id": request.get("id"),
            "statuses": [status for status, _ in outcomes],
            "details": [detail for _, detail in outcomes],
            "retire": not clean,
            "budget_exceeded": over_budget,
        }

    def _run_child(self, steps: list[Step], timeout_s: float, limits: dict[str, Any],
                   stop_at: float | None) -> list[tuple[str, str]]:  # fmt: skip
        """Fork one child for ``steps``; the outcomes of the tests it reached, in order.

        Tests after one that timed out or crashed a shared child are left for the caller to
        run in a fresh child. A shared child is stopped at the first record read after
        ``stop_at`` (it starts no further test), so it may return no outcome at all then.
        """
        token = os.urandom(16).hex()
        indexes = [index for index, _ in steps if index is not None]
        shared = len(steps) > 1
        result_r, result_w = os.pipe()
        cpu_s = cpu_limit_s(timeout_s, len(steps))
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child, which never returns
            os.close(result_r)
            _cell_main(steps, token, limits, result_w, self.devnull, cpu_s, self.cell_uid)
        os.close(result_w)
        os.set_blocking(result_r, False)
        pidfd = os.pidfd_open(pid)
        reader = _RecordReader(result_r, token, pid)
        wait_status: int | None = None
        timed_out = over_budget = False
        # Shared mode: the program and the first test share the first deadline, and each
        # later test gets its own, measured from the previous test's record.
        deadline = time.monotonic() + timeout_s * (2 if shared else 1)
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        if shared:
            # Only shared mode reads records as they come (each one restarts the clock, and
            # a pipe holds only some hundreds); a single cell's is read once it has exited.
            poller.register(result_r, select.POLLIN)
        while wait_status is None and not over_budget:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = True
                break
            for fd, event in poller.poll(remaining * 1000):
                if fd == pidfd:
                    _, wait_status = os.waitpid(pid, 0)
                elif event & select.POLLIN:
                    # One read per wake-up, so a cell flooding the pipe cannot hold the
                    # runner here past the deadline.
                    if reader.read_once():
                        now = time.monotonic()
                        deadline = now + timeout_s
                        over_budget = stop_at is not None and now >= stop_at
                else:  # every writer closed the pipe: nothing more will come from it
                    poller.unregister(result_r)
        self._kill_all()
        reader.read_to_end()
        os.close(result_r)
        os.close(pidfd)
        return self._outcomes(indexes, reader.records, wait_status, timed_out, over_budget,
                              timeout_s)  # fmt: skip

    def _outcomes(self, indexes: list[int], records: dict[int, tuple[str, str]],
                  wait_status: int | None, timed_out: bool, over_budget: bool,
                  timeout_s: float) -> list[tuple[str, str]]:  # fmt: skip
        """The outcomes of one finished (and reaped) child's tests, in order.

        The OOM-kill counter is read after every child, whatever its end, so an OOM kill
        during one child is never blamed on a later one.
        """
        oom = self._oom_rose()
        outcomes: list[tuple[str, str]] = []
        for index in indexes:
            if index in records:
                outcomes.append(records[index])
                continue
            if over_budget:  # killed between tests: the rest were never run
                break
            killed_for_memory = oom and wait_status is not None and os.WIFSIGNALED(wait_status)
            outcomes.append(verdict_from_exit(wait_status, timed_out, timeout_s, killed_for_memory))
            break
        return outcomes

    @staticmethod
    def _kill_all() -> None:
        """Kill every process but this one (PID 1 is exempt from kill(-1)) and reap them.

        The kernel holds the task list while it signals, and a process with a fatal signal
        pending cannot finish a fork, so one kill(-1) catches fork bombs and setsid daemons.
        Orphans are re-parented to PID 1, so waiting until ECHILD reaps all of them.
        """
        with contextlib.suppress(ProcessLookupError):
            os.kill(-1, signal.SIGKILL)
        while True:
            try:
                os.waitpid(-1, 0)
            except ChildProcessError:
                return

    def _clean_up(self) -> bool:
        """Empty the writable directories; False if they could not be emptied."""
        dirty = [path for path in WIPE_DIRS if _has_entries(path)]
        if not dirty:
            return True
        # Cells may leave directories the runner (without CAP_DAC_OVERRIDE) cannot enter,
        # so the wipe runs as the cell user, who owns everything a cell created.
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            code = 1
            try:
                os.setgroups([])
                os.setgid(self.cell_uid)
                os.setuid(self.cell_uid)
                for path in dirty:
                    _remove_contents(path)
                code = 0
            finally:
                os._exit(code)
        os.waitpid(pid, 0)
        return not any(_has_entries(path) for path in dirty)

    def _oom_rose(self) -> bool:
        """Whether the OOM-kill counter rose since the last reading (which this absorbs)."""
        count = self._read_oom_kills()
        rose = count > self.oom_kills
        self.oom_kills = count
        return rose

    @staticmethod
    def _read_oom_kills() -> int:
        for path in ("/sys/fs/cgroup/memory.events", "/sys/fs/cgroup/memory/memory.oom_control"):
            try:
                with open(path) as handle:
                    for line in handle:
                        key, _, value = line.partition(" ")
                        if key == "oom_kill":
                            return int(value)
            except OSError:
                continue
        return 0


class _RecordReader:
    """Authentic records from a child's result pipe, parsed line by line as they arrive.

    Only the unfinished last line is buffered (and dropped past RECORD_BYTES, which no
    authentic record reaches), so the pipe never fills while the runner is listening and a
    cell writing junk to it costs the runner no memory.
    """

    def __init__(self, fd: int, token: str, pid: int) -> None:
        self.fd = fd
        self.token = token
        self.pid = pid
        self.records: dict[int, tuple[str, str]] = {}
        self._partial = bytearray()

    def read_once(self) -> bool:
        """Read what the pipe holds now (one read); whether a new record came with it."""
        try:
            chunk = os.read(self.fd, RECORD_BYTES)
        except BlockingIOError:
            return False
        return self._take(chunk)

    def read_to_end(self) -> None:
        """Read the rest once every writer is dead (a pipe holds a bounded amount)."""
        while True:
            try:
                chunk = os.read(self.fd, RECORD_BYTES)
            except BlockingIOError:
                return
            if not chunk:
                return
            self._take(chunk)

    def _take(self, chunk: bytes) -> bool:
        known = len(self.records)
        self._partial += chunk
        end = self._partial.rfind(b"\n")
        if end >= 0:
            lines = bytes(self._partial[:end])
            del self._partial[: end + 1]
            for index, outcome in parse_records(lines, self.token, self.pid).items():
                self.records.setdefault(index, outcome)
        if len(self._partial) > RECORD_BYTES:
            self._partial.clear()
        return len(self.records) > known


def _has_entries(path: str) -> bool:
    try:
        with os.scandir(path) as entries:
            return next(entries, None) is not None
    except FileNotFoundError:
        return False


def _remove_contents(root: str) -> None:
    """Delete everything under ``root`` without recursion (cells can nest very deep)."""
    stack = [os.path.join(root, name) for name in os.listdir(root)]
    directories: list[str] = []
    while stack:
        path = stack.pop()
        try:
            mode = os.lstat(path).st_mode
            if stat.S_ISDIR(mode):
                os.chmod(path, 0o700)
                directories.append(path)
                stack.extend(os.path.join(path, name) for name in os.listdir(path))
            else:
                os.unlink(path)
        except OSError:
            continue
    for path in reversed(directories):
        try:
            os.rmdir(path)
        except OSError:
            continue


def _check_environment() -> str | None:
    """Why this process must not act as the runner, or None if it may."""
    if os.getpid() != 1:
        return "the runner must be PID 1 of its own container (its clean-up kills all else)"
    if os.getuid() != 0:
        return "the runner must start as root (with only CAP_SETUID, CAP_SETGID, CAP_KILL)"
    return None


def main() -> int:
    problem = _check_environment()
    if problem is None:
        try:
            cell_uid = cell_uid_from(os.environ.get(CELL_UID_ENV))
        except ValueError as exc:
            problem = str(exc)
    if problem is not None:
        sys.stderr.write(f"pairforge runner: {problem}\n")
        return 2
    for name in WARM_MODULES:
        try:
            __import__(name)
        except ImportError:
            continue
    os.environ.clear()
    os.environ.update(CELL_ENV)
    # Keep the collector off the runner's own objects in every child: a collection there
    # would write to their headers and copy their pages.
    gc.freeze()
    runner = Runner(cell_uid)
    out = sys.stdout.buffer
    out.write(json.dumps({"ready": True, "protocol": PROTOCOL}).encode() + b"\n")
    out.flush()
    for line in sys.stdin.buffer:
        if not line.strip():
            continue
        try:
            response = runner.handle(json.loads(line))
        except (ValueError, KeyError, TypeError) as exc:
            response = {"error": f"malformed request: {exc!r}", "retire": False}
        out.write(json.dumps(response).encode() + b"\n")
        out.flush()
        if response.get("retire"):
            return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
