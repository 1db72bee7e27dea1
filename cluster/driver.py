"""The dataset build: one JobSpec from problems to Parquet shards, streaming on Ray Data.

    records ─► sampler stage ─► parse ─► executors (autoscaling actor pool, one warm
    sandbox container each) ─► rank + pairs ─► per-unit shards ─► manifest.json

The input is split into work units of ``output.problems_per_unit`` problems in input
order. A unit's shards are written (atomically) as soon as all its problems are through,
and units already on disk are skipped, so a killed build resumes where it stopped and,
since every seed derives from the job and problem ids, writes the same rows it would have.
The driver processes the pending units in windows of about ``WINDOW_PROBLEMS`` problems,
so it never holds more than one window of results, whatever the input size.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timezone
from typing import cast

import pyarrow as pa
import pyarrow.compute as pc
import ray
from pydantic import BaseModel, ConfigDict, Field

from cluster.executor_actor import ExecutorUDF, check_sandbox
from cluster.runtime import SANDBOX_RESOURCE, connect, sandbox_slots_available
from cluster.samplers import sample_dataset
from cluster.shard_store import ShardStore
from cluster.sources import SourceRecord, read_records
from cluster.stages import outcome_of, parse_row, rank_row
from pipeline.config import JobSpec
from pipeline.errors import (
    ConfigError,
    ContractViolation,
    OutputLocationError,
    PairforgeError,
    SandboxUnavailable,
)
from pipeline.manifest import MANIFEST_FILE, Manifest, ManifestCounts
from pipeline.progress import PROGRESS_FILE, BuildProgress
from pipeline.records import PairMethod, PreferencePair, ProblemOutcome
from pipeline.shards import pairs_table, problems_table

logger = logging.getLogger(__name__)

WINDOW_PROBLEMS = 512
"""Problems per Ray Data pipeline run; bounds the driver's memory, not the parallelism."""

ProgressCallback = Callable[[BuildProgress], None]


class BuildSummary(BaseModel):
    """What a finished build produced."""

    model_config = ConfigDict(frozen=True)

    job_id: str = Field(description="Job id written into every row.")
    output_uri: str = Field(description="Where the dataset is.")
    counts: ManifestCounts = Field(description="Totals over the whole dataset.")
    units_total: int = Field(description="Work units in the job.")
    units_skipped: int = Field(description="Units already written before this run.")
    wall_s: float = Field(description="Wall time of this run.")
    cells_per_s: float = Field(description="Cells executed per second in this run.")


def default_job_id(spec: JobSpec) -> str:
    """A job id that depends only on the spec, so rebuilding a spec writes the same rows."""
    digest = hashlib.sha256(spec.model_dump_json().encode()).hexdigest()[:10]
    return f"{spec.name or 'job'}-{digest}"


def _units(records: Sequence[SourceRecord], per_unit: int) -> dict[int, list[SourceRecord]]:
    units: dict[int, list[SourceRecord]] = defaultdict(list)
    for record in records:
        units[record.index // per_unit].append(record)
    return units


def _windows(
    units: dict[int, list[SourceRecord]], pending: Sequence[int]
) -> Iterator[list[SourceRecord]]:
    """Whole units grouped into windows of about WINDOW_PROBLEMS problems."""
    window: list[SourceRecord] = []
    for unit in pending:
        window.extend(units[unit])
        if len(window) >= WINDOW_PROBLEMS:
            yield window
            window = []
    if window:
        yield window


@ray.remote(num_cpus=0)
class _StageCounter:
    """Counts problems through each stage; stages report, the driver polls."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = defaultdict(int)

    def add(self, key: str, n: int = 1) -> None:
        self.counts[key] += n

    def snapshot(self) -> dict[str, int]:
        return dict(self.counts)


def _counted(fn: Callable[..., dict[str, object]], key: str) -> Callable[..., dict[str, object]]:
    def wrapper(row: dict[str, object], *, counter: object, **kwargs: object) -> dict[str, object]:
        out = fn(row, **kwargs)
        counter.add.remote(key)  # type: ignore[attr-defined]
        return out

    return wrapper


class _Progress:
    """Keeps ``progress.json`` current: on every unit and every second from a thread."""

    def __init__(
        self, store: ShardStore, progress: BuildProgress, on_progress: ProgressCallback | None
    ) -> None:
        self.store = store
        self.progress = progress
        self.on_progress = on_progress
        self.counter: object | None = None
        self._base: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="progress", daemon=True)

    def start(self, counter: object) -> None:
        self.counter = counter
        p = self.progress
        self._base = {
            "sampled": p.problems_sampled,
            "executed": p.problems_executed,
            "ranked": p.problems_ranked,
            "cells": p.cells,
        }
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(1.0):
            try:
                self.publish()
            except Exception:
                # A storage hiccup must not end live progress for the rest of the build;
                # the next tick (or the next finished unit) writes it again.
                logger.warning("could not publish progress", exc_info=True)

    def update(self, **changes: object) -> None:
        with self._lock:
            self.progress = self.progress.model_copy(update=changes)
        self.publish()

    def publish(self) -> None:
        with self._lock:
            if self.counter is not None and self.progress.state == "running":
                live = cast(
                    "dict[str, int]",
                    ray.get(self.counter.snapshot.remote()),  # type: ignore[attr-defined]
                )
                started = self.progress.started_at or time.time()
                cells = self._base["cells"] + live.get("cells", 0)
                self.progress = self.progress.model_copy(
                    update={
                        "problems_sampled": self._base["sampled"] + live.get("sampled", 0),
                        "problems_executed": self._base["executed"] + live.get("executed", 0),
                        "problems_ranked": self._base["ranked"] + live.get("ranked", 0),
                        "cells": cells,
                        "cells_per_s": live.get("cells", 0) / max(time.time() - started, 1e-9),
                    }
                )
            self.progress = self.progress.model_copy(update={"updated_at": time.time()})
            snapshot = self.progress
            self.store.write_text(PROGRESS_FILE, snapshot.model_dump_json(indent=2))
        if self.on_progress is not None:
            self.on_progress(snapshot)

    def finish(self, counts: ManifestCounts, *, units_total: int, cells_per_s: float) -> None:
        """Record success with the dataset's exact totals.

        The stage counter is fed asynchronously and may lag the last rows; the manifest
        holds the exact totals, and every problem went through every stage.
        """
        self.update(
            state="succeeded",
            units_done=units_total,
            problems_sampled=counts.problems,
            problems_executed=counts.problems,
            problems_ranked=counts.problems,
            candidates=counts.candidates,
            cells=counts.cells,
            pairs=counts.pairs,
            skips=dict(counts.skips),
            cells_per_s=cells_per_s,
            finished_at=time.time(),
        )

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()


def _check_output(store: ShardStore, resume: bool) -> Manifest | None:
    """The finished manifest when there is one to return; raises when the output is taken."""
    existing = store.read_json(MANIFEST_FILE)
    if existing is not None:
        manifest = Manifest.model_validate(existing)
        if resume:
            return manifest
        raise OutputLocationError(
            f"{store.uri} already holds a complete dataset (manifest.json of job "
            f"{manifest.job_id!r}); choose another output.uri, or pass --resume to accept it"
        )
    if not resume and store.has_output():
        raise OutputLocationError(
            f"{store.uri} holds shards of an earlier, unfinished build; pass --resume to "
            "continue it, or choose another output.uri"
        )
    return None


def _check_done_units(
    store: ShardStore, units: dict[int, list[SourceRecord]], job_id: str
) -> list[int]:
    """Units already written by this very build; raises when the output holds another one.

    A unit counts as done only if its problems shard holds this job's rows for exactly the
    unit's problems, in input order. Anything else (another job id, a changed input, limit
    or ``problems_per_unit``) would mix two builds, losing or duplicating rows on resume.
    """
    on_disk = store.done_units()
    beyond = [u for u in on_disk if u not in units]
    if beyond:
        raise OutputLocationError(
            f"{store.uri} holds shards of units {beyond[:5]}, beyond this input's "
            f"{len(units)} units: the output belongs to a build of another input or layout; "
            "choose another output.uri"
        )
    for unit in on_disk:
        table = store.read_table("problems", unit, columns=["job_id", "problem_id"])
        expected = [record.record.problem_id for record in units[unit]]
        found = table.column("problem_id").to_pylist()
        jobs = set(table.column("job_id").to_pylist())
        if found != expected or jobs - {job_id}:
            raise OutputLocationError(
                f"{store.uri}: unit {unit} was written by job {sorted(jobs)} for problems "
                f"{found[:3]}..., but this build is job {job_id!r} with problems "
                f"{expected[:3]}...; resume only with the same spec, input and job id, or "
                "choose another output.uri"
            )
    return on_disk


def _counts_of(table: pa.Table) -> ManifestCounts:
    """Totals of one problems table; the manifest and live progress both count this way."""
    skips: dict[str, int] = {}
    for reason in table.column("skip_reason").to_pylist():
        if reason is not None:
            skips[reason] = skips.get(reason, 0) + 1
    n_codes = pc.list_value_length(table.column("codes")).to_pylist()
    n_tests = pc.list_value_length(table.column("tests")).to_pylist()
    return ManifestCounts(
        problems=table.num_rows,
        candidates=sum(n_codes) + sum(n_tests),
        cells=sum(c * t for c, t in zip(n_codes, n_tests, strict=True)),
        pairs=int(pc.sum(table.column("pairs_emitted")).as_py() or 0),
        skips=skips,
    )


def _counts_on_disk(store: ShardStore, units: Sequence[int]) -> ManifestCounts:
    """Totals of units already written, read back from their problems shards."""
    totals = ManifestCounts()
    for unit in units:
        totals = totals + _counts_of(store.read_table("problems", unit))
    return totals


def _write_manifest(
    store: ShardStore, spec: JobSpec, job_id: str, units: int, started: datetime
) -> Manifest:
    shards = [store.shard_info(table, u) for table in ("pairs", "problems") for u in range(units)]
    manifest = Manifest(
        job_id=job_id,
        spec=spec.model_dump(mode="json"),
        counts=_counts_on_disk(store, range(units)),
        shards=shards,
        started_at=started,
        finished_at=datetime.now(timezone.utc),
    )
    store.write_text(MANIFEST_FILE, manifest.model_dump_json(indent=2))
    return manifest


def _preflight(spec: JobSpec) -> None:
    """Start one sandbox container on a sandbox node, so a missing image fails clearly."""
    task = ray.remote(check_sandbox).options(num_cpus=0, resources={SANDBOX_RESOURCE: 1})
    try:
        ray.get(task.remote(spec.sandbox))
    except ray.exceptions.RayTaskError as exc:
        if isinstance(exc.cause, PairforgeError):
            raise exc.cause from None
        raise


def _process_window(
    window: list[SourceRecord], spec: JobSpec, job_id: str, counter: object
) -> Iterator[tuple[int, int, ProblemOutcome, list[PreferencePair]]]:
    """Run one window through the stages, yielding (unit, index, outcome, pairs) as rows finish."""
    per_unit = spec.output.problems_per_unit
    ds: ray.data.Dataset = ray.data.from_items([record.to_ray_row() for record in window])
    ds = sample_dataset(ds, spec.sampler, job_id)
    ds = ds.map(
        _counted(parse_row, "sampled"),
        fn_kwargs={"problems_per_unit": per_unit, "counter": counter},
    )
    ds = ds.map_batches(
        ExecutorUDF,
        fn_constructor_kwargs={"config": spec.sandbox, "counter": counter},
        batch_size=1,
        compute=ray.data.ActorPoolStrategy(
            min_size=spec.sandbox.min_workers, max_size=spec.sandbox.max_workers
        ),
        # The container does the work; the actor only waits on it. The custom resource,
        # not CPUs, decides where executors run and how many fit.
        num_cpus=0,
        resources={SANDBOX_RESOURCE: 1},
    )
    ds = ds.map(
        _counted(rank_row, "ranked"), fn_kwargs={"spec": spec, "job_id": job_id, "counter": counter}
    )
    for row in ds.iter_rows():
        outcome, pairs = outcome_of(row)
        yield int(row["unit"]), int(row["index"]), outcome, pairs


def run_build(
    spec: JobSpec,
    *,
    job_id: str | None = None,
    resume: bool = False,
    address: str | None = None,
    on_progress: ProgressCallback | None = None,
) -> BuildSummary:
    """Build the dataset a JobSpec describes and return what was written.

    Once the output is known to be this build's, every failure leaves ``progress.json``
    in state ``failed`` with the error, and no manifest.

    Raises:
        ConfigError: the spec or the input is unusable (no shard or manifest is written).
        OutputLocationError: the output holds another build and ``resume`` is off, or
            ``resume`` is on but the shards there are not this build's.
        InfrastructureError: the sandbox, the sampler or storage failed.
    """
    job_id = job_id or default_job_id(spec)
    if spec.pairs.method is PairMethod.TARGET_DPO:
        raise ConfigError(
            "pairs.method `target_dpo` needs the refinement loop, which this build does not "
            "run yet; use `focused_dpo`"
        )
    store = ShardStore(spec.output.uri)
    finished = _check_output(store, resume)
    if finished is not None:
        written = len(finished.shards_of("problems"))
        return BuildSummary(
            job_id=finished.job_id,
            output_uri=spec.output.uri,
            counts=finished.counts,
            units_total=written,
            units_skipped=written,
            wall_s=0.0,
            cells_per_s=0.0,
        )

    started_wall = time.time()
    started = datetime.now(timezone.utc)
    # From here on every failure is reported in progress.json (the output is ours).
    progress = _Progress(store, BuildProgress(job_id=job_id, started_at=started_wall), on_progress)
    counter: object | None = None
    try:
        records = read_records(spec.source, spec.sampler.kind)  # validates all before any write
        per_unit = spec.output.problems_per_unit
        units = _units(records, per_unit)
        removed = store.remove_temporaries()
        if removed:
            logger.info("removed %d temporary files of an interrupted build", removed)
        done = set(_check_done_units(store, units, job_id))
        pending = [u for u in sorted(units) if u not in done]
        on_disk = _counts_on_disk(store, sorted(done))
        progress.update(
            units_total=len(units),
            units_done=len(done),
            units_skipped=len(done),
            problems_total=len(records),
            problems_sampled=on_disk.problems,
            problems_executed=on_disk.problems,
            problems_ranked=on_disk.problems,
            candidates=on_disk.candidates,
            cells=on_disk.cells,
            pairs=on_disk.pairs,
            skips=dict(on_disk.skips),
        )
        connect(address, sandbox_slots=spec.sandbox.max_workers)
        if pending and sandbox_slots_available() < 1:
            raise SandboxUnavailable(
                f"no Ray node offers the `{SANDBOX_RESOURCE}` resource; start nodes that run "
                f"Docker with `ray start ... --resources '{{\"{SANDBOX_RESOURCE}\": 2}}'`"
            )
        if pending:
            _preflight(spec)
        counter = _StageCounter.remote()  # type: ignore[attr-defined]
        progress.start(counter)
        totals = on_disk
        for window in _windows(units, pending):
            expected = {u: len(units[u]) for u in {r.index // per_unit for r in window}}
            arrived: dict[int, list[tuple[int, ProblemOutcome, list[PreferencePair]]]]
            arrived = defaultdict(list)
            for unit, index, outcome, pairs in _process_window(window, spec, job_id, counter):
                if any(seen == index for seen, _, _ in arrived[unit]):
                    raise ContractViolation(
                        f"problem #{index} ({outcome.problem_id!r}) came out of the pipeline "
                        f"twice in unit {unit}; no shard was written for that unit"
                    )
                arrived[unit].append((index, outcome, pairs))
                if len(arrived[unit]) < expected[unit]:
                    continue
                # Input order inside a shard, whatever order the rows finished in.
                rows = sorted(arrived.pop(unit), key=lambda r: r[0])
                problems = problems_table([outcome for _, outcome, _ in rows])
                store.write_unit(
                    unit,
                    pairs_table([pair for _, _, unit_pairs in rows for pair in unit_pairs]),
                    problems,
                )
                totals = totals + _counts_of(problems)
                progress.update(
                    units_done=progress.progress.units_done + 1,
                    candidates=totals.candidates,
                    pairs=totals.pairs,
                    skips=dict(totals.skips),
                )
            if arrived:
                lost = {u: expected[u] - len(rows) for u, rows in sorted(arrived.items())}
                raise ContractViolation(
                    f"the pipeline lost problems of units {lost} (unit: rows missing); those "
                    "units were not written, and a resumed build will redo them"
                )
        manifest = _write_manifest(store, spec, job_id, len(units), started)
    except BaseException as exc:
        progress.stop()
        try:
            progress.update(
                state="failed", error=str(exc) or type(exc).__name__, finished_at=time.time()
            )
        except Exception:
            # The original error says more than a failure to record it (often the same cause).
            logger.exception("could not record the failure of job %s in progress.json", job_id)
        raise
    finally:
        if counter is not None:
            ray.kill(counter)  # type: ignore[arg-type]
    progress.stop()
    wall = time.time() - started_wall
    run_cells = manifest.counts.cells - on_disk.cells
    progress.finish(
        manifest.counts, units_total=len(units), cells_per_s=run_cells / max(wall, 1e-9)
    )
    return BuildSummary(
        job_id=job_id,
        output_uri=spec.output.uri,
        counts=manifest.counts,
        units_total=len(units),
        units_skipped=len(done),
        wall_s=wall,
        cells_per_s=run_cells / max(wall, 1e-9),
    )
