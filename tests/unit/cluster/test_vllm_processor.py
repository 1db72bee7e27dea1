"""The vLLM sampler's CPU side: config mapping, expansion into samples and regrouping."""

from __future__ import annotations

import importlib.util
import random
from typing import Any

import numpy as np
import pytest

from cluster.samplers.vllm_processor import (
    GENERATION_COLUMNS,
    build_vllm_sampler,
    engine_kwargs,
    expand_row,
    generation_row,
    processor_config_kwargs,
    regroup,
    regroup_batch,
    rows_of,
    sampling_params,
)
from pipeline import prompts
from pipeline.config import SamplerConfig
from pipeline.errors import ConfigError, ContractViolation, SamplerUnavailable
from pipeline.problem_state import ProblemState
from pipeline.records import CellStatus, Problem, Trajectory, Version
from pipeline.sampling import SampleRole

PROBLEM = Problem(
    problem_id="P/1",
    prompt="def inc(x):\n",
    entry_point="inc",
    metadata={"source": "unit", "n": 3, "tags": ["a"], "ratio": 0.5},
)
CONFIG = SamplerConfig(
    kind="vllm",
    model="tiny/model",
    k=2,
    temperature=0.8,
    top_p=0.95,
    max_tokens=64,
    tensor_parallel_size=2,
    concurrency=3,
    batch_size=16,
    engine_options={"max_model_len": 2048, "enable_prefix_caching": False},
)


def _source_row(problem: Problem = PROBLEM, index: int = 4) -> dict[str, Any]:
    return {"state": ProblemState(index=index, problem=problem, timings={"read": 0.5})}


def test_engine_kwargs_turn_prefix_caching_on_and_pass_engine_options_through():
    assert engine_kwargs(CONFIG) == {
        "enable_prefix_caching": False,  # the user's explicit choice wins
        "max_model_len": 2048,
        "tensor_parallel_size": 2,
    }
    default = SamplerConfig(kind="vllm", model="m")
    assert engine_kwargs(default) == {"enable_prefix_caching": True, "tensor_parallel_size": 1}


def test_contradicting_tensor_parallel_sizes_are_refused():
    config = CONFIG.model_copy(update={"engine_options": {"tensor_parallel_size": 4}})
    with pytest.raises(ConfigError, match=r"\(4\) contradicts .*\(2\)"):
        engine_kwargs(config)


def test_processor_config_maps_the_spec_onto_ray_data_llm():
    kwargs = processor_config_kwargs(CONFIG)
    assert kwargs["model_source"] == "tiny/model"
    assert (kwargs["concurrency"], kwargs["batch_size"]) == (3, 16)
    assert kwargs["should_continue_on_error"] is True
    assert kwargs["chat_template_stage"] is False
    chat = processor_config_kwargs(CONFIG.model_copy(update={"endpoint": "chat"}))
    assert chat["chat_template_stage"] is True


def test_processor_config_is_accepted_by_the_real_ray_data_llm_config():
    llm = pytest.importorskip("ray.data.llm", reason="ray.data.llm is not installed")
    config = llm.vLLMEngineProcessorConfig(**processor_config_kwargs(CONFIG))
    assert config.engine_kwargs["tensor_parallel_size"] == 2
    assert config.engine_kwargs["enable_prefix_caching"] is False
    assert config.should_continue_on_error is True


def test_each_problem_expands_into_one_request_row_per_sample_with_its_own_seed():
    rows = expand_row(_source_row(), config=CONFIG, job_id="job")
    assert [(r["role"], r["sample_index"]) for r in rows] == [
        ("code", 0),
        ("code", 1),
        ("test", 0),
        ("test", 1),
    ]
    assert [r["prompt"] for r in rows] == [prompts.code_prompt(PROBLEM)] * 2 + [
        prompts.test_prompt(PROBLEM)
    ] * 2
    seeds = [r["sampling_params"]["seed"] for r in rows]
    assert len(set(seeds)) == 4
    assert rows[0]["sampling_params"] == {
        "n": 1,
        "temperature": 0.8,
        "top_p": 0.95,
        "max_tokens": 64,
        "seed": seeds[0],
    }
    assert all(r["problem_id"] == "P/1" for r in rows)
    assert sampling_params(CONFIG, 11)["seed"] == 11


def test_chat_mode_sends_messages_instead_of_a_raw_prompt():
    config = CONFIG.model_copy(update={"endpoint": "chat"})
    (row, *_) = expand_row(_source_row(), config=config, job_id="job")
    assert "prompt" not in row
    assert row["messages"] == [{"role": "user", "content": prompts.code_prompt(PROBLEM)}]


def _generated(request_row: dict[str, Any], text: str = "", error: str = "") -> dict[str, Any]:
    """What the processor hands back: the request columns plus the engine's outputs."""
    return generation_row(
        {
            **request_row,
            "prompt": request_row.get("prompt", ""),
            "generated_text": text,
            "num_generated_tokens": 3,
            "__inference_error__": error,
        }
    )


def test_generated_rows_regroup_into_the_problem_row_in_sample_order():
    requests = expand_row(_source_row(), config=CONFIG, job_id="job")
    texts = {
        ("code", 0): "    return x + 1\n",
        ("code", 1): "    return x\n",
        ("test", 0): "inc(1) == 2\n",
        ("test", 1): "inc(0) == 1\n",
    }
    generated = [_generated(r, texts[(r["role"], r["sample_index"])]) for r in requests]
    assert set(generated[0]) == set(GENERATION_COLUMNS)
    random.Random(1).shuffle(generated)  # a groupby does not keep order
    state = regroup(generated, CONFIG)
    # Everything the state held before sampling comes back with it, metadata types intact.
    assert (state.index, state.problem, state.timings) == (4, PROBLEM, {"read": 0.5})
    assert state.problem.metadata == {"source": "unit", "n": 3, "tags": ["a"], "ratio": 0.5}
    assert state.code_completions == ["    return x + 1\n", "    return x\n"]
    assert state.test_completions == ["assert inc(1) == 2\n", "assert inc(0) == 1\n"]
    assert state.sampler_errors == []


def test_an_engine_error_on_a_sample_becomes_a_sampler_error_of_its_problem():
    requests = expand_row(_source_row(), config=CONFIG, job_id="job")
    generated = [
        _generated(r, "x", error="ValueError: prompt too long" if r["role"] == "test" else "")
        for r in requests
    ]
    state = regroup(generated, CONFIG)
    assert state.code_completions == ["x", "x"]
    assert state.test_completions == []
    assert state.sampler_errors == [
        "test sample 0: vLLM: ValueError: prompt too long",
        "test sample 1: vLLM: ValueError: prompt too long",
    ]


def test_regroup_batch_takes_the_numpy_batch_of_one_group():
    one = CONFIG.model_copy(update={"k": 1})
    requests = expand_row(_source_row(), config=one, job_id="j")
    generated = [_generated(r, "t") for r in requests]
    # What map_groups hands a UDF: one numpy array per column, numbers as numpy scalars.
    batch: dict[str, Any] = {
        c: np.array([g[c] for g in generated], dtype=object) for c in GENERATION_COLUMNS
    }
    batch["sample_index"] = np.array([g["sample_index"] for g in generated], dtype=np.int64)
    batch["seed"] = np.array([g["seed"] for g in generated], dtype=np.int64)
    out = regroup_batch(batch, config=one)
    (state,) = out["state"]
    assert isinstance(state, ProblemState) and state.index == 4
    assert state.code_completions == ["t"]
    assert state.test_completions == ["assert t"]


def test_rows_of_turns_numpy_columns_into_plain_python_rows():
    batch = {
        "n": np.array([1, 2], dtype=np.int64),
        "texts": np.array(
            [np.array(["a", "b"], dtype=object), np.array([], dtype=object)], dtype=object
        ),
    }
    rows = rows_of(batch)
    assert rows == [{"n": 1, "texts": ["a", "b"]}, {"n": 2, "texts": []}]
    assert type(rows[0]["n"]) is int and type(rows[0]["texts"]) is list
    assert rows_of({}) == []


def test_regroup_refuses_an_empty_group():
    with pytest.raises(ContractViolation, match="no rows"):
        regroup([], CONFIG)


def test_regroup_refuses_rows_of_several_problems():
    other = Problem(problem_id="P/2", prompt="def g():\n")
    rows = [
        _generated(expand_row(_source_row(), config=CONFIG, job_id="j")[0]),
        _generated(expand_row(_source_row(other, 5), config=CONFIG, job_id="j")[0]),
    ]
    with pytest.raises(ContractViolation, match="several problems"):
        regroup(rows, CONFIG)


def test_joint_mode_regroups_into_completions():
    config = CONFIG.model_copy(update={"prompt_mode": "joint"})
    requests = expand_row(_source_row(), config=config, job_id="job")
    assert {r["role"] for r in requests} == {SampleRole.JOINT.value}
    state = regroup([_generated(r, "j") for r in requests], config)
    assert state.completions == ["j", "j"] and state.code_completions is None


def test_chat_answers_for_tests_get_no_assert_prefix():
    config = CONFIG.model_copy(update={"endpoint": "chat"})
    requests = expand_row(_source_row(), config=config, job_id="job")
    state = regroup([_generated(r, "assert inc(1) == 2") for r in requests], config)
    assert state.test_completions == ["assert inc(1) == 2"] * 2


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed here")
def test_building_without_vllm_names_the_gpu_extra():
    with pytest.raises(SamplerUnavailable, match=r"pairforge\[gpu\]"):
        build_vllm_sampler(CONFIG, "job")


# ---------------------------------------------------------------- Target-DPO rounds


def _refining_state(passed: bool) -> ProblemState:
    failing = Version(
        round=0,
        completion="    return x\n",
        program="def inc(x):\n    return x\n",
        statuses=[CellStatus.FAILED],
        feedback="Test 1 (failed): inc(1) returned 1",
    )
    second = Trajectory(
        index=1,
        versions=[
            failing.model_copy(
                update={"statuses": [CellStatus.PASSED] if passed else [CellStatus.FAILED]}
            )
        ],
    )
    return ProblemState(
        index=2,
        problem=PROBLEM.model_copy(update={"tests": ["assert inc(1) == 2"]}),
        verified_tests=["assert inc(1) == 2"],
        trajectories=[Trajectory(index=0, versions=[failing]), second],
    )


def test_a_refinement_round_asks_each_failing_trajectory_as_a_chat_conversation():
    chat = CONFIG.model_copy(update={"endpoint": "chat"})
    rows = expand_row({"state": _refining_state(passed=True)}, config=chat, job_id="j", round_=1)
    [row] = rows  # trajectory 1 passed: only trajectory 0 is asked
    assert (row["role"], row["sample_index"]) == ("refine", 0)
    assert [m["role"] for m in row["messages"]] == ["user", "assistant", "user"]
    assert "inc(1) returned 1" in row["messages"][2]["content"]
    answer = "```python\ndef inc(x):\n    return x + 1\n```"
    state = regroup([_generated(row, answer)], chat, round_=1)
    assert state.trajectories[0].pending == answer
    assert state.trajectories[1].pending is None


def test_a_problem_with_nothing_to_refine_rides_along_as_one_placeholder_request():
    # map_groups only sees problems that have rows: a finished problem must not vanish.
    state = _refining_state(passed=True).model_copy(
        update={"trajectories": _refining_state(passed=True).trajectories[1:]}
    )
    [row] = expand_row({"state": state}, config=CONFIG, job_id="j", round_=1)
    assert row["role"] == "carry" and row["sampling_params"]["max_tokens"] == 1
    back = regroup([_generated(row, "ignored")], CONFIG, round_=1)
    assert back == state
