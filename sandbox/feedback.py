"""Execution feedback of a failing cell: bounded, inert text about what the program did.

Stdlib only: it runs inside the sandbox image (the cell, the judge and the runner use it)
and on the host, which cuts every string of the runner's answer again with the same
functions, because the container's answer is untrusted. Everything here is text for a
prompt: it is never parsed back or acted on, so nothing a program prints or raises can
change a status. The statuses are decided before any of this text is made, and making
it is bounded work (no ``repr`` of the program's objects, no sorting, no unbounded
string building), so a value built to be slow to describe cannot make a cell time out.

Per cell (``ExecutionRequest.feedback``):

- the error: for a cell that did not pass, the exception's traceback tail (the last
  FEEDBACK_LINES lines, at most FEEDBACK_CHARS characters, the end kept), or the judge's
  account of a false assert (``add(1, 2) == 4 is false; add(1, 2) returned 3``), or how
  the process ended (``timed out after 1 s``);
- the output: what the program and the test wrote to stdout and stderr (one stream, in
  the order written), the last OUTPUT_CHARS characters.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable
from typing import Any

FEEDBACK_CHARS = 2000
"""Most characters of one cell's error text."""
FEEDBACK_LINES = 40
"""Most lines of one cell's error text (a traceback's tail)."""
OUTPUT_CHARS = 2000
"""Most characters of one cell's captured output."""
OUTPUT_BYTES = 4 * OUTPUT_CHARS
"""Bytes of output the runner keeps (a UTF-8 character is at most 4 bytes)."""
REPR_CHARS = 300
"""Most characters of one value shown in an error."""
FRAMES = FEEDBACK_LINES
"""Most traceback frames a cell reports (each is at least one line)."""
CALLS_SHOWN = 3
"""Most ``... returned ...`` clauses in a failed comparison's error (the latest ones)."""
CELL_FILE = "<cell>"
"""File name the program's code is compiled under (with a joined test, both)."""
TEST_FILE = "<test>"
"""File name of a fallback test's code compiled on its own."""
CUT = "..."
"""Starts a text whose beginning was cut off."""

Frame = tuple[str, int, str]
"""A traceback entry: file name, line number, function name ("" for a syntax error)."""


_SURROGATE = re.compile("[\ud800-\udfff]")


def clean(text: str) -> str:
    """``text`` with each lone surrogate (not UTF-8) as one replacement character."""
    return _SURROGATE.sub("\ufffd", text)


def tail(text: str, chars: int, lines: int | None = None) -> str:
    """The end of ``text``: at most ``lines`` lines and ``chars`` characters, cut marked.

    Control characters are kept as they are (whoever puts the text in a prompt decides
    how to show them); lone surrogates become replacement characters.
    """
    cut = False
    if len(text) > chars:
        text, cut = text[-chars:], True
    if lines is not None and text.count("\n") >= lines:
        text, cut = "\n".join(text.split("\n")[-lines:]), True
    if cut:
        text = CUT + (text[len(CUT) :] if len(text) + len(CUT) > chars else text)
    return clean(text)


def error_text(text: str) -> str:
    """An error text cut to its bounds (FEEDBACK_LINES lines, FEEDBACK_CHARS characters)."""
    return tail(text, FEEDBACK_CHARS, FEEDBACK_LINES)


def output_text(data: bytes | str) -> str:
    """Captured output as text cut to OUTPUT_CHARS (bytes that are not UTF-8 replaced)."""
    if isinstance(data, bytes):
        data = data[-OUTPUT_BYTES:].decode("utf-8", "replace")
    return tail(data, OUTPUT_CHARS)


class OutputTail:
    """The last OUTPUT_BYTES bytes written to a stream (a bounded ring, in effect)."""

    def __init__(self) -> None:
        self._data = bytearray()
        self.total = 0
        """Bytes seen in all (what was dropped is ``total - len(kept)``)."""

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        self._data += chunk[-OUTPUT_BYTES:]
        if len(self._data) > OUTPUT_BYTES:
            del self._data[: len(self._data) - OUTPUT_BYTES]

    def take(self) -> str:
        """The text kept so far (cut to OUTPUT_CHARS), and start afresh."""
        text = output_text(bytes(self._data)) if self._data else ""
        self._data.clear()
        return text


# --------------------------------------------------------------------------- values


def bounded_repr(value: Any, limit: int = REPR_CHARS) -> str:
    """A ``repr`` of a plain value (as the judge holds them) in O(``limit``) work.

    Containers show their first items only (never sorted: a set or a dict shows its
    iteration order); strings, bytes and huge ints are cut before ``repr`` sees them.
    Anything that is not a plain value (an object of the program's) is shown by its type
    name only: its own ``__repr__`` is never called.
    """
    parts: list[str] = []
    budget = [limit + 1]
    with contextlib.suppress(_Full):
        _repr_into(value, parts, budget, 0)
    text = "".join(parts)
    return text if len(text) <= limit else text[: limit - len(CUT)] + CUT


class _Full(Exception):
    pass


def _emit(parts: list[str], budget: list[int], text: str) -> None:
    parts.append(text[: max(budget[0], 0)])
    budget[0] -= len(text)
    if budget[0] <= 0:
        raise _Full


_SCALARS = (type(None), bool, float, complex, range, slice)
_OPEN_CLOSE: dict[type, tuple[str, str]] = {
    list: ("[", "]"),
    tuple: ("(", ")"),
    set: ("{", "}"),
    frozenset: ("frozenset({", "})"),
    dict: ("{", "}"),
}


def _repr_into(value: Any, parts: list[str], budget: list[int], depth: int) -> None:
    kind = type(value)
    if kind in _SCALARS:
        _emit(parts, budget, repr(value))
    elif kind is int:
        # Past 4300 digits repr raises (and long before, it costs quadratic time).
        bits = value.bit_length()
        _emit(parts, budget, repr(value) if bits < 4000 else f"<an int of {bits} bits>")
    elif kind is str or kind is bytes:
        shown = value[: budget[0] + 1]
        text = repr(shown)
        _emit(parts, budget, text if len(shown) == len(value) else text + CUT)
    elif kind in _OPEN_CLOSE:
        opening, closing = _OPEN_CLOSE[kind]
        if depth >= 20:
            _emit(parts, budget, opening + CUT + closing)
            return
        if kind is set and not value:
            _emit(parts, budget, "set()")
            return
        _emit(parts, budget, opening)
        items: Iterable[Any] = value.items() if kind is dict else value
        for position, item in enumerate(items):
            if position:
                _emit(parts, budget, ", ")
            if kind is dict:
                _repr_into(item[0], parts, budget, depth + 1)
                _emit(parts, budget, ": ")
                _repr_into(item[1], parts, budget, depth + 1)
            else:
                _repr_into(item, parts, budget, depth + 1)
        if kind is tuple and len(value) == 1:
            _emit(parts, budget, ",")
        _emit(parts, budget, closing)
    else:
        _emit(parts, budget, f"<{type_name(value)} object>")


def type_name(value: Any) -> str:
    """The type name shown for ``value`` (the judge's handles carry the program's)."""
    kind = getattr(value, "kind", None) if type(value).__name__ == "Opaque" else None
    return kind if isinstance(kind, str) else type(value).__name__


def returned(value: Any) -> str:
    """``returned 3`` for a plain value; ``returned a Foo`` for one of the program's."""
    if type(value).__name__ == "Opaque":
        return f"returned a {type_name(value)}"
    if type(value).__name__ == "list_iterator":  # an iterator the program returned
        return "returned an iterator"
    return "returned " + bounded_repr(value)


def describe_call(steps: tuple[Any, ...]) -> str:
    """A remote expression's steps as source-like text: ``add(1, 2)``, ``s.f(x=[1])[0]``."""
    root = steps[0]
    text = str(root[1]) if root[0] == "n" else f"<{type_name(root[1])} object>"
    for step in steps[1:]:
        if len(text) > REPR_CHARS:
            break
        if step[0] == "a":
            text += f".{step[1]}"
        elif step[0] == "c":
            args = [bounded_repr(arg, 100) for arg in step[1]]
            args += [f"{key}={bounded_repr(arg, 100)}" for key, arg in step[2].items()]
            text += "(" + ", ".join(args) + ")"
        else:
            text += "[" + _index(step[1]) + "]"
    return text if len(text) <= REPR_CHARS else text[: REPR_CHARS - len(CUT)] + CUT


def _index(key: Any) -> str:
    if type(key) is slice:
        parts = ["" if part is None else bounded_repr(part, 50) for part in
                 (key.start, key.stop, key.step)]  # fmt: skip
        return ":".join(parts[:2] if key.step is None else parts)
    if type(key) is tuple and key:
        return ", ".join(_index(item) for item in key)
    return bounded_repr(key, 100)


# --------------------------------------------------------------------------- tracebacks


def frames_of(exc: BaseException, skip_files: tuple[str, ...]) -> tuple[list[Frame], int]:
    """The last FRAMES entries of ``exc``'s traceback, leaving out ``skip_files``' frames.

    Returns the entries, oldest first, and how many earlier ones were dropped. A syntax
    error gets one entry for its own line (function name "").
    """
    frames: list[Frame] = []
    seen = 0
    tb = exc.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        if code.co_filename not in skip_files:
            seen += 1
            frames.append((code.co_filename, tb.tb_lineno, code.co_name))
            if len(frames) > FRAMES:
                del frames[0]
        tb = tb.tb_next
    if isinstance(exc, SyntaxError) and isinstance(exc.lineno, int):
        frames.append((str(exc.filename), exc.lineno, ""))
        seen += 1
    return frames, seen - len(frames) if seen > len(frames) else 0


def format_trace(message: str, frames: list[Frame], dropped: int, sources: dict[str, str]) -> str:
    """Python-style traceback text, the source lines taken from ``sources`` by file name.

    Files not in ``sources`` (the standard library's, say) show without a source line:
    nothing here reads a file.
    """
    lines = ["Traceback (most recent call last):"] if frames else []
    if dropped:
        lines.append(f"  [{dropped} earlier frames left out]")
    split_sources: dict[str, list[str]] = {}
    previous: Frame | None = None
    repeats = 0
    for frame in frames:
        if frame == previous:
            repeats += 1
            continue
        if repeats:
            lines.append(f"  [Previous line repeated {repeats} more times]")
            repeats = 0
        previous = frame
        filename, lineno, name = frame
        lines.append(f'  File "{filename}", line {lineno}' + (f", in {name}" if name else ""))
        if filename in sources:
            if filename not in split_sources:
                split_sources[filename] = sources[filename].split("\n")
            source_lines = split_sources[filename]
            if 1 <= lineno <= len(source_lines) and source_lines[lineno - 1].strip():
                lines.append("    " + source_lines[lineno - 1].strip()[:REPR_CHARS])
    if repeats:
        lines.append(f"  [Previous line repeated {repeats} more times]")
    lines.append(message)
    return error_text("\n".join(lines))


def exception_message(exc: BaseException) -> str:
    """``Name: message`` (the whole message, cut), as the last line of a traceback shows."""
    name = type(exc).__name__
    try:
        message = str(exc)
    except BaseException:  # a program's exception class may break __str__
        message = ""
    if isinstance(exc, SyntaxError):
        message = str(exc.msg) if exc.msg is not None else message
    message = message[-FEEDBACK_CHARS:]
    return f"{name}: {message}" if message.strip() else name


def timeout_text(timeout_s: float) -> str:
    """The error of a cell the runner stopped at its wall-clock deadline."""
    return f"timed out after {timeout_s:g} s (the wall-clock limit of each test)"
