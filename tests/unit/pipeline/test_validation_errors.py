"""describe_validation_errors: one line per bad field: where, what was expected, what was seen."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pipeline.validation_errors import MAX_SEEN_CHARS, describe_validation_errors


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Sampler(_Strict):
    k: int = Field(default=10, ge=1)
    model: str = ""
    kind: str = "replay"

    @model_validator(mode="after")
    def _kind_needs_model(self) -> _Sampler:
        if self.kind == "vllm" and not self.model:
            raise ValueError("sampler kind `vllm` needs `model`")
        return self


class _Spec(_Strict):
    source: str
    sampler: _Sampler = Field(default_factory=_Sampler)


class _Row(_Strict):
    prompt: str
    completions: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _some_completion(self) -> _Row:
        if not self.completions:
            raise ValueError("a replay row needs at least one completion")
        return self


def _lines(model: type[BaseModel], data: dict[str, Any]) -> list[str]:
    with pytest.raises(ValidationError) as info:
        model.model_validate(data)
    return describe_validation_errors(info.value)


def test_bound_names_field_expectation_and_seen_value() -> None:
    assert _lines(_Spec, {"source": "p", "sampler": {"k": 0}}) == [
        "sampler.k: Input should be greater than or equal to 1 (got 0)"
    ]


def test_unknown_and_missing_fields() -> None:
    assert _lines(_Spec, {"code_completions": []}) == [
        "source: required field is missing",
        "code_completions: unknown field",
    ]


def test_nested_model_rule_keeps_its_location_and_drops_pydantic_prefix() -> None:
    assert _lines(_Spec, {"source": "p", "sampler": {"kind": "vllm"}}) == [
        "sampler: sampler kind `vllm` needs `model`"
    ]


def test_top_level_rule_is_its_own_message() -> None:
    assert _lines(_Row, {"prompt": "x"}) == ["a replay row needs at least one completion"]


def test_wrong_type_in_a_list_names_the_index() -> None:
    assert _lines(_Row, {"prompt": "x", "completions": ["a", 5]}) == [
        "completions.1: Input should be a valid string (got 5)"
    ]


def test_long_seen_value_is_cut() -> None:
    (line,) = _lines(_Row, {"prompt": 7 * 10**200})
    seen = line.split("(got ", 1)[1].removesuffix(")")
    assert len(seen) == MAX_SEEN_CHARS
    assert seen.endswith("...")
    assert seen.startswith("7000")
