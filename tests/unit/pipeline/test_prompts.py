"""Unit tests for the prompt templates, including the round trip through the parser."""

from __future__ import annotations

from pipeline.parsing import extract_fenced_code, parse_candidates, parse_joint
from pipeline.prompts import (
    SOLUTION_FILE,
    TEST_COMPLETION_PREFIX,
    TEST_FILE,
    code_prompt,
    joint_prompt,
    refine_messages,
    refine_prompt,
)
from pipeline.prompts import test_prompt as make_test_prompt  # not a pytest test
from pipeline.records import Problem, PromptStyle

PROMPT = 'def add(a, b):\n    """Add two numbers.\n    >>> add(1, 2)\n    3\n    """\n'
COMPLETION = Problem(problem_id="p/0", prompt=PROMPT, entry_point="add")
INSTRUCTION = Problem(
    problem_id="p/1",
    prompt="Write a function add(a, b) that returns the sum of two integers.",
    entry_point="add",
    style=PromptStyle.INSTRUCTION,
)


def test_code_prompt_completion_is_the_prompt() -> None:
    assert code_prompt(COMPLETION) == PROMPT


def test_code_prompt_instruction_asks_for_one_python_block() -> None:
    text = code_prompt(INSTRUCTION)
    assert text.startswith(INSTRUCTION.prompt)
    assert "```python" in text
    assert "`add`" in text


def test_test_prompt_completion_is_codet_style() -> None:
    expected = PROMPT + "    pass\n\n# check the correctness of add\nassert "
    assert make_test_prompt(COMPLETION) == expected
    no_newline = COMPLETION.model_copy(update={"prompt": PROMPT.rstrip("\n")})
    assert make_test_prompt(no_newline) == expected


def test_test_prompt_continuation_parses_with_the_prefix() -> None:
    # The model continues after `assert `; the sampler stores prefix + continuation.
    continuation = "add(1, 2) == 3\nassert add(0, 0) == 0\n\n# more"
    prompt = make_test_prompt(COMPLETION)
    assert prompt.endswith(TEST_COMPLETION_PREFIX)
    candidates = parse_candidates(COMPLETION, [], [TEST_COMPLETION_PREFIX + continuation])
    assert [t.source for t in candidates.tests] == [
        "assert add(1, 2) == 3",
        "assert add(0, 0) == 0",
    ]


def test_test_prompt_instruction_asks_for_asserts() -> None:
    text = make_test_prompt(INSTRUCTION)
    assert text.startswith(INSTRUCTION.prompt)
    assert "assert add(...) == ..." in text
    assert "```python" in text


def test_joint_prompt_completion_is_the_prompt() -> None:
    assert joint_prompt(COMPLETION) == PROMPT


def test_joint_prompt_round_trips_through_parse_joint() -> None:
    text = joint_prompt(INSTRUCTION)
    for needle in (f"<file>{SOLUTION_FILE}</file>", f"<file>{TEST_FILE}</file>", "<json>"):
        assert needle in text
    assert "from solution import add" in text
    # An answer that follows the requested format to the letter.
    answer = (
        "Adding is simple.\n\n"
        f"<file>{SOLUTION_FILE}</file>\n"
        "```python\n# solution.py\ndef add(a, b):\n    return a + b\n```\n\n"
        f"<file>{TEST_FILE}</file>\n"
        "```python\nfrom solution import add\n\n\ndef test():\n"
        "    assert add(1, 2) == 3\n    assert add(-5, 5) == 0\n\n\ntest()\n```\n\n"
        f'<json>{{"file_names": ["{SOLUTION_FILE}", "{TEST_FILE}"], "packages": []}}</json>\n'
    )
    candidates = parse_joint(INSTRUCTION, [answer])
    (code,) = candidates.codes
    assert code.program == "# solution.py\ndef add(a, b):\n    return a + b\n"
    assert code.completion == "```python\n# solution.py\ndef add(a, b):\n    return a + b\n```"
    assert [t.source for t in candidates.tests] == [
        "assert add(1, 2) == 3",
        "assert add(-5, 5) == 0",
    ]


def test_refine_prompt_holds_code_feedback_and_request() -> None:
    code = "def add(a, b):\n    return a - b\n"
    feedback = "assert add(1, 2) == 3 -> AssertionError"
    text = refine_prompt(INSTRUCTION, code, feedback)
    assert INSTRUCTION.prompt in text
    assert feedback in text
    assert extract_fenced_code(text) == code.rstrip()
    assert text.rstrip().endswith("Keep the signature of `add`.")


def test_refine_messages_are_task_answer_and_feedback_turns() -> None:
    code = "def add(a, b):\n    return a - b\n"
    turns = refine_messages(COMPLETION, code, "Test 1 (failed)")
    assert [role for role, _ in turns] == ["user", "assistant", "user"]
    assert COMPLETION.prompt.strip() in turns[0][1]
    assert extract_fenced_code(turns[1][1]) == code.rstrip()
    assert "Test 1 (failed)" in turns[2][1]
    # Completion style asks for the header verbatim, so the fix continues the prompt.
    assert "signature and docstring exactly as given" in turns[2][1]


def test_refine_prompt_fence_outlasts_backticks_in_code() -> None:
    code = 'DOC = """\n```\nexample\n```\n"""\n'
    text = refine_prompt(INSTRUCTION, code, "failed")
    assert f"````python\n{code.rstrip()}\n````" in text
