"""Checking a model's answer: every kind of garbage is a counted reason, never an exception."""

from __future__ import annotations

import ast
import time

import pytest

from pipeline.records import Problem, PromptStyle
from pipeline.synthesis.answer import MAX_ANSWER_CHARS, DropReason, read_answer
from pipeline.synthesis.seeds import SeedFunction

SEED = SeedFunction(
    file="json/decoder.py",
    name="merge_ranges",
    line=12,
    source="def merge_ranges(r):\n    return r\n",
    has_docstring=False,
)

GOOD = '''Here is the problem:

```python
import heapq
from typing import List, Tuple

@some_decorator
def merge_ranges(ranges: List[Tuple[int, int]], gap: int = 0) -> List[Tuple[int, int]]:
    """Merge overlapping integer ranges.

    >>> merge_ranges([(1, 3), (2, 5)])
    [(1, 5)]
    """
    out = []  # a body the model should not have written
    return out

print(merge_ranges([]))
```
Hope this helps.'''


def test_a_good_answer_becomes_a_completion_problem_with_signature_and_docstring() -> None:
    problem = read_answer(GOOD, SEED, model="tiny")
    assert isinstance(problem, Problem)
    assert problem.problem_id == "synth:json/decoder.py:merge_ranges"
    assert problem.entry_point == "merge_ranges"
    assert problem.style is PromptStyle.COMPLETION
    assert problem.metadata == {
        "source_file": "json/decoder.py",
        "source_function": "merge_ranges",
        "source_line": 12,
        "synthesized_by": "tiny",
    }
    tree = ast.parse(problem.prompt)
    imports, function = tree.body[:-1], tree.body[-1]
    assert [type(n) for n in imports] == [ast.Import, ast.ImportFrom]
    assert isinstance(function, ast.FunctionDef) and function.name == "merge_ranges"
    assert function.decorator_list == []
    assert len(function.body) == 1 and ast.get_docstring(function) is not None
    assert "print(" not in problem.prompt and "out = []" not in problem.prompt
    # Completion style: the model continues right after the docstring.
    assert problem.prompt.endswith('"""\n')


def test_an_answer_continuing_an_opened_block_is_read_up_to_its_closing_fence() -> None:
    continued = 'def merge_ranges(xs: list) -> list:\n    """Merge."""\n```\nExplanation...'
    problem = read_answer(continued, SEED)
    assert isinstance(problem, Problem)
    assert "Explanation" not in problem.prompt


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ("I'm sorry, I can't write that problem.", DropReason.NO_SIGNATURE),
        ("", DropReason.NO_SIGNATURE),
        ("```python\nmerge_ranges = lambda r: r\n```", DropReason.NO_SIGNATURE),
        ('```python\ndef merge(r):\n    """Merge."""\n```', DropReason.WRONG_ENTRY_POINT),
        (
            'class Ranges:\n    def merge_ranges(self):\n        """Merge."""\n',
            DropReason.WRONG_ENTRY_POINT,
        ),
        (
            'async def merge_ranges(r):\n    """Merge."""\n',
            DropReason.WRONG_ENTRY_POINT,
        ),
        ('```python\ndef merge_ranges(r:\n    """Merge."""\n```', DropReason.SYNTAX_ERROR),
        ('def merge_ranges(r):\n    """Merge.\n    return r\n', DropReason.SYNTAX_ERROR),
        ("def merge_ranges(r):\n    x = sorted(r)\n    return (x\n", DropReason.NO_DOCSTRING),
        ('def merge_ranges(r):\n    """x"""\0\n', DropReason.SYNTAX_ERROR),
        ("def merge_ranges(r):\n    return sorted(r)\n", DropReason.NO_DOCSTRING),
        ("def merge_ranges(r):\n    x = 'not first'\n    'doc'\n", DropReason.NO_DOCSTRING),
        ('import numpy as np\ndef merge_ranges(r):\n    """M."""\n', DropReason.NON_STDLIB_IMPORT),
        ('from . import x\ndef merge_ranges(r):\n    """M."""\n', DropReason.NON_STDLIB_IMPORT),
        (
            'from sklearn.cluster import KMeans\ndef merge_ranges(r):\n    """M."""\n',
            DropReason.NON_STDLIB_IMPORT,
        ),
        ('def merge_ranges(r: Interval) -> list:\n    """M."""\n', DropReason.NOT_SELF_CONTAINED),
        ('def merge_ranges(r=DEFAULT):\n    """M."""\n', DropReason.NOT_SELF_CONTAINED),
        (
            'def merge_ranges(r: List[int]):\n    """M, without importing List."""\n',
            DropReason.NOT_SELF_CONTAINED,
        ),
    ],
)
def test_garbage_is_dropped_with_its_reason(answer: str, reason: DropReason) -> None:
    assert read_answer(answer, SEED) is reason


@pytest.mark.parametrize(
    "body",
    [
        "    return ''.join([re.sub((',.*?\\\\')], 'x', text)]) + '\\n'\n",  # a real SmolLM2 body
        "    result = []\n    for line in text.splitlines(\n",  # cut off by max_tokens
    ],
)
def test_a_broken_body_after_the_docstring_does_not_cost_the_problem(body: str) -> None:
    answer = (
        "You can use `re.sub`:\n\n```python\nimport re\n# strip lines\n"
        'def merge_ranges(text):\n    """Remove leading whitespace from every line."""\n'
        f"{body}```"
    )
    problem = read_answer(answer, SEED)
    assert isinstance(problem, Problem)
    assert problem.prompt == (
        'import re\n\ndef merge_ranges(text):\n    """Remove leading whitespace from every '
        'line."""\n'
    )


def test_names_bound_by_imports_and_quoted_annotations_are_self_contained() -> None:
    answer = (
        "import collections.abc\nfrom typing import List as L\nimport math\n"
        "def merge_ranges(r: L['Interval'], key: collections.abc.Callable = len,\n"
        "                 *args: int, eps: float = math.pi, **kw: dict) -> 'Ranges':\n"
        '    """Merge."""\n'
    )
    problem = read_answer(answer, SEED)
    assert isinstance(problem, Problem)
    assert problem.prompt.startswith("import collections.abc\nfrom typing import List as L")


def test_a_one_megabyte_answer_is_dropped_without_being_parsed() -> None:
    # Valid Python, so only the size check can drop it; and it must be quick.
    huge = 'def merge_ranges(r):\n    """Merge."""\n' + "x = 1\n" * ((1 << 20) // 6)
    assert len(huge) > MAX_ANSWER_CHARS
    started = time.perf_counter()
    assert read_answer(huge, SEED) is DropReason.TOO_LONG
    assert time.perf_counter() - started < 0.05


def test_a_prompt_with_a_huge_docstring_is_too_long() -> None:
    answer = 'def merge_ranges(r):\n    """' + "word " * 1000 + '"""\n'
    assert len(answer) < MAX_ANSWER_CHARS
    assert read_answer(answer, SEED) is DropReason.TOO_LONG


def test_an_answer_is_never_executed() -> None:
    # A default that would run code at definition time if the answer were executed.
    answer = 'import os\ndef merge_ranges(r=os.system("touch /tmp/pwned-by-answer")):\n    "M."\n'
    problem = read_answer(answer, SEED)
    assert isinstance(problem, Problem)  # kept as text, for the sandbox to run later
    assert 'os.system("touch' in problem.prompt or "os.system('touch" in problem.prompt
