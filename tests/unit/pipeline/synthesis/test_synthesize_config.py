"""The JobSpec's ``source.synthesize`` section: when it is accepted and when refused."""

from __future__ import annotations

from typing import Any

import pytest

from pipeline.config import SynthesizeConfig, parse_job_spec
from pipeline.errors import JobSpecError

SYNTH = {"source": "/usr/lib/python3.11/json", "base_url": "http://127.0.0.1:8080/v1", "model": "m"}
LIVE = {"kind": "openai", "base_url": "http://127.0.0.1:8080/v1", "model": "m"}


def _spec(source: dict[str, Any], sampler: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"source": source, "sampler": sampler or LIVE, "output": {"uri": "runs/x"}}


def test_a_synthesize_source_needs_no_path() -> None:
    spec = parse_job_spec(_spec({"synthesize": SYNTH}))
    assert spec.source.path == ""
    assert spec.source.synthesize == SynthesizeConfig(**SYNTH)
    assert spec.source.synthesize.dedup_threshold == 0.8
    assert spec.source.synthesize.endpoint == "chat"


def test_a_source_needs_a_path_or_synthesize() -> None:
    with pytest.raises(JobSpecError) as info:
        parse_job_spec(_spec({}))
    assert info.value.problems == [
        "source: source needs `path` (a file of problems) or `synthesize` (problems written "
        "by a model from Python source)"
    ]


def test_synthesized_problems_cannot_be_replayed() -> None:
    with pytest.raises(JobSpecError, match="no recorded completions to replay"):
        parse_job_spec(_spec({"synthesize": SYNTH}, {"kind": "replay"}))


def test_synthesized_problems_are_not_parquet() -> None:
    with pytest.raises(JobSpecError, match="written as JSONL"):
        parse_job_spec(_spec({"synthesize": SYNTH, "format": "parquet"}))


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("dedup_threshold", 0.3, "source.synthesize.dedup_threshold"),
        ("dedup_threshold", 1.5, "source.synthesize.dedup_threshold"),
        ("limit", 0, "source.synthesize.limit"),
        ("base_url", "", "source.synthesize.base_url"),
        ("endpoint", "embeddings", "source.synthesize.endpoint"),
        ("temprature", 0.1, "source.synthesize.temprature"),
    ],
)
def test_bad_synthesize_fields_are_named(field: str, value: object, problem: str) -> None:
    with pytest.raises(JobSpecError) as info:
        parse_job_spec(_spec({"synthesize": {**SYNTH, field: value}}))
    assert [p.split(":")[0] for p in info.value.problems] == [problem]
