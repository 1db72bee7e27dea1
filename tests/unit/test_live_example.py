"""The live example (examples/live/) is well-formed: specs, problems and ground truth.

Nothing here talks to a model or runs code; the live tier (tests/live) builds these jobs
against the bundled model and checks the ground truth in the sandbox.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import pytest

from pipeline.config import SamplerKind, job_spec_from_yaml
from pipeline.records import PairMethod, Problem, PromptStyle
from services.cli.model import DEFAULT_PORT
from services.local_model import MODEL_NAME
from tests.conftest import REPO_ROOT

EXAMPLE_DIR = REPO_ROOT / "examples" / "live"
JOBS = {
    # job file: (problems file, prompt style, endpoint, prompt mode, output)
    "job.yaml": (
        "problems.jsonl",
        PromptStyle.COMPLETION,
        "completions",
        "separate",
        "runs/live/completion",
    ),
    "job-instruct.yaml": (
        "problems-instruct.jsonl",
        PromptStyle.INSTRUCTION,
        "chat",
        "joint",
        "runs/live/instruct",
    ),
}


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


@pytest.mark.parametrize("job", sorted(JOBS))
def test_job_is_a_live_spec_for_the_bundled_server(job: str) -> None:
    problems_file, style, endpoint, mode, output = JOBS[job]
    spec = job_spec_from_yaml((EXAMPLE_DIR / job).read_text(encoding="utf-8"))
    assert spec.sampler.kind is SamplerKind.OPENAI
    # `pairforge model serve` with its defaults answers here, under this name.
    assert spec.sampler.base_url == f"http://127.0.0.1:{DEFAULT_PORT}/v1"
    assert spec.sampler.model == MODEL_NAME
    assert (spec.sampler.endpoint, spec.sampler.prompt_mode) == (endpoint, mode)
    assert spec.sampler.k == 4
    assert spec.pairs.method is PairMethod.FOCUSED_DPO
    assert (REPO_ROOT / spec.source.path).resolve() == (EXAMPLE_DIR / problems_file).resolve()
    assert spec.output.uri == output
    rows = [Problem.model_validate(r) for r in _read_jsonl(EXAMPLE_DIR / problems_file)]
    assert len(rows) == 3
    assert {r.style for r in rows} == {style}
    for row in rows:
        assert row.entry_point and row.entry_point in row.prompt
        if style is PromptStyle.COMPLETION:
            # HumanEval-like: a signature and a docstring the model continues.
            (func,) = ast.parse(row.prompt + "    pass\n").body
            assert isinstance(func, ast.FunctionDef) and func.name == row.entry_point


def test_groundtruth_covers_every_problem_and_parses() -> None:
    problems = {
        r["problem_id"]: Problem.model_validate(r)
        for name in ("problems.jsonl", "problems-instruct.jsonl")
        for r in _read_jsonl(EXAMPLE_DIR / name)
    }
    truth = _read_jsonl(EXAMPLE_DIR / "groundtruth.jsonl")
    assert [t["problem_id"] for t in truth] == list(problems)
    for t in truth:
        problem = problems[t["problem_id"]]
        assert set(t) == {"problem_id", "entry_point", "canonical_solution", "test"}
        assert t["entry_point"] == problem.entry_point
        assert t["test"].count("assert candidate(") >= 5
        # Completion style: program = prompt + solution; instruction style: the solution.
        head = problem.prompt if problem.style is PromptStyle.COMPLETION else ""
        ast.parse(head + t["canonical_solution"] + t["test"])
