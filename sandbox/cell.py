"""The program's process: runs the untrusted program and answers its judge's questions.

Stdlib only (it runs inside the sandbox image). Everything here runs in a process the
program controls, so nothing here is trusted: the program can read, patch or bypass all
of it. That is why it decides no outcome. It only answers what the judge asks, over one
socket (``FD``), in ``sandbox.wire`` messages::

    judge -> cell                                cell -> judge
                                                 ["up"]
    (code frame: the compiled program)           nothing | ["unloaded", status, detail]
    ["load", source, final]                      the same (final: see "run")
    ["sync"]                                     ["ready"]
    ["eval", [["n", "f"], ["c", [1], {}]]]       ["ok", value] | ["raised", status, detail]
    ["run", source]   (fallback tests only)      ["token?"] ... ["ran", token] | ["raised", ...]
    ["token", token]

A program that loads says nothing (the judge sends its first question without waiting:
one exchange fewer per test); one that fails says ``unloaded`` before anything else.

It writes ``["up"]`` first, once the runner has set it up, before any program code runs,
so the judge can tell a broken set-up from a program that exits. An ``eval`` starts at a
name of the program (``["n", name]``) or at an object it returned earlier (``["h",
handle]``), then applies attributes (``["a", name]``), calls (``["c", args, kwargs]``)
and items (``["i", key]``). Objects that are not plain values stay here, in ``_Objects``,
and travel as handles (see ``sandbox.wire``). The judge's messages come marshalled (or as
JSON when they carry handles); a plain answer goes back as a marshalled value.

A fallback test (one the judge cannot split) runs here, and only its ``["ran", token]``
says it returned: the token is asked for after the test's code returned, so it is not in
this process's memory while that code runs. A program that knows this protocol can still
ask for it itself; such tests are marked ``fallback`` in the results.

With feedback on (``serve(capture=True)``), the runner has put a pipe of its own on
descriptors 1 and 2: the program's prints go there (line-buffered, and flushed before
every answer, so what was printed before a test's outcome is in the pipe before the judge
hears of it), and a ``raised`` or ``unloaded`` message carries three more parts: the
exception's whole message, its traceback entries in the program's files and how many
earlier ones were left out (``sandbox.feedback``). They are text for a prompt only.
"""

from __future__ import annotations

import builtins
import contextlib
import io
import marshal
import os
import sys
from typing import Any, NoReturn

from sandbox import feedback, wire
from sandbox.verdicts import describe_exception

FD = 3
"""The socket to the judge (the runner puts it there; every other descriptor is closed)."""
CELL_MODULE_NAME = "__cell__"
# Frames of these files are the cell's machinery, not the program's: left out of tracebacks.
_OWN_FILES = (__file__, wire.__file__)
_stream: io.TextIOWrapper | None = None
"""The program's stdout and stderr when feedback is on (None: both are /dev/null)."""


class _Objects:
    """The program's objects the judge holds handles to (not plain: they never cross)."""

    def __init__(self) -> None:
        self.items: list[Any] = []

    def keep(self, value: Any) -> dict[str, Any]:
        try:
            truth: bool | None = bool(value)
        except Exception:
            truth = None
        self.items.append(value)
        return {"o": [type(value).__name__, truth, len(self.items) - 1]}

    def resolve(self, tag: str, body: Any) -> Any:
        if tag == "h" and type(body) is int and 0 <= body < len(self.items):
            return self.items[body]
        raise wire.WireError(f"no object with handle {body!r}")


def serve(capture: bool = False) -> NoReturn:
    """Answer the judge until it closes the pipe, then exit (the runner kills us anyway).

    Args:
        capture: descriptors 1 and 2 are the runner's output pipe (feedback is on).
    """
    if capture:
        _capture_output()
    # Not "__main__": like HumanEval's and CodeT's harnesses, so a program's
    # `if __name__ == "__main__":` block (often reading stdin) does not run.
    namespace: dict[str, Any] = {"__name__": CELL_MODULE_NAME, "__builtins__": builtins}
    objects = _Objects()
    wire.write_all(FD, wire.UP)
    while True:
        frame = wire.read_frame(FD)
        if frame is None:
            _flush()
            os._exit(0)
        kind, payload = frame
        if kind == wire.KIND_CODE:
            _run(namespace, marshal.loads(payload), final=False)
            continue
        if kind == wire.KIND_ORDER:
            message = marshal.loads(payload)
        else:
            message = wire.loads(payload, objects.resolve)
        op = message[0]
        if op == "eval":
            _evaluate(namespace, objects, message[1])
        elif op == "load":
            _run(namespace, message[1], final=bool(message[2]))
        elif op == "sync":
            _flush()
            wire.write_all(FD, wire.READY)
        elif op == "run":
            _run(namespace, message[1], final=True, filename=feedback.TEST_FILE)
        else:
            os._exit(70)


def _capture_output() -> None:
    """Make the program's stdout and stderr one line-buffered stream on descriptor 1."""
    global _stream
    raw = io.FileIO(1, "w", closefd=False)
    _stream = io.TextIOWrapper(
        io.BufferedWriter(raw), encoding="utf-8", errors="backslashreplace", line_buffering=True
    )
    sys.stdout = sys.stderr = _stream
    for name in ("__stdout__", "__stderr__"):  # the runner's own, buffered: never flushed
        setattr(sys, name, _stream)


def _flush() -> None:
    """Push what the program printed into the runner's pipe (feedback only)."""
    if _stream is not None:
        with contextlib.suppress(BaseException):  # the program may have broken it: its loss
            _stream.flush()


def _raised(kind: str, exc: BaseException) -> None:
    """Report an exception of the program's (``raised`` or ``unloaded``)."""
    status, detail = describe_exception(exc)
    if _stream is None:
        wire.send(FD, [kind, status, detail])
        return
    _flush()
    try:
        message = feedback.exception_message(exc)
        frames, dropped = feedback.frames_of(exc, _OWN_FILES)
    except BaseException:  # describing is best effort; the status is already known
        message, frames, dropped = detail, [], 0
    wire.send(FD, [kind, status, detail, message, frames, dropped])


def _run(
    namespace: dict[str, Any], code: Any, final: bool, filename: str = feedback.CELL_FILE
) -> None:
    """Execute program or test code; ``final``: it is a whole test (fallback)."""
    try:
        if isinstance(code, str):
            code = compile(code, filename, "exec", dont_inherit=True)
        exec(code, namespace)
    except BaseException as exc:
        _raised("raised" if final else "unloaded", exc)
        return
    if not final:
        return
    _flush()
    wire.write_all(FD, wire.TOKEN_PLEASE)
    frame = wire.read_frame(FD)
    reply = marshal.loads(frame[1]) if frame is not None and frame[0] == wire.KIND_ORDER else None
    if not reply or reply[0] != "token":
        os._exit(70)
    wire.send(FD, ["ran", reply[1]])


def _evaluate(namespace: dict[str, Any], objects: _Objects, steps: list[list[Any]]) -> None:
    """Evaluate one remote expression (its root, then attributes, calls, items)."""
    try:
        root = steps[0]
        # A handle's root is the object itself: wire.loads resolved it.
        value = _lookup(namespace, root[1]) if root[0] == "n" else root[1]
        for step in steps[1:]:
            if step[0] == "c":
                value = value(*step[1], **step[2])
            elif step[0] == "a":
                value = getattr(value, step[1])
            else:
                value = value[step[1]]
    except BaseException as exc:
        _raised("raised", exc)
        return
    _flush()
    if _exactly_plain(value):
        try:
            answer = marshal.dumps(value, wire.MARSHAL_VERSION)
        except ValueError:  # nested too deeply for marshal: the JSON road says so
            pass
        else:
            wire.write_frame(FD, wire.KIND_VALUE, answer)
            return
    try:
        answer = wire.dumps(value, objects.keep)
    except wire.Unencodable as exc:
        detail = f"TypeError: {_describe(steps)} gave {exc}, which cannot be passed to the test"
        wire.send(FD, ["raised", "error", detail])
        return
    except BaseException as exc:  # iterating a generator runs program code
        _raised("raised", exc)
        return
    _flush()  # the generator may have printed
    wire.write_frame(FD, wire.KIND_JSON, b'["ok",' + answer + b"]")


_PLAIN_TYPES = frozenset({type(None), bool, int, float, complex, str, bytes, tuple, list,
                          dict, set, frozenset})  # fmt: skip


def _exactly_plain(value: Any) -> bool:
    """Whether ``value`` holds only the plain types themselves (no subclass, no other)."""
    pending = [value]
    while pending:
        item = pending.pop()
        kind = type(item)
        if kind not in _PLAIN_TYPES:
            return False
        if kind is dict:
            pending.extend(item.keys())
            pending.extend(item.values())
        elif kind in (tuple, list, set, frozenset):
            pending.extend(item)
    return True


def _describe(steps: list[list[Any]]) -> str:
    root = steps[0]
    text = root[1] if root[0] == "n" and str(root[1]).isidentifier() else "the program's object"
    for step in steps[1:]:
        text += f".{step[1]}" if step[0] == "a" else "(...)" if step[0] == "c" else "[...]"
    return text


def _lookup(namespace: dict[str, Any], name: str) -> Any:
    """``name`` as the program's module code would see it: its globals, then builtins."""
    if name in namespace:
        return namespace[name]
    if hasattr(builtins, name):
        return getattr(builtins, name)
    raise NameError(f"name {name!r} is not defined")
