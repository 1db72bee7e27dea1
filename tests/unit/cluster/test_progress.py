"""Live progress is best effort: counts become BuildProgress in one place, and a lost or
restarted counter never fails the build."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from ray.exceptions import GetTimeoutError, RayActorError

from cluster import progress as progress_module
from cluster.progress import ProgressPublisher, StageTally, _LiveCounts
from cluster.shard_store import ShardStore
from pipeline.manifest import ManifestCounts
from pipeline.progress import BuildProgress


class FakeCounter:
    """A counter handle whose ``snapshot.remote()`` returns what the test scripts."""

    def __init__(self, snapshots: list[Any]) -> None:
        self.snapshots = snapshots
        outer = self

        class _Method:
            def remote(self, *args: Any) -> Any:
                value = outer.snapshots.pop(0)
                if isinstance(value, Exception):
                    raise value
                return value

        self.snapshot = _Method()


@pytest.fixture(autouse=True)
def ray_get_is_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(progress_module.ray, "get", lambda value, timeout=None: value)


def read(tmp_path: Path) -> BuildProgress:
    return BuildProgress.model_validate_json((tmp_path / "progress.json").read_text())


def test_a_restarted_counter_is_rebased_so_counts_never_go_back() -> None:
    live = _LiveCounts(FakeCounter([{"executed": 5, "cells": 50}, {"executed": 2, "cells": 20}]))
    assert live.read()["executed"] == 5
    after_restart = live.read()
    assert (after_restart["executed"], after_restart["cells"]) == (7, 70)


def test_a_counter_gone_for_good_degrades_to_the_last_counts_with_a_warning(caplog) -> None:
    live = _LiveCounts(FakeCounter([{"ranked": 3}, RayActorError()]))
    assert live.read()["ranked"] == 3
    assert live.read()["ranked"] == 3
    assert live.counter is None
    assert "progress counter is gone" in caplog.text


def test_a_slow_counter_is_asked_again_not_dropped() -> None:
    # On a busy node the snapshot can take longer than its timeout; that is not death.
    live = _LiveCounts(FakeCounter([{"ranked": 3}, GetTimeoutError(), {"ranked": 5}]))
    assert live.read()["ranked"] == 3
    assert live.read()["ranked"] == 3
    assert live.counter is not None
    assert live.read()["ranked"] == 5


def test_a_tally_that_cannot_reach_its_counter_drops_the_count_silently() -> None:
    class Dead:
        class add:
            @staticmethod
            def remote(*_: object) -> None:
                raise RayActorError()

    StageTally(Dead()).add("executed")  # must not raise


def test_progress_reports_what_is_on_disk_plus_what_ran_since(tmp_path: Path) -> None:
    publisher = ProgressPublisher(ShardStore(str(tmp_path)), "j")
    publisher.begin(
        units_total=4,
        units_done=1,
        problems_total=8,
        on_disk=ManifestCounts(problems=2, candidates=10, cells=24, pairs=1, skips={"x": 1}),
    )
    first = read(tmp_path)
    assert (first.units_done, first.units_skipped, first.problems_ranked) == (1, 1, 2)
    assert (first.cells, first.pairs, first.skips) == (24, 1, {"x": 1})
    publisher.unit_written(ManifestCounts(problems=2, candidates=6, cells=12, pairs=2))
    second = read(tmp_path)
    assert (second.units_done, second.problems_ranked, second.problems_executed) == (2, 4, 4)
    assert (second.candidates, second.cells, second.pairs) == (16, 36, 3)


def test_success_takes_the_manifest_totals_over_lagging_stage_counts(tmp_path: Path) -> None:
    publisher = ProgressPublisher(ShardStore(str(tmp_path)), "j")
    publisher.begin(units_total=2, units_done=0, problems_total=4, on_disk=ManifestCounts())
    counts = ManifestCounts(problems=4, candidates=9, cells=20, pairs=2, skips={"all_pass": 2})
    publisher.succeeded(counts, cells_per_s=5.0)
    final = read(tmp_path)
    assert final.state == "succeeded" and final.finished_at is not None
    assert (final.problems_sampled, final.problems_executed, final.problems_ranked) == (4, 4, 4)
    assert (final.candidates, final.cells, final.pairs, final.skips) == (9, 20, 2, {"all_pass": 2})
    assert (final.units_done, final.cells_per_s) == (2, 5.0)


def test_a_failure_is_recorded_even_if_publishing_progress_itself_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ShardStore(str(tmp_path))
    publisher = ProgressPublisher(store, "j")

    def broken(*_: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(store, "write_text", broken)
    publisher.failed(RuntimeError("boom"))  # logs, does not raise over the original error
    assert publisher.progress.state == "failed" and publisher.progress.error == "boom"
