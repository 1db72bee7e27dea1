"""Work units: whole units in windows, units handed on in input order, lost and doubled rows."""

from __future__ import annotations

import random

import pytest

from cluster.sources import SourceRecord
from cluster.work_units import check_done_units, finished_units, pending_windows
from pipeline.errors import ContractViolation
from pipeline.problem_state import ProblemState
from pipeline.records import Problem


def records(n: int) -> list[SourceRecord]:
    return [
        SourceRecord(index=i, line=i + 1, record=Problem(problem_id=f"p{i}", prompt="x"))
        for i in range(n)
    ]


def ids(window: list[ProblemState]) -> list[int]:
    return [s.index for s in window]


def test_windows_hold_whole_units_and_skip_done_ones() -> None:
    windows = list(pending_windows(records(10), per_unit=3, done={1}, window_problems=4))
    # Units: 0=[0,1,2] 1=[3,4,5] (done) 2=[6,7,8] 3=[9]; a window closes once it has >= 4.
    assert [ids(w) for w in windows] == [[0, 1, 2, 6, 7, 8], [9]]


def test_a_build_spanning_many_windows_sees_every_pending_problem_once() -> None:
    windows = list(pending_windows(records(1000), per_unit=7, done=set(), window_problems=50))
    assert len(windows) > 10
    assert [i for w in windows for i in ids(w)] == list(range(1000))


def test_units_are_handed_on_complete_and_in_input_order_whatever_the_arrival_order() -> None:
    window = [ProblemState.from_input(r.index, r.record) for r in records(7)]
    arrival = window[:]
    random.Random(3).shuffle(arrival)
    out = list(finished_units(iter(arrival), window, per_unit=3))
    assert sorted(u for u, _ in out) == [0, 1, 2]
    for unit, states in out:
        assert ids(states) == list(range(unit * 3, min(unit * 3 + 3, 7)))


def test_a_problem_coming_back_twice_is_a_contract_violation() -> None:
    window = [ProblemState.from_input(r.index, r.record) for r in records(4)]
    with pytest.raises(ContractViolation, match="twice in unit 0"):
        list(finished_units(iter([window[0], window[0]]), window, per_unit=2))


def test_lost_problems_are_named_by_unit_and_their_unit_is_not_handed_on() -> None:
    window = [ProblemState.from_input(r.index, r.record) for r in records(4)]
    handed: list[int] = []
    with pytest.raises(ContractViolation, match=r"units \{1: 1\}"):
        for unit, _ in finished_units(iter(window[:3]), window, per_unit=2):
            handed.append(unit)
    assert handed == [0]


def test_a_problem_from_outside_the_window_is_refused() -> None:
    window = [ProblemState.from_input(r.index, r.record) for r in records(2)]
    stranger = ProblemState.from_input(5, Problem(problem_id="p5", prompt="x"))
    with pytest.raises(ContractViolation, match="did not hold it"):
        list(finished_units(iter([stranger]), window, per_unit=2))


def test_done_units_are_checked_with_their_problem_ids_before_anything_runs() -> None:
    seen: list[tuple[int, list[str]]] = []
    check_done_units(records(5), 2, {0, 2}, lambda u, found: seen.append((u, found)))
    assert seen == [(0, ["p0", "p1"]), (2, ["p4"])]
