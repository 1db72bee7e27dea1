"""Splitting a test: which tests split, what goes to the program, and the judge's semantics.

Plans run here against a scripted stand-in for the program's process (``Program``), so
what the judge asks for, in which order, and how it decides are checked without any
process; tests/unit/sandbox/test_judge.py runs them against a real cell process.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from sandbox import split
from sandbox.judge import JUDGE_BUILTINS


class Program:
    """Answers REMOTE calls from a dict of the program's values, recording each."""

    def __init__(self, **values: Any) -> None:
        self.values = values
        self.asked: list[tuple[Any, ...]] = []

    def __call__(self, *steps: tuple[Any, ...]) -> Any:
        self.asked.append(steps)
        value = self.values[steps[0][1]]
        for step in steps[1:]:
            if step[0] == "a":
                value = getattr(value, step[1])
            elif step[0] == "c":
                value = value(*step[1], **step[2])
            else:
                value = value[step[1]]
        return value


def judge(test: str, program: Program, names: frozenset[str] = frozenset({"f"})) -> bool:
    """Whether ``test`` passes, evaluated the way the judge does."""
    code = split.plan(test, names)
    assert code is not None, f"{test!r} should split"
    namespace = {"__builtins__": JUDGE_BUILTINS, split.REMOTE: program, split.SLICE: slice}
    try:
        exec(code, namespace)
    except AssertionError:
        return False
    return True


@pytest.mark.parametrize(
    "test",
    [
        "assert f(1) == 2",
        "assert f(1)",
        "assert not f(1)",
        "assert f(1) != 2",
        "assert f(1) is True",
        "assert f(1) is None",
        "assert abs(f(1) - 0.5) < 1e-9",
        "assert f(1) == 2, 'message'",
        "assert f(1) == 2, f'got {f(1)}'",
        "assert f(1, x=[1, 2], *[3], **{'y': 4}) in [1, 2]",
        "assert all(f(i) == i for i in range(3))",
        "assert {k: f(k) for k in 'ab'} == {}",
        "assert sorted(f(1))[::-1] == [1]",
        "assert f(1).lower() == 'a'",
        "assert Solution().solve(3) == 4",
        "assert f(1)[0] == f(2)[1:3]",
        "assert len(f(1)) == 3 and isinstance(f(1), list)",
        "assert f(1) if f(2) else f(3)",
        "assert ____",
        "assert (compare([0], [1]) == [1]).all()",
    ],
)
def test_the_dominant_shapes_split(test: str) -> None:
    assert split.plan(test, frozenset({"f"})) is not None


@pytest.mark.parametrize(
    "test",
    [
        "f(1)",  # not an assert
        "x = f(1)\nassert x == 2",  # several statements
        "assert f(1) == 2\nassert f(2) == 3",
        "assert (lambda: f(1))() == 2",
        "assert (y := f(1)) == 2",
        "assert open('x')",  # builtins outside the safe set
        "assert __import__('os').getpid()",
        "assert eval('1')",
        "assert globals()",
        "assert f(1) ==",  # does not parse
        "    assert f(1)",
    ],
)
def test_other_tests_fall_back(test: str) -> None:
    assert split.plan(test, frozenset({"f"})) is None


def test_only_the_programs_expressions_are_sent_to_it() -> None:
    program = Program(f=lambda x, y=0: x + y)
    assert judge("assert abs(f(1, y=2) - 3) < 0.5", program)
    # The expected value (3), the comparison and abs never reach the program.
    assert program.asked == [(("n", "f"), ("c", (1,), {"y": 2}))]


def test_a_chain_on_a_program_object_is_evaluated_by_the_program() -> None:
    class Solution:
        def solve(self, n: int) -> list[int]:
            return list(range(n))

    program = Program(Solution=Solution)
    assert judge("assert Solution().solve(4)[1:3] == [1, 2]", program, frozenset({"Solution"}))
    assert program.asked == [
        (("n", "Solution"), ("c", (), {}), ("a", "solve"), ("c", (4,), {}), ("i", slice(1, 3)))
    ]


def test_the_message_is_evaluated_only_when_the_assert_fails() -> None:
    program = Program(f=lambda x: x)
    assert judge("assert f(1) == 1, f'got {f(1)}'", program)
    assert len(program.asked) == 1
    with pytest.raises(AssertionError, match="got 2"):
        code = split.plan("assert f(2) == 1, f'got {f(2)}'", frozenset({"f"}))
        assert code is not None
        exec(code, {"__builtins__": JUDGE_BUILTINS, split.REMOTE: program})


def test_comprehension_variables_stay_with_the_judge() -> None:
    program = Program(f=lambda x: x * 2)
    assert judge("assert [f(i) for i in range(3)] == [0, 2, 4]", program)
    assert [steps[1][1] for steps in program.asked] == [(0,), (1,), (2,)]


@pytest.mark.parametrize(
    ("test", "value", "passes"),
    [
        ("assert f(1) == 0.3", 0.1 + 0.2, False),  # exactly Python's float ==
        ("assert f(1) == 0.1 + 0.2", 0.1 + 0.2, True),
        ("assert f(1) != f(1)", math.nan, True),
        ("assert f(1) == f(1)", math.nan, False),
        ("assert f(1) == 1", True, True),  # True == 1, as in Python
        ("assert f(1) is True", 1, False),
        ("assert f(1) == -0.0", 0.0, True),
        ("assert f(1) == (1, 2)", [1, 2], False),
        ("assert f(1) == {1, 2}", {2, 1}, True),
    ],
)
def test_the_judge_compares_exactly_like_python(test: str, value: Any, passes: bool) -> None:
    assert judge(test, Program(f=lambda _: value)) is passes


def test_builtins_are_the_judges_unless_the_program_binds_them() -> None:
    # A program that binds `sorted` in its text gets its own, as when it shared the
    # test's namespace; one that merely patches builtins at run time does not.
    own = Program(f=lambda x: x, sorted=lambda x: [42])
    assert judge("assert sorted(f([2, 1])) == [42]", own, split.bound_names("def sorted(x): pass"))
    theirs = Program(f=lambda x: x)
    assert judge("assert sorted(f([2, 1])) == [1, 2]", theirs, split.bound_names("f = 1"))
    assert theirs.asked == [(("n", "f"), ("c", ([2, 1],), {}))]


def test_names_the_program_binds_at_module_level() -> None:
    program = """
import os.path
from math import sqrt as root
from cmath import *
x, (y, *z) = 1, (2, 3)
for i in range(3):
    pass
with open('a') as handle:
    pass
try:
    pass
except ValueError as problem:
    pass
class Solution:
    inner = 1
    def method(self):
        local = 2
def f(a):
    global late
    late = a
    hidden = 3
    return lambda b: b
if True:
    sorted = list
match x:
    case [first, *rest]:
        pass
    case {"k": v, **others}:
        pass
"""
    assert split.bound_names(program) == {
        "os", "root", "x", "y", "z", "i", "handle", "problem", "Solution", "f", "late",
        "sorted", "first", "rest", "v", "others",
    }  # fmt: skip
    assert split.bound_names("def broken(:") == frozenset()
