"""Unit tests for completion parsing: stop sequences, fences, assert splitting, dedupe."""

from __future__ import annotations

import json
import time
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.parsing import (
    MAX_TESTS_PER_SAMPLE,
    STOP_SEQUENCES,
    extract_fenced_code,
    parse_candidates,
    parse_joint,
    parse_replay_row,
    split_asserts,
    truncate_completion,
)
from pipeline.records import Problem, PromptStyle, ReplayRow
from tests.conftest import HUMANEVAL_DIR, requires_shared_data

PROMPT = 'def add(a, b):\n    """Add two numbers."""\n'
COMPLETION = Problem(problem_id="p/0", prompt=PROMPT, entry_point="add")
INSTRUCTION = Problem(
    problem_id="p/1",
    prompt="Write a function add(a, b) returning the sum.",
    entry_point="add",
    style=PromptStyle.INSTRUCTION,
)


# ---------------------------------------------------------------- truncate_completion


@pytest.mark.parametrize("stop", STOP_SEQUENCES)
def test_truncate_cuts_at_each_stop_sequence(stop: str) -> None:
    body = "    return a + b\n"
    assert truncate_completion(body + stop + "rest()\n") == body


def test_truncate_cuts_at_the_earliest_stop() -> None:
    text = "    return 1\n# note\ndef g():\n    pass\n"
    assert truncate_completion(text) == "    return 1"


def test_truncate_keeps_text_without_stop() -> None:
    assert truncate_completion("    return 1\n\n") == "    return 1\n\n"


def test_truncate_keeps_indented_keywords_and_column0_names() -> None:
    # Nested defs/ifs are indented; `classes = ...` at column 0 is not a `class` statement.
    text = "    def inner():\n        if a:\n            return b\n    return inner()\nclasses = 1"
    assert truncate_completion(text) == text


# ---------------------------------------------------------------- extract_fenced_code


def test_fence_python_block() -> None:
    text = "Here you go:\n```python\ndef f():\n    return 1\n```\nHope it helps."
    assert extract_fenced_code(text) == "def f():\n    return 1"


def test_fence_bare_block_and_other_languages_skipped() -> None:
    text = "```bash\npip install x\n```\n```\nx = 1\n```\n```python\ny = 2\n```"
    assert extract_fenced_code(text) == "x = 1"


def test_fence_unterminated_runs_to_end() -> None:
    assert extract_fenced_code("```python\ndef f():\n    return 1\n") == "def f():\n    return 1"


def test_fence_closed_on_the_code_line() -> None:
    assert extract_fenced_code("```python\nx = 1```\ntrailing prose") == "x = 1"


def test_fence_none_without_block() -> None:
    assert extract_fenced_code("def f():\n    return 1\n") is None
    assert extract_fenced_code("") is None


def test_fence_prefer_file_by_tag_and_by_header() -> None:
    tagged = (
        "<file>test_add.py</file>\n```python\nassert add(1, 1) == 2\n```\n"
        "<file>add.py</file>\n```python\ndef add(a, b):\n    return a + b\n```\n"
    )
    assert extract_fenced_code(tagged, prefer_file="add.py") == "def add(a, b):\n    return a + b"
    assert extract_fenced_code(tagged) == "assert add(1, 1) == 2"
    header = "```python\n# helpers.py\nX = 1\n```\n```python\n# add.py\ndef add(): ...\n```"
    assert extract_fenced_code(header, prefer_file="add.py") == "# add.py\ndef add(): ..."


def test_fence_prefer_file_missing_falls_back_to_first_block() -> None:
    assert extract_fenced_code("```python\nx = 1\n```", prefer_file="solution.py") == "x = 1"


# ---------------------------------------------------------------- split_asserts


def test_split_codet_sample() -> None:
    text = "assert add(1, 2) == 3\nassert add(0, 0) == 0, 'zero'\n"
    asserts, drops = split_asserts(text, "add")
    assert asserts == ["assert add(1, 2) == 3", "assert add(0, 0) == 0, 'zero'"]
    assert drops == {}


def test_split_entry_point_filter() -> None:
    asserts, drops = split_asserts("assert add(1, 2) == 3\nassert True\nassert sub(1) == 0", "add")
    assert asserts == ["assert add(1, 2) == 3"]
    assert drops == {"test_no_entry_point": 2}


def test_split_entry_point_none_keeps_all() -> None:
    asserts, _ = split_asserts("assert True\nassert 1 == 1", None)
    assert asserts == ["assert True", "assert 1 == 1"]


def test_split_compile_filter() -> None:
    text = "assert add(1, 2) == 3\nassert add(1,, 2) == 3\nassert add([1, 2)\n"
    asserts, drops = split_asserts(text, "add")
    assert asserts == ["assert add(1, 2) == 3"]
    assert drops == {"test_syntax_error": 2}


def test_split_empty_assert_counted() -> None:
    # CodeT's data has many samples that are just `assert \n`; the next line then does not
    # belong to the assert, so `assert \n    add(1, 2) == 3` is a syntax error, as in CodeT.
    asserts, drops = split_asserts("assert \n", "add")
    assert (asserts, drops) == ([], {"test_empty": 1})
    asserts, drops = split_asserts("assert \n    add(1, 2) == 3", "add")
    assert (asserts, drops) == ([], {"test_syntax_error": 1})


def test_split_limit_per_call() -> None:
    text = "".join(f"assert add({i}, 0) == {i}\n" for i in range(7)) + "assert add(\n"
    asserts, drops = split_asserts(text, "add", limit=5)
    assert asserts == [f"assert add({i}, 0) == {i}" for i in range(5)]
    # Only valid asserts count against the limit; the broken one is a syntax error.
    assert drops == {"test_over_limit": 2, "test_syntax_error": 1}


def test_split_default_limit_is_the_shared_constant() -> None:
    text = "".join(f"assert add({i}, 0) == {i}\n" for i in range(MAX_TESTS_PER_SAMPLE + 2))
    asserts, drops = split_asserts(text, "add")
    assert len(asserts) == MAX_TESTS_PER_SAMPLE
    assert drops == {"test_over_limit": 2}


@pytest.mark.parametrize("stop", ["\nclass X:", "\ndef g():", "\n# done", "\nif x:", "\nprint(1)"])
def test_split_truncates_at_codet_stop_tokens(stop: str) -> None:
    asserts, _ = split_asserts(f"assert add(1, 2) == 3{stop}\n    pass", "add")
    assert asserts == ["assert add(1, 2) == 3"]


def test_split_entry_point_only_after_stop_is_dropped() -> None:
    # CodeT checks the entry point before cutting; we also check after.
    asserts, drops = split_asserts("assert 1 == 1\n# add(1, 2)", "add")
    assert (asserts, drops) == ([], {"test_no_entry_point": 1})


def test_split_entry_point_only_in_trimmed_statement_is_dropped() -> None:
    # The name appears only in the statement that trimming cuts off ("f" in "from"):
    # what is kept must mention the entry point itself.
    text = "assert _____\n\nfrom __future__ import division\n"
    asserts, drops = split_asserts(text, "f")
    assert (asserts, drops) == ([], {"test_no_entry_point": 1})


def test_split_multiline_assert_kept_whole() -> None:
    text = "assert add(\n    1,\n    2,\n) == 3\n"
    asserts, _ = split_asserts(text, "add")
    assert asserts == ["assert add(\n    1,\n    2,\n) == 3"]


def test_split_test_file_dedents_and_trims() -> None:
    text = (
        "from solution import add\n\n"
        "def test():\n"
        "    assert add(1, 2) == 3\n"
        "    total = add(2, 2)\n"
        "    assert total == 4\n"
        "    assert add(\n"
        "        5, 5) == 10\n"
        "\n"
        "test()\n"
    )
    asserts, drops = split_asserts(text, "add")
    assert asserts == ["assert add(1, 2) == 3", "assert add(\n        5, 5) == 10"]
    assert drops == {"test_trimmed": 2, "test_no_entry_point": 1}


def test_split_trailing_statement_cut() -> None:
    asserts, drops = split_asserts("assert add(1, 2) == 3; import torch", "add")
    assert asserts == ["assert add(1, 2) == 3"]
    assert drops == {"test_trimmed": 1}


def test_split_keeps_asserts_that_only_warn() -> None:
    # `assert (x, msg)` compiles with a SyntaxWarning; warnings must not decide validity.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        asserts, _ = split_asserts("assert (add(1, 2), 'always true')", "add")
    assert asserts == ["assert (add(1, 2), 'always true')"]


# ---------------------------------------------------------------- parse_candidates


def test_parse_completion_style_dedupe_counts_and_order() -> None:
    codes = [
        "    return a - b\n",
        "    return a + b\n\ndef main():\n",
        "    return a + b\n",
        "  \n",
    ]
    tests = [
        "assert add(1, 2) == 3\nassert add(0, 0) == 0",
        "assert add(0, 0) == 0\nassert add(0, 0) == 0",
    ]
    candidates = parse_candidates(COMPLETION, codes, tests)
    assert [(c.completion, c.count, c.first_sample) for c in candidates.codes] == [
        ("    return a - b\n", 1, 0),
        ("    return a + b\n", 2, 1),
    ]
    assert candidates.codes[1].program == PROMPT + "    return a + b\n"
    assert [(t.source, t.count, t.first_sample) for t in candidates.tests] == [
        ("assert add(1, 2) == 3", 1, 0),
        ("assert add(0, 0) == 0", 3, 0),
    ]
    assert candidates.parse_stats == {"duplicate_code": 1, "duplicate_test": 2, "empty_code": 1}


def test_parse_keeps_code_that_does_not_compile() -> None:
    candidates = parse_candidates(COMPLETION, ["    return a +\n"], [])
    assert [c.completion for c in candidates.codes] == ["    return a +\n"]
    assert candidates.parse_stats == {}


def test_parse_instruction_style() -> None:
    answers = [
        "Sure!\n```python\ndef add(a, b):\n    return a + b\n```\n",
        "I cannot write code.",
        "```python\n\n```",
    ]
    tests = ["```python\nassert add(2, 2) == 4\n```", "assert add(1, 1) == 2"]
    candidates = parse_candidates(INSTRUCTION, answers, tests)
    (code,) = candidates.codes
    assert code.completion == "```python\ndef add(a, b):\n    return a + b\n```"
    assert code.program == "def add(a, b):\n    return a + b\n"
    assert [t.source for t in candidates.tests] == [
        "assert add(2, 2) == 4",
        "assert add(1, 1) == 2",
    ]
    assert candidates.parse_stats == {"no_code_block": 1, "empty_code": 1}


def test_parse_lone_surrogates_sanitised() -> None:
    candidates = parse_candidates(
        COMPLETION, ["    return '\ud800'\n"], ["assert add('\udfff', 1) == 2"]
    )
    assert candidates.parse_stats == {"bad_unicode": 2}
    assert candidates.codes[0].completion == "    return '?'\n"
    assert candidates.tests[0].source == "assert add('?', 1) == 2"
    candidates.model_dump_json().encode("utf-8")  # everything is encodable now


def test_parse_oversize_is_cut_and_fast() -> None:
    huge_code = "    return a + b\n" + "x" * 1_000_000
    huge_test = "assert add(" * 100_000
    start = time.perf_counter()
    candidates = parse_candidates(COMPLETION, [huge_code], [huge_test])
    elapsed = time.perf_counter() - start
    assert elapsed < 2.0
    assert len(candidates.codes[0].completion) == 100_000
    # 100,000 = 11 * 9,090 + 10: the cut leaves a final "assert add", a valid assert.
    assert [t.source for t in candidates.tests] == ["assert add"]
    assert candidates.parse_stats["test_syntax_error"] == 9_090
    assert candidates.parse_stats["oversize"] == 2


def test_parse_garbage_does_not_raise() -> None:
    garbage = ["", "\x00\x00", "```", "assert", "assert add(\x00)", "(((((" * 1000, 42]
    for problem in (COMPLETION, INSTRUCTION):
        candidates = parse_candidates(problem, garbage, garbage)  # type: ignore[arg-type]
        assert candidates.parse_stats["not_text"] == 2
        parse_joint(problem, garbage)  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(text=st.text(alphabet=st.characters(), max_size=300))
def test_parse_any_text_never_raises(text: str) -> None:
    for problem in (COMPLETION, INSTRUCTION):
        parse_candidates(problem, [text, "assert " + text], [text, "assert add(" + text])
        parse_joint(problem, [text])


# ---------------------------------------------------------------- parse_joint


def test_joint_instruction_tagged_files() -> None:
    answer = (
        "The function adds.\n"
        "<file>test_solution.py</file>\n"
        "```python\nfrom solution import add\n\ndef test():\n"
        "    assert add(1, 2) == 3\n    assert add(-1, 1) == 0\n\ntest()\n```\n"
        "<file>solution.py</file>\n"
        "```python\ndef add(a, b):\n    return a + b\n```\n"
        '<json>{"file_names": ["solution.py", "test_solution.py"], "packages": []}</json>\n'
    )
    candidates = parse_joint(INSTRUCTION, [answer, answer])
    (code,) = candidates.codes
    assert code.program == "def add(a, b):\n    return a + b\n"
    assert (code.count, code.first_sample) == (2, 0)
    assert [(t.source, t.count) for t in candidates.tests] == [
        ("assert add(1, 2) == 3", 2),
        ("assert add(-1, 1) == 0", 2),
    ]


def test_joint_instruction_untagged_second_block_is_tests() -> None:
    answer = (
        "```python\ndef add(a, b):\n    return a + b\n```\n```python\nassert add(2, 3) == 5\n```"
    )
    candidates = parse_joint(INSTRUCTION, [answer, "```python\ndef add(a, b): return 0\n```"])
    assert [c.first_sample for c in candidates.codes] == [0, 1]
    assert [t.source for t in candidates.tests] == ["assert add(2, 3) == 5"]
    assert candidates.parse_stats == {"no_test_block": 1}


def test_joint_completion_style_tests_after_body() -> None:
    raw = "    return a + b\n\n\n# tests\nassert add(1, 2) == 3\nassert add(2, 2) == 4\n"
    candidates = parse_joint(COMPLETION, [raw])
    assert [c.completion for c in candidates.codes] == ["    return a + b\n\n"]
    assert [t.source for t in candidates.tests] == [
        "assert add(1, 2) == 3",
        "assert add(2, 2) == 4",
    ]


def test_joint_completion_style_check_candidate_dropped() -> None:
    raw = "    return a + b\n\n\ndef check(candidate):\n    assert candidate(1, 2) == 3\n"
    candidates = parse_joint(COMPLETION, [raw])
    assert candidates.tests == []
    assert candidates.parse_stats == {"test_no_entry_point": 1}


# ---------------------------------------------------------------- parse_replay_row


def test_replay_row_dispatch() -> None:
    separate = ReplayRow(
        problem_id="p/0",
        prompt=PROMPT,
        entry_point="add",
        code_completions=["    return a + b\n"],
        test_completions=["assert add(1, 2) == 3"],
    )
    joint = ReplayRow(
        problem_id="p/0",
        prompt=PROMPT,
        entry_point="add",
        completions=["    return a + b\n\n# tests\nassert add(1, 2) == 3"],
    )
    for row in (separate, joint):
        candidates = parse_replay_row(row)
        assert [c.completion.strip() for c in candidates.codes] == ["return a + b"]
        assert [t.source for t in candidates.tests] == ["assert add(1, 2) == 3"]


# ---------------------------------------------------------------- real data


@requires_shared_data
def test_dev_k100_assert_counts_match_codet() -> None:
    # ALGORITHMS.md §3.2: CodeT's own extraction gives 55.6 asserts per task (50.8 unique)
    # on CodeGen-16B's HumanEval samples, with at most 5 per sample.
    lines = (HUMANEVAL_DIR / "dev-k100.jsonl").read_text().splitlines()
    rows = [ReplayRow.model_validate(json.loads(line)) for line in lines]
    candidates = [parse_replay_row(row) for row in rows]
    extracted = sum(sum(c.test_counts) for c in candidates) / len(rows)
    unique = sum(len(c.tests) for c in candidates) / len(rows)
    assert extracted == pytest.approx(55.6, abs=2.0)
    assert unique == pytest.approx(50.8, abs=2.0)
    assert all(len(c.codes) > 0 for c in candidates)


def test_a_chat_answer_repeating_a_completion_prompt_gives_its_continuation() -> None:
    problem = Problem(problem_id="p", prompt='def inc(x):\n    """Add one."""\n', entry_point="inc")
    answer = 'Sure!\n```python\ndef inc(x):\n    """Add one."""\n    return x + 1\n```\nDone.'
    candidates = parse_candidates(problem, [answer, "    return x + 1\n"], [])
    # The chat answer and the plain continuation are the same code.
    [code] = candidates.codes
    assert code.completion == "    return x + 1\n" and code.count == 2
    assert code.program == problem.prompt + code.completion
    assert candidates.parse_stats == {"duplicate_code": 1, "fenced_continuation": 1}
    # A block that does not repeat the prompt verbatim is left to the old rules.
    other = "```python\ndef inc(y):\n    return y + 1\n```"
    [kept] = parse_candidates(problem, [other], []).codes
    assert kept.completion == truncate_completion(other)
