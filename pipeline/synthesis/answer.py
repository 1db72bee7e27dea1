"""A model's answer to a synthesis request: checked with ``ast`` and kept as a ``Problem``.

The answer is untrusted text. It is never executed: it is bounded in size, parsed with
``ast.parse`` and rebuilt with ``ast.unparse``, so the prompt of the problem holds only
standard-library imports and the signature and docstring of the requested function::

    outcome = read_answer(text, seed)
    if isinstance(outcome, DropReason): ...   # counted and dropped, never raised
    else: problem = outcome                   # style completion, prompt = imports + signature

Pure: no I/O.
"""

from __future__ import annotations

import ast
import builtins
import re
import sys
import warnings
from enum import StrEnum

from pipeline.parsing import extract_fenced_code
from pipeline.records import Problem, PromptStyle
from pipeline.synthesis.seeds import SeedFunction

MAX_ANSWER_CHARS = 20_000
"""Longest answer read at all: a 512-token answer is about 2 000 characters, so anything
ten times longer is a runaway generation or a hostile endpoint, and never reaches the
parser (a 1 MB answer costs a length check, not a parse)."""

MAX_PROMPT_CHARS = 4_000
"""Longest prompt kept (imports, signature, docstring): HumanEval's longest is 1 370."""

_HEAD_TRIES = 3
"""Parses of shorter heads of an answer that does not parse (each costs one ``ast.parse``
of at most ``MAX_ANSWER_CHARS``)."""

_SIGNATURE = re.compile(r"^[ \t]*(?:async[ \t]+)?def[ \t]+\w+[ \t]*\(", re.MULTILINE)
_BUILTIN_NAMES = frozenset(dir(builtins))


class DropReason(StrEnum):
    """Why a picked function produced no problem. Counted, never fatal."""

    REQUEST_FAILED = "request_failed"
    """The endpoint gave no answer after its retries."""
    TOO_LONG = "too_long"
    """The answer exceeds ``MAX_ANSWER_CHARS`` or its prompt ``MAX_PROMPT_CHARS``."""
    NO_SIGNATURE = "no_signature"
    """The answer holds no ``def name(`` line at all."""
    SYNTAX_ERROR = "syntax_error"
    """The answer's code does not parse up to the end of the requested function's docstring."""
    WRONG_ENTRY_POINT = "wrong_entry_point"
    """No top-level function has the requested name."""
    NO_DOCSTRING = "no_docstring"
    """The function states no task."""
    NON_STDLIB_IMPORT = "non_stdlib_import"
    """It imports a package the sandbox does not have (or a relative module)."""
    NOT_SELF_CONTAINED = "not_self_contained"
    """Its signature names something neither built in nor imported."""
    CONTAMINATED = "contaminated"
    """Too close to a benchmark prompt (``pipeline.synthesis.decontamination``)."""
    DUPLICATE_TEXT = "duplicate_text"
    """The same prompt, up to whitespace and case, as an earlier problem."""
    DUPLICATE_SIGNATURE = "duplicate_signature"
    """The same signature as an earlier problem."""
    NEAR_DUPLICATE = "near_duplicate"
    """Nearly the same prompt as an earlier problem (``pipeline.synthesis.dedup``)."""


def _answer_code(text: str) -> str:
    """The code of an answer: the text before any fence if it holds a ``def``, else the
    first python block, else the text before any fence.

    A continued completion prompt already opened the block, so its code runs up to the
    (closing) fence; a chat answer puts its code in a block after some prose, or is code or
    prose as a whole.
    """
    head = text.split("```", 1)[0]
    if _SIGNATURE.search(head):
        return head
    fenced = extract_fenced_code(text)
    return fenced if fenced is not None else head


def _parse_head(code: str) -> tuple[ast.Module, bool]:
    """The code parsed, else its longest head of whole lines that parses, and whether that
    is the whole code.

    Only the signature and docstring are kept, so a body that breaks off (the answer ran
    out of tokens) or does not parse (small models write one though asked not to) need not
    cost the problem: the code is cut before the line a syntax error points at, up to
    ``_HEAD_TRIES`` times. Nothing parses: an empty module.
    """
    lines = code.splitlines(keepends=True)
    end = len(lines)
    for _ in range(_HEAD_TRIES):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", SyntaxWarning)
                return ast.parse("".join(lines[:end])), end == len(lines)
        except SyntaxError as exc:
            if exc.lineno is None or not 1 < exc.lineno <= end:
                break
            end = exc.lineno - 1
        except ValueError:  # a NUL byte
            break
    return ast.Module(body=[], type_ignores=[]), False


def _imported_names(node: ast.Import | ast.ImportFrom) -> set[str]:
    names = set()
    for alias in node.names:
        if alias.asname:
            names.add(alias.asname)
        elif isinstance(node, ast.Import):
            names.add(alias.name.split(".")[0])
        else:
            names.add(alias.name)
    return names


def _is_stdlib(node: ast.Import | ast.ImportFrom) -> bool:
    if isinstance(node, ast.ImportFrom):
        return node.level == 0 and (node.module or "").split(".")[0] in sys.stdlib_module_names
    return all(alias.name.split(".")[0] in sys.stdlib_module_names for alias in node.names)


def _signature_names(function: ast.FunctionDef) -> set[str]:
    """Names the ``def`` line evaluates when it runs: annotations and defaults.

    String annotations are not evaluated, so a forward reference in quotes is fine.
    """
    args = function.args
    parts: list[ast.expr | None] = [
        function.returns,
        *args.defaults,
        *args.kw_defaults,
        *(a.annotation for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)),
        args.vararg.annotation if args.vararg else None,
        args.kwarg.annotation if args.kwarg else None,
    ]
    return {
        node.id
        for part in parts
        if part is not None
        for node in ast.walk(part)
        if isinstance(node, ast.Name)
    }


def read_answer(text: str, seed: SeedFunction, *, model: str | None = None) -> Problem | DropReason:
    """The problem an answer states, or why it is dropped.

    Args:
        text: the model's answer, untrusted.
        seed: the function it was asked about; the entry point is the seed's name.
        model: recorded in the problem's metadata.

    Returns:
        A completion-style ``Problem`` whose prompt is the answer's standard-library
        imports and the function's signature and docstring (decorators, body and every
        other statement removed), or the first ``DropReason`` that applies.

    >>> seed = SeedFunction("m.py", "area", 1, "def area(r): ...\\n", False)
    >>> read_answer("```python\\ndef area(r: float):\\n    'Area.'\\n```", seed).entry_point
    'area'
    >>> read_answer("I cannot help with that.", seed).value
    'no_signature'
    """
    if len(text) > MAX_ANSWER_CHARS:
        return DropReason.TOO_LONG
    code = _answer_code(text)
    if not _SIGNATURE.search(code):
        return DropReason.NO_SIGNATURE
    tree, whole = _parse_head(code)
    function = next(
        (n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == seed.name), None
    )
    if function is None:
        return DropReason.WRONG_ENTRY_POINT if whole else DropReason.SYNTAX_ERROR
    docstring = function.body[0]
    if ast.get_docstring(function) is None or not isinstance(docstring, ast.Expr):
        return DropReason.NO_DOCSTRING
    imports = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
    if not all(_is_stdlib(node) for node in imports):
        return DropReason.NON_STDLIB_IMPORT
    known = _BUILTIN_NAMES.union(*(_imported_names(node) for node in imports))
    if not _signature_names(function) <= known:
        return DropReason.NOT_SELF_CONTAINED
    function.body = [docstring]
    function.decorator_list = []
    module = ast.Module(body=[*imports, function], type_ignores=[])
    prompt = ast.unparse(module).rstrip() + "\n"
    if len(prompt) > MAX_PROMPT_CHARS:
        return DropReason.TOO_LONG
    metadata: dict[str, object] = {
        "source_file": seed.file,
        "source_function": seed.name,
        "source_line": seed.line,
    }
    if model:
        metadata["synthesized_by"] = model
    return Problem(
        problem_id=seed.problem_id,
        prompt=prompt,
        entry_point=seed.name,
        style=PromptStyle.COMPLETION,
        metadata=metadata,
    )
