"""A problem's own tests in the form the sandbox runs them (pure: ``ast`` only, never executed).

Target-DPO refines code against *verified tests*. When an input row ships its own tests
(``Problem.tests``) they are used as they are; this module turns them into the sandbox's
unit, one snippet run after the program. A single ``assert`` is the best snippet: the
sandbox judges those outside the program's process (``sandbox/split.py``), so a program
cannot forge its verdict. Whatever cannot be split into single asserts runs as one whole
test program instead, on the sandbox's in-process fallback path.

Two input shapes::

    tests = ["assert add(1, 2) == 3", "assert add(0, 0) == 0"]     # kept, one per test

    tests = '''
    METADATA = {'author': 'jt'}

    def check(candidate):
        assert candidate(1, 2) == 3
        assert candidate(0, 0) == 0
    '''
    # entry_point "add" -> ["assert add(1, 2) == 3", "assert add(0, 0) == 0"]

A HumanEval-style program is split only when every statement of ``check`` is an
``assert`` (docstrings, ``pass`` and ``assert True`` are dropped), the rest of the
module only binds names (assignments, imports) and no assert reads one of those
module-level names: a split assert runs without the test program around it, so
``assert math.isclose(candidate(x), y)`` after the program's ``import math`` would
look ``math`` up in the candidate's program instead. Everything else (loops, local
variables, helper functions) becomes one test::

    f"{program}\\n\\ncheck({entry_point})\\n"
"""

from __future__ import annotations

import ast
import keyword

from pipeline.records import Problem

__all__ = ["ProblemTestsError", "problem_tests"]

_SHOWN_CHARS = 80
"""How much of a bad test an error message quotes: enough to find it in the input."""

_BINDING_STATEMENTS = (ast.Assign, ast.AnnAssign, ast.Import, ast.ImportFrom)
"""Module-level statements a splittable test program may hold besides ``check``."""


class ProblemTestsError(ValueError):
    """A problem's ``tests`` field is not a list of asserts or a ``check`` program."""


def problem_tests(problem: Problem) -> list[str] | None:
    """The problem's own tests, one sandbox test snippet each.

    Args:
        problem: the problem; its ``tests`` field is read (``entry_point`` too for a
            ``check`` program).

    Returns:
        None when the problem has no tests of its own. Otherwise a non-empty list: the
        stripped assert statements of a list, or the asserts of a ``check`` program
        with its parameter renamed to the entry point, or (when the program cannot be
        split) the one test ``f"{program}\\n\\ncheck({entry_point})\\n"``.

    Raises:
        ProblemTestsError: a list that is empty or has an item that is not one
            ``assert`` statement (the message names the index and quotes the item); a
            string that does not parse, has no ``def check(candidate)``, or tests
            nothing; a ``check`` program without a valid entry point.
    """
    tests = problem.tests
    if tests is None:
        return None
    if isinstance(tests, str):
        return _program_tests(tests, problem.entry_point)
    return _assert_list(tests)


def _assert_list(tests: list[str]) -> list[str]:
    if not tests:
        raise ProblemTestsError(
            "tests: expected at least one assert statement, got an empty list "
            "(leave `tests` out to have tests picked by ranking instead)"
        )
    kept: list[str] = []
    for index, item in enumerate(tests):
        text = item.strip()
        where = f"tests[{index}]"
        if not text:
            raise ProblemTestsError(f"{where}: expected one assert statement, got an empty string")
        module = _parse(text, where)
        if len(module.body) != 1:
            raise ProblemTestsError(
                f"{where}: expected one assert statement, got {len(module.body)} statements: "
                f"{_shown(text)}"
            )
        if not isinstance(module.body[0], ast.Assert):
            kind = type(module.body[0]).__name__
            raise ProblemTestsError(
                f"{where}: expected one assert statement, got a {kind} statement: {_shown(text)}"
            )
        kept.append(text)
    return kept


def _program_tests(program: str, entry_point: str | None) -> list[str]:
    where = "tests"
    if not entry_point or not entry_point.isidentifier() or keyword.iskeyword(entry_point):
        raise ProblemTestsError(
            f"{where}: a test program with check(candidate) needs the problem's entry_point "
            f"(the function check is called with) as a Python name; got {entry_point!r}"
        )
    module = _parse(program, where)
    checks = [
        node for node in module.body if isinstance(node, ast.FunctionDef) and node.name == "check"
    ]
    if not checks:
        raise ProblemTestsError(
            f"{where}: expected a list of assert statements or a test program defining "
            f"`def check(candidate)`, got a program without a check function: {_shown(program)}"
        )
    check = checks[-1]  # the one a call after the program would reach
    args = check.args
    positional = args.posonlyargs + args.args
    if len(positional) != 1 or args.vararg or args.kwonlyargs or args.kwarg:
        raise ProblemTestsError(
            f"{where}: expected `def check(candidate)` with one parameter, the function under "
            f"test; got check({ast.unparse(args)})"
        )
    body = [statement for statement in check.body if not _inert_statement(statement)]
    if not body:
        raise ProblemTestsError(f"{where}: check(candidate) tests nothing (no assert in its body)")
    asserts = _split(module, check, body, positional[0].arg, entry_point)
    if asserts is None:
        return [f"{program}\n\ncheck({entry_point})\n"]
    return asserts


def _split(
    module: ast.Module,
    check: ast.FunctionDef,
    body: list[ast.stmt],
    parameter: str,
    entry_point: str,
) -> list[str] | None:
    """One assert per statement of ``check``, or None when the program must stay whole."""
    if check.decorator_list or not all(isinstance(statement, ast.Assert) for statement in body):
        return None
    module_names: set[str] = set()
    for statement in module.body:
        if statement is check or _inert_statement(statement):
            continue
        if not isinstance(statement, _BINDING_STATEMENTS):
            return None
        if isinstance(statement, ast.ImportFrom) and any(a.name == "*" for a in statement.names):
            return None  # binds names nobody can list
        module_names |= _bound_names(statement)
    module_names.add("check")
    rename = _Rename(parameter, entry_point)
    asserts: list[str] = []
    for statement in body:
        try:
            renamed = rename.visit(statement)
            text = ast.unparse(renamed)
        except RecursionError:  # nesting too deep to rewrite; the whole program still runs
            return None
        read = {
            node.id
            for node in ast.walk(renamed)
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)
        }
        # A comprehension variable that happens to share a module-level name lands here
        # too; keeping the whole program then is merely conservative.
        if read & (module_names - {entry_point}):
            return None
        asserts.append(text)
    return asserts


class _Rename(ast.NodeTransformer):
    """Rename check's parameter (``candidate``) to the entry point, everywhere."""

    def __init__(self, old: str, new: str) -> None:
        self.old = old
        self.new = new

    def visit_Name(self, node: ast.Name) -> ast.Name:
        if node.id == self.old:
            return ast.copy_location(ast.Name(id=self.new, ctx=node.ctx), node)
        return node


def _inert_statement(statement: ast.stmt) -> bool:
    """A docstring, ``pass`` or ``assert True``: tests nothing, so it is dropped."""
    if isinstance(statement, ast.Pass):
        return True
    if isinstance(statement, ast.Expr):
        return isinstance(statement.value, ast.Constant) and isinstance(statement.value.value, str)
    if isinstance(statement, ast.Assert):
        return isinstance(statement.test, ast.Constant) and statement.test.value is True
    return False


def _bound_names(statement: ast.stmt) -> set[str]:
    if isinstance(statement, ast.Import | ast.ImportFrom):
        return {(alias.asname or alias.name).split(".")[0] for alias in statement.names}
    return {
        node.id
        for node in ast.walk(statement)
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store)
    }


def _parse(text: str, where: str) -> ast.Module:
    try:
        return ast.parse(text)
    except SyntaxError as exc:
        raise ProblemTestsError(
            f"{where}: expected Python source, got a syntax error ({exc.msg}, line {exc.lineno}): "
            f"{_shown(text)}"
        ) from exc
    except (ValueError, RecursionError, MemoryError) as exc:
        # ValueError: NUL bytes; RecursionError/MemoryError: absurdly deep nesting.
        raise ProblemTestsError(
            f"{where}: expected Python source, got text the parser rejects "
            f"({type(exc).__name__}): {_shown(text)}"
        ) from exc


def _shown(text: str) -> str:
    if len(text) <= _SHOWN_CHARS:
        return repr(text)
    return repr(text[:_SHOWN_CHARS]) + f" ... ({len(text)} characters)"
