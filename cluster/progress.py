"""Live progress of a build: stages count what passes through, the driver publishes it.

    stage tasks/actors ──StageTally.add("executed")──► StageCounter (a small Ray actor)
    driver ──ProgressPublisher (a thread, every second)──► progress.json (+ a callback)

Progress is best effort and never the reason a build fails: a tally that cannot reach
the counter drops the count, a counter that Ray restarts starts from zero and is
re-based, and a counter that is gone for good leaves the publisher with what the driver
itself knows (units written, problems ranked), with a warning. The data path, shards and
manifest, does not depend on any of it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import ray
from ray.exceptions import GetTimeoutError, RayError

from cluster.shard_store import ShardStore
from pipeline.manifest import ManifestCounts, RefinementCounts
from pipeline.progress import PROGRESS_FILE, BuildProgress

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[BuildProgress], None]

PUBLISH_EVERY_S = 1.0
"""How often progress.json is rewritten while a build runs."""

_SNAPSHOT_TIMEOUT_S = 5.0
"""How long the publisher waits for the counter before it reports without it."""

STAGE_KEYS = ("sampled", "executed", "ranked", "cells")
"""What stages count: problems through each stage, and cells executed."""


def refinement_progress(live: dict[str, int]) -> RefinementCounts | None:
    """The refinement loop's live counts (None in a Focused-DPO build, which has none)."""
    if "trajectories" not in live:
        return None
    rounds = {
        key.removeprefix(_ROUND_PREFIX): n
        for key, n in live.items()
        if key.startswith(_ROUND_PREFIX)
    }
    return RefinementCounts(
        trajectories=live["trajectories"],
        versions_per_round=dict(sorted(rounds.items(), key=lambda item: int(item[0]))),
        refined=live.get("refined", 0),
        passed_first=live.get("passed_first", 0),
        not_refined=live.get("not_refined", 0),
    )


_ROUND_PREFIX = "versions_round_"


def counter_name(job_id: str) -> str:
    """The counter's actor name: a build's counter is findable in the Ray dashboard."""
    return f"pairforge-progress-{job_id}"


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)
class StageCounter:
    """Counts problems through each stage; stages add, the publisher reads."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = defaultdict(int)

    def add(self, key: str, n: int = 1) -> None:
        self.counts[key] += n

    def snapshot(self) -> dict[str, int]:
        return dict(self.counts)


class StageTally:
    """What a stage holds to count: a handle that never raises into the data path."""

    def __init__(self, counter: Any) -> None:
        self.counter = counter

    def add(self, key: str, n: int = 1) -> None:
        try:
            self.counter.add.remote(key, n)
        except Exception:
            # Counting is progress only; a lost count must not fail a problem.
            logger.debug("could not count %s", key, exc_info=True)

    def counted(self, fn: Callable[..., dict[str, Any]], key: str) -> Callable[..., dict[str, Any]]:
        """``fn`` (a Ray Data row function) that counts every row it returns under ``key``."""

        def wrapper(row: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
            out = fn(row, **kwargs)
            self.add(key)
            return out

        wrapper.__name__ = getattr(fn, "__name__", key)
        return wrapper


class _LiveCounts:
    """Reads the counter, re-basing after a restart and giving up once it is gone."""

    def __init__(self, counter: Any) -> None:
        self.counter: Any | None = counter
        self.last: dict[str, int] = {}
        self.offset: dict[str, int] = defaultdict(int)

    def read(self) -> dict[str, int]:
        if self.counter is not None:
            try:
                snapshot = ray.get(self.counter.snapshot.remote(), timeout=_SNAPSHOT_TIMEOUT_S)
            except GetTimeoutError:
                # A slow answer on a busy node: keep the last counts, ask again next tick.
                logger.debug("the progress counter answered slowly; asking again", exc_info=True)
            except RayError:
                logger.warning(
                    "the progress counter is gone; live stage counts stop here, and progress "
                    "goes on from the units the build writes",
                    exc_info=True,
                )
                self.counter = None
            else:
                for key, value in snapshot.items():
                    if value < self.last.get(key, 0):  # Ray restarted the actor
                        self.offset[key] += self.last[key]
                    self.last[key] = value
        keys = set(STAGE_KEYS) | set(self.last)
        return {key: self.last.get(key, 0) + self.offset[key] for key in keys}


class ProgressPublisher:
    """Keeps ``progress.json`` current for one build: on every change and every second.

    ``progress_of`` is the one place where counts become a ``BuildProgress``.
    """

    def __init__(
        self, store: ShardStore, job_id: str, on_progress: ProgressCallback | None = None
    ) -> None:
        self.store = store
        self.on_progress = on_progress
        self.progress = BuildProgress(job_id=job_id, started_at=time.time())
        self._on_disk = ManifestCounts()
        self._written = ManifestCounts()
        self._ranked_here = 0
        self._live: _LiveCounts | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="progress", daemon=True)

    # ------------------------------------------------------------------ events
    def begin(
        self, *, units_total: int, units_done: int, problems_total: int, on_disk: ManifestCounts
    ) -> None:
        """The build knows its size and what an earlier run already wrote."""
        self._on_disk = on_disk
        self._set(
            units_total=units_total,
            units_done=units_done,
            units_skipped=units_done,
            problems_total=problems_total,
        )

    def go_live(self, counter: Any) -> None:
        """Start reading stage counts from ``counter`` and publishing every second."""
        self._live = _LiveCounts(counter)
        self._thread.start()

    def unit_written(self, counts: ManifestCounts) -> None:
        """A unit's shards are on disk, with these totals."""
        self._written = self._written + counts
        self._ranked_here += counts.problems
        self._set(units_done=self.progress.units_done + 1)

    def succeeded(self, totals: ManifestCounts, *, cells_per_s: float) -> None:
        """The manifest is written: report its exact totals (stage counts may lag)."""
        self.stop()
        self._set(
            state="succeeded",
            units_done=self.progress.units_total,
            problems_sampled=totals.problems,
            problems_executed=totals.problems,
            problems_ranked=totals.problems,
            candidates=totals.candidates,
            cells=totals.cells,
            pairs=totals.pairs,
            fallback_cells=totals.fallback_cells,
            skips=dict(totals.skips),
            # Counted from the written rows: live counts may lag the last rows by a tick.
            refinement=totals.refinement or self.progress.refinement,
            cells_per_s=cells_per_s,
            finished_at=time.time(),
            live=False,
        )

    def failed(self, error: BaseException) -> None:
        """Record why the build stopped; never raises (the original error matters more)."""
        self.stop()
        try:
            self._set(
                state="failed",
                error=str(error) or type(error).__name__,
                finished_at=time.time(),
                live=False,
            )
        except Exception:
            logger.exception("could not record the failure of job %s", self.progress.job_id)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    # ------------------------------------------------------------------ publishing
    def progress_of(self, live: dict[str, int]) -> dict[str, Any]:
        """Counts → the fields of ``BuildProgress``: what is on disk plus what ran since."""
        done = self._on_disk + self._written
        started = self.progress.started_at or time.time()
        base = self._on_disk.problems
        ranked = max(live["ranked"], self._ranked_here)
        return {
            "problems_sampled": base + max(live["sampled"], ranked),
            "problems_executed": base + max(live["executed"], ranked),
            "problems_ranked": base + ranked,
            "candidates": done.candidates,
            "cells": self._on_disk.cells + max(live["cells"], self._written.cells),
            "pairs": done.pairs,
            "fallback_cells": done.fallback_cells,
            "skips": dict(done.skips),
            "cells_per_s": live["cells"] / max(time.time() - started, 1e-9),
            "refinement": refinement_progress(live),
        }

    def _loop(self) -> None:
        while not self._stop.wait(PUBLISH_EVERY_S):
            try:
                self._set()
            except Exception:
                # A storage hiccup must not end live progress; the next tick writes again.
                logger.warning("could not publish progress", exc_info=True)

    def _set(self, *, live: bool = True, **changes: Any) -> None:
        with self._lock:
            update = dict(changes)
            if live and self.progress.state == "running":
                counts = self._live.read() if self._live else dict.fromkeys(STAGE_KEYS, 0)
                update = {**self.progress_of(counts), **update}
            update["updated_at"] = time.time()
            self.progress = self.progress.model_copy(update=update)
            snapshot = self.progress
            self.store.write_text(PROGRESS_FILE, snapshot.model_dump_json(indent=2))
        if self.on_progress is not None:
            self.on_progress(snapshot)
