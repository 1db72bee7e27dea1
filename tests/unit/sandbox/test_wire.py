"""What crosses between a program and its judge: exact plain values, nothing else."""

from __future__ import annotations

import math
import os
from collections import Counter, OrderedDict, defaultdict, namedtuple
from enum import IntEnum
from typing import Any

import pytest

from sandbox import wire

Point = namedtuple("Point", "x y")


class Color(IntEnum):
    RED = 1


@pytest.mark.parametrize(
    "value",
    [
        None, True, False, 0, -1, 2**63, -(2**200), 0.1 + 0.2, -0.0, 1e308, 5e-324,
        math.inf, -math.inf, 1 + 2j, "", "naïve \udc80 \x00", b"\x00\xff", [], (), {}, set(),
        frozenset({1}), range(1, 10, 3), [1, (2, [3, {4: {5}}])], {(1, 2): [None], "k": b""},
        {1: "int key", 1.5: "float key", "1": "str key", False: "bool key"},
    ],
)  # fmt: skip
def test_plain_values_round_trip_exactly(value: Any) -> None:
    back = wire.loads(wire.dumps(value))
    assert type(back) is type(value)
    assert back == value or (value != value and back != back)
    if isinstance(value, float):
        assert math.copysign(1, back) == math.copysign(1, value)  # -0.0 stays -0.0


def test_ints_cross_beyond_the_decimal_digit_limit() -> None:
    huge = 7**20_000  # about 17,000 digits: more than int() parses from decimal text
    assert wire.loads(wire.dumps([huge, -huge])) == [huge, -huge]


def test_nan_crosses_and_is_still_unequal_to_itself() -> None:
    back = wire.loads(wire.dumps([math.nan]))
    assert math.isnan(back[0]) and back != [math.nan]


def test_true_and_one_stay_apart() -> None:
    back = wire.loads(wire.dumps([True, 1, 1.0]))
    assert [type(item) for item in back] == [bool, int, float]


def test_subclasses_travel_as_their_plain_base() -> None:
    counts = Counter("aab")
    ordered = OrderedDict([("b", 1), ("a", 2)])
    missing = defaultdict(list, {"x": [1]})
    back = wire.loads(wire.dumps([counts, ordered, missing, Point(1, 2), Color.RED]))
    assert back == [{"a": 2, "b": 1}, {"b": 1, "a": 2}, {"x": [1]}, (1, 2), 1]
    assert [type(item) for item in back] == [dict, dict, dict, tuple, int]


def test_a_subclass_that_lies_about_equality_loses_the_lie() -> None:
    class Yes(int):
        def __eq__(self, other: object) -> bool:
            return True

        __hash__ = int.__hash__

    back = wire.loads(wire.dumps(Yes(1)))
    assert type(back) is int and back != 2


def test_iterators_cross_as_iterators_over_their_items() -> None:
    back = wire.loads(wire.dumps(x * x for x in range(3)))
    assert not isinstance(back, list) and list(back) == [0, 1, 4]
    assert wire.loads(wire.dumps(zip("ab", [1, 2], strict=True))) != [("a", 1), ("b", 2)]


def test_other_objects_are_refused_unless_kept() -> None:
    with pytest.raises(wire.Unencodable, match="a object object"):
        wire.dumps(object())
    kept: list[Any] = []

    def keep(value: Any) -> dict[str, Any]:
        kept.append(value)
        return {"o": ["thing", True, len(kept) - 1]}

    marker = object()
    assert wire.loads(wire.dumps([marker], keep), lambda tag, body: (tag, body)) == [
        ("o", ["thing", True, 0])
    ]
    assert kept == [marker]


def test_depth_and_length_are_bounded() -> None:
    deep: list[Any] = []
    for _ in range(wire.MAX_DEPTH + 5):
        deep = [deep]
    with pytest.raises(wire.Unencodable, match="nested deeper"):
        wire.dumps(deep)

    def endless() -> Any:
        while True:
            yield 0

    with pytest.raises(wire.Unencodable, match="more than"):
        wire.dumps(endless())


@pytest.mark.parametrize(
    "data",
    [
        b"not json", b'{"x": 1}', b'{"t": 1}', b'{"d": [[[1], 2]]}', b'{"i": 5}', b'{"s": [[1]]}',
        b'{"o": ["x", true, 0]}', b'{"h": 0}', b'{"r": [1, 2.5, 1]}', b'{"t": [], "s": []}',
        b"[" * 100_000,
    ],
)  # fmt: skip
def test_malformed_values_are_refused(data: bytes) -> None:
    with pytest.raises(wire.WireError):
        wire.loads(data)


def test_frames_cross_a_pipe_whole() -> None:
    read_end, write_end = os.pipe()
    try:
        wire.send(write_end, ["ok", {"t": [1]}])
        wire.write_frame(write_end, wire.KIND_CODE, b"\x00code")
        os.close(write_end)
        assert wire.receive(read_end) == ["ok", (1,)]
        assert wire.read_frame(read_end) == (wire.KIND_CODE, b"\x00code")
        assert wire.read_frame(read_end) is None
    finally:
        os.close(read_end)


@pytest.mark.parametrize(
    ("raw", "complaint"),
    [
        (b"\x00\x00\x10\x00j[1]", "ended"),  # announces 4096 bytes, sends 4
        (b"\x7f\xff\xff\xffj", "a frame of"),  # larger than any reader accepts
        (b"\x00\x00\x00\x00", "a frame of"),  # no kind byte
        (b"\x00\x00\x00\x03j[]", "non-empty JSON array"),
        (b"\x00\x00\x00\x03j{}", "one-key tag"),
    ],
)
def test_broken_frames_are_refused(raw: bytes, complaint: str) -> None:
    read_end, write_end = os.pipe()
    try:
        os.write(write_end, raw)
        os.close(write_end)
        with pytest.raises(wire.WireError, match=complaint):
            wire.receive(read_end)
    finally:
        os.close(read_end)
