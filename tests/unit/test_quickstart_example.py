"""The bundled quickstart example (examples/quickstart/) is well-formed and self-consistent.

Nothing here runs the recorded code: candidates are untrusted model-style output and only
run inside the sandbox. These checks read, validate and parse the files; that every
canonical solution passes its ``check`` was verified when the data was written.
"""

from __future__ import annotations

import ast
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from pipeline.config import SamplerKind, job_spec_from_yaml
from pipeline.parsing import parse_replay_row
from pipeline.records import PairMethod, PromptStyle, ReplayRow
from tests.conftest import REPO_ROOT

EXAMPLE_DIR = REPO_ROOT / "examples" / "quickstart"
PROBLEM_COUNT = 30
SAMPLES_PER_PROBLEM = 10
ID_PATTERN = re.compile(r"quickstart/(\d+)-[a-z0-9]+(?:-[a-z0-9]+)*")


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


@pytest.fixture(scope="module")
def raw_rows() -> list[dict[str, Any]]:
    return _read_jsonl(EXAMPLE_DIR / "problems.jsonl")


@pytest.fixture(scope="module")
def rows(raw_rows: list[dict[str, Any]]) -> list[ReplayRow]:
    return [ReplayRow.model_validate(raw) for raw in raw_rows]


@pytest.fixture(scope="module")
def groundtruth() -> list[dict[str, Any]]:
    return _read_jsonl(EXAMPLE_DIR / "groundtruth.jsonl")


def test_thirty_problems_with_unique_numbered_ids(rows: list[ReplayRow]) -> None:
    ids = [row.problem_id for row in rows]
    assert len(ids) == PROBLEM_COUNT
    assert len(set(ids)) == PROBLEM_COUNT
    numbers = []
    for problem_id in ids:
        match = ID_PATTERN.fullmatch(problem_id)
        assert match is not None, f"{problem_id!r} is not quickstart/<n>-<slug>"
        numbers.append(int(match.group(1)))
    assert numbers == list(range(1, PROBLEM_COUNT + 1))


def test_rows_are_completion_style_with_ten_code_and_ten_test_samples(
    rows: list[ReplayRow],
) -> None:
    for row in rows:
        assert row.style is PromptStyle.COMPLETION, row.problem_id
        assert row.language == "python"
        assert row.completions is None
        assert row.code_completions is not None and row.test_completions is not None
        assert len(row.code_completions) == SAMPLES_PER_PROBLEM, row.problem_id
        assert len(row.test_completions) == SAMPLES_PER_PROBLEM, row.problem_id


def test_prompt_declares_the_entry_point_and_ends_after_the_docstring(
    rows: list[ReplayRow],
) -> None:
    for row in rows:
        assert row.entry_point, row.problem_id
        assert f"\ndef {row.entry_point}(" in "\n" + row.prompt, row.problem_id
        assert row.prompt.endswith('    """\n'), row.problem_id
        # One or two doctest-style examples in the docstring, as in HumanEval.
        assert 1 <= row.prompt.count(">>> ") <= 2, row.problem_id


def test_completions_continue_the_body_and_tests_start_with_assert(
    rows: list[ReplayRow],
) -> None:
    for row in rows:
        assert row.code_completions is not None and row.test_completions is not None
        for code in row.code_completions:
            assert code.startswith("    ") and not code.startswith("     "), row.problem_id
        for test in row.test_completions:
            assert test.startswith("assert "), row.problem_id
            assert row.entry_point is not None and row.entry_point in test


def test_samples_repeat_like_real_model_output(rows: list[ReplayRow]) -> None:
    with_repeats = 0
    for row in rows:
        assert row.code_completions is not None
        if max(Counter(row.code_completions).values()) > 1:
            with_repeats += 1
    assert with_repeats >= PROBLEM_COUNT // 2


def test_intended_outcomes_cover_pairs_and_both_degenerate_skips(rows: list[ReplayRow]) -> None:
    outcomes = Counter(row.metadata.get("intended_outcome") for row in rows)
    assert set(outcomes) == {"mix", "all_pass", "all_fail"}
    assert outcomes["mix"] >= 20
    assert outcomes["all_pass"] >= 1
    assert outcomes["all_fail"] >= 1


def test_parser_keeps_every_problem_usable(rows: list[ReplayRow]) -> None:
    for row in rows:
        candidates = parse_replay_row(row)
        assert len(candidates.codes) >= 2, row.problem_id
        assert len(candidates.tests) >= 5, row.problem_id
        assert sum(code.count for code in candidates.codes) == SAMPLES_PER_PROBLEM


def test_parser_on_clamp_matches_hand_count(rows: list[ReplayRow]) -> None:
    # Worked by hand from the file: bodies A (max/min), B (if/if), C (sorted), D (min/max);
    # A appears 3 times bare and once followed by `if __name__`, whose cut leaves A + "\n";
    # B 3 times (one with a trailing `# Examples` comment, cut away); C once; D twice (one
    # with a trailing `print(...)`, cut away). The 10 test samples hold 19 asserts; sample 5
    # repeats sample 1's three and sample 9 repeats two others, leaving 14 distinct.
    clamp = next(row for row in rows if row.problem_id == "quickstart/5-clamp")
    candidates = parse_replay_row(clamp)
    counts = sorted(code.count for code in candidates.codes)
    assert counts == [1, 1, 2, 3, 3]
    assert len(candidates.tests) == 14
    assert candidates.parse_stats.get("duplicate_test") == 5


def test_groundtruth_matches_problems_and_parses(
    rows: list[ReplayRow], groundtruth: list[dict[str, Any]]
) -> None:
    assert [g["problem_id"] for g in groundtruth] == [row.problem_id for row in rows]
    for row, truth in zip(rows, groundtruth, strict=True):
        assert set(truth) == {"problem_id", "entry_point", "canonical_solution", "test"}
        assert truth["entry_point"] == row.entry_point
        assert "def check(candidate):" in truth["test"]
        assert truth["test"].count("assert candidate(") >= 5, row.problem_id
        # Parsing (not running) proves the program is well-formed Python.
        ast.parse(row.prompt + truth["canonical_solution"] + truth["test"])


def test_job_yaml_is_a_valid_replay_spec_for_the_bundled_file(rows: list[ReplayRow]) -> None:
    spec = job_spec_from_yaml((EXAMPLE_DIR / "job.yaml").read_text(encoding="utf-8"))
    assert spec.name == "quickstart"
    assert spec.sampler.kind is SamplerKind.REPLAY
    assert spec.sampler.k == SAMPLES_PER_PROBLEM
    # The README runs the build from the repository root, where this path must resolve.
    assert (REPO_ROOT / spec.source.path).resolve() == (EXAMPLE_DIR / "problems.jsonl").resolve()
    assert spec.ranking.ranker == "pagerank"
    assert spec.pairs.method is PairMethod.FOCUSED_DPO
    assert spec.sandbox.timeout_s == 1.0
    assert (spec.sandbox.min_workers, spec.sandbox.max_workers) == (1, 2)
    assert spec.output.uri == "runs/quickstart"
    assert spec.output.problems_per_unit == 8
    assert len(rows) > spec.output.problems_per_unit
