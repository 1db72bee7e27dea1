"""Work units: how the input is cut into shards, fed in windows, and put back together.

The input is split into units of ``output.problems_per_unit`` problems in input order;
unit ``u`` holds problems ``u * per_unit .. (u + 1) * per_unit - 1`` and becomes shard
``part-<u>``. Units already written are skipped; the rest are fed to the dataflow in
windows of about ``WINDOW_PROBLEMS`` problems, so the driver holds one window at a time
whatever the input's size. Rows come back in any order; ``finished_units`` hands a unit
on once all its problems are back, in input order, and refuses lost or doubled rows.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator

from cluster.sources import SourceRecord
from pipeline.errors import ContractViolation
from pipeline.problem_state import ProblemState

WINDOW_PROBLEMS = 512
"""Problems per Ray Data pipeline run; bounds the driver's memory, not the parallelism."""


def units_of(
    records: Iterable[SourceRecord], per_unit: int
) -> Iterator[tuple[int, list[SourceRecord]]]:
    """``(unit, its records)`` in input order, one unit in memory at a time."""
    for unit, group in itertools.groupby(records, key=lambda r: r.index // per_unit):
        yield unit, list(group)


def pending_windows(
    records: Iterable[SourceRecord],
    per_unit: int,
    done: set[int],
    window_problems: int = WINDOW_PROBLEMS,
) -> Iterator[list[ProblemState]]:
    """The problems of units not yet written, as whole units grouped into windows."""
    window: list[ProblemState] = []
    for unit, unit_records in units_of(records, per_unit):
        if unit in done:
            continue
        window.extend(ProblemState.from_input(r.index, r.record) for r in unit_records)
        if len(window) >= window_problems:
            yield window
            window = []
    if window:
        yield window


def finished_units(
    rows: Iterable[ProblemState], window: list[ProblemState], per_unit: int
) -> Iterator[tuple[int, list[ProblemState]]]:
    """``(unit, its problems in input order)`` as soon as every problem of a unit is back.

    Raises:
        ContractViolation: a problem came back twice, or the rows ended with problems of
            some unit missing; the unit concerned is not handed on (so not written).
    """
    expected: dict[int, int] = defaultdict(int)
    for state in window:
        expected[state.unit(per_unit)] += 1
    arrived: dict[int, dict[int, ProblemState]] = defaultdict(dict)
    for state in rows:
        unit = state.unit(per_unit)
        if unit not in expected:
            raise ContractViolation(
                f"problem #{state.index} ({state.problem_id!r}) of unit {unit} came out of a "
                "window that did not hold it"
            )
        if state.index in arrived[unit]:
            raise ContractViolation(
                f"problem #{state.index} ({state.problem_id!r}) came out of the pipeline "
                f"twice in unit {unit}; no shard was written for that unit"
            )
        arrived[unit][state.index] = state
        if len(arrived[unit]) == expected[unit]:
            done = arrived.pop(unit)
            yield unit, [done[index] for index in sorted(done)]
    if arrived:
        lost = {u: expected[u] - len(got) for u, got in sorted(arrived.items())}
        raise ContractViolation(
            f"the pipeline lost problems of units {lost} (unit: rows missing); those units "
            "were not written, and a resumed build will redo them"
        )


def check_done_units(
    records: Iterable[SourceRecord],
    per_unit: int,
    done: set[int],
    check: Callable[[int, list[str]], None],
) -> None:
    """Call ``check(unit, problem ids)`` for every unit already written, before any write."""
    if not done:
        return
    for unit, unit_records in units_of(records, per_unit):
        if unit in done:
            check(unit, [r.record.problem_id for r in unit_records])
