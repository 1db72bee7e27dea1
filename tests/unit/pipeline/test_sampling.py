"""Sampling as domain logic: request planning, seeds, completion finishing and regrouping."""

from __future__ import annotations

import random

import pytest

from pipeline import prompts
from pipeline.config import SamplerConfig
from pipeline.errors import ContractViolation
from pipeline.problem_state import ProblemState
from pipeline.records import Problem, PromptStyle, ReplayRow
from pipeline.sampling import (
    SampleRequest,
    SampleResult,
    SampleRole,
    assemble,
    finish_completion,
    first_k,
    plan_requests,
    sample_seed,
)

PROBLEM = Problem(
    problem_id="P/1",
    prompt='def add(a, b):\n    """Add."""\n',
    entry_point="add",
    metadata={"source": "unit", "n": 3},
)
STATE = ProblemState(index=5, problem=PROBLEM)
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


def test_planned_seeds_are_the_sample_seeds_of_their_role_and_index():
    for r in plan_requests(PROBLEM, SEPARATE, "job-1"):
        assert r.seed == sample_seed("job-1", 7, "P/1", r.role, r.index)


@pytest.mark.parametrize(
    "other",
    [
        ("job-2", 7, "P/1", SampleRole.CODE, 0),  # another job
        ("job-1", 8, "P/1", SampleRole.CODE, 0),  # another base seed in the spec
        ("job-1", 7, "P/2", SampleRole.CODE, 0),  # another problem
        ("job-1", 7, "P/1", SampleRole.TEST, 0),  # the test sample with the same index
        ("job-1", 7, "P/1", SampleRole.CODE, 1),  # the next sample
    ],
)
def test_seed_changes_with_each_of_its_parts(other):
    assert sample_seed("job-1", 7, "P/1", SampleRole.CODE, 0) != sample_seed(*other)


def _request(
    role: SampleRole, index: int, prompt: str = "p", problem_id: str = "P/1"
) -> SampleRequest:
    return SampleRequest(problem_id=problem_id, role=role, index=index, prompt=prompt, seed=index)


def test_test_continuation_gets_the_assert_it_continues():
    req = _request(SampleRole.TEST, 0, prompt=prompts.test_prompt(PROBLEM))
    assert prompts.test_prompt(PROBLEM).endswith(prompts.TEST_COMPLETION_PREFIX)
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
    state = assemble(STATE, SEPARATE, results, continuation=True)
    assert (state.index, state.problem) == (5, PROBLEM)
    assert state.code_completions == ["c0", "c2"]
    assert state.test_completions == ["assert add(0, 0) == 0", "assert add(1, 1) == 2"]
    assert state.completions is None
    assert state.sampler_errors == ["code sample 1: timed out", "test sample 0: HTTP 500"]


def test_sample_order_is_by_index_whatever_order_the_results_arrive_in():
    results = [SampleResult(_request(SampleRole.CODE, i), text=f"c{i}") for i in range(12)]
    results += [SampleResult(_request(SampleRole.TEST, i), text=f"t{i}") for i in range(12)]
    orders = set()
    for seed in range(5):
        random.Random(seed).shuffle(results)
        state = assemble(STATE, SEPARATE, results, continuation=False)
        orders.add((tuple(state.code_completions or []), tuple(state.test_completions or [])))
    # Index 10 sorts after 9, not after 1: the index is compared as a number.
    assert orders == {(tuple(f"c{i}" for i in range(12)), tuple(f"t{i}" for i in range(12)))}


def test_assemble_keeps_what_the_state_already_holds():
    state = STATE.model_copy(update={"timings": {"read": 0.5}})
    sampled = assemble(
        state, SEPARATE, [SampleResult(_request(SampleRole.CODE, 0), text="c")], continuation=False
    )
    assert (sampled.index, sampled.problem, sampled.timings) == (5, PROBLEM, {"read": 0.5})
    assert sampled.code_completions == ["c"] and sampled.test_completions == []
    # The input state is a value: assembling does not change it.
    assert STATE.code_completions is None


def test_a_failed_sample_without_a_message_is_still_listed():
    results = [
        SampleResult(_request(SampleRole.JOINT, 1)),
        SampleResult(_request(SampleRole.JOINT, 0), text="j"),
    ]
    state = assemble(STATE, JOINT, results, continuation=True)
    assert state.completions == ["j"]
    assert state.sampler_errors == ["joint sample 1: no completion"]


def test_a_problem_whose_samples_all_failed_still_makes_a_parsable_state():
    results = [SampleResult(r, error="HTTP 503") for r in plan_requests(PROBLEM, SEPARATE, "j")]
    state = assemble(STATE, SEPARATE, results, continuation=True)
    assert state.code_completions == [] and state.test_completions == []
    assert len(state.sampler_errors) == 6
    assert not state.has_samples()
    replay = state.sampled()
    assert replay.code_completions == [] and replay.problem() == PROBLEM


def test_assemble_refuses_a_sample_of_another_problem():
    stranger = _request(SampleRole.CODE, 0, problem_id="P/2")
    with pytest.raises(ContractViolation, match=r"'P/2'.*grouped under problem 'P/1'"):
        assemble(STATE, SEPARATE, [SampleResult(stranger, text="x")], continuation=True)


@pytest.mark.parametrize(
    ("config", "role"),
    [(JOINT, SampleRole.CODE), (JOINT, SampleRole.TEST), (SEPARATE, SampleRole.JOINT)],
)
def test_assemble_refuses_a_role_that_does_not_match_the_prompt_mode(config, role):
    result = SampleResult(_request(role, 0), text="x")
    with pytest.raises(ContractViolation, match=f"in {config.prompt_mode} mode"):
        assemble(STATE, config, [result], continuation=True)


REPLAYED = ProblemState.from_input(
    3,
    ReplayRow(
        problem_id="P/1",
        prompt="def f():\n",
        entry_point="f",
        code_completions=["c0", "c1", "c2", "c3"],
        test_completions=["assert f() == 0", "assert f() == 1"],
    ),
)


def test_first_k_keeps_the_first_k_code_and_test_completions_without_padding():
    state = first_k(REPLAYED, 3)
    assert state.code_completions == ["c0", "c1", "c2"]
    # fewer than k test completions: all of them, no padding
    assert state.test_completions == ["assert f() == 0", "assert f() == 1"]
    assert state.completions is None
    assert state.sampler_errors == []
    assert (state.index, state.problem) == (REPLAYED.index, REPLAYED.problem)


def test_first_k_cuts_joint_completions_and_leaves_absent_kinds_absent():
    joint = ProblemState.from_input(
        0, ReplayRow(problem_id="P/2", prompt="Write f.", completions=["j0", "j1", "j2"])
    )
    state = first_k(joint, 2)
    assert state.completions == ["j0", "j1"]
    assert state.code_completions is None and state.test_completions is None


def test_first_k_of_a_larger_file_sees_what_a_smaller_file_holds():
    hundred = ReplayRow(
        problem_id="P/3",
        prompt="def g():\n",
        code_completions=[f"    return {i}\n" for i in range(100)],
        test_completions=[f"assert g() == {i}" for i in range(100)],
    )
    ten = hundred.model_copy(
        update={
            "code_completions": hundred.code_completions[:10],  # type: ignore[index]
            "test_completions": hundred.test_completions[:10],  # type: ignore[index]
        }
    )
    assert first_k(ProblemState.from_input(0, hundred), 10).sampled() == ten
