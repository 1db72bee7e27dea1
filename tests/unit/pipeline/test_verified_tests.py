"""A problem's own tests as sandbox snippets: assert lists, HumanEval check programs, errors."""

from __future__ import annotations

import ast
import json

import pytest

from pipeline.records import Problem
from pipeline.verified_tests import ProblemTestsError, problem_tests
from tests.conftest import HUMANEVAL_DIR, requires_shared_data

# Real HumanEval `test` fields (HumanEval/2, /100 and /44), shortened.
TRUNCATE_NUMBER = """

METADATA = {
    'author': 'jt',
    'dataset': 'test'
}


def check(candidate):
    assert candidate(3.5) == 0.5
    assert abs(candidate(1.33) - 0.33) < 1e-6
"""

MAKE_A_PILE = """def check(candidate):

    # Check some simple cases
    assert candidate(3) == [3, 5, 7], "Test 3"

    # Check some edge cases that are easy to work out by hand.
    assert True, "This prints if this assert fails 2 (also good for debugging!)"
"""

CHANGE_BASE = """

METADATA = {}


def check(candidate):
    assert candidate(8, 3) == "22"
    for x in range(2, 8):
        assert candidate(x, x + 1) == str(x)
"""


def _problem(tests: list[str] | str | None, entry_point: str | None = "f") -> Problem:
    return Problem(problem_id="p", prompt="def f(x):\n", entry_point=entry_point, tests=tests)


# ---------------------------------------------------------------- lists of asserts


def test_no_tests_of_its_own_is_none() -> None:
    assert problem_tests(_problem(None)) is None


def test_a_list_of_asserts_is_kept_stripped() -> None:
    tests = ["  assert f(1) == 2\n", "assert f(\n    2) == 3", "assert f(0) == 1, 'zero'"]
    assert problem_tests(_problem(tests)) == [
        "assert f(1) == 2",
        "assert f(\n    2) == 3",
        "assert f(0) == 1, 'zero'",
    ]


def test_an_empty_list_is_refused() -> None:
    with pytest.raises(ProblemTestsError, match=r"at least one assert statement, got an empty"):
        problem_tests(_problem([]))


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("   ", r"tests\[1\]: expected one assert statement, got an empty string"),
        ("assert f(1) ==", r"tests\[1\]: expected Python source, got a syntax error .*'assert f"),
        ("f(1)", r"tests\[1\]: expected one assert statement, got a Expr statement: 'f\(1\)'"),
        (
            "assert f(1) == 2\nassert f(2) == 3",
            r"tests\[1\]: expected one assert statement, got 2 statements",
        ),
        ("x = 1; assert f(x)", r"tests\[1\]: expected one assert statement, got 2 statements"),
        ("assert f('\0')", r"tests\[1\]: expected Python source"),
    ],
)
def test_a_list_item_that_is_not_one_assert_is_named(item: str, message: str) -> None:
    with pytest.raises(ProblemTestsError, match=message):
        problem_tests(_problem(["assert f(0) == 1", item]))


def test_a_long_bad_item_is_quoted_short() -> None:
    with pytest.raises(ProblemTestsError) as caught:
        problem_tests(_problem(["print('x')\n" * 1000]))
    assert len(str(caught.value)) < 300
    assert "(10999 characters)" in str(caught.value)  # the stripped item


# ---------------------------------------------------------------- check programs


def test_humaneval_check_splits_into_asserts_on_the_entry_point() -> None:
    assert problem_tests(_problem(TRUNCATE_NUMBER, "truncate_number")) == [
        "assert truncate_number(3.5) == 0.5",
        "assert abs(truncate_number(1.33) - 0.33) < 1e-06",
    ]


def test_assert_true_and_comments_are_dropped_messages_kept() -> None:
    assert problem_tests(_problem(MAKE_A_PILE, "make_a_pile")) == [
        "assert make_a_pile(3) == [3, 5, 7], 'Test 3'"
    ]


def test_a_check_with_a_loop_stays_one_program() -> None:
    assert problem_tests(_problem(CHANGE_BASE, "change_base")) == [
        f"{CHANGE_BASE}\n\ncheck(change_base)\n"
    ]


@pytest.mark.parametrize(
    "program",
    [
        # an assert reads a name the test program binds: it must not be looked up in
        # the candidate's program
        "import math\n\ndef check(candidate):\n    assert math.isclose(candidate(1), 2)\n",
        "EPS = 1e-6\n\ndef check(candidate):\n    assert abs(candidate(1) - 2) < EPS\n",
        "from math import *\n\ndef check(candidate):\n    assert candidate(1) == 2\n",
        # local variables, helpers, module-level code
        "def check(candidate):\n    x = 1\n    assert candidate(x) == 2\n",
        "def h(y):\n    return y\n\ndef check(candidate):\n    assert candidate(1) == h(2)\n",
        "print('hi')\n\ndef check(candidate):\n    assert candidate(1) == 2\n",
        "def check(candidate):\n    if True:\n        assert candidate(1) == 2\n",
    ],
)
def test_a_check_that_cannot_be_split_stays_one_program(program: str) -> None:
    assert problem_tests(_problem(program)) == [f"{program}\n\ncheck(f)\n"]


def test_the_parameter_is_renamed_whatever_its_name() -> None:
    program = "def check(fn):\n    '''Doc.'''\n    pass\n    assert fn(1) == [fn(0)]\n"
    assert problem_tests(_problem(program, "solve")) == ["assert solve(1) == [solve(0)]"]


def test_names_from_the_candidates_program_and_builtins_split() -> None:
    # is_palindrome is the prompt's helper, so it is the candidate program's name
    program = "def check(candidate):\n    assert is_palindrome(candidate('ab')) is True\n"
    assert problem_tests(_problem(program, "make_palindrome")) == [
        "assert is_palindrome(make_palindrome('ab')) is True"
    ]


@pytest.mark.parametrize(
    ("program", "entry_point", "message"),
    [
        ("def check(candidate):\n    assert candidate(", "f", r"syntax error"),
        ("assert f(1) == 2\n", "f", r"without a check function: 'assert f\(1\) == 2\\n'"),
        ("", "f", r"without a check function"),
        ("def check(candidate):\n    assert candidate(1)\n", None, r"needs .*entry_point.*None"),
        ("def check(candidate):\n    assert candidate(1)\n", "f()", r"entry_point.*'f\(\)'"),
        ("def check(candidate):\n    assert candidate(1)\n", "class", r"entry_point.*'class'"),
        ("def check(a, b):\n    assert a(b)\n", "f", r"one parameter.*got check\(a, b\)"),
        ("def check():\n    assert f(1)\n", "f", r"one parameter"),
        ("def check(candidate):\n    '''Only a docstring.'''\n", "f", r"tests nothing"),
        ("def check(candidate):\n    assert True\n", "f", r"tests nothing"),
    ],
)
def test_a_bad_check_program_is_refused_saying_why(
    program: str, entry_point: str | None, message: str
) -> None:
    with pytest.raises(ProblemTestsError, match=message):
        problem_tests(_problem(program, entry_point))


def test_absurd_nesting_is_an_error_not_a_crash() -> None:
    program = "def check(candidate):\n    assert " + "(" * 5000 + "1" + ")" * 5000 + "\n"
    with pytest.raises(ProblemTestsError, match="expected Python source"):
        problem_tests(_problem(program))


# ---------------------------------------------------------------- real data


@requires_shared_data
def test_every_dev_check_program_becomes_sandbox_tests() -> None:
    rows = [json.loads(line) for line in (HUMANEVAL_DIR / "dev-groundtruth.jsonl").open()]
    split = whole = asserts = 0
    for row in rows:
        tests = problem_tests(_problem(row["test"], row["entry_point"]))
        assert tests
        if tests == [f"{row['test']}\n\ncheck({row['entry_point']})\n"]:
            whole += 1
            continue
        split += 1
        for test in tests:
            (statement,) = ast.parse(test).body
            assert isinstance(statement, ast.Assert)
            names = {n.id for n in ast.walk(statement) if isinstance(n, ast.Name)}
            assert "candidate" not in names
            assert row["entry_point"] in names
        asserts += len(tests)
    # Measured on the 82 dev problems: only HumanEval/32, 38, 44 and 50 loop in check.
    assert (len(rows), split, whole, asserts) == (82, 78, 4, 563)
