"""The sampled-row contract, request planning, seeds and regrouping shared by all samplers."""

from __future__ import annotations

import random

import numpy as np
import pytest

from cluster.samplers.base import (
    SampledRow,
    SampleRequest,
    SampleResult,
    SampleRole,
    assemble,
    finish_completion,
    plan_requests,
    rows_of,
    sample_seed,
)
from pipeline import prompts
from pipeline.config import SamplerConfig
from pipeline.errors import ContractViolation
from pipeline.records import Problem, PromptStyle, ReplayRow

PROBLEM = Problem(
    problem_id="P/1",
    prompt='def add(a, b):\n    """Add."""\n',
    entry_point="add",
    metadata={"source": "unit", "n": 3},
)
SEPARATE = SamplerConfig(kind="replay", k=3, seed=7)
JOINT = SamplerConfig(kind="replay", k=2, prompt_mode="joint")


def test_plan_requests_separate_mode_asks_k_codes_and_k_tests_with_their_prompts():
    requests = plan_requests(PROBLEM, SEPARATE, "job-1")
    assert [(r.role, r.index) for r in requests] == [
        (SampleRole.CODE, 0),
        (SampleRole.CODE, 1),
        (SampleRole.CODE, 2),
        (SampleRole.TEST, 0),
        (SampleRole.TEST, 1),
        (SampleRole.TEST, 2),
    ]
    assert {r.prompt for r in requests if r.role is SampleRole.CODE} == {
        prompts.code_prompt(PROBLEM)
    }
    assert {r.prompt for r in requests if r.role is SampleRole.TEST} == {
        prompts.test_prompt(PROBLEM)
    }
    assert all(r.problem_id == "P/1" for r in requests)


def test_plan_requests_joint_mode_asks_k_joint_samples():
    requests = plan_requests(PROBLEM, JOINT, "job-1")
    assert [(r.role, r.index, r.prompt) for r in requests] == [
        (SampleRole.JOINT, 0, prompts.joint_prompt(PROBLEM)),
        (SampleRole.JOINT, 1, prompts.joint_prompt(PROBLEM)),
    ]


def test_every_sample_of_a_job_gets_its_own_seed_and_the_same_seed_on_every_run():
    seeds = [r.seed for r in plan_requests(PROBLEM, SEPARATE, "job-1")]
    assert len(set(seeds)) == len(seeds)
    assert seeds == [r.seed for r in plan_requests(PROBLEM, SEPARATE, "job-1")]
    assert all(0 <= s < 2**31 for s in seeds)


@pytest.mark.parametrize(
    "other",
    [
        ("job-2", 7, "P/1", SampleRole.CODE, 0),  # another job
        ("job-1", 8, "P/1", SampleRole.CODE, 0),  # another base seed in the spec
        ("job-1", 7, "P/2", SampleRole.CODE, 0),  # another problem
        ("job-1", 7, "P/1", SampleRole.TEST, 0),  # the test sample with the same index
    ],
)
def test_seed_changes_with_each_of_its_parts(other):
    assert sample_seed("job-1", 7, "P/1", SampleRole.CODE, 0) != sample_seed(*other)


def _request(role: SampleRole, index: int, prompt: str = "p") -> SampleRequest:
    return SampleRequest(problem_id="P/1", role=role, index=index, prompt=prompt, seed=index)


def test_test_continuation_gets_the_assert_it_continues():
    req = _request(SampleRole.TEST, 0, prompt=prompts.test_prompt(PROBLEM))
    assert prompts.test_prompt(PROBLEM).endswith("assert ")
    assert (
        finish_completion(req, "add(1, 2) == 3\n", continuation=True) == "assert add(1, 2) == 3\n"
    )


def test_chat_answers_and_code_completions_are_kept_as_they_are():
    test_req = _request(SampleRole.TEST, 0, prompt=prompts.test_prompt(PROBLEM))
    code_req = _request(SampleRole.CODE, 0, prompt=prompts.test_prompt(PROBLEM))
    assert finish_completion(test_req, "```python\nassert x\n```", continuation=False) == (
        "```python\nassert x\n```"
    )
    assert finish_completion(code_req, "    return a + b\n", continuation=True) == (
        "    return a + b\n"
    )


def test_instruction_test_prompt_does_not_end_in_assert_so_nothing_is_prepended():
    problem = PROBLEM.model_copy(update={"style": PromptStyle.INSTRUCTION})
    req = _request(SampleRole.TEST, 0, prompt=prompts.test_prompt(problem))
    assert finish_completion(req, "```python\nassert add(1, 1) == 2\n```", continuation=True) == (
        "```python\nassert add(1, 1) == 2\n```"
    )


def test_assemble_restores_sample_order_and_lists_failed_samples():
    prompt = prompts.test_prompt(PROBLEM)
    results = [
        SampleResult(_request(SampleRole.TEST, 1, prompt), text="add(0, 0) == 0"),
        SampleResult(_request(SampleRole.CODE, 2), text="c2"),
        SampleResult(_request(SampleRole.CODE, 0), text="c0"),
        SampleResult(_request(SampleRole.TEST, 0, prompt), error="HTTP 500"),
        SampleResult(_request(SampleRole.CODE, 1), error="timed out"),
        SampleResult(_request(SampleRole.TEST, 2, prompt), text="add(1, 1) == 2"),
    ]
    random.Random(3).shuffle(results)
    row = assemble(5, PROBLEM, SEPARATE, results, continuation=True)
    assert row.index == 5
    assert row.code_completions == ["c0", "c2"]
    assert row.test_completions == ["assert add(0, 0) == 0", "assert add(1, 1) == 2"]
    assert row.completions is None
    assert row.sampler_errors == ["code sample 1: timed out", "test sample 0: HTTP 500"]


def test_a_problem_whose_samples_all_failed_still_makes_a_valid_row():
    results = [SampleResult(r, error="HTTP 503") for r in plan_requests(PROBLEM, SEPARATE, "j")]
    row = assemble(0, PROBLEM, SEPARATE, results, continuation=True)
    assert row.code_completions == [] and row.test_completions == []
    assert len(row.sampler_errors) == 6
    replay = row.replay_row()
    assert replay.code_completions == [] and replay.problem() == PROBLEM


def test_assemble_refuses_a_sample_of_another_problem_or_mode():
    stranger = SampleRequest(problem_id="P/2", role=SampleRole.CODE, index=0, prompt="", seed=0)
    with pytest.raises(ContractViolation, match="P/2"):
        assemble(0, PROBLEM, SEPARATE, [SampleResult(stranger, text="x")], continuation=True)
    with pytest.raises(ContractViolation, match="joint mode"):
        assemble(
            0,
            PROBLEM,
            JOINT,
            [SampleResult(_request(SampleRole.CODE, 0), text="x")],
            continuation=True,
        )


def test_sampled_row_is_exactly_a_replay_row_for_the_parser():
    row = SampledRow(index=0, problem=PROBLEM, completions=["a", "b"], sampler_errors=["x"])
    assert row.replay_row() == ReplayRow.model_validate(
        {**PROBLEM.model_dump(), "completions": ["a", "b"]}
    )


def test_sampled_row_survives_ray_numpy_batches_with_its_metadata_intact():
    row = SampledRow(
        index=4,
        problem=PROBLEM,
        code_completions=["c"],
        test_completions=["assert 1"],
        sampler_errors=["code sample 1: boom"],
    )
    ray_row = row.to_ray_row()
    # What map_batches hands a UDF: one numpy array per column, list cells as arrays.
    batch = {
        key: np.array(
            [value if not isinstance(value, list) else np.array(value, dtype=object)], dtype=object
        )
        for key, value in ray_row.items()
    }
    (decoded,) = [SampledRow.from_ray_row(r) for r in rows_of(batch)]
    assert decoded == row
    assert decoded.problem.metadata == {"source": "unit", "n": 3}
