"""The dataset build: one JobSpec from problems to Parquet shards and a manifest.

    run_build(spec)
      1. the output must hold nothing but this build (``ShardStore.check_output``)
      2. the whole input is validated before anything is written (``scan_source``)
      3. units already written are checked to be this build's and skipped (resume)
      4. the remaining units stream through the dataflow in windows (``cluster.dataflow``),
         and each unit's shards are written as soon as all its problems are back
      5. ``manifest.json`` is written last: its presence means the dataset is complete

Every seed derives from the job and problem ids, so a killed build resumed with
``resume=True`` writes exactly the rows it would have written.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import math
import time
from datetime import UTC, datetime

import ray
from pydantic import BaseModel, ConfigDict, Field

from cluster.dataflow import build_dataflow
from cluster.executor_actor import check_sandbox
from cluster.placement import SANDBOX_RESOURCE, build_placement
from cluster.progress import (
    ProgressCallback,
    ProgressPublisher,
    StageCounter,
    StageTally,
    counter_name,
)
from cluster.runtime import connect, sandbox_slots_available
from cluster.shard_store import ShardStore, counts_of
from cluster.sources import iter_records, scan_source
from cluster.synthesis import materialize_source
from cluster.work_units import check_done_units, finished_units, pending_windows
from pipeline.config import JobSpec
from pipeline.errors import ConfigError, PairforgeError, SandboxUnavailable
from pipeline.job_limits import JobLimits, require_runnable
from pipeline.manifest import Manifest, ManifestCounts
from pipeline.progress import PROGRESS_FILE
from pipeline.shards import pairs_table, problems_table

logger = logging.getLogger(__name__)


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


def run_build(
    spec: JobSpec,
    *,
    job_id: str | None = None,
    resume: bool = False,
    address: str | None = None,
    on_progress: ProgressCallback | None = None,
    limits: JobLimits | None = None,
) -> BuildSummary:
    """Build the dataset a JobSpec describes and return what was written.

    Once the input is known to be valid and the output this build's, every failure leaves
    ``progress.json`` in state ``failed`` with the error, and no manifest.

    Args:
        limits: the operator's job limits (``pipeline.job_limits``); the defaults if None.

    Raises:
        ConfigError: the spec or the input is unusable, or asks for more than ``limits``
            allow (nothing is written).
        OutputLocationError: the output holds another build and ``resume`` is off, or
            ``resume`` is on but the shards there are not this build's.
        InfrastructureError: the sandbox, the sampler, Ray or storage failed.
    """
    limits = limits or JobLimits()
    require_runnable(spec, limits)
    job_id = job_id or default_job_id(spec)
    store = ShardStore(spec.output.uri)
    finished = store.check_output(resume=resume)
    if finished is not None:
        return _already_built(finished, spec)
    try:
        spec = materialize_source(spec)  # source.synthesize: the problems are written first
        problems_total = scan_source(
            spec.source, spec.sampler.kind, max_row_bytes=limits.max_row_bytes
        )
        require_runnable(spec, limits, problems=problems_total)
    except ConfigError as exc:
        # A rejected input writes nothing, but the progress of an earlier run of this job
        # (a resume) must not go on saying "running".
        if store.read_text(PROGRESS_FILE) is not None:
            ProgressPublisher(store, job_id).failed(exc)
        raise

    started, started_wall = datetime.now(UTC), time.time()
    per_unit = spec.output.problems_per_unit
    units_total = math.ceil(problems_total / per_unit)
    publisher = ProgressPublisher(store, job_id, on_progress)
    counter = None
    try:
        if removed := store.remove_temporaries():
            logger.info("removed %d temporary files of an interrupted build", removed)
        done = set(store.check_done_units(units_total))
        records = functools.partial(
            iter_records, spec.source, spec.sampler.kind, max_row_bytes=limits.max_row_bytes
        )
        check_done_units(
            records(), per_unit, done, lambda u, ids: store.check_done_unit(u, job_id, ids)
        )
        on_disk = store.counts_on_disk(sorted(done))
        publisher.begin(
            units_total=units_total,
            units_done=len(done),
            problems_total=problems_total,
            on_disk=on_disk,
        )
        if len(done) < units_total:
            _join_ray(spec, address)
            counter = StageCounter.options(  # type: ignore[attr-defined]
                name=counter_name(job_id), get_if_exists=True
            ).remote()
            publisher.go_live(counter)
            tally, placement = StageTally(counter), build_placement(spec)
            for window in pending_windows(records(), per_unit, done):
                dataflow = build_dataflow(
                    window, spec, job_id=job_id, placement=placement, tally=tally
                )
                rows = (row["state"] for row in dataflow.iter_rows())
                for unit, states in finished_units(rows, window, per_unit):
                    problems = problems_table([s.outcome for s in states if s.outcome])
                    pairs = pairs_table([pair for s in states for pair in s.pairs])
                    store.write_unit(unit, pairs, problems)
                    publisher.unit_written(counts_of(problems))
        manifest = store.write_manifest(spec, job_id, units_total, started)
    except BaseException as exc:
        publisher.failed(exc)
        raise
    finally:
        if counter is not None:
            ray.kill(counter)
    wall = time.time() - started_wall
    cells_per_s = (manifest.counts.cells - on_disk.cells) / max(wall, 1e-9)
    publisher.succeeded(manifest.counts, cells_per_s=cells_per_s)
    return BuildSummary(
        job_id=job_id,
        output_uri=spec.output.uri,
        counts=manifest.counts,
        units_total=units_total,
        units_skipped=len(done),
        wall_s=wall,
        cells_per_s=cells_per_s,
    )


def _already_built(manifest: Manifest, spec: JobSpec) -> BuildSummary:
    written = len(manifest.shards_of("problems"))
    return BuildSummary(
        job_id=manifest.job_id,
        output_uri=spec.output.uri,
        counts=manifest.counts,
        units_total=written,
        units_skipped=written,
        wall_s=0.0,
        cells_per_s=0.0,
    )


def _join_ray(spec: JobSpec, address: str | None) -> None:
    """Join (or start) Ray and make sure a sandbox node can start the sandbox image.

    Raises:
        SandboxUnavailable: no node offers the sandbox resource, or its Docker engine or
            image is missing (checked by starting one container there, so the error says
            which, instead of an executor dying in its constructor).
    """
    connect(address, sandbox_slots=spec.sandbox.max_workers)
    if sandbox_slots_available() < 1:
        raise SandboxUnavailable(
            f"no Ray node offers the `{SANDBOX_RESOURCE}` resource; start nodes that run "
            f"Docker with `ray start ... --resources '{{\"{SANDBOX_RESOURCE}\": 2}}'`"
        )
    task = ray.remote(check_sandbox).options(num_cpus=0, resources={SANDBOX_RESOURCE: 1})
    try:
        ray.get(task.remote(spec.sandbox))
    except ray.exceptions.RayTaskError as exc:
        if isinstance(exc.cause, PairforgeError):
            raise exc.cause from None
        raise
