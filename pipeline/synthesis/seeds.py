"""Which functions of a Python source file seed a synthesised problem.

A seed is a top-level function worth describing: public (no leading underscore, so no
dunders), not a test, synchronous, with a docstring or at least ``MIN_LINES`` lines, and at
most ``MAX_LINES`` lines and ``MAX_CHARS`` characters, so its text fits in a small model's
context with room for the answer. Test files are recognised by their path and never read.
Pure: takes source text, never opens a file.

    picked = pick_functions(text, "json/decoder.py")
    picked.seeds[0].name, picked.skipped    # ("py_scanstring", {"private": 2, ...})
"""

from __future__ import annotations

import ast
import warnings
from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import PurePosixPath

MIN_LINES = 5
"""Lines a function without a docstring needs: shorter ones say too little to build on."""

MAX_LINES = 60
MAX_CHARS = 3000
"""A seed is at most about 1 000 tokens (code runs about 3 characters a token), so with the
instructions and a 512-token answer it fits the 2 048-token context the bundled model is
served with (``services.local_model``)."""


class SkipReason(StrEnum):
    """Why a top-level function is not a seed."""

    PRIVATE = "private"
    """Its name starts with an underscore (private helpers, dunders)."""
    TEST = "test"
    """Its name starts with ``test``."""
    ASYNC = "async"
    """A coroutine: problems are plain functions the tests call directly."""
    SHORT = "short"
    """No docstring and fewer than ``MIN_LINES`` lines."""
    LONG = "long"
    """More than ``MAX_LINES`` lines or ``MAX_CHARS`` characters."""
    REDEFINED = "redefined"
    """A later top-level definition of a name already picked in the same file."""


@dataclass(frozen=True)
class SeedFunction:
    """One function a problem is synthesised from."""

    file: str
    """Where it comes from, as the caller labels the file (a path relative to the corpus)."""
    name: str
    line: int
    """1-based line of its ``def``."""
    source: str
    """Its text, decorators included, dedented to column 0 (it is top-level already)."""
    has_docstring: bool

    @property
    def problem_id(self) -> str:
        """The id of the problem synthesised from it: unique within one corpus."""
        return f"synth:{self.file}:{self.name}"


@dataclass(frozen=True)
class FilePick:
    """The seeds of one file and why the other top-level functions were passed over."""

    seeds: list[SeedFunction] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    error: str | None = None
    """Why the file could not be read as Python (then there are no seeds)."""


def is_test_file(label: str) -> bool:
    """Whether a path names a test module or lies in a test directory (never seeds).

    >>> is_test_file("test/test_json.py"), is_test_file("json/decoder.py")
    (True, False)
    """
    path = PurePosixPath(label.replace("\\", "/"))
    name = path.name
    in_tests = any(part in {"test", "tests", "testing"} for part in path.parts[:-1])
    return (
        in_tests
        or name.startswith("test_")
        or name.endswith("_test.py")
        or name in {"conftest.py", "tests.py", "test.py"}
    )


def _skip_reason(
    node: ast.FunctionDef | ast.AsyncFunctionDef, lines: list[str]
) -> SkipReason | None:
    if node.name.startswith("_"):
        return SkipReason.PRIVATE
    if node.name.lower().startswith("test"):
        return SkipReason.TEST
    if isinstance(node, ast.AsyncFunctionDef):
        return SkipReason.ASYNC
    first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
    end = node.end_lineno or node.lineno
    text = "".join(lines[first - 1 : end])
    if end - first + 1 > MAX_LINES or len(text) > MAX_CHARS:
        return SkipReason.LONG
    if ast.get_docstring(node) is None and end - node.lineno + 1 < MIN_LINES:
        return SkipReason.SHORT
    return None


def pick_functions(text: str, label: str, *, limit: int | None = None) -> FilePick:
    """The seed functions of one file's source, in file order.

    Args:
        text: the file's Python source.
        label: how the file is named in problem ids and metadata.
        limit: stop after this many seeds (the rest of the file is not counted).

    Returns:
        The seeds, the count of passed-over functions by ``SkipReason`` value, or an
        ``error`` when the text does not parse (a Python 2 file, a template).
    """
    try:
        with warnings.catch_warnings():
            # Old files have invalid escape sequences; they parse, the warning is noise.
            warnings.simplefilter("ignore", SyntaxWarning)
            tree = ast.parse(text)
    except (SyntaxError, ValueError) as exc:  # ValueError: a NUL byte in the source
        return FilePick(error=f"not valid Python: {exc}")
    lines = text.splitlines(keepends=True)
    seeds: list[SeedFunction] = []
    skipped: Counter[str] = Counter()
    names: set[str] = set()
    for node in tree.body:
        if limit is not None and len(seeds) >= limit:
            break
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        reason = _skip_reason(node, lines)
        if reason is None and node.name in names:
            reason = SkipReason.REDEFINED
        if reason is not None:
            skipped[reason.value] += 1
            continue
        names.add(node.name)
        first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
        source = "".join(lines[first - 1 : node.end_lineno]).rstrip() + "\n"
        seeds.append(
            SeedFunction(
                file=label,
                name=node.name,
                line=node.lineno,
                source=source,
                has_docstring=ast.get_docstring(node) is not None,
            )
        )
    return FilePick(seeds=seeds, skipped=skipped)
