"""The Target-DPO example (examples/target_dpo/) is well-formed: its spec and its problems.

Nothing here talks to a model or runs code: the problems' own tests are only parsed, as
the build parses them into the sandbox's snippets.
"""

from __future__ import annotations

import ast
import json
from typing import Any

from cluster.sources import scan_source
from pipeline.config import SamplerKind, job_spec_from_yaml
from pipeline.records import PairMethod, Problem, PromptStyle
from pipeline.verified_tests import problem_tests
from services.cli.model import DEFAULT_PORT
from services.local_model import MODEL_NAME
from tests.conftest import REPO_ROOT

EXAMPLE_DIR = REPO_ROOT / "examples" / "target_dpo"
JOB = EXAMPLE_DIR / "job.yaml"
PROBLEMS = EXAMPLE_DIR / "problems.jsonl"


def _rows() -> list[dict[str, Any]]:
    return [json.loads(line) for line in PROBLEMS.read_text(encoding="utf-8").splitlines()]


def test_job_is_a_target_dpo_spec_for_the_bundled_server() -> None:
    spec = job_spec_from_yaml(JOB.read_text(encoding="utf-8"))
    assert spec.pairs.method is PairMethod.TARGET_DPO
    assert spec.sampler.kind is SamplerKind.OPENAI
    # `pairforge model serve` with its defaults answers here, under this name.
    assert spec.sampler.base_url == f"http://127.0.0.1:{DEFAULT_PORT}/v1"
    assert spec.sampler.model == MODEL_NAME
    # Completion-style problems are continued, not answered in a chat.
    assert spec.sampler.endpoint == "completions"
    assert (REPO_ROOT / spec.source.path).resolve() == PROBLEMS.resolve()
    assert spec.output.uri == "runs/target_dpo"


def test_problems_pass_the_builds_input_check() -> None:
    spec = job_spec_from_yaml(JOB.read_text(encoding="utf-8"))
    source = spec.source.model_copy(update={"path": str(PROBLEMS)})
    assert scan_source(source, spec.sampler.kind) == len(_rows()) == 4


def test_every_problem_brings_tests_the_sandbox_can_judge_apart() -> None:
    problems = [Problem.model_validate(row) for row in _rows()]
    shapes = {type(p.tests) for p in problems}
    assert shapes == {list, str}, "both forms: assert lists and a HumanEval check program"
    for problem in problems:
        assert problem.style is PromptStyle.COMPLETION
        (func,) = ast.parse(problem.prompt + "    pass\n").body
        assert isinstance(func, ast.FunctionDef) and func.name == problem.entry_point
        tests = problem_tests(problem)
        assert tests is not None and len(tests) >= 4, problem.problem_id
        for test in tests:
            # Single asserts calling the entry point: split, judged outside the program
            # (a `check` program that could not be split would run as one whole test).
            (statement,) = ast.parse(test).body
            assert isinstance(statement, ast.Assert), test
            called = {
                node.func.id
                for node in ast.walk(statement)
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            }
            assert problem.entry_point in called, test
