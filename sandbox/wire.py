"""What crosses between a program's process and its judge: length-prefixed frames of plain values.

Stdlib only (it runs inside the sandbox image). The judge never receives an object from
the program, only JSON that it decodes into plain values: None, bool, int, float (nan and
infinities included), complex, str, bytes, list, tuple, dict, set, frozenset, range and
slice. No pickle: decoding builds nothing else, so whatever the program sends, the judge
compares plain values with Python's own operators. Iterators and generators travel as an
iterator over their items. Any other object of the program stays in the program's process:
it travels as a handle (``{"o": [type name, truthiness, handle]}``), which the judge can
pass back to the program, ask about (attributes, calls, items: evaluated by the program)
or test for truth and identity, but never compare with a value: that is an ``error``, so
an object whose ``__eq__`` always says yes never makes a test pass.

Encoding: JSON arrays are lists; JSON objects are one-key tags for every other container
and for what JSON cannot carry exactly::

    (1, [2.5, None], {"k": {3}})  ->  {"t": [1, [2.5, null], {"d": [["k", {"s": [3]}]]}]}

Ints beyond 64 bits travel as hex (``{"i": "0x..."}``, no digit limit), bytes as hex,
floats as JSON numbers (``repr`` round-trips exactly; NaN and Infinity are allowed).

The common answer (a value of exactly the plain types: ints, strings, lists...) takes a
faster road: ``marshal`` format version 2, which the cell writes with one C call, and which
the judge reads with its own decoder of that format's plain subset (``unmarshal``: never
``marshal.loads``, which is not meant for untrusted data and could build code objects).
Every page a forked cell touches costs a copy-on-write fault, and JSON's Python layers
touched about a hundred of them per answer. Messages from the judge to the cell (trusted
data) are marshalled too, and read with ``marshal.loads``.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Callable, Iterator
from typing import Any

HEADER = struct.Struct(">I")
MAX_FRAME_BYTES = 16 << 20
"""Largest frame a reader accepts: a program's answer bigger than this is an error."""
MAX_DEPTH = 100
"""Deepest nesting encoded (decoding is bounded by the JSON parser's recursion limit)."""
MAX_ITEMS = 1_000_000
"""Most items taken from an iterator (an endless generator must not exhaust memory)."""
_WIDE_BITS = 63

KIND_JSON = b"j"
KIND_CODE = b"m"
"""A marshalled code object (the program, compiled once by the runner)."""
KIND_ORDER = b"e"
"""A marshalled message from the judge to the cell (trusted data only)."""
KIND_VALUE = b"v"
"""A cell's answer ``["ok", value]`` as the value alone, marshalled (format version 2)."""
MARSHAL_VERSION = 2
"""No references between objects (version 3), no short forms (version 4)."""
UP = HEADER.pack(7) + KIND_JSON + b'["up"]'
READY = HEADER.pack(10) + KIND_JSON + b'["ready"]'
TOKEN_PLEASE = HEADER.pack(11) + KIND_JSON + b'["token?"]'
"""The cell's fixed messages, made once (see ``_Untagger``)."""
_FIXED = {b'["up"]': "up", b'["ready"]': "ready", b'["token?"]': "token?"}


class WireError(Exception):
    """A frame or value that does not follow this module's format."""


class Unencodable(WireError):
    """A value of a type that cannot cross (the message names the type)."""


Keep = Callable[[Any], dict[str, Any]]
"""Encodes a value of no plain type as a tag (a handle), or raises ``Unencodable``."""
Resolve = Callable[[str, Any], Any]
"""Decodes a handle tag (``"o"`` or ``"h"``) and its body, or raises ``WireError``."""


def _refuse(value: Any) -> dict[str, Any]:
    raise Unencodable(f"a {type(value).__name__} object")


# --------------------------------------------------------------------------- frames


def frame(kind: bytes, payload: bytes) -> bytes:
    """One frame: header, kind byte, payload."""
    return HEADER.pack(len(payload) + 1) + kind + payload


def write_frame(fd: int, kind: bytes, payload: bytes) -> None:
    """Write one frame to ``fd``, however many writes it takes."""
    write_all(fd, frame(kind, payload))


def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd``."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def read_frame(fd: int, limit: int = MAX_FRAME_BYTES) -> tuple[bytes, bytes] | None:
    """The next frame's (kind, payload) from ``fd``, or None at end of file before one starts.

    Raises:
        WireError: the frame is larger than ``limit``, empty, or cut short.
    """
    # Written for the common case, a whole small frame in two reads: a forked cell pays
    # a page fault for every object it touches, helper calls included.
    header = os.read(fd, HEADER.size)
    if not header:
        return None
    if len(header) < HEADER.size:
        header += _read_exact(fd, HEADER.size - len(header))
    (size,) = HEADER.unpack(header)
    if size < 1 or size > limit + 1:
        raise WireError(f"a frame of {size} bytes (expected 1 to {limit + 1})")
    body = os.read(fd, size)
    if len(body) < size:
        if not body:
            raise WireError(f"the stream ended {size} bytes before the end of a frame")
        body += _read_exact(fd, size - len(body))
    return body[:1], body[1:]


def _read_exact(fd: int, size: int) -> bytes:
    chunks: list[bytes] = []
    left = size
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            raise WireError(f"the stream ended {left} bytes before the end of a frame")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def send(fd: int, message: list[Any]) -> None:
    """Write one message (a JSON array of already plain parts) as a frame."""
    write_frame(fd, KIND_JSON, _ENCODER.encode(message).encode())


def receive(
    fd: int, limit: int = MAX_FRAME_BYTES, resolve: Resolve | None = None
) -> list[Any] | None:
    """The next message (decoded, tags turned back into values), or None at end of file.

    Only JSON and value frames are read: this is the judge's side, which trusts nothing.

    Raises:
        WireError: not a frame holding a message in this module's format.
    """
    frame = read_frame(fd, limit)
    if frame is None:
        return None
    kind, payload = frame
    if kind == KIND_VALUE:
        return ["ok", unmarshal(payload)]
    if kind == KIND_JSON and payload in _FIXED:
        return [_FIXED[payload]]
    if kind != KIND_JSON:
        raise WireError(f"expected a JSON or value frame, got kind {kind!r}")
    message = loads(payload, resolve)
    if not isinstance(message, list) or not message:
        raise WireError("expected a non-empty JSON array")
    return message


# --------------------------------------------------------------------------- values


def plain(value: Any, keep: Keep = _refuse, depth: int = 0) -> Any:
    """``value`` as JSON-ready data (see the module docstring).

    Subclasses of the plain types travel as their base type (a namedtuple as a tuple, a
    Counter as a dict), which is how they compare with plain values anyway; values of
    other types are left to ``keep``.

    Raises:
        Unencodable: a value ``keep`` refuses, too deep, or an endless iterator.
    """
    kind = type(value)
    if kind is str or kind is bool or value is None or kind is float:
        return value
    if kind is int:
        return value if value.bit_length() <= _WIDE_BITS else {"i": hex(value)}
    if depth >= MAX_DEPTH:
        raise Unencodable(f"a value nested deeper than {MAX_DEPTH} levels")
    inner = depth + 1
    if kind is list:
        return [plain(item, keep, inner) for item in value]
    if kind is tuple:
        return {"t": [plain(item, keep, inner) for item in value]}
    if kind is dict:
        return {"d": [[plain(k, keep, inner), plain(v, keep, inner)] for k, v in value.items()]}
    if kind is set:
        return {"s": [plain(item, keep, inner) for item in value]}
    if kind is frozenset:
        return {"f": [plain(item, keep, inner) for item in value]}
    if kind is bytes:
        return {"b": value.hex()}
    if kind is complex:
        return {"c": [value.real, value.imag]}
    if kind is range:
        return {"r": [value.start, value.stop, value.step]}
    if kind is slice:
        return {"sl": [plain(part, keep, inner) for part in (value.start, value.stop, value.step)]}
    return _plain_subclass(value, keep, depth)


def _plain_subclass(value: Any, keep: Keep, depth: int) -> Any:
    # Order matters: bool before int, and the containers before the iterator check.
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return plain(int(value), keep, depth)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, complex):
        return plain(complex(value), keep, depth)
    if isinstance(value, list):
        return plain(list(value), keep, depth)
    if isinstance(value, tuple):
        return plain(tuple(value), keep, depth)
    if isinstance(value, set):
        return plain(set(value), keep, depth)
    if isinstance(value, frozenset):
        return plain(frozenset(value), keep, depth)
    if isinstance(value, dict):
        return plain(dict(value.items()), keep, depth)
    if isinstance(value, (bytes, bytearray)):
        return plain(bytes(value), keep, depth)
    if isinstance(value, Iterator):
        items: list[Any] = []
        for item in value:
            if len(items) >= MAX_ITEMS:
                raise Unencodable(f"an iterator of more than {MAX_ITEMS} items")
            items.append(plain(item, keep, depth + 1))
        return {"it": items}
    return keep(value)


def dumps(value: Any, keep: Keep = _refuse) -> bytes:
    """``value`` encoded (``plain`` then JSON).

    Raises:
        Unencodable: see ``plain``.
    """
    try:
        return _ENCODER.encode(plain(value, keep)).encode()
    except RecursionError as exc:
        raise Unencodable("a value nested too deeply") from exc


def loads(data: bytes, resolve: Resolve | None = None) -> Any:
    """Decode what ``dumps`` made, building only plain values (and ``resolve``'s handles).

    Raises:
        WireError: not JSON, or a tag that is unknown or malformed.
    """

    _untagger.resolve = resolve
    try:
        return _DECODER.decode(data.decode())
    except WireError:
        raise
    except (ValueError, TypeError, RecursionError, MemoryError) as exc:
        # MemoryError too: an answer's decoded form can be far larger than its text.
        raise WireError(f"undecodable value: {type(exc).__name__}: {exc}"[:200]) from exc
    finally:
        _untagger.resolve = None


def unmarshal(data: bytes) -> Any:
    """The plain value in ``data`` (``marshal`` format version 2), built by hand.

    Only None, bools, ints, floats, complex numbers, strings, bytes, tuples, lists,
    dicts, sets and frozensets are accepted, nested at most MAX_DEPTH deep.

    Raises:
        WireError: anything else, or data that does not end where the value does.
    """
    reader = _Unmarshaller(data)
    try:
        value = reader.value(0)
    except (struct.error, IndexError, UnicodeDecodeError, TypeError, ValueError,
            MemoryError) as exc:  # fmt: skip
        raise WireError(f"undecodable value: {type(exc).__name__}: {exc}"[:200]) from exc
    if reader.at != len(data):
        raise WireError(f"{len(data) - reader.at} bytes after the value")
    return value


_INT32 = struct.Struct("<i")
_DOUBLE = struct.Struct("<d")
_COMPLEX = struct.Struct("<dd")
_CONSTANTS = {ord("N"): None, ord("T"): True, ord("F"): False}


class _Unmarshaller:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def _size(self) -> int:
        (size,) = _INT32.unpack_from(self.data, self.at)
        self.at += 4
        if size < 0 or size > len(self.data) - self.at:
            raise WireError(f"a size of {size} past the end of the data")
        return int(size)

    def _raw(self, size: int) -> bytes:
        chunk = self.data[self.at : self.at + size]
        self.at += size
        return chunk

    def value(self, depth: int) -> Any:
        code = self.data[self.at]
        self.at += 1
        if code in _CONSTANTS:
            return _CONSTANTS[code]
        kind = chr(code)
        if kind == "i":
            (number,) = _INT32.unpack_from(self.data, self.at)
            self.at += 4
            return number
        if kind == "l":
            (count,) = _INT32.unpack_from(self.data, self.at)
            self.at += 4
            digits = self._raw(2 * abs(count))
            if len(digits) != 2 * abs(count):
                raise WireError("a long int cut short")
            magnitude = 0
            for index in range(abs(count) - 1, -1, -1):
                digit = digits[2 * index] | digits[2 * index + 1] << 8
                if digit >= 1 << 15:
                    raise WireError("a long int digit out of range")
                magnitude = magnitude << 15 | digit
            return -magnitude if count < 0 else magnitude
        if kind == "g":
            (real,) = _DOUBLE.unpack_from(self.data, self.at)
            self.at += 8
            return real
        if kind == "y":
            real, imag = _COMPLEX.unpack_from(self.data, self.at)
            self.at += 16
            return complex(real, imag)
        if kind in "ut":
            return self._raw(self._size()).decode("utf-8", "surrogatepass")
        if kind == "s":
            return self._raw(self._size())
        if depth >= MAX_DEPTH:
            raise WireError(f"a value nested deeper than {MAX_DEPTH} levels")
        if kind in "([<>":
            items = [self.value(depth + 1) for _ in range(self._size())]
            if kind == "(":
                return tuple(items)
            if kind == "[":
                return items
            return set(items) if kind == "<" else frozenset(items)
        if kind == "{":
            mapping: dict[Any, Any] = {}
            while self.data[self.at] != ord("0"):
                key = self.value(depth + 1)
                mapping[key] = self.value(depth + 1)
            self.at += 1
            return mapping
        raise WireError(f"marshal type {kind!r} is not a plain value")


class _Untagger:
    """The decoder's object hook: tags to values, handles to ``resolve``'s objects.

    One decoder and one encoder are made at import, before the runner forks: made anew in
    every forked cell they would cost it a few hundred microseconds of page faults.
    """

    def __init__(self) -> None:
        self.resolve: Resolve | None = None

    def __call__(self, tagged: dict[str, Any]) -> Any:
        if self.resolve is not None and len(tagged) == 1 and ("o" in tagged or "h" in tagged):
            ((tag, body),) = tagged.items()
            return self.resolve(tag, body)
        return _untag(tagged)


_untagger = _Untagger()
_DECODER = json.JSONDecoder(object_hook=_untagger)
_ENCODER = json.JSONEncoder(separators=(",", ":"))


def _untag(tagged: dict[str, Any]) -> Any:
    if len(tagged) != 1:
        raise WireError(f"expected a one-key tag object, got keys {sorted(tagged)[:5]}")
    ((tag, body),) = tagged.items()
    if tag == "i" and isinstance(body, str):
        return int(body, 16)
    if tag == "b" and isinstance(body, str):
        return bytes.fromhex(body)
    if tag == "c" and _numbers(body, 2, (int, float)):
        return complex(body[0], body[1])
    if tag == "r" and _numbers(body, 3, (int,)):
        return range(*body)
    if not isinstance(body, list):
        raise WireError(f"tag {tag!r} needs a list, got {type(body).__name__}")
    if tag == "t":
        return tuple(body)
    if tag == "s":
        return set(body)
    if tag == "f":
        return frozenset(body)
    if tag == "it":
        return iter(body)
    if tag == "d" and all(isinstance(pair, list) and len(pair) == 2 for pair in body):
        return dict(body)
    if tag == "sl" and len(body) == 3:
        return slice(*body)
    raise WireError(f"unknown or malformed tag {tag!r}")


def _numbers(body: Any, count: int, kinds: tuple[type, ...]) -> bool:
    return (
        isinstance(body, list) and len(body) == count and all(type(item) in kinds for item in body)
    )
