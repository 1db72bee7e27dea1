"""The live example's ground truth holds in the real sandbox: each canonical solution passes
its problem's ``check``, and a wrong one does not (so the check can tell them apart)."""

from __future__ import annotations

import json

import pytest

from pipeline.records import Problem, PromptStyle
from sandbox.limits import PoolConfig
from sandbox.pool import ContainerPool
from sandbox.types import CellStatus, ExecutionRequest
from tests.conftest import REPO_ROOT, SANDBOX_IMAGE, requires_sandbox_image

pytestmark = [requires_sandbox_image, pytest.mark.docker]

EXAMPLE = REPO_ROOT / "examples" / "live"


def test_canonical_solutions_pass_and_wrong_ones_fail_in_the_sandbox() -> None:
    problems = {
        p.problem_id: p
        for name in ("problems.jsonl", "problems-instruct.jsonl")
        for p in map(Problem.model_validate_json, (EXAMPLE / name).read_text().splitlines())
    }
    truth = [json.loads(line) for line in (EXAMPLE / "groundtruth.jsonl").read_text().splitlines()]
    requests, expected = [], []
    for t in truth:
        problem = problems[t["problem_id"]]
        head = problem.prompt if problem.style is PromptStyle.COMPLETION else ""
        check = f"{t['test']}\ncheck({t['entry_point']})"
        # A body that returns None is wrong for every problem here.
        wrong = "    return None\n"
        if problem.style is PromptStyle.INSTRUCTION:
            wrong = t["canonical_solution"].split("\n")[0] + "\n" + wrong
        for code, verdict in ((t["canonical_solution"], CellStatus.PASSED), (wrong, None)):
            requests.append(ExecutionRequest(program=head + code, tests=[check], timeout_s=3.0))
            expected.append(verdict)
    with ContainerPool(PoolConfig(image=SANDBOX_IMAGE, workers=1, timeout_s=3.0)) as pool:
        results = [pool.run(r) for r in requests]
    for request, result, verdict in zip(requests, results, expected, strict=True):
        if verdict is CellStatus.PASSED:
            assert result.statuses == [CellStatus.PASSED], request.program
        else:
            assert result.statuses[0] in {CellStatus.FAILED, CellStatus.ERROR}, request.program
