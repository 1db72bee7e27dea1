"""Operator maxima and the "can this version run it" rules, shared by the service and the CLI."""

from __future__ import annotations

from typing import Any

import pytest

from pipeline.config import JobSpec, parse_job_spec
from pipeline.errors import JobSpecError
from pipeline.job_limits import (
    JobLimits,
    limit_violations,
    require_runnable,
    sample_count_problem,
    training_gpus_problem,
    unrunnable_reasons,
)


def _spec(**sections: Any) -> JobSpec:
    body: dict[str, Any] = {
        "source": {"path": "problems.jsonl"},
        "sampler": {"kind": "replay"},
        "output": {"uri": "runs/x"},
    }
    for name, values in sections.items():
        body[name] = {**body.get(name, {}), **values}
    return parse_job_spec(body)


def test_defaults_fit_the_default_spec() -> None:
    assert limit_violations(_spec(), JobLimits()) == []
    assert unrunnable_reasons(_spec()) == []


def test_the_attack_from_the_issue_is_refused_field_by_field() -> None:
    spec = _spec(
        sandbox={
            "memory_mb": 10_000_000,
            "pids": 1_000_000,
            "min_workers": 100_000,
            "max_workers": 100_000,
            "problem_budget_s": 1e12,
        }
    )
    problems = limit_violations(spec, JobLimits())
    assert [p.split(":")[0] for p in problems] == [
        "sandbox.memory_mb",
        "sandbox.pids",
        "sandbox.max_workers",
        "sandbox.min_workers",
        "sandbox.problem_budget_s",
    ]
    assert problems[0] == (
        "sandbox.memory_mb: 10000000 is over the limit of 4096 set by the operator "
        "(PAIRFORGE_MAX_MEMORY_MB); ask for at most 4096"
    )
    assert "1e+12 is over the limit of 1800" in problems[-1]


@pytest.mark.parametrize(
    ("section", "values", "limit", "field"),
    [
        ("sandbox", {"cpus": 2.5}, {"max_cpus": 2}, "sandbox.cpus: 2.5"),
        ("sandbox", {"timeout_s": 10}, {"max_timeout_s": 5}, "sandbox.timeout_s: 10"),
        ("sampler", {"k": 300}, {}, "sampler.k: 300"),
        ("sampler", {"max_tokens": 100_000}, {}, "sampler.max_tokens: 100000"),
        ("output", {"problems_per_unit": 5000}, {}, "output.problems_per_unit: 5000"),
    ],
)
def test_each_cap_names_field_value_and_limit(
    section: str, values: dict[str, Any], limit: dict[str, Any], field: str
) -> None:
    (problem,) = limit_violations(_spec(**{section: values}), JobLimits(**limit))
    assert problem.startswith(field + " is over the limit")


def test_sampler_caps_apply_to_their_kind_only() -> None:
    vllm = {"kind": "vllm", "model": "m", "concurrency": 4, "tensor_parallel_size": 4}
    (gpus,) = limit_violations(_spec(sampler=vllm), JobLimits())
    assert gpus.startswith("sampler.concurrency × sampler.tensor_parallel_size: 16 ")
    openai = {"kind": "openai", "model": "m", "base_url": "http://x/v1", "max_concurrency": 500}
    assert limit_violations(_spec(sampler=openai), JobLimits())[0].startswith(
        "sampler.max_concurrency: 500"
    )
    # The same values on a replay sampler ask for nothing: they are not used.
    assert limit_violations(_spec(sampler={"max_concurrency": 500}), JobLimits()) == []


def test_a_value_at_the_limit_is_allowed() -> None:
    assert limit_violations(_spec(sandbox={"memory_mb": 256}), JobLimits(max_memory_mb=256)) == []


def test_sample_count_is_exact_and_named() -> None:
    spec = _spec(sampler={"k": 10})
    assert sample_count_problem(20, spec, JobLimits(max_samples_per_job=200)) is None
    problem = sample_count_problem(30, spec, JobLimits(max_samples_per_job=200))
    assert problem is not None
    assert problem.startswith("sampler.k: 30 problems × k=10 = 300 samples at most, over the")
    assert "limit of 200" in problem and "PAIRFORGE_MAX_SAMPLES_PER_JOB" in problem


def test_a_target_dpo_job_counts_a_fix_per_round() -> None:
    spec = _spec(
        sampler={"kind": "openai", "base_url": "http://h/v1", "model": "m", "k": 2},
        pairs={"method": "target_dpo", "max_rounds": 4},
    )
    assert sample_count_problem(20, spec, JobLimits(max_samples_per_job=200)) is None
    problem = sample_count_problem(21, spec, JobLimits(max_samples_per_job=200))
    assert problem is not None
    assert problem.startswith("sampler.k: 21 problems × k=2 × (1 + max_rounds=4) = 210 samples")


def test_a_handoff_with_its_training_config_can_run() -> None:
    assert unrunnable_reasons(_spec(handoff={"submit": True, "training_config": "t.yaml"})) == []
    # Not submitting: the section is inert, whatever it holds.
    assert unrunnable_reasons(_spec(handoff={"submit": False})) == []


def test_a_submitting_handoff_needs_a_training_config_and_a_command() -> None:
    reasons = unrunnable_reasons(_spec(handoff={"submit": True, "entrypoint": " "}))
    assert [r.split(":")[0] for r in reasons] == ["handoff.training_config", "handoff.entrypoint"]
    assert "got none" in reasons[0]


def test_training_gpus_are_capped_by_max_gpus() -> None:
    assert training_gpus_problem(2, JobLimits(max_gpus=2)) is None
    problem = training_gpus_problem(3, JobLimits(max_gpus=2))
    assert problem is not None
    assert problem.startswith("handoff.training_config: num_gpus 3 is over the limit of 2")
    assert "PAIRFORGE_MAX_GPUS" in problem


def test_require_runnable_lists_every_problem() -> None:
    spec = _spec(handoff={"submit": True}, sandbox={"pids": 10_000})
    with pytest.raises(JobSpecError) as refused:
        require_runnable(spec, JobLimits(), problems=10**6)
    fields = [p.split(":")[0] for p in refused.value.problems]
    assert fields == ["handoff.training_config", "sandbox.pids", "sampler.k"]
    require_runnable(_spec(), JobLimits(), problems=3)  # nothing to refuse


def test_limits_are_named_after_their_variables() -> None:
    assert JobLimits.env_name("max_row_bytes") == "PAIRFORGE_MAX_ROW_BYTES"
    for name, field in JobLimits.model_fields.items():
        assert name.startswith("max_"), name
        assert field.description, name
