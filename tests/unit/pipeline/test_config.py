"""JobSpec validation: defaults, refusals, and messages that name the field."""

from __future__ import annotations

import pytest
from annotated_types import Ge, Gt
from pydantic import BaseModel, ValidationError

from pipeline.config import (
    JobSpec,
    SamplerKind,
    SandboxConfig,
    job_spec_from_yaml,
    parse_job_spec,
)
from pipeline.errors import ConfigError, JobSpecError
from sandbox.limits import SandboxLimits

MINIMAL = {
    "source": {"path": "problems.jsonl"},
    "sampler": {"kind": "replay"},
    "output": {"uri": "runs/x"},
}


def test_minimal_spec_gets_paper_defaults() -> None:
    spec = parse_job_spec(MINIMAL)
    assert spec.sampler.kind is SamplerKind.REPLAY
    assert spec.sampler.k == 10
    assert spec.sampler.temperature == 1.5
    assert spec.ranking.ranker == "pagerank"
    assert spec.ranking.damping == 0.85
    assert spec.ranking.iterations == 10
    assert spec.pairs.diff_lambda == 1.0
    assert spec.pairs.pairs_per_problem == 1
    assert spec.handoff is None


def test_unknown_field_is_named() -> None:
    with pytest.raises(JobSpecError) as info:
        parse_job_spec({**MINIMAL, "sampler": {"kind": "replay", "temprature": 1.0}})
    assert info.value.problems == ["sampler.temprature: unknown field"]
    assert isinstance(info.value, ConfigError)


def test_wrong_type_names_field_and_value() -> None:
    with pytest.raises(JobSpecError) as info:
        parse_job_spec({**MINIMAL, "sampler": {"kind": "replay", "k": "ten"}})
    (problem,) = info.value.problems
    assert problem.startswith("sampler.k: ")
    assert "'ten'" in problem


def test_missing_section_is_named() -> None:
    with pytest.raises(JobSpecError) as info:
        parse_job_spec({"source": {"path": "p.jsonl"}, "sampler": {"kind": "replay"}})
    assert info.value.problems == ["output: required field is missing"]


def test_every_field_is_described() -> None:
    def walk(model: type) -> list[str]:
        missing = []
        for name, field in model.model_fields.items():
            if not field.description:
                missing.append(f"{model.__name__}.{name}")
            ann = field.annotation
            for sub in getattr(ann, "__args__", (ann,)):
                if isinstance(sub, type) and hasattr(sub, "model_fields"):
                    missing += walk(sub)
        return missing

    assert walk(JobSpec) == []


@pytest.mark.parametrize(
    ("sampler", "needle"),
    [
        ({"kind": "vllm"}, "needs `model`"),
        ({"kind": "openai", "model": "m"}, "needs `base_url` and `model`"),
        ({"kind": "replay", "k": 0}, "sampler.k"),
    ],
)
def test_sampler_requirements(sampler: dict[str, object], needle: str) -> None:
    with pytest.raises(JobSpecError, match=needle):
        parse_job_spec({**MINIMAL, "sampler": sampler})


def test_workers_must_be_ordered() -> None:
    with pytest.raises(JobSpecError, match="min_workers"):
        parse_job_spec({**MINIMAL, "sandbox": {"min_workers": 3, "max_workers": 2}})


def test_yaml_round_trip_and_bad_yaml() -> None:
    spec = job_spec_from_yaml(
        "source: {path: a.jsonl}\nsampler: {kind: replay, k: 4}\noutput: {uri: out}\n"
    )
    assert spec.sampler.k == 4
    assert parse_job_spec(spec.model_dump(mode="json")) == spec
    with pytest.raises(JobSpecError, match="not valid YAML"):
        job_spec_from_yaml("source: [unclosed")
    with pytest.raises(JobSpecError, match="must be a mapping"):
        job_spec_from_yaml("- just\n- a list\n")


@pytest.mark.parametrize("field", ["memory_mb", "pids"])
def test_sandbox_bounds_are_the_sandboxs_own(field: str) -> None:
    # Every value the JobSpec accepts must start a container, and the JobSpec must not
    # refuse what the sandbox takes: the lowest accepted value is the same in both.
    lowest = _lowest(SandboxConfig, field)
    SandboxLimits(**{field: lowest})
    with pytest.raises(ValidationError):
        SandboxLimits(**{field: lowest - 1})
    with pytest.raises(JobSpecError, match=f"sandbox.{field}"):
        parse_job_spec({**MINIMAL, "sandbox": {field: lowest - 1}})


def test_sandbox_cpus_bound_is_the_sandboxs_own() -> None:
    assert _bounds(SandboxConfig, "cpus") == _bounds(SandboxLimits, "cpus")


def _bounds(model: type[BaseModel], field: str) -> list[Ge | Gt]:
    return [m for m in model.model_fields[field].metadata if isinstance(m, Ge | Gt)]


def _lowest(model: type[BaseModel], field: str) -> int:
    (bound,) = _bounds(model, field)
    assert isinstance(bound, Ge) and isinstance(bound.ge, int)
    return bound.ge
