"""The FastAPI application of the job service: ``create_app(settings)``.

    from services.api.app import create_app
    from services.api.settings import Settings
    app = create_app(Settings())        # then: uvicorn.run(app, host="127.0.0.1", port=8000)

Nothing happens at import time. On startup the app reconciles every unfinished job with
Ray, so a restarted service finds its jobs again.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse

from pipeline.errors import InfrastructureError
from pipeline.ports import JobLauncher
from services.api.deps import ServiceState, require_token
from services.api.errors import install_error_handlers
from services.api.reconcile import Reconciler
from services.api.routes import health, jobs, metrics
from services.api.schemas import JobCreate
from services.api.settings import Settings
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


def _openapi_with_job_bodies(app: FastAPI) -> dict[str, Any]:
    # POST /jobs reads its body itself (to bound its size and name unknown fields), so
    # FastAPI does not see JobCreate/JobSpec; add their schemas for the documented body.
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        body = JobCreate.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(body.pop("$defs", {}))
        components["JobCreate"] = body
        app.openapi_schema = schema
    return app.openapi_schema


def create_app(
    settings: Settings, *, launcher: JobLauncher | None = None, cwd: Path | None = None
) -> FastAPI:
    """Build the service.

    Args:
        settings: service configuration (``Settings()`` reads ``PAIRFORGE_*``).
        launcher: runs builds; default a Ray Job launcher on ``settings.ray_address``, built
            on first use.
        cwd: directory relative paths in job specs resolve against (default: the current).
    """
    base = (cwd or Path.cwd()).resolve()
    store = JobStore(settings.database_url)
    state = ServiceState(
        settings=settings,
        store=store,
        output_root=resolve_root(settings.output_root, cwd=base),
        cwd=base,
        reconciler=Reconciler(store, interval_s=settings.reconcile_interval_s),
        metrics=metrics.metrics_registry(store),
        launcher=launcher,
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(_startup_reconcile, state)
        yield
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
    app.include_router(jobs.router)
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.openapi = lambda: _openapi_with_job_bodies(app)  # type: ignore[method-assign]

    @app.get("/openapi.json", include_in_schema=False, dependencies=[Depends(require_token)])
    async def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False, dependencies=[Depends(require_token)])
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="pairforge API")

    return app
