"""The in-container runner: runs one program and its tests at a time, and owns the verdicts.

Stdlib only: it runs inside the sandbox image, where nothing else is installed. It must be
PID 1 of its container (the image's entry point) and run as root with exactly CAP_SETUID,
CAP_SETGID and CAP_KILL; it refuses to start otherwise.

Protocol (one JSON object per line, on the runner's own stdin/stdout, which no cell can
reach: every cell gets /dev/null as stdin, and as stdout and stderr too unless feedback
is on, when they are a pipe only the runner reads)::

    runner -> host   {"ready": true, "protocol": 3}                                  once
    host -> runner   {"id": 7, "program": "...", "tests": ["assert ..."],
                      "timeout_s": 1.0, "isolation": "process", "limits": {...},
                      "budget_s": null, "split": true}
    runner -> host   {"id": 7, "statuses": ["passed", ...], "details": ["", ...],
                      "modes": ["split", ...], "retire": false, "budget_exceeded": false}
    (a request with "feedback": true (absent otherwise) gets "errors": ["", ...] and
    "outputs": ["", ...] in its answer as well)

Feedback (``sandbox.feedback``): per test, the error text the judge made (or how the
cell's process ended) and what the cell printed, both empty for a test that passed. The
runner reads the cell's output pipe without blocking and keeps only its last
``OUTPUT_BYTES`` (however much the program prints); in shared mode the output read up to
a failing test's outcome is that test's, with what passed tests before it printed (the
judge may start the next test before the runner reads the outcome, so a test's output can
hold some of the next one's, or be credited to the failing test before it).

Who may say ``passed`` (issue 9): the code under test never shares an address space with
anything that can vouch for a result. Four kinds of process run here:

- the runner (this process, PID 1, root): reads requests, hands them to the judge,
  starts the cell processes, kills and cleans up, and answers the host;
- the template: forked at start-up, before any request was read, so it has never held a
  program or a test. It forks every cell process, and so no cell can find an earlier
  request's text (or this one's tests) in the memory it inherits;
- cell processes (``sandbox.cell``, the container's cell uid, under rlimits): run the
  program and answer questions about it; they decide nothing;
- the judge (``sandbox.judge``, one per container, restarted after a test it could not
  finish; a uid of its own, so no cell can signal, trace or read it): plans each test
  (``sandbox.split``), evaluates each split test itself, asking the cell only for the
  values of the program's expressions, and reports the outcomes to the runner.

Each test costs a fork of the template, the cell's set-up, the program's run and one
exchange per expression of the program's in the test: about 1.3x the CPU of running
``program + test`` in one process forked from the runner (measured on dev-k10). Every page
a forked process writes to is a copy-on-write fault, so the cell side is written to touch
as few objects as it can (one marshal call per answer, fixed messages made once).

A test that cannot be split (not a single assert over plain expressions) runs inside the
cell process, whose report the judge accepts only as the answer to a token it hands out
after the test returned; such cells say ``"fallback"`` in ``modes``.

Isolation: in ``"process"`` mode every test gets a fresh cell process (the program runs
again in it: microseconds for the usual program); ``"shared"`` runs the program once and
every test in turn in one cell process (tests then see each other's side effects). Cells
run with ``__name__ == "__cell__"``, as in HumanEval's and CodeT's harnesses.

After every cell process, the runner kills every process of the cell uid (daemons that
called setsid included), reaps them, and wipes the writable directories (bounded: they are
tmpfs mounts with size and inode limits, and the wipe gives up after WIPE_LIMIT_S). If it
cannot restore a clean state it answers with ``"retire": true`` and exits, so the host
replaces the container.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import resource
import select
import signal
import socket
import stat
import struct
import sys
import time
from typing import Any, NoReturn

from sandbox import cell, feedback, wire
from sandbox.verdicts import MEMORY, PASSED, SANDBOX_ERROR, TIMEOUT, verdict_from_exit

PROTOCOL = 3
"""Version of the host <-> runner protocol; ``sandbox.protocol`` uses this very constant."""
# The host gives every container its own cell uid (used as the gid too) in this variable:
# the kernel counts RLIMIT_NPROC per uid across the whole host, so cells of containers
# sharing a uid would use up each other's process allowance. The judge runs as the next
# uid. Without it, cells run as the image's `cell` user.
CELL_UID_ENV = "PAIRFORGE_CELL_UID"
DEFAULT_CELL_UID = 10001
# Never root, a system account or a 16-bit sentinel (65534 nobody, 65535 -1, for the cell
# or the judge), and the judge's uid below 2**31 so no tool reads it as negative.
CELL_UID_MIN = 10000
CELL_UID_MAX = (1 << 31) - 3
WORK_DIR = "/work"
# Every place a cell can write to (the root filesystem is read-only).
WIPE_DIRS = ("/work", "/tmp", "/dev/shm", "/dev/mqueue")
# The wipe's bound: the tmpfs mounts hold a few thousand inodes each (see the Docker
# backend), which take well under a second to remove; past this the container is retired.
WIPE_LIMIT_S = 5.0
# How long killed processes may take to disappear (they have SIGKILL pending; this is
# scheduling delay only) before the container counts as unclean.
REAP_LIMIT_S = 5.0
# How long the judge may take to compile and plan one request (a bound, not a budget).
PLAN_LIMIT_S = 60.0
# How long a judge cut off mid-test may take to notice that its cell was killed.
JUDGE_GRACE_S = 0.05
ANSWER_BYTES = 1 << 16
# Reads of a cell's output pipe per wake-up (64 KiB each): a program printing without
# end must not keep the runner from its deadlines.
OUTPUT_READS = 16
EXIT_REPORT = struct.Struct("=ii")
"""The template's report of a cell process's end: its pid and wait status."""

# Modules that model-written code imports most often (typing alone costs ~5 ms to import).
# Importing them once here makes every forked cell find them already loaded. Not `random`
# (nor `statistics`, which imports it): it reseeds in every forked child, a cost per cell.
WARM_MODULES = (
    "typing", "math", "re", "collections", "itertools", "functools", "heapq", "bisect",
    "string", "copy", "operator", "json", "datetime", "fractions", "decimal",
)  # fmt: skip

# Set once in the runner (cells inherit it): clearing os.environ in every child costs
# about 0.2 ms of copy-on-write page faults per cell.
CELL_ENV = {"HOME": WORK_DIR, "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
_MB = 1 << 20


# --------------------------------------------------------------------------- pure parts


def cell_uid_from(value: str | None) -> int:
    """The cell uid named by the CELL_UID_ENV value ``value`` (None: the image's default).

    Raises:
        ValueError: ``value`` is not a decimal uid in [CELL_UID_MIN, CELL_UID_MAX], or it
            or the judge's uid after it is a 16-bit sentinel.
    """
    if value is None:
        return DEFAULT_CELL_UID
    text = value.strip()
    uid = int(text) if text.isascii() and text.isdigit() else -1
    if not CELL_UID_MIN <= uid <= CELL_UID_MAX or uid in (65533, 65534, 65535):
        raise ValueError(
            f"{CELL_UID_ENV} must be a uid in [{CELL_UID_MIN}, {CELL_UID_MAX}] other than "
            f"65533, 65534 and 65535, got {value!r}"
        )
    return uid


def judge_uid_of(cell_uid: int) -> int:
    """The uid the judge runs as in a container whose cells run as ``cell_uid``."""
    return cell_uid + 1


def cpu_limit_s(timeout_s: float, tests_per_child: int) -> int:
    """RLIMIT_CPU seconds for a child running ``tests_per_child`` tests."""
    return int(timeout_s * tests_per_child) + 1


Outcome = tuple[str, str, str, str]
"""A test's (status, detail, error, output); the last two are empty without feedback."""


def outcomes_of(indexes: list[int], records: dict[int, Outcome], end: Outcome | None,
                over_budget: bool) -> list[Outcome]:  # fmt: skip
    """The outcomes of one cell process's tests, in order, up to the first without a record.

    Args:
        indexes: the tests it ran, in order.
        records: the judge's outcomes by test.
        end: the outcome of the first test without a record (how the process ended), or
            None if it was stopped between tests because the budget ran out.
        over_budget: stopped for the budget: tests without a record were never run.
    """
    outcomes: list[Outcome] = []
    for index in indexes:
        if index in records:
            outcomes.append(records[index])
            continue
        if over_budget or end is None:
            break
        outcomes.append(end)
        break
    return outcomes


# --------------------------------------------------------------------------- processes


def _drop_to(uid: int) -> None:
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)


def _oom_score(value: bytes) -> None:
    # Make these processes, never the runner, the OOM killer's choice (raising needs no
    # privilege).
    adj = os.open("/proc/self/oom_score_adj", os.O_WRONLY)
    os.write(adj, value)
    os.close(adj)


def _become_cell(limits: list[tuple[int, tuple[int, int]]], fds: list[int],
                 cell_uid: int) -> NoReturn:  # fmt: skip
    """In a fork of the template: set up one cell process and serve its judge.

    The template has already put /dev/null on 0, 1 and 2 and /work as the working
    directory; what is left is as little work as possible (every page this forked process
    touches is a copy-on-write fault: most of a cell's cost). ``fds``: the socket to the
    judge, and with feedback the write end of the runner's output pipe.
    """
    capture = len(fds) == 2
    try:
        os.setsid()
        _oom_score(b"1000")
        for kind, value in limits:
            resource.setrlimit(kind, value)
        if capture:  # before the socket moves to cell.FD, which may be the pipe's number
            os.dup2(fds[1], 1)
            os.dup2(fds[1], 2)
        fd = fds[0]
        if fd != cell.FD:
            os.dup2(fd, cell.FD)
        os.closerange(cell.FD + 1, 1 << 16)
        _drop_to(cell_uid)
    except BaseException:
        os._exit(71)  # it never says "up": the judge reports the set-up as failed
    cell.serve(capture)


def _cell_limits(spec: dict[str, int]) -> list[tuple[int, tuple[int, int]]]:
    """The rlimits of a cell process, from the runner's spec of them."""
    return [
        (resource.RLIMIT_CPU, (spec["cpu_s"], spec["cpu_s"] + 1)),
        (resource.RLIMIT_AS, (spec["address_space_mb"] * _MB,) * 2),
        (resource.RLIMIT_NPROC, (spec["nproc"],) * 2),
        (resource.RLIMIT_FSIZE, (spec["fsize_mb"] * _MB,) * 2),
        (resource.RLIMIT_NOFILE, (spec["nofile"],) * 2),
        (resource.RLIMIT_CORE, (0, 0)),
    ]


def _template_main(control: socket.socket, devnull: int, cell_uid: int) -> NoReturn:
    """The template: fork a cell process per order of the runner; report how each ended.

    It receives only limits and a socket, never a program or a test, so every cell it
    forks starts from a process that has held no request's text.
    """
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.chdir(WORK_DIR)
    poller = select.poll()
    poller.register(control, select.POLLIN)
    cells: dict[int, int] = {}  # pidfd -> pid
    specs: dict[bytes, list[tuple[int, tuple[int, int]]]] = {}
    while True:
        for fd, _ in poller.poll():
            if fd in cells:
                pid = cells.pop(fd)
                poller.unregister(fd)
                os.close(fd)
                _, status = os.waitpid(pid, 0)
                control.send(EXIT_REPORT.pack(pid, status))
                continue
            data, fds, _, _ = socket.recv_fds(control, 1 << 12, 2)
            if not data:
                os._exit(0)
            if data not in specs:  # the same few, request after request
                specs[data] = _cell_limits(json.loads(data))
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the cell process
                _become_cell(specs[data], fds, cell_uid)
            for fd in fds:  # the pipe's write end must live only in cells (EOF after them)
                os.close(fd)
            pidfd = os.pidfd_open(pid)
            cells[pidfd] = pid
            poller.register(pidfd, select.POLLIN)


def _judge_main(control: socket.socket, requests: int, devnull: int,
                judge_uid: int) -> NoReturn:  # fmt: skip
    """In a fork of the runner: become the container's judge."""
    try:
        os.setsid()
        _oom_score(b"500")
        # No processes (RLIMIT_NPROC 0) and no files. Memory: the container's (the judge
        # outlives requests, whose cell limits may differ), so that a test that builds a
        # huge value gets a MemoryError rather than the OOM killer; time: the runner's
        # deadline.
        limits = [
            (resource.RLIMIT_NPROC, (0, 0)),
            (resource.RLIMIT_FSIZE, (0, 0)),
            (resource.RLIMIT_NOFILE, (16, 16)),
            (resource.RLIMIT_CORE, (0, 0)),
        ]
        memory = _container_memory()
        if memory is not None:
            limits.append((resource.RLIMIT_AS, (memory, memory)))
        for kind, value in limits:
            resource.setrlimit(kind, value)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        keep = sorted((control.fileno(), requests))
        os.closerange(3, keep[0])
        os.closerange(keep[0] + 1, keep[1])
        os.closerange(keep[1] + 1, 1 << 16)
        os.chdir("/")
        _drop_to(judge_uid)
        # Imported here, in the judge, not by the runner: the template and so every cell
        # process would carry its modules (ast among them), and every fork and exit costs
        # in proportion to the memory mapped.
        from sandbox import judge
    except BaseException:
        os._exit(71)
    judge.serve(control, requests)


class _Peer:
    """A child process of the runner and the runner's end of a socket to it."""

    def __init__(self, pid: int, control: socket.socket) -> None:
        self.pid = pid
        self.control = control

    def receive(self) -> bytes:
        """Its next message (empty if it closed the socket: it died)."""
        try:
            return self.control.recv(ANSWER_BYTES)
        except OSError:
            return b""


class Runner:
    """Runs requests; owns the container's process table and writable directories."""

    def __init__(self, cell_uid: int = DEFAULT_CELL_UID) -> None:
        self.cell_uid = cell_uid
        self.judge_uid = judge_uid_of(cell_uid)
        self.devnull = os.open("/dev/null", os.O_RDWR)
        self._oom_events = _open_oom_events()
        self.oom_kills = self._read_oom_kills()
        self._template: _Peer | None = None
        self._judge: _Peer | None = None
        self._judge_requests = -1  # the write end of the judge's request pipe
        self._request: bytes = b""  # the current request, for a judge started mid-way
        self._exited: dict[int, int] = {}  # reaped children of ours we still care about

    def start_template(self) -> None:
        """Fork the template; call before reading any request (it must never hold one)."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the template
            ours.close()
            _template_main(theirs, self.devnull, self.cell_uid)
        theirs.close()
        self._template = _Peer(pid, ours)

    # ----------------------------------------------------------------- requests

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        """One response for one request."""
        tests: list[str] = request["tests"]
        timeout_s = float(request["timeout_s"])
        limits: dict[str, Any] = request["limits"]
        shared = request.get("isolation") == "shared"
        budget_s = request.get("budget_s")
        with_feedback = bool(request.get("feedback", False))
        stop_at = None if budget_s is None else time.monotonic() + float(budget_s)
        self._request = json.dumps(
            {"program": request["program"], "tests": tests, "shared": shared,
             "split": bool(request.get("split", True)), "feedback": with_feedback}
        ).encode()  # fmt: skip
        modes = self._plan()
        outcomes: list[Outcome] = []
        clean = True
        over_budget = False
        while len(outcomes) < len(tests) and clean:
            if stop_at is not None and time.monotonic() >= stop_at:
                over_budget = True
                break
            start = len(outcomes)
            indexes = list(range(start, len(tests))) if shared else [start]
            outcomes.extend(
                self._run_cell(indexes, shared, timeout_s, limits, stop_at, with_feedback)
            )
            clean = self._clean_up()
        if over_budget:
            reason = f"not run: the time budget of {budget_s:g} s ran out"
        else:
            reason = "not run: the sandbox could not be cleaned after an earlier test"
        outcomes.extend([(SANDBOX_ERROR, reason, reason, "")] * (len(tests) - len(outcomes)))
        response = {
            "id": request.get("id"),
            "statuses": [outcome[0] for outcome in outcomes],
            "details": [outcome[1] for outcome in outcomes],
            "modes": modes,
            "retire": not clean,
            "budget_exceeded": over_budget,
        }
        if with_feedback:
            passed = [outcome[0] == PASSED for outcome in outcomes]
            response["errors"] = [
                "" if ok else feedback.error_text(outcome[2])
                for ok, outcome in zip(passed, outcomes, strict=True)
            ]
            response["outputs"] = [
                "" if ok else outcome[3] for ok, outcome in zip(passed, outcomes, strict=True)
            ]
        return response

    def _plan(self) -> list[str]:
        """Give the judge the current request (starting one if needed); the tests' modes."""
        for attempt in range(2):
            judge_peer = self._judge or self._start_judge()
            try:
                judge_peer.control.send(b'{"op": "request"}')
                wire.write_frame(self._judge_requests, wire.KIND_JSON, self._request)
            except OSError:
                pass  # it died: the reply below is empty
            ready = select.select([judge_peer.control], [], [], PLAN_LIMIT_S)[0]
            reply = judge_peer.receive() if ready else b""
            if reply:
                modes: list[str] = json.loads(reply)["modes"]
                return modes
            self._stop_judge()
            if attempt:
                break
        raise _JudgeLost("the judge could not take the request twice in a row")

    # ----------------------------------------------------------------- one cell process

    def _run_cell(self, indexes: list[int], shared: bool, timeout_s: float,
                  limits: dict[str, Any], stop_at: float | None,
                  with_feedback: bool = False) -> list[Outcome]:  # fmt: skip
        """Start a cell process for ``indexes`` and have the judge decide them.

        Tests after one that timed out or crashed a shared cell are left for the caller to
        run in a fresh one. A shared cell is stopped at the first outcome read after
        ``stop_at`` (it starts no further test), so it may return no outcome at all then.
        With feedback, the cell's stdout and stderr are a pipe read here as it goes.
        """
        template = self._template
        if template is None:
            raise RuntimeError("start_template() was not called")
        if self._judge is None:
            self._plan()  # a judge killed after the last cell: give the new one the request
        judge_peer = self._judge
        if judge_peer is None:
            raise _JudgeLost("no judge")
        spec = json.dumps(dict(limits, cpu_s=cpu_limit_s(timeout_s, len(indexes)))).encode()
        output = _OutputPipe() if with_feedback else None
        for_cell, for_judge = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        with for_cell, for_judge:
            fds = [for_cell.fileno()] if output is None else [for_cell.fileno(), output.writer]
            try:
                socket.send_fds(template.control, [spec], fds)
            finally:
                if output is not None:
                    output.close_writer()
            order = json.dumps({"op": "cell", "tests": indexes}).encode()
            socket.send_fds(judge_peer.control, [order], [for_judge.fileno()])
        try:
            return self._watch_cell(
                indexes, shared, timeout_s, stop_at, template, judge_peer, output
            )
        finally:
            if output is not None:
                output.close()

    def _watch_cell(self, indexes: list[int], shared: bool, timeout_s: float,
                    stop_at: float | None, template: _Peer, judge_peer: _Peer,
                    output: _OutputPipe | None) -> list[Outcome]:  # fmt: skip
        """Collect the outcomes of a started cell process (``_run_cell``)."""
        records: dict[int, Outcome] = {}
        ended: str | None = None  # why the judge stopped before deciding every test
        cell_status: int | None = None
        timed_out = over_budget = False
        # Shared mode: the program and the first test share the first deadline, and each
        # later test gets its own, measured from the previous outcome.
        deadline = time.monotonic() + timeout_s * (2 if shared else 1)
        poller = select.poll()
        poller.register(judge_peer.control, select.POLLIN)
        poller.register(template.control, select.POLLIN)
        if output is not None:
            poller.register(output.fd, select.POLLIN)
        while len(records) < len(indexes) and ended is None and not over_budget:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = True
                break
            for fd, _ in poller.poll(remaining * 1000):
                if fd == template.control.fileno():
                    cell_status = self._cell_report(template)
                    continue
                if output is not None and fd == output.fd:
                    if not output.drain(OUTPUT_READS):
                        poller.unregister(fd)  # every writer is gone
                    continue
                data = judge_peer.receive()
                message = json.loads(data) if data else {}
                if not data:
                    ended = "judge died"
                elif "status" in message:
                    printed = ""
                    if output is not None:  # written before the outcome: already in the pipe
                        output.drain(OUTPUT_READS)
                        if message["status"] != PASSED:  # else it may be the next test's
                            printed = output.tail.take()
                    error = str(message.get("error", ""))
                    records[message["index"]] = (
                        message["status"], message["detail"], error, printed
                    )  # fmt: skip
                    now = time.monotonic()
                    deadline = now + timeout_s
                    over_budget = stop_at is not None and now >= stop_at
                else:
                    ended = "lost" if message.get("lost") else "unset"
        self._kill_cells()
        judge_status: int | None = None
        cut_short = timed_out or (over_budget and len(records) < len(indexes))
        if ended == "judge died" or (cut_short and not self._judge_settles(judge_peer, indexes)):
            judge_status = self._stop_judge()  # it is mid-test: never reuse it then
        if cell_status is None:
            cell_status = self._cell_report(template, wait=True)
        oom = self._oom_rose()
        ending: tuple[str, str]
        if ended == "unset":
            ending = (SANDBOX_ERROR, "the cell process could not be set up")
        elif ended == "judge died":
            ending = _judge_death(judge_status, oom)
        else:
            killed = oom and cell_status is not None and os.WIFSIGNALED(cell_status)
            ending = verdict_from_exit(cell_status, timed_out, timeout_s, killed)
        printed = ""
        if output is not None:  # the cell's processes are dead: what is left is all there is
            output.drain(4 * OUTPUT_READS)
            printed = output.tail.take()
        error = feedback.timeout_text(timeout_s) if timed_out else ending[1]
        end: Outcome | None = (*ending, error if output is not None else "", printed)
        if over_budget:
            end = None
        return outcomes_of(indexes, records, end, over_budget)

    def _judge_settles(self, judge_peer: _Peer, indexes: list[int]) -> bool:
        """Whether a judge cut off mid-test finishes its order soon after its cell died.

        Usually it was only waiting for the cell's answer: it then reports the cell lost
        (or, by a hair, outcomes that came too late, which are dropped) and is ready for
        the next order, which saves starting a judge (tens of milliseconds). One busy with
        the test's own parts does not finish in time and is replaced.
        """
        deadline = time.monotonic() + JUDGE_GRACE_S
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([judge_peer.control], [], [], remaining)[0]:
                return False
            data = judge_peer.receive()
            if not data:
                return False
            message = json.loads(data)
            if "status" not in message or message["index"] == indexes[-1]:
                return True  # lost, unset, or the order's last outcome: it is done

    def _cell_report(self, template: _Peer, wait: bool = False) -> int | None:
        """The wait status of the cell process the template reports next."""
        if wait and not select.select([template.control], [], [], REAP_LIMIT_S)[0]:
            return None
        report = template.receive()
        if len(report) != EXIT_REPORT.size:
            raise _TemplateLost("the template process died")
        return int(EXIT_REPORT.unpack(report)[1])

    # ----------------------------------------------------------------- the judge

    def _start_judge(self) -> _Peer:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        requests_r, requests_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the judge
            ours.close()
            os.close(requests_w)
            _judge_main(theirs, requests_r, self.devnull, self.judge_uid)
        theirs.close()
        os.close(requests_r)
        self._judge = _Peer(pid, ours)
        self._judge_requests = requests_w
        return self._judge

    def _stop_judge(self) -> int | None:
        """Kill and reap the judge (if any); its wait status."""
        judge_peer, self._judge = self._judge, None
        if judge_peer is None:
            return None
        judge_peer.control.close()
        os.close(self._judge_requests)
        with contextlib.suppress(ProcessLookupError):
            os.kill(judge_peer.pid, signal.SIGKILL)
        return self._reap(judge_peer.pid)

    # ----------------------------------------------------------------- clean-up

    def _kill_cells(self) -> None:
        """SIGKILL every process of the cell uid (the judge and the template are spared).

        kill(-1) reaches every process the caller may signal; with the cell uid as real
        and effective uid and no capability in effect, that is exactly the cell uid's
        processes, in one pass: the kernel holds the task list while it signals, and a
        process with a fatal signal pending cannot finish a fork, so fork bombs and setsid
        daemons are caught too. The saved uid (root) lets the runner change back at once.
        """
        os.setresuid(self.cell_uid, self.cell_uid, 0)
        try:
            with contextlib.suppress(ProcessLookupError):
                os.kill(-1, signal.SIGKILL)
        finally:
            os.setresuid(0, 0, 0)

    def _clean_up(self) -> bool:
        """Reap the killed processes and empty the writable directories; False if unclean."""
        if not self._all_cells_gone():
            return False
        dirty = [path for path in WIPE_DIRS if _has_entries(path)]
        if not dirty:
            return True
        # Cells may leave directories the runner (without CAP_DAC_OVERRIDE) cannot enter,
        # so it wipes as the cell user, who owns everything a cell created. No process of
        # that uid is left to interfere (or to signal the runner meanwhile).
        deadline = time.monotonic() + WIPE_LIMIT_S
        os.setresuid(self.cell_uid, self.cell_uid, 0)
        try:
            for path in dirty:
                _remove_contents(path, deadline)
        finally:
            os.setresuid(0, 0, 0)
        return not any(_has_entries(path) for path in dirty)

    def _all_cells_gone(self) -> bool:
        """Reap orphans until no process but the runner's own is left (bounded)."""
        deadline = time.monotonic() + REAP_LIMIT_S
        while True:
            self._reap_any()
            ours = {1, os.getpid()}
            ours.update(peer.pid for peer in (self._template, self._judge) if peer is not None)
            pids = [int(name) for name in os.listdir("/proc") if name.isdigit()]
            if not [pid for pid in pids if pid not in ours]:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.0005)

    def _reap_any(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if self._template is not None and pid == self._template.pid:
                raise _TemplateLost(f"the template process ended (wait status {status})")
            self._exited[pid] = status

    def _reap(self, pid: int) -> int | None:
        """The wait status of our child ``pid`` (reaping it if still needed)."""
        if pid in self._exited:
            return self._exited.pop(pid)
        try:
            return os.waitpid(pid, 0)[1]
        except ChildProcessError:
            return None

    def _oom_rose(self) -> bool:
        """Whether the OOM-kill counter rose since the last reading (which this absorbs)."""
        count = self._read_oom_kills()
        rose = count > self.oom_kills
        self.oom_kills = count
        return rose

    def _read_oom_kills(self) -> int:
        if self._oom_events < 0:
            return 0
        for line in os.pread(self._oom_events, 4096, 0).split(b"\n"):
            key, _, value = line.partition(b" ")
            if key == b"oom_kill":
                return int(value)
        return 0


def _container_memory() -> int | None:
    """The container's memory limit in bytes (cgroup v2, else v1), or None if unlimited."""
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as handle:
                text = handle.read().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 1 << 50:  # v1 says "unlimited" with a huge number
            return int(text)
        return None
    return None


def _open_oom_events() -> int:
    """A descriptor on the cgroup's OOM-kill counter (v2, else v1), or -1 without one."""
    for path in ("/sys/fs/cgroup/memory.events", "/sys/fs/cgroup/memory/memory.oom_control"):
        try:
            return os.open(path, os.O_RDONLY)
        except OSError:
            continue
    return -1


def _judge_death(status: int | None, oom: bool) -> tuple[str, str]:
    """The outcome of the test a judge died on (a test that spent the judge's limits)."""
    if status is not None and os.WIFSIGNALED(status):
        if os.WTERMSIG(status) == signal.SIGXCPU:
            return TIMEOUT, "CPU time limit exceeded while evaluating the test"
        if os.WTERMSIG(status) == signal.SIGKILL and oom:
            return MEMORY, "killed by the container's memory limit"
    return SANDBOX_ERROR, f"the judge process ended unexpectedly (wait status {status})"


class _OutputPipe:
    """The pipe a cell's stdout and stderr go to (feedback only); the runner reads its tail.

    Only the read end is non-blocking: the program's writes block while the pipe is full,
    as they would on a terminal, and never fail.
    """

    def __init__(self) -> None:
        self.fd, self.writer = os.pipe()
        os.set_blocking(self.fd, False)
        self.tail = feedback.OutputTail()

    def close_writer(self) -> None:
        """Drop the runner's copy of the write end (it is sent to the template first)."""
        if self.writer >= 0:
            os.close(self.writer)
            self.writer = -1

    def drain(self, reads: int) -> bool:
        """Read what is there, at most ``reads`` chunks; False once every writer is gone."""
        for _ in range(reads):
            try:
                chunk = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                return True
            if not chunk:
                return False
            self.tail.add(chunk)
        return True

    def close(self) -> None:
        self.close_writer()
        os.close(self.fd)


class _TemplateLost(Exception):
    """The template process is gone: no more cells can start in this container."""


class _JudgeLost(Exception):
    """No judge could take the request: no outcome can be trusted in this container."""


def _has_entries(path: str) -> bool:
    try:
        with os.scandir(path) as entries:
            return next(entries, None) is not None
    except FileNotFoundError:
        return False


def _remove_contents(root: str, deadline: float) -> None:
    """Delete everything under ``root`` without recursion (cells can nest very deep)."""
    stack = [os.path.join(root, name) for name in os.listdir(root)]
    directories: list[str] = []
    while stack:
        if len(stack) % 256 == 0 and time.monotonic() > deadline:
            return
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
    # PID 1 gets only the signals it handles; Python handles SIGINT, which a cell could
    # send while the runner briefly holds the cell uid (see Runner._kill_cells).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
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
    runner.start_template()
    runner._start_judge()
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
        except (_TemplateLost, _JudgeLost) as exc:
            response = {"error": f"cannot run cells any more: {exc}", "retire": True}
        out.write(json.dumps(response).encode() + b"\n")
        out.flush()
        if response.get("retire"):
            return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
