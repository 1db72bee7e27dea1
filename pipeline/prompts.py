"""Prompt templates for the live samplers: pure functions from a problem to prompt text.

``code_prompt`` and ``test_prompt`` serve separate (CodeT-style) sampling, ``joint_prompt``
asks for a solution file and a test file in one answer (Target-DPO Fig. 10 layout, which
``pipeline.parsing.parse_joint`` reads back), and ``refine_prompt`` asks for a corrected
solution from execution feedback (CodeFlow). Pure string building: no I/O, no model code.

Completion-style test prompts end in ``assert `` (ALGORITHMS.md §3.1), so the model's
continuation lacks that keyword. Samplers prepend ``TEST_COMPLETION_PREFIX`` before storing
or parsing a test completion: stored raw test completions, like those in the shared replay
data, always start with ``assert ``.
"""

from __future__ import annotations

import re

from pipeline.records import Problem, PromptStyle

TEST_COMPLETION_PREFIX = "assert "
"""Prepended by samplers to every completion-style test continuation before it is stored."""

SOLUTION_FILE = "solution.py"
"""File name the joint prompt asks the solution to be tagged with."""

TEST_FILE = "test_solution.py"
"""File name the joint prompt asks the test file to be tagged with."""

_BACKTICK_RUN = re.compile(r"`{3,}")


def _function_name(problem: Problem) -> str:
    return f"`{problem.entry_point}`" if problem.entry_point else "the requested function"


def _fenced(code: str) -> str:
    # A fence must be longer than any backtick run inside the block (CommonMark), or code
    # that itself contains ``` would end the block early.
    longest = max((len(m.group()) for m in _BACKTICK_RUN.finditer(code)), default=2)
    fence = "`" * max(3, longest + 1)
    return f"{fence}python\n{code.rstrip()}\n{fence}"


def code_prompt(problem: Problem) -> str:
    """Prompt that asks for one solution.

    Completion style: the problem prompt as-is; the model continues the function body and
    the program is ``prompt + completion``. Instruction style: the task followed by a request
    for the whole solution in one fenced python block.
    """
    if problem.style is PromptStyle.COMPLETION:
        return problem.prompt
    return (
        f"{problem.prompt.rstrip()}\n\n"
        f"Write a complete, self-contained Python solution that defines "
        f"{_function_name(problem)}. Answer with exactly one ```python fenced block holding "
        "the whole solution, imports included."
    )


def test_prompt(problem: Problem) -> str:
    """Prompt that asks for test cases, CodeT style (ALGORITHMS.md §3.1).

    Completion style: the prompt (docstring examples kept), a ``pass`` body, and
    ``# check the correctness of <entry_point>`` followed by ``assert ``; the model continues
    the first assert. Instruction style: a request for plain assert statements calling the
    entry point, in one fenced python block.

    Example (completion style, ``entry_point="add"``)::

        def add(a, b):
            \"\"\"Add two numbers.\"\"\"
            pass

        # check the correctness of add
        assert
    """
    name = problem.entry_point or "the function above"
    if problem.style is PromptStyle.COMPLETION:
        prompt = problem.prompt if problem.prompt.endswith("\n") else problem.prompt + "\n"
        return f"{prompt}    pass\n\n# check the correctness of {name}\n{TEST_COMPLETION_PREFIX}"
    call = problem.entry_point or "f"
    return (
        f"{problem.prompt.rstrip()}\n\n"
        f"Do not solve the task. Write test cases for {_function_name(problem)} instead: "
        f"plain Python `assert` statements, one per line, each calling it directly and "
        f"comparing the result with the expected value, like `assert {call}(...) == ...`. "
        "Put them in one ```python fenced block, with no imports, no functions and no test "
        "framework."
    )


def joint_prompt(problem: Problem) -> str:
    """Prompt that asks for a solution and its tests in one answer (Target-DPO Fig. 10).

    Instruction style: a paraphrase of the published joint prompt. The answer holds
    ``<file>solution.py</file>`` and a fenced solution, ``<file>test_solution.py</file>`` and
    a fenced test file of plain asserts, then a ``<json>`` block naming the files and
    packages. Completion style: the problem prompt as-is, because program = prompt +
    completion must hold for the pairs; ``parse_joint`` takes the tests from the asserts the
    model writes after the function body.
    """
    if problem.style is PromptStyle.COMPLETION:
        return problem.prompt
    name = _function_name(problem)
    module = SOLUTION_FILE.removesuffix(".py")
    imported = problem.entry_point or "<function>"
    return (
        "You are a Python expert. Solve the task below with clear, well-structured code, "
        "then write tests for your solution.\n\n"
        f"- TASK\n{problem.prompt.rstrip()}\n\n"
        "Answer format:\n"
        f"1. The solution: a line <file>{SOLUTION_FILE}</file>, then one ```python fenced "
        f"block with the complete code. It must define {name}.\n"
        f"2. The tests, all in a single file: a line <file>{TEST_FILE}</file>, then one "
        f"```python fenced block that starts with `from {module} import {imported}` and "
        f"defines `def test():` holding plain `assert` statements that call {name} directly "
        "and compare with expected values, one assert per line, followed by a call `test()`. "
        "Write only tests that run as they are: no test frameworks, files, network or "
        "randomness.\n"
        f'3. Finally a line <json>{{"file_names": ["{SOLUTION_FILE}", "{TEST_FILE}"], '
        '"packages": []}</json>, listing in "packages" any third-party package you used.'
    )


def _fix_request(problem: Problem) -> str:
    keep = (
        "Start it with the function's signature and docstring exactly as given."
        if problem.style is PromptStyle.COMPLETION
        else f"Keep the signature of {_function_name(problem)}."
    )
    return (
        "Find the bug and fix it. Answer with the complete corrected solution, not a diff, "
        f"in exactly one ```python fenced block. {keep}"
    )


def refine_messages(problem: Problem, code: str, feedback: str) -> tuple[tuple[str, str], ...]:
    """The refinement turn as a chat conversation of ``(role, content)`` turns.

    The task as an instruction, the current solution as the assistant's answer, and the
    execution feedback with the request for a fix as the next user turn: the shape a chat
    model was trained on, and the one the paper's "interpreter feedback" loop implies.
    """
    task = code_prompt(problem.model_copy(update={"style": PromptStyle.INSTRUCTION}))
    return (
        ("user", task),
        ("assistant", _fenced(code)),
        (
            "user",
            "Your solution does not pass its tests.\n\n"
            f"- FAILING TESTS AND ERRORS\n{feedback.rstrip()}\n\n{_fix_request(problem)}",
        ),
    )


def refine_prompt(problem: Problem, code: str, feedback: str) -> str:
    """Prompt that asks for a corrected solution from execution feedback (CodeFlow).

    ``code`` is the whole current solution and ``feedback`` the failing tests with their error
    messages (ALGORITHMS.md §2.1 [G]). The answer is one fenced python block holding the
    complete corrected solution; read it back with ``pipeline.parsing.extract_fenced_code``.
    """
    return (
        "The Python solution below does not pass its tests.\n\n"
        f"- TASK\n{problem.prompt.rstrip()}\n\n"
        f"- CURRENT SOLUTION\n{_fenced(code)}\n\n"
        f"- FAILING TESTS AND ERRORS\n{feedback.rstrip()}\n\n{_fix_request(problem)}"
    )
