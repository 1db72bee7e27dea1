"""Picking seed functions from real standard-library source and from crafted edge cases."""

from __future__ import annotations

import ast
import sysconfig
from pathlib import Path

import pytest

from pipeline.synthesis.seeds import (
    MAX_CHARS,
    MAX_LINES,
    MIN_LINES,
    SkipReason,
    is_test_file,
    pick_functions,
)

STDLIB = Path(sysconfig.get_paths()["stdlib"])
STDLIB_FILES = ["textwrap.py", "shlex.py", "json/decoder.py", "colorsys.py", "fnmatch.py"]


def _top_level_functions(text: str) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    return [
        n for n in ast.parse(text).body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
    ]


@pytest.mark.parametrize("name", STDLIB_FILES)
def test_every_top_level_function_of_a_stdlib_file_is_picked_or_counted(name: str) -> None:
    text = (STDLIB / name).read_text()
    picked = pick_functions(text, name)
    assert picked.error is None
    functions = _top_level_functions(text)
    assert len(picked.seeds) + sum(picked.skipped.values()) == len(functions)
    for seed in picked.seeds:
        assert seed.file == name
        assert not seed.name.startswith("_")
        assert not seed.name.lower().startswith("test")
        node = next(f for f in functions if f.name == seed.name and f.lineno == seed.line)
        assert isinstance(node, ast.FunctionDef)
        lines = seed.source.count("\n")
        assert lines <= MAX_LINES and len(seed.source) <= MAX_CHARS
        assert seed.has_docstring or lines >= MIN_LINES
        # The seed's text is the function itself and parses on its own.
        assert [f.name for f in _top_level_functions(seed.source)] == [seed.name]
    private = sum(1 for f in functions if f.name.startswith("_"))
    assert picked.skipped.get(SkipReason.PRIVATE.value, 0) == private


def test_textwrap_seeds_are_its_documented_public_functions() -> None:
    picked = pick_functions((STDLIB / "textwrap.py").read_text(), "textwrap.py")
    names = {seed.name for seed in picked.seeds}
    assert {"wrap", "fill", "dedent", "indent"} <= names
    assert all(seed.has_docstring for seed in picked.seeds)
    assert picked.seeds[0].problem_id == f"synth:textwrap.py:{picked.seeds[0].name}"


def test_skip_reasons_for_crafted_functions() -> None:
    long_body = "\n".join(f"    x{i} = {i}" for i in range(MAX_LINES + 1))
    text = f'''
def _helper(x):
    """Private."""

def __dunder__():
    """Dunder."""

def test_something():
    """A test."""

async def fetch(url):
    """A coroutine."""

def tiny(x):
    return x

def documented(x):
    """Says what it does."""
    return x

def undocumented_but_long(x):
    a = x
    b = a
    c = b
    return c

def huge():
    """Too long."""
{long_body}

def documented(x):
    """Redefined later."""
'''
    picked = pick_functions(text, "m.py")
    assert [s.name for s in picked.seeds] == ["documented", "undocumented_but_long"]
    assert dict(picked.skipped) == {
        "private": 2,
        "test": 1,
        "async": 1,
        "short": 1,
        "long": 1,
        "redefined": 1,
    }


def test_decorators_are_part_of_the_seed_and_of_its_size() -> None:
    text = '@functools.cache\ndef area(r):\n    """Area."""\n    return 3.14 * r * r\n'
    (seed,) = pick_functions(text, "m.py").seeds
    assert seed.source.startswith("@functools.cache\ndef area(r):")
    assert seed.line == 2


def test_limit_stops_picking() -> None:
    text = "".join(f'def f{i}(x):\n    """Doc {i}."""\n\n' for i in range(5))
    assert [s.name for s in pick_functions(text, "m.py", limit=2).seeds] == ["f0", "f1"]


@pytest.mark.parametrize("text", ["print 'python 2'\n", "def f(:\n", "x = 1\0\n"])
def test_a_file_that_is_not_python_is_an_error_not_an_exception(text: str) -> None:
    picked = pick_functions(text, "bad.py")
    assert picked.seeds == [] and picked.error is not None


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("test/test_json.py", True),
        ("python3.11/test/support/__init__.py", True),
        ("pkg/tests/helpers.py", True),
        ("test_x.py", True),
        ("x_test.py", True),
        ("conftest.py", True),
        ("json/decoder.py", False),
        ("unittest/case.py", False),
        ("contest.py", False),
    ],
)
def test_test_files_are_recognised_by_path(label: str, expected: bool) -> None:
    assert is_test_file(label) is expected
