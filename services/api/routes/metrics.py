"""``/metrics``: Prometheus text with jobs by state, totals, and each recent build's progress.

Values are collected from the job store on each scrape (unfinished jobs are reconciled
first, which copies each build's ``progress.json`` into the store), so every service
replica reports the same numbers and nothing is lost on restart.

Per-job gauges (``pairforge_job_*``, labelled ``job_id`` and ``name``) cover every queued or
running job and every job that finished within ``PAIRFORGE_METRICS_KEEP_FINISHED_S``; the
README lists each metric.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from pydantic import ValidationError

from pipeline.progress import BuildProgress
from services.api.deps import LauncherDep, StateDep, require_token
from services.api.errors import UNAUTHORIZED
from services.api.schemas import ErrorBody, JobCounts
from services.store import JobStore, StoredJob, utcnow

logger = logging.getLogger(__name__)

router = APIRouter(tags=["metrics"], dependencies=[Depends(require_token)])

MAX_JOBS_EXPORTED = 500
"""Most jobs with per-job gauges in one scrape (the most recently changed): a bound on the
series a Prometheus server is asked to keep."""

JOB_LABELS = ["job_id", "name"]


def _gauge(name: str, documentation: str, *extra: str) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, labels=[*JOB_LABELS, *extra])


class _JobGauges:
    """The per-job families of one scrape, filled job by job."""

    def __init__(self) -> None:
        self.state = _gauge("pairforge_job_state", "1 for the job's current state.", "state")
        self.problems = _gauge(
            "pairforge_job_problems",
            "Problems through each stage of the build (sampled, executed, ranked).",
            "stage",
        )
        self.input_problems = _gauge(
            "pairforge_job_input_problems", "Problems in the job's input (0 until counted)."
        )
        self.units_done = _gauge("pairforge_job_units_done", "Work units whose shards are written.")
        self.units = _gauge("pairforge_job_units", "Work units in the job.")
        self.candidates = _gauge(
            "pairforge_job_candidates", "Distinct codes and tests parsed from the samples."
        )
        self.cells = _gauge("pairforge_job_cells_executed", "Code×test cells executed.")
        self.cells_per_s = _gauge(
            "pairforge_job_cells_per_second", "Cells executed per second since the build started."
        )
        self.pairs = _gauge("pairforge_job_pairs_written", "Preference pairs written.")
        self.skips = _gauge(
            "pairforge_job_skipped_problems", "Problems that gave no pair, by reason.", "reason"
        )

    def add(self, job: StoredJob, progress: BuildProgress | None) -> None:
        labels = [job.id, job.name]
        self.state.add_metric([*labels, job.state.value], 1)
        if progress is None:
            return
        for stage, done in (
            ("sampled", progress.problems_sampled),
            ("executed", progress.problems_executed),
            ("ranked", progress.problems_ranked),
        ):
            self.problems.add_metric([*labels, stage], done)
        self.input_problems.add_metric(labels, progress.problems_total)
        self.units_done.add_metric(labels, progress.units_done)
        self.units.add_metric(labels, progress.units_total)
        self.candidates.add_metric(labels, progress.candidates)
        self.cells.add_metric(labels, progress.cells)
        self.cells_per_s.add_metric(labels, progress.cells_per_s)
        self.pairs.add_metric(labels, progress.pairs)
        for reason, n in sorted(progress.skips.items()):
            self.skips.add_metric([*labels, reason], n)

    def families(self) -> Iterator[Metric]:
        yield from (
            self.state,
            self.problems,
            self.input_problems,
            self.units_done,
            self.units,
            self.candidates,
            self.cells,
            self.cells_per_s,
            self.pairs,
            self.skips,
        )


def _progress(job: StoredJob) -> BuildProgress | None:
    if job.progress_json is None:
        return None
    try:
        return BuildProgress.model_validate_json(job.progress_json)
    except ValidationError:  # a damaged record: one scrape must not fail for it
        logger.warning("metrics: skipping job %s's stored progress, which does not read", job.id)
        return None


class JobsCollector(Collector):
    """Reads the job store at scrape time."""

    def __init__(self, store: JobStore, *, keep_finished_s: float) -> None:
        self._store = store
        self._keep_finished = timedelta(seconds=keep_finished_s)

    def collect(self) -> Iterator[Metric]:
        yield from self._totals()
        gauges = _JobGauges()
        since = utcnow() - self._keep_finished
        for job in self._store.live_or_finished_since(since, limit=MAX_JOBS_EXPORTED):
            gauges.add(job, _progress(job))
        yield from gauges.families()

    def _totals(self) -> Iterator[Metric]:
        jobs = GaugeMetricFamily("pairforge_jobs", "Jobs in the store, by state.", labels=["state"])
        for state, n in sorted(self._store.count_by_state().items(), key=lambda kv: kv[0].value):
            jobs.add_metric([state.value], n)
        yield jobs
        totals = {"pairs": 0, "cells": 0, "problems_ranked": 0}
        for snapshot in self._store.all_progress():
            try:
                progress = BuildProgress.model_validate_json(snapshot)
            except ValidationError:  # a damaged record: one scrape must not fail for it
                logger.warning("metrics: skipping a stored progress report that does not read")
                continue
            counts = JobCounts.of(progress)
            totals["pairs"] += counts.pairs
            totals["cells"] += counts.cells
            totals["problems_ranked"] += progress.problems_ranked
        yield CounterMetricFamily(
            "pairforge_pairs_written", "Preference pairs written, all jobs.", value=totals["pairs"]
        )
        yield CounterMetricFamily(
            "pairforge_cells_executed", "Code×test cells executed, all jobs.", value=totals["cells"]
        )
        yield CounterMetricFamily(
            "pairforge_problems_ranked",
            "Problems ranked and paired, all jobs.",
            value=totals["problems_ranked"],
        )


def metrics_registry(store: JobStore, *, keep_finished_s: float) -> CollectorRegistry:
    """A registry of this app's own (not the process-global one, so apps do not collide)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(JobsCollector(store, keep_finished_s=keep_finished_s))
    return registry


async def _registry(state: StateDep) -> CollectorRegistry:
    return state.metrics


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text."},
        **UNAUTHORIZED,
        503: {"model": ErrorBody, "description": "The Ray cluster cannot be reached."},
    },
)
def metrics(
    state: StateDep,
    launcher: LauncherDep,
    registry: Annotated[CollectorRegistry, Depends(_registry)],
) -> Response:
    """Prometheus metrics in the text exposition format."""
    state.reconciler.refresh_unfinished(launcher, force=False)
    return Response(content=generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
