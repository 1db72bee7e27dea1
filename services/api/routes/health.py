"""``/healthz``: liveness, open to everyone (no token), so orchestrators can probe it."""

from __future__ import annotations

from fastapi import APIRouter

from services.api.deps import StoreDep
from services.api.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz(store: StoreDep) -> Health:
    """`ok` when the service answers and its job database can be queried."""
    store.count_by_state()
    return Health(status="ok")
