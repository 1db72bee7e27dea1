"""Decontamination against benchmark prompts, with HumanEval's real prompts as the benchmark."""

from __future__ import annotations

import json
import sysconfig
from pathlib import Path

import pytest

from pipeline.errors import InputFormatError
from pipeline.records import Problem
from pipeline.synthesis.answer import read_answer
from pipeline.synthesis.decontamination import (
    THRESHOLD,
    BenchmarkIndex,
    load_benchmark_prompts,
    ngrams,
)
from pipeline.synthesis.seeds import pick_functions
from tests.conftest import HUMANEVAL_DIR, requires_shared_data

STDLIB = Path(sysconfig.get_paths()["stdlib"])


@pytest.fixture(scope="module")
def humaneval() -> list[dict[str, str]]:
    lines = (HUMANEVAL_DIR / "dev-k10.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


@pytest.fixture(scope="module")
def index(humaneval: list[dict[str, str]]) -> BenchmarkIndex:
    lines = (HUMANEVAL_DIR / "dev-k10.jsonl").read_text().splitlines()
    return BenchmarkIndex(load_benchmark_prompts(lines, source="dev-k10.jsonl"))


def _stdlib_problems() -> list[Problem]:
    """Real signature-and-docstring prompts: public stdlib functions, as answers."""
    problems = []
    for name in ["textwrap.py", "shlex.py", "fnmatch.py", "difflib.py", "statistics.py"]:
        for seed in pick_functions((STDLIB / name).read_text(), name).seeds:
            problem = read_answer(seed.source, seed)
            if isinstance(problem, Problem):
                problems.append(problem)
    return problems


@requires_shared_data
def test_every_humaneval_prompt_fed_back_is_caught(
    humaneval: list[dict[str, str]], index: BenchmarkIndex
) -> None:
    assert len(index) == len(humaneval) == 82
    for row in humaneval:
        assert index.overlap(row["prompt"]) == pytest.approx(1.0), row["problem_id"]
        assert index.contaminated(row["prompt"])


@requires_shared_data
def test_a_lightly_edited_humaneval_prompt_is_still_caught(
    humaneval: list[dict[str, str]], index: BenchmarkIndex
) -> None:
    for row in humaneval:
        # The function renamed where it is defined, extra prose appended. (Renaming it in
        # every example too leaves the shortest prompts, 4 n-grams, nothing in common.)
        edited = row["prompt"].replace(f"def {row['entry_point']}(", "def solve(")
        edited += "\n    The solution must be efficient and handle empty inputs.\n"
        assert index.contaminated(edited), row["problem_id"]


@requires_shared_data
def test_humaneval_embedded_in_a_longer_problem_is_caught(
    humaneval: list[dict[str, str]], index: BenchmarkIndex
) -> None:
    longer = "import os\n\n" + humaneval[5]["prompt"] + "\n" + "# padding words here\n" * 50
    assert index.contaminated(longer)


@requires_shared_data
def test_real_stdlib_prompts_are_not_flagged(index: BenchmarkIndex) -> None:
    problems = _stdlib_problems()
    assert len(problems) >= 30
    overlaps = [index.overlap(p.prompt) for p in problems]
    assert max(overlaps) < THRESHOLD
    assert not any(index.contaminated(p.prompt) for p in problems)


def test_ngrams_of_a_short_text_is_the_whole_text() -> None:
    assert ngrams("Def F(x)") == {("def", "f", "x")}
    assert ngrams("  ") == set()


def test_an_empty_benchmark_flags_nothing() -> None:
    assert BenchmarkIndex([]).overlap("def f(x): 'anything at all here'") == 0.0


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (['{"prompt": "a"}', "not json"], r"x\.jsonl:2: expected one JSON object per line"),
        (['{"text": "MBPP-style"}'], r"x\.jsonl:1: .*string field `prompt`.*\['text'\]"),
        (["[1, 2]"], r"x\.jsonl:1: .*got list"),
        (["", "  "], r"x\.jsonl: holds no benchmark prompts"),
    ],
)
def test_a_malformed_benchmark_file_is_refused_with_its_line(lines: list[str], message: str):
    with pytest.raises(InputFormatError, match=message):
        load_benchmark_prompts(lines, source="x.jsonl")
