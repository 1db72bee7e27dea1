"""Dependencies of the route handlers: the service's state, job service, launcher and auth.

The ``Annotated`` aliases (``JobsDep``, ``LauncherDep`` ...) are the injection seam: tests
replace ``get_launcher`` through ``app.dependency_overrides`` with a fake launcher (a
``TrainingLauncher``: builds and their training jobs).
Ray is imported only when the first real launcher is built, never at import time.

The small dependencies are ``async`` on purpose: FastAPI runs a sync dependency in its
thread pool, and five thread hops per request cost more than the request itself.
"""

from __future__ import annotations

import dataclasses
import hmac
import shlex
import threading
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CollectorRegistry

from pipeline.errors import InfrastructureError
from services.api.handoff import Handoff, TrainingLauncher
from services.api.lifecycle import JobService, SubmissionRules
from services.api.reconcile import Reconciler
from services.api.settings import Settings
from services.store import JobStore, StoredJob


@dataclasses.dataclass
class ServiceState:
    """Everything one app instance holds; built by ``create_app``."""

    settings: Settings
    store: JobStore
    reconciler: Reconciler
    rules: SubmissionRules
    handoff: Handoff
    metrics: CollectorRegistry
    launcher: TrainingLauncher | None = None
    _launcher_lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    def ray_launcher(self) -> TrainingLauncher:
        """The injected launcher, or a Ray Job launcher built on first use."""
        with self._launcher_lock:
            if self.launcher is None:
                address = self.settings.ray_address
                if not address:
                    raise InfrastructureError(
                        "no Ray cluster is configured: set PAIRFORGE_RAY_ADDRESS to the "
                        "dashboard address (http://HOST:8265) or start with `pairforge serve`"
                    )
                from cluster.launcher import RayJobLauncher

                command = self.settings.build_command
                self.launcher = RayJobLauncher(
                    address,
                    build_command=shlex.split(command) if command else None,
                    dashboard_url=self.settings.ray_dashboard_url,
                )
            return self.launcher

    def jobs(self, launcher: TrainingLauncher) -> JobService:
        """The job service of this app on ``launcher``."""
        return JobService(
            store=self.store,
            launcher=launcher,
            reconciler=self.reconciler,
            rules=self.rules,
            handoff=self.handoff,
        )


async def get_state(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.pairforge
    return state


StateDep = Annotated[ServiceState, Depends(get_state)]


async def get_store(state: StateDep) -> JobStore:
    return state.store


async def get_settings(state: StateDep) -> Settings:
    return state.settings


async def get_launcher(state: StateDep) -> TrainingLauncher:
    return state.ray_launcher()


StoreDep = Annotated[JobStore, Depends(get_store)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
LauncherDep = Annotated[TrainingLauncher, Depends(get_launcher)]


async def get_jobs(state: StateDep, launcher: LauncherDep) -> JobService:
    return state.jobs(launcher)


JobsDep = Annotated[JobService, Depends(get_jobs)]


def get_job(job_id: str, store: StoreDep) -> StoredJob:
    """The stored job named by the path (404 when there is none)."""
    try:
        return store.get(job_id)
    except KeyError:
        raise HTTPException(status_code=404, detail=f"no job with id {job_id!r}") from None


JobDep = Annotated[StoredJob, Depends(get_job)]

_bearer = HTTPBearer(auto_error=False, description="PAIRFORGE_API_TOKEN, when one is set.")


async def require_token(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """401 unless the request carries the configured bearer token (no-op without one)."""
    expected = settings.api_token
    if expected is None:
        return
    given = credentials.credentials if credentials is not None else ""
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(
            status_code=401,
            detail="missing or wrong bearer token: send `Authorization: Bearer "
            "<PAIRFORGE_API_TOKEN>`",
            headers={"WWW-Authenticate": "Bearer"},
        )
