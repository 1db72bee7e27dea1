"""The FastAPI application of the job service: ``create_app(settings)``.

    from services.api.app import create_app
    from services.api.settings import Settings
    app = create_app(Settings())        # then: uvicorn.run(app, host="127.0.0.1", port=8000)

Nothing happens at import time. On startup the app reconciles every unfinished job with
Ray, so a restarted service finds its jobs again, and moves on every training hand-off
left open; then it sweeps the open hand-offs every ``handoff_poll_s`` seconds, so a build
nobody reads still hands off to training when it succeeds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from sqlalchemy.engine import make_url

from pipeline.errors import InfrastructureError
from services.api.body_limit import BodySizeLimit
from services.api.deps import ServiceState, require_token
from services.api.errors import install_error_handlers
from services.api.handoff import Handoff, TrainingLauncher
from services.api.lifecycle import SubmissionRules
from services.api.reconcile import Reconciler
from services.api.routes import health, jobs, metrics
from services.api.settings import Settings
from services.api.submission import InputChecker, Locations
from services.input_roots import resolve_input_roots
from services.output_root import resolve_root
from services.store import JobStore

logger = logging.getLogger(__name__)


def _startup_reconcile(state: ServiceState) -> None:
    try:
        seen = state.reconciler.refresh_unfinished(state.ray_launcher())
    except InfrastructureError as exc:
        # The service still serves what its store knows; reads retry Ray later.
        logger.warning("could not reconcile jobs with Ray at startup: %s", exc)
        return
    logger.info("reconciled %d unfinished job(s) with Ray", seen)
    _sweep_handoffs(state)


def _sweep_handoffs(state: ServiceState) -> None:
    try:
        state.jobs(state.ray_launcher()).advance_handoffs()
    except InfrastructureError as exc:  # StorageError included: the next sweep retries
        logger.debug("could not move training hand-offs on: %s", exc)
    except Exception:
        # The sweep must outlive any one bad job record; its failure is logged, not fatal.
        logger.exception("sweeping training hand-offs failed; retrying at the next sweep")


async def _sweep_forever(state: ServiceState, every_s: float) -> None:
    while True:
        await asyncio.sleep(every_s)
        await run_in_threadpool(_sweep_handoffs, state)


def _database_files(url: str, cwd: Path) -> frozenset[Path]:
    """The files of a SQLite job store (never a job's input, even under an input root)."""
    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite") or not parsed.database:
        return frozenset()
    database = (cwd / parsed.database).resolve()
    return frozenset(
        database.with_name(database.name + suffix) for suffix in ("", "-wal", "-shm", "-journal")
    )


def create_app(
    settings: Settings, *, launcher: TrainingLauncher | None = None, cwd: Path | None = None
) -> FastAPI:
    """Build the service.

    Args:
        settings: service configuration (``Settings()`` reads ``PAIRFORGE_*``).
        launcher: runs builds; default a Ray Job launcher on ``settings.ray_address``, built
            on first use.
        cwd: directory that relative roots and the database path in ``settings`` are
            relative to (default: the current one).
    """
    base = (cwd or Path.cwd()).resolve()
    store = JobStore(settings.database_url)
    output_root = resolve_root(settings.output_root, cwd=base)
    where = Locations(
        output_root=output_root,
        input_roots=resolve_input_roots(settings.input_roots, cwd=base),
        private=_database_files(settings.database_url, base),
    )
    inputs = InputChecker(
        timeout_s=settings.validation_timeout_s, at_once=settings.validations_at_once
    )
    rules = SubmissionRules(
        where=where,
        limits=settings.limits,
        inputs=inputs,
        training_entrypoints=tuple(settings.training_entrypoints),
    )
    state = ServiceState(
        settings=settings,
        store=store,
        reconciler=Reconciler(store, interval_s=settings.reconcile_interval_s),
        rules=rules,
        handoff=Handoff(store, rules.handoff(), interval_s=settings.reconcile_interval_s),
        metrics=metrics.metrics_registry(store, keep_finished_s=settings.metrics_keep_finished_s),
        launcher=launcher,
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(_startup_reconcile, state)
        sweeper = (
            asyncio.create_task(_sweep_forever(state, settings.handoff_poll_s))
            if settings.handoff_poll_s > 0
            else None
        )
        yield
        if sweeper is not None:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
        store.close()

    app = FastAPI(
        title="pairforge",
        version="0.1.0",
        description="Builds code preference datasets (Focused-DPO, Target-DPO) as Ray Jobs.",
        lifespan=lifespan,
        # Served below, behind the token like every endpoint but /healthz.
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.state.pairforge = state
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.include_router(jobs.router)
    app.include_router(health.router)
    app.include_router(metrics.router)

    @app.get("/openapi.json", include_in_schema=False, dependencies=[Depends(require_token)])
    async def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False, dependencies=[Depends(require_token)])
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="pairforge API")

    return app
