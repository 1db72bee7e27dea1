"""The request that asks a model to turn a seed function into a new function-level problem.

The answer must be a code block with the imports, the signature of a function named after
the seed, and a docstring stating the task: exactly what a completion-style problem's prompt
holds (HumanEval's shape), so ``pipeline.synthesis.answer`` can check it with ``ast`` and
keep it as the prompt. Pure text in, text out.
"""

from __future__ import annotations

import re

from pipeline.synthesis.seeds import SeedFunction

_BACKTICK_RUN = re.compile(r"`{3,}")


def _fence(code: str) -> str:
    """A fence longer than any backtick run in ``code``, so the block cannot end early."""
    longest = max((len(run) for run in _BACKTICK_RUN.findall(code)), default=0)
    return "`" * max(3, longest + 1)


def synthesis_prompt(seed: SeedFunction, *, continuation: bool = False) -> str:
    """The instruction for one seed.

    Args:
        seed: the function the problem is drawn from.
        continuation: the text is continued by a plain completions endpoint rather than
            answered in a chat, so it ends with the opening fence of the answer's block.

    >>> print(synthesis_prompt(SeedFunction("m.py", "area", 1, "def area(r): ...\\n", False)))
    ... # doctest: +ELLIPSIS
    Here is a Python function from an open-source project (m.py):
    ...
    Name the function `area`. Do not write its body.
    """
    fence = _fence(seed.source)
    text = (
        f"Here is a Python function from an open-source project ({seed.file}):\n\n"
        f"{fence}python\n{seed.source.rstrip()}\n{fence}\n\n"
        "Write a new, self-contained programming problem that uses the same ideas. Answer "
        "with one Python code block holding only:\n"
        "- the imports the function needs (standard library only),\n"
        f"- the signature `def {seed.name}(...)`, with type hints,\n"
        "- a docstring that states the task precisely, with one or two examples.\n"
        f"Name the function `{seed.name}`. Do not write its body."
    )
    if continuation:
        text += "\n\n```python\n"
    return text
