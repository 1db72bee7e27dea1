"""The judge: decides each test's outcome in a process the program can neither reach nor see.

Stdlib only (it runs inside the sandbox image). The runner starts one judge per container,
as a uid of its own (not the cells' uid: a cell can neither signal nor trace it, nor read
its memory). For every request it plans the tests (``sandbox.split``) and compiles the
program; for every cell process the runner starts (``sandbox.cell``) it gets the socket
that reaches that process and the tests to decide there. It loads the program in the cell,
evaluates each split test itself, asking the cell only for the values of the program's
expressions, and tells the runner every outcome::

    runner -> judge   {"op": "request"}, then the request's frame on the request pipe
    judge -> runner   {"modes": ["split", "fallback", ...]}
    runner -> judge   {"op": "cell", "tests": [3]} + the cell's socket (SCM_RIGHTS)
    judge -> runner   {"index": 3, "status": "failed", "detail": "AssertionError"}
                      ... "error": "AssertionError: f(1) == 3 is false; f(1) returned 2"
                                                     (with feedback only: the request's
                                                     "feedback" is true)
                      {"index": 3, "lost": true}     the cell's process ended first
                      {"index": 3, "unset": true}    it never came up (infrastructure)

The runner trusts these, and only these, to say ``passed``. With feedback, the error
text of a cell is made after its status is decided, from what the judge holds (the
program's plain values, its handles' type names, the cell's report of an exception), in
bounded work (``sandbox.feedback``): it cannot change the status.
"""

from __future__ import annotations

import ast
import builtins
import json
import marshal
import os
import socket
from collections.abc import Callable
from types import CodeType
from typing import Any, NoReturn

from sandbox import feedback, split, wire
from sandbox.verdicts import (
    ERROR,
    FALLBACK,
    PASSED,
    RAISED_STATUSES,
    SPLIT,
    describe_exception,
    short_detail,
)

PRECOMPILE_MAX_CHARS = 256_000
PLAN_CACHE_SIZE = 4096

JUDGE_BUILTINS = {name: getattr(builtins, name) for name in split.SAFE_BUILTINS}


def compile_alone(source: str) -> CodeType | None:
    """``source`` compiled on its own, or None if it does not compile or is too large.

    Compiling parses but runs nothing, and done once per request here it saves every cell
    process a cold compile. Very large sources are left to the cell.
    """
    if len(source) > PRECOMPILE_MAX_CHARS:
        return None
    try:
        return compile(source, "<cell>", "exec", dont_inherit=True)
    except BaseException:  # SyntaxError, ValueError (NUL bytes), RecursionError, ...
        return None


def _parse(program: str) -> ast.Module | None:
    if len(program) > PRECOMPILE_MAX_CHARS:
        return None
    try:
        return ast.parse(program)
    except BaseException:  # SyntaxError, ValueError (NUL bytes), RecursionError, ...
        return None


def _compile(tree: ast.Module) -> CodeType | None:
    try:
        return compile(tree, "<cell>", "exec", dont_inherit=True)
    except BaseException:  # a few errors are only found when compiling
        return None


class Job:
    """What the judge needs of one request."""

    def __init__(
        self,
        program: str,
        program_code: bytes | None,
        tests: list[str],
        plans: list[CodeType | None],
        joined: list[bool],
        shared: bool,
        feedback: bool = False,
    ) -> None:
        self.program = program
        self.program_code = program_code
        """The program compiled on its own and marshalled, or None (it does not compile
        alone, or is huge: the cell compiles it)."""
        self.tests = tests
        self.plans = plans
        """Per test: its split plan, or None for the fallback path."""
        self.joined = joined
        """Per test: a fallback test that must run as one text, ``program + "\\n" + test``
        (one of the two does not compile alone, or the program has ``__future__``
        imports)."""
        self.shared = shared
        self.feedback = feedback
        """Make an error text for every cell that does not pass."""

    @property
    def modes(self) -> list[str]:
        return [SPLIT if plan is not None else FALLBACK for plan in self.plans]


class Planner:
    """Makes the ``Job`` of each request; remembers plans across requests."""

    def __init__(self) -> None:
        self._plans: dict[tuple[str, frozenset[str]], CodeType | None] = {}

    def job(self, program: str, tests: list[str], shared: bool, split_tests: bool,
            feedback: bool = False) -> Job:  # fmt: skip
        tree = _parse(program)
        code = _compile(tree) if tree is not None else None
        names = split.bound_names(tree) if code is not None and tree is not None else frozenset()
        plans = [self._plan(test, names) if split_tests else None for test in tests]
        future = "__future__" in program
        joined = [
            plan is None and (code is None or future or compile_alone(test) is None)
            for plan, test in zip(plans, tests, strict=True)
        ]
        return Job(
            program=program,
            program_code=marshal.dumps(code) if code is not None else None,
            tests=tests,
            plans=plans,
            joined=joined,
            shared=shared,
            feedback=feedback,
        )

    def _plan(self, test: str, names: frozenset[str]) -> CodeType | None:
        # The same tests come with every program of a problem: plan each once per set of
        # program names (usually the same few for all of that problem's programs).
        key = (test, names)
        if key not in self._plans:
            if len(self._plans) >= PLAN_CACHE_SIZE:
                self._plans.clear()
            self._plans[key] = split.plan(test, names)
        return self._plans[key]


class _Lost(BaseException):
    """The cell's process ended (or closed its pipe) before answering."""


Outcome = tuple[str, str, str]
"""A test's status, short detail and (with feedback) error text."""


class _Unloaded(BaseException):
    """The program itself failed (while loading): every test of its cell has its outcome."""

    def __init__(self, status: str, detail: str, error: str = "") -> None:
        super().__init__(status, detail)
        self.status = status
        self.detail = detail
        self.error = error


class _Raised(BaseException):
    """The program raised; carries the status and detail its process reported."""

    def __init__(self, status: str, detail: str, error: str = "") -> None:
        super().__init__(status, detail)
        self.status = status
        self.detail = detail
        self.error = error or detail

    @property
    def outcome(self) -> Outcome:
        return self.status, self.detail, self.error


class Opaque:
    """An object of the program's that is not a plain value; it stays in its process.

    The judge may test it for truth (the program's own ``bool`` of it) and identity
    (``is None``), pass it back to the program, or ask the program for its attributes,
    items and call results, but never compare it: its ``__eq__`` lives in the program.
    """

    __slots__ = ("_channel", "handle", "kind", "truth")

    def __init__(self, channel: _Channel, kind: str, truth: bool | None, handle: int) -> None:
        self._channel = channel
        self.kind = kind
        self.truth = truth
        self.handle = handle

    def __bool__(self) -> bool:
        if self.truth is None:
            raise TypeError(f"the program's {self.kind} object has no truth value")
        return self.truth

    def __eq__(self, other: object) -> bool:
        raise TypeError(f"cannot compare the program's {self.kind} object with a value")

    def __ne__(self, other: object) -> bool:
        raise TypeError(f"cannot compare the program's {self.kind} object with a value")

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<{self.kind} object>"

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return self._channel.remote(("h", self), ("a", name))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._channel.remote(("h", self), ("c", args, kwargs))

    def __getitem__(self, key: Any) -> Any:
        return self._channel.remote(("h", self), ("i", key))


class _Channel:
    """The judge's end of the socket to one cell process."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.loaded = False
        """Whether the program is known to have loaded (it says so only when it fails)."""
        self.sources: dict[str, str] | None = None
        """With feedback: the texts the cell runs, by file name (for tracebacks); else
        None, and no error texts are made."""
        self.calls: list[tuple[tuple[Any, ...], Any]] = []
        """With feedback: the current test's latest remote expressions and their values."""

    def keep(self, value: Any) -> dict[str, Any]:
        """Encode one of this cell's objects as its handle (nothing else can cross)."""
        if isinstance(value, Opaque) and value._channel is self:
            return {"h": value.handle}
        raise wire.Unencodable(f"a {type(value).__name__} object")

    def resolve(self, tag: str, body: Any) -> Opaque:
        if (
            tag == "o"
            and isinstance(body, list)
            and len(body) == 3
            and isinstance(body[0], str)
            and (body[1] is None or type(body[1]) is bool)
            and type(body[2]) is int
        ):
            return Opaque(self, body[0][:100], body[1], body[2])
        raise wire.WireError(f"malformed handle {tag!r}")

    def send(self, message: list[Any]) -> None:
        """Send a message of plain parts, marshalled (the cell reads that fastest).

        Raises:
            ValueError: a part cannot be marshalled.
        """
        self._write(wire.KIND_ORDER, marshal.dumps(message, wire.MARSHAL_VERSION))

    def _write(self, kind: bytes, payload: bytes) -> None:
        try:
            wire.write_frame(self.fd, kind, payload)
        except OSError as exc:  # EPIPE: the cell is gone
            raise _Lost from exc

    def send_code(self, code: bytes) -> None:
        self._write(wire.KIND_CODE, code)

    def receive(self) -> list[Any]:
        """The cell's next message.

        Raises:
            _Lost: the pipe ended first.
            _Raised: (as an ``error``) it sent something that is not a message.
        """
        try:
            message = wire.receive(self.fd, resolve=self.resolve)
        except wire.WireError as exc:
            raise _Raised(ERROR, f"the program's process broke the protocol: {exc}") from exc
        except OSError as exc:
            raise _Lost from exc
        if message is None:
            raise _Lost
        return message

    def answer(self) -> list[Any]:
        """The cell's next answer; any answer at all means the program loaded.

        Raises:
            _Unloaded: the program failed to load (its status is every test's).
        """
        message = self.receive()
        if message[0] == "unloaded":
            raise _Unloaded(*self.outcome(["raised", *message[1:]]))
        self.loaded = True
        return message

    def sync(self) -> None:
        """Make sure the program loaded (a test that asked the cell nothing cannot tell)."""
        if not self.loaded:
            self.send(["sync"])
            if self.answer() != ["ready"]:
                raise _Raised(ERROR, "the program's process answered out of protocol")

    def outcome(self, message: list[Any]) -> Outcome:
        """The status a ``["raised", ...]`` message stands for (any other: an error)."""
        if (
            len(message) in (3, 6)
            and message[0] == "raised"
            and message[1] in RAISED_STATUSES
            and isinstance(message[2], str)
        ):
            detail = short_detail(message[2])
            return message[1], detail, self._error_of(message, detail)
        detail = f"the program's process answered out of protocol: {str(message)[:80]}"
        return ERROR, detail, detail

    def _error_of(self, message: list[Any], detail: str) -> str:
        """The traceback text of a cell's exception report (its detail without one)."""
        if self.sources is None:
            return ""
        if len(message) != 6 or not isinstance(message[3], str):
            return detail
        frames = [
            (frame[0][:200], frame[1], frame[2][:200])
            for frame in (message[4] if isinstance(message[4], list) else [])[-feedback.FRAMES :]
            if isinstance(frame, list)
            and len(frame) == 3
            and isinstance(frame[0], str)
            and type(frame[1]) is int
            and isinstance(frame[2], str)
        ]
        dropped = message[5] if type(message[5]) is int and message[5] > 0 else 0
        return feedback.format_trace(message[3][-feedback.FEEDBACK_CHARS :], frames, dropped,
                                     self.sources)  # fmt: skip

    def remote(self, *steps: tuple[Any, ...]) -> Any:
        """Evaluate one of the program's expressions in its process; its plain value."""
        try:
            # Plain arguments marshal as they are; handles and iterators need JSON's tags.
            self.send(["eval", steps])
        except ValueError:
            try:
                encoded = [_step(step, self.keep) for step in steps]
            except wire.Unencodable as exc:
                raise TypeError(
                    f"the test passes {exc} to the program, which cannot cross"
                ) from exc
            try:
                wire.send(self.fd, ["eval", encoded])  # already plain: tags as they are
            except OSError as exc:
                raise _Lost from exc
        reply = self.answer()
        if len(reply) == 2 and reply[0] == "ok":
            if self.sources is not None:
                self.calls = [*self.calls[-(feedback.CALLS_SHOWN - 1) :], (steps, reply[1])]
            return reply[1]
        raise _Raised(*self.outcome(reply))


def _step(step: tuple[Any, ...], keep: wire.Keep) -> list[Any]:
    if step[0] == "c":
        return ["c", wire.plain(list(step[1]), keep), wire.plain(step[2], keep)]
    if step[0] in ("i", "h"):
        return [step[0], wire.plain(step[1], keep)]
    return [step[0], step[1]]


Report = Callable[[dict[str, Any]], None]


def serve(control: socket.socket, requests: int) -> NoReturn:
    """Judge what the runner sends until it closes ``control`` (see the module docstring).

    Args:
        control: the runner's orders and the cells' sockets come in, outcomes go out.
        requests: a pipe the runner writes each request's frame to (a request can be far
            larger than one message on ``control``).
    """

    def report(message: dict[str, Any]) -> None:
        control.send(json.dumps(message).encode())

    planner = Planner()
    job: Job | None = None
    while True:
        data, fds, _, _ = socket.recv_fds(control, 1 << 16, 1)
        if not data:
            os._exit(0)
        order = json.loads(data)
        if order["op"] == "request":
            frame = wire.read_frame(requests, limit=1 << 30)
            if frame is None:
                os._exit(0)
            request = json.loads(frame[1])
            job = planner.job(
                request["program"],
                request["tests"],
                request["shared"],
                request["split"],
                bool(request.get("feedback")),
            )
            report({"modes": job.modes})
            continue
        (fd,) = fds
        try:
            if job is not None:
                _judge_cell(job, order["tests"], _Channel(fd), report)
        finally:
            os.close(fd)


def _judge_cell(job: Job, indexes: list[int], channel: _Channel, report: Report) -> None:
    """Load the program in one cell process and decide ``indexes`` on it, in order."""
    current = indexes[0]
    sources: dict[str, str] | None = None
    if job.feedback:
        joined = not job.shared and job.joined[current]
        cell_text = job.program + "\n" + job.tests[current] if joined else job.program
        sources = {feedback.CELL_FILE: cell_text}
    channel.sources = sources

    def send(index: int, outcome: Outcome) -> None:
        status, detail, error = outcome
        message: dict[str, Any] = {"index": index, "status": status, "detail": detail}
        if sources is not None:
            message["error"] = "" if status == PASSED else feedback.error_text(error or detail)
        report(message)

    try:
        # The program goes out at once (the pipe holds it until the cell reads it), so
        # the cell finds it waiting once it is set up.
        if not job.shared and job.joined[current]:
            channel.send(["load", job.program + "\n" + job.tests[current], True])
        elif job.program_code is not None:
            channel.send_code(job.program_code)
        else:
            channel.send(["load", job.program, False])
    except _Lost:
        pass  # it died during set-up: the next read says so
    try:
        if channel.receive() != ["up"]:
            report({"index": current, "unset": True})
            return
    except (_Lost, _Raised):
        report({"index": current, "unset": True})
        return
    try:
        if not job.shared and job.joined[current]:
            send(current, _fallback_outcome(channel))
            return
        for current in indexes:
            send(current, _decide(job, current, channel))
    except _Unloaded as failed:
        for index in indexes[indexes.index(current) :]:  # the program failed: so does each
            send(index, (failed.status, failed.detail, failed.error))
    except _Lost:
        report({"index": current, "lost": True})


def _decide(job: Job, index: int, channel: _Channel) -> Outcome:
    plan = job.plans[index]
    if plan is None:
        if channel.sources is not None:
            channel.sources[feedback.TEST_FILE] = job.tests[index]
        channel.send(["run", job.tests[index]])
        return _fallback_outcome(channel)
    namespace = {"__builtins__": JUDGE_BUILTINS, split.REMOTE: channel.remote, split.SLICE: slice}
    channel.calls = []
    try:
        exec(plan, namespace)
    except _Raised as raised:
        return raised.outcome
    except (_Lost, _Unloaded):
        raise
    except BaseException as exc:
        status, detail = describe_exception(exc)
        # Decided above; the text is made from what the judge holds, in bounded work.
        error = _judged_error(exc, job.tests[index], channel) if channel.sources is not None else ""
        outcome = status, detail, error
    else:
        outcome = PASSED, "", ""
    try:
        channel.sync()  # a program that failed to load fails the test, whatever it asked
    except _Raised as raised:
        return raised.outcome
    return outcome


def _judged_error(exc: BaseException, test: str, channel: _Channel) -> str:
    """The error text of a split test that failed in the judge's own evaluation.

    ``AssertionError: add(1, 2) == 4 is false; add(1, 2) returned 3``: the assertion's
    own message if it has one, the asserted expression, and the latest values the
    program's expressions gave (plain values shown, the program's objects by type name).
    """
    try:
        parts = [feedback.exception_message(exc)]
        expression = _asserted(test) if isinstance(exc, AssertionError) else ""
        if expression and parts[0] == "AssertionError":  # no message of its own
            parts = [f"AssertionError: {expression} is false"]
        elif expression:
            parts.append(f"{expression} is false")
        parts += [f"{feedback.describe_call(steps)} {feedback.returned(value)}"
                  for steps, value in channel.calls]  # fmt: skip
        return "; ".join(parts)
    except BaseException:  # best effort: the status is already decided
        return describe_exception(exc)[1]


def _asserted(test: str) -> str:
    """The source of the expression ``test`` (one assert statement) asserts, cut."""
    try:
        statement = ast.parse(test).body[0]
    except BaseException:
        return ""
    if not isinstance(statement, ast.Assert):
        return ""
    text = ast.get_source_segment(test, statement.test) or ""
    text = " ".join(text.split())
    return text if len(text) <= feedback.REPR_CHARS else text[: feedback.REPR_CHARS - 3] + "..."


def _fallback_outcome(channel: _Channel) -> Outcome:
    """The outcome of a test the cell runs itself: ``passed`` only with the token's return."""
    token = os.urandom(16).hex()
    handed = 0
    while True:
        try:
            message = channel.answer()
        except _Raised as raised:
            return raised.outcome
        if message == ["token?"]:
            handed += 1
            channel.send(["token", token])
            continue
        if len(message) == 2 and message[0] == "ran":
            if handed == 1 and message[1] == token:
                return PASSED, "", ""
            detail = "the test's process reported a return it did not make"
            return ERROR, detail, detail
        return channel.outcome(message)
