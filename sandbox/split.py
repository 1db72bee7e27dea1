"""Splitting a test between the program's process and the judge's (pure, stdlib only).

A test of the dominant shape, one ``assert`` over calls of the program's functions
(``assert f(2, [1]) == 3``, ``assert not f(x)``, ``assert abs(f(x) - y) < 1e-6``,
``assert f(x) is True, f"got {f(x)}"``), is rewritten so the judge can run it: every
expression rooted at a name of the program (``f(2, [1])``, ``Solution().solve(3)``,
``math.pi`` when the program imported math) becomes a call of ``REMOTE`` with its steps,
which the program's process evaluates and answers with a plain value (``sandbox.wire``);
the judge evaluates everything else (literals, comparisons, builtins, the message) itself.
The program never sees the test, its expected values or anything that decides the outcome.

    assert abs(f(x=1) - 0.5) < 1e-9
    ->  assert abs(REMOTE(('n', 'f'), ('c', (), {'x': 1})) - 0.5) < 1e-9

Which names are the program's: those its text binds at module level (so a program that
defines ``sorted`` gets its own, exactly as when it shares the test's namespace), and any
name that is not a builtin (the program may make it at run time; if it does not, the
lookup fails with the usual NameError). Builtins it does not bind are the judge's, so a
program that patches ``builtins`` at run time cannot change how the test is evaluated.

Anything else (several statements, lambdas, assignment expressions, builtins outside
``SAFE_BUILTINS`` such as ``open`` or ``__import__``) cannot be split: ``plan`` returns
None and the test runs on the fallback path, inside the program's process.
"""

from __future__ import annotations

import ast
import builtins
from types import CodeType

# Names a test's source cannot spell (U+2063 is not an identifier character), so no test
# can shadow or reach them.
REMOTE = "\u2063remote"
SLICE = "\u2063slice"

_PURE_BUILTINS = (
    "abs", "all", "any", "ascii", "bin", "bool", "bytearray", "bytes", "callable", "chr",
    "complex", "dict", "divmod", "enumerate", "filter", "float", "format", "frozenset",
    "hash", "hex", "int", "isinstance", "issubclass", "iter", "len", "list", "map", "max",
    "min", "next", "oct", "ord", "pow", "print", "range", "repr", "reversed", "round",
    "set", "slice", "sorted", "str", "sum", "tuple", "type", "zip",
)  # fmt: skip
SAFE_BUILTINS = frozenset(_PURE_BUILTINS) | frozenset(
    name
    for name, value in vars(builtins).items()
    if isinstance(value, type) and issubclass(value, BaseException)
)
"""Builtins a split test may use in the judge: pure functions and types (and the
exception classes, for isinstance checks). A test using another builtin falls back."""

_PLAIN_NODES = (
    ast.BoolOp, ast.BinOp, ast.UnaryOp, ast.IfExp, ast.Dict, ast.Set, ast.Compare,
    ast.FormattedValue, ast.JoinedStr, ast.Constant, ast.Starred, ast.List, ast.Tuple,
    ast.Slice, ast.keyword, ast.Load, ast.Store, ast.boolop, ast.operator, ast.unaryop,
    ast.cmpop,
)  # fmt: skip
_Comprehension = ast.ListComp | ast.SetComp | ast.DictComp | ast.GeneratorExp


class _Unsplittable(Exception):
    """The test has a construct the judge does not evaluate."""


def bound_names(program: str | ast.Module) -> frozenset[str]:
    """Names the program binds at module level (empty if it does not parse).

    Bodies of functions and classes are skipped, except for ``global`` declarations;
    comprehension variables at module level are included (an over-approximation that only
    makes more names the program's). ``from m import *`` binds nothing known here.
    """
    try:
        tree = ast.parse(program) if isinstance(program, str) else program
    except BaseException:  # SyntaxError, ValueError (NUL bytes), RecursionError, MemoryError
        return frozenset()
    names: set[str] = set()
    pending: list[ast.AST] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
            pending.extend(node.decorator_list)
            names.update(
                name
                for inner in ast.walk(node)
                if isinstance(inner, ast.Global)
                for name in inner.names
            )
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update(
                alias.asname or alias.name.split(".")[0]
                for alias in node.names
                if alias.name != "*"
            )
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name:
            names.add(node.name)
        elif isinstance(node, ast.MatchMapping) and node.rest:
            names.add(node.rest)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
        if not isinstance(node, ast.Lambda):
            pending.extend(ast.iter_child_nodes(node))
    return frozenset(names)


def plan(test: str, program_names: frozenset[str]) -> CodeType | None:
    """The judge's code for ``test``, or None if the test cannot be split.

    Args:
        test: the test's source.
        program_names: ``bound_names`` of the program it runs against.

    Returns:
        Code to ``exec`` in a namespace holding ``REMOTE`` (a callable taking the steps
        of one remote expression, see the module docstring) and ``SLICE`` (``slice``),
        with ``SAFE_BUILTINS`` as its builtins.
    """
    try:
        tree = ast.parse(test)
        statement = tree.body[0] if len(tree.body) == 1 else None
        if not isinstance(statement, ast.Assert):
            return None
        rewriter = _Rewriter(program_names)
        statement.test = rewriter.visit(statement.test)
        if statement.msg is not None:
            statement.msg = rewriter.visit(statement.msg)
        return compile(ast.fix_missing_locations(tree), "<test>", "exec", dont_inherit=True)
    except _Unsplittable:
        return None
    except BaseException:  # SyntaxError, RecursionError, MemoryError on hostile text
        return None


class _Rewriter(ast.NodeTransformer):
    """Turns the program's sub-expressions of one assert into ``REMOTE`` calls."""

    def __init__(self, program_names: frozenset[str]) -> None:
        self._program = program_names
        self._locals: list[set[str]] = []  # comprehension scopes, innermost last

    def generic_visit(self, node: ast.AST) -> ast.AST:
        if not isinstance(node, _PLAIN_NODES):
            raise _Unsplittable(type(node).__name__)
        return super().generic_visit(node)

    def visit_Name(self, node: ast.Name) -> ast.expr:
        if isinstance(node.ctx, ast.Load) and self._is_remote(node.id):
            return self._remote(node, [])
        return node

    def visit_Attribute(self, node: ast.Attribute) -> ast.expr:
        return self._chain(node) or self._plain_attribute(node)

    def visit_Call(self, node: ast.Call) -> ast.expr:
        return self._chain(node) or self._plain_call(node)

    def visit_Subscript(self, node: ast.Subscript) -> ast.expr:
        return self._chain(node) or self._plain_subscript(node)

    def _plain_attribute(self, node: ast.Attribute) -> ast.expr:
        node.value = self.visit(node.value)
        return node

    def _plain_call(self, node: ast.Call) -> ast.expr:
        node.func = self.visit(node.func)
        node.args = [self.visit(arg) for arg in node.args]
        node.keywords = [self.visit(keyword) for keyword in node.keywords]
        return node

    def _plain_subscript(self, node: ast.Subscript) -> ast.expr:
        node.value = self.visit(node.value)
        node.slice = self.visit(node.slice)
        return node

    def _comprehension(self, node: _Comprehension, results: list[str]) -> ast.AST:
        scope: set[str] = set()
        for position, generator in enumerate(node.generators):
            if generator.is_async:
                raise _Unsplittable("async comprehension")
            if position == 0:  # the first iterable is evaluated in the enclosing scope
                generator.iter = self.visit(generator.iter)
            self._locals.append(scope)
            try:
                if position > 0:
                    generator.iter = self.visit(generator.iter)
                scope.update(_target_names(generator.target))
                generator.ifs = [self.visit(condition) for condition in generator.ifs]
            finally:
                self._locals.pop()
        self._locals.append(scope)
        try:
            for field in results:
                setattr(node, field, self.visit(getattr(node, field)))
        finally:
            self._locals.pop()
        return node

    def visit_ListComp(self, node: ast.ListComp) -> ast.AST:
        return self._comprehension(node, ["elt"])

    def visit_SetComp(self, node: ast.SetComp) -> ast.AST:
        return self._comprehension(node, ["elt"])

    def visit_GeneratorExp(self, node: ast.GeneratorExp) -> ast.AST:
        return self._comprehension(node, ["elt"])

    def visit_DictComp(self, node: ast.DictComp) -> ast.AST:
        return self._comprehension(node, ["key", "value"])

    def _is_remote(self, name: str) -> bool:
        if any(name in scope for scope in self._locals):
            return False
        if name in self._program:
            return True
        if name in SAFE_BUILTINS:
            return False
        if hasattr(builtins, name):
            raise _Unsplittable(f"builtin {name}")
        return True

    def _chain(self, node: ast.expr) -> ast.expr | None:
        """A REMOTE call for ``node`` if it is rooted at a program name, else None."""
        links: list[ast.expr] = []
        root: ast.expr = node
        while isinstance(root, (ast.Attribute, ast.Call, ast.Subscript)):
            links.append(root)
            root = root.func if isinstance(root, ast.Call) else root.value
        if not (isinstance(root, ast.Name) and self._is_remote(root.id)):
            return None
        steps: list[ast.expr] = []
        for link in reversed(links):
            if isinstance(link, ast.Attribute):
                steps.append(_tuple(ast.Constant("a"), ast.Constant(link.attr)))
            elif isinstance(link, ast.Call):
                args = ast.Tuple([self.visit(arg) for arg in link.args], ast.Load())
                keys: list[ast.expr | None] = []
                values: list[ast.expr] = []
                for keyword in link.keywords:
                    keys.append(None if keyword.arg is None else ast.Constant(keyword.arg))
                    values.append(self.visit(keyword.value))
                steps.append(_tuple(ast.Constant("c"), args, ast.Dict(keys, values)))
            elif isinstance(link, ast.Subscript):
                steps.append(_tuple(ast.Constant("i"), self._index(link.slice)))
        return self._remote(root, steps)

    def _index(self, index: ast.expr) -> ast.expr:
        """A subscript as a value: slices become ``slice(...)`` calls (judge-side)."""
        if isinstance(index, ast.Slice):
            parts = [ast.Constant(None) if part is None else self.visit(part)
                     for part in (index.lower, index.upper, index.step)]  # fmt: skip
            return ast.Call(ast.Name(SLICE, ast.Load()), parts, [])
        if isinstance(index, ast.Tuple):
            return ast.Tuple([self._index(item) for item in index.elts], ast.Load())
        return self.visit(index)  # type: ignore[no-any-return]

    def _remote(self, root: ast.Name, steps: list[ast.expr]) -> ast.expr:
        name = _tuple(ast.Constant("n"), ast.Constant(root.id))
        return ast.Call(ast.Name(REMOTE, ast.Load()), [name, *steps], [])


def _tuple(*items: ast.expr) -> ast.Tuple:
    return ast.Tuple(list(items), ast.Load())


def _target_names(target: ast.expr) -> set[str]:
    if isinstance(target, ast.Name):
        return {target.id}
    if isinstance(target, (ast.Tuple, ast.List)):
        return {name for item in target.elts for name in _target_names(item)}
    if isinstance(target, ast.Starred):
        return _target_names(target.value)
    raise _Unsplittable("comprehension target")
