"""ProblemState, the row every stage takes and returns."""

from __future__ import annotations

import pydantic
import pytest

from pipeline.problem_state import ProblemState
from pipeline.records import Problem, PromptStyle, ReplayRow

PROBLEM = Problem(
    problem_id="P/1",
    prompt="Write f.",
    entry_point="f",
    style=PromptStyle.INSTRUCTION,
    metadata={"source": "unit", "n": 3, "tags": ["a", "b"], "ratio": 0.5, "none": None},
)


def test_a_problem_row_starts_without_completions():
    state = ProblemState.from_input(4, PROBLEM)
    assert (state.index, state.problem, state.problem_id) == (4, PROBLEM, "P/1")
    assert (state.code_completions, state.test_completions, state.completions) == (None,) * 3
    assert state.sampler_errors == [] and state.candidates is None and state.status is None
    assert not state.has_samples()


def test_a_replay_row_brings_its_completions_and_keeps_only_the_problem_as_problem():
    row = ReplayRow(
        **PROBLEM.model_dump(),
        code_completions=["c0", "c1"],
        test_completions=["assert f() == 1"],
    )
    state = ProblemState.from_input(0, row)
    assert type(state.problem) is Problem and state.problem == PROBLEM
    assert state.code_completions == ["c0", "c1"]
    assert state.test_completions == ["assert f() == 1"]
    assert state.completions is None


def test_sampled_gives_the_parser_back_exactly_the_replay_row():
    separate = ReplayRow(
        **PROBLEM.model_dump(), code_completions=["c"], test_completions=["assert f() == 1"]
    )
    joint = ReplayRow(**PROBLEM.model_dump(), completions=["j0", "j1"])
    for row in (separate, joint):
        assert ProblemState.from_input(1, row).sampled() == row
    # The metadata keeps its types (no int turned into float, no key added).
    assert ProblemState.from_input(1, joint).sampled().metadata == PROBLEM.metadata


def test_sampled_after_every_sample_failed_is_still_a_valid_replay_row():
    state = ProblemState(
        index=0,
        problem=PROBLEM,
        code_completions=[],
        test_completions=[],
        sampler_errors=["code sample 0: HTTP 500"],
    )
    row = state.sampled()
    assert (row.code_completions, row.test_completions) == ([], [])


@pytest.mark.parametrize(
    ("completions", "expected"),
    [
        ({}, False),
        ({"code_completions": [], "test_completions": ["assert f() == 1"]}, False),
        ({"completions": []}, False),
        ({"code_completions": ["c"], "test_completions": []}, True),
        ({"completions": ["j"]}, True),
    ],
)
def test_has_samples_means_some_code_to_parse(completions, expected):
    assert ProblemState(index=0, problem=PROBLEM, **completions).has_samples() is expected


@pytest.mark.parametrize(
    ("index", "per_unit", "unit"), [(0, 16, 0), (15, 16, 0), (16, 16, 1), (47, 16, 2), (7, 1, 7)]
)
def test_unit_is_the_slice_of_the_input_the_problem_falls_in(index, per_unit, unit):
    assert ProblemState(index=index, problem=PROBLEM).unit(per_unit) == unit


def test_a_state_is_a_value_that_stages_copy_rather_than_change():
    state = ProblemState(index=0, problem=PROBLEM)
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        state.budget_exceeded = True  # type: ignore[misc]
    assert state.model_copy(update={"budget_exceeded": True}).budget_exceeded
    assert not state.budget_exceeded


def test_a_negative_index_is_refused():
    with pytest.raises(pydantic.ValidationError, match="index"):
        ProblemState(index=-1, problem=PROBLEM)


def test_a_state_survives_its_json_encoding_whole():
    # The vLLM path carries the state beside its request rows as JSON text.
    state = ProblemState(
        index=9,
        problem=PROBLEM,
        completions=["j"],
        sampler_errors=["joint sample 1: boom"],
        budget_exceeded=True,
        timings={"parse": 0.25},
    )
    assert ProblemState.model_validate_json(state.model_dump_json()) == state
