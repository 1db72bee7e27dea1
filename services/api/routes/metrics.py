"""``/metrics``: Prometheus text with jobs by state, pairs written and cells executed.

Values are collected from the job store on each scrape (unfinished jobs are reconciled
first), so every service replica reports the same numbers and nothing is lost on restart.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
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
from services.store import JobStore

logger = logging.getLogger(__name__)

router = APIRouter(tags=["metrics"], dependencies=[Depends(require_token)])


class JobsCollector(Collector):
    """Reads the job store at scrape time."""

    def __init__(self, store: JobStore) -> None:
        self._store = store

    def collect(self) -> Iterator[Metric]:
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


def metrics_registry(store: JobStore) -> CollectorRegistry:
    """A registry of this app's own (not the process-global one, so apps do not collide)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(JobsCollector(store))
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
