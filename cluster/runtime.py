"""Connecting to Ray: a local runtime for one machine, or an existing cluster.

One place decides how the driver joins Ray, so the CLI, the service's Ray Jobs and the
tests agree. Nodes that can run the sandbox advertise the custom resource ``sandbox``;
executor actors ask for one unit of it, so adding such a node adds executors.
"""

from __future__ import annotations

import logging
import os

import ray
import ray.data

from cluster.placement import SANDBOX_RESOURCE

logger = logging.getLogger(__name__)


def quiet_ray_data(progress_bars: bool) -> None:
    """Progress bars per operator on a terminal, and no per-operator log lines elsewhere.

    Without bars Ray Data logs a multi-line status block every few seconds, which buries
    the build's own progress lines in a non-interactive log.
    """
    ray.data.DataContext.get_current().enable_progress_bars = progress_bars
    if not progress_bars:
        logging.getLogger("ray.data").setLevel(logging.WARNING)


def connect(address: str | None, *, sandbox_slots: int) -> None:
    """Join a Ray cluster at ``address``, or start a local runtime when there is none.

    Inside a Ray Job ``RAY_ADDRESS`` is set and ``ray.init()`` joins that cluster. A local
    runtime advertises ``sandbox_slots`` units of the sandbox resource, one per executor.
    """
    if ray.is_initialized():
        return
    if address or os.environ.get("RAY_ADDRESS"):
        ray.init(address=address or None, log_to_driver=False)
        logger.info("joined Ray cluster at %s", address or os.environ["RAY_ADDRESS"])
        return
    ray.init(
        resources={SANDBOX_RESOURCE: float(sandbox_slots)},
        include_dashboard=False,
        log_to_driver=False,
    )
    logger.info("started a local Ray runtime with %d sandbox slots", sandbox_slots)


def sandbox_slots_available() -> float:
    """Sandbox resource units the cluster has right now (0 if no node offers any)."""
    resources: dict[str, float] = ray.cluster_resources()  # type: ignore[no-untyped-call]
    return float(resources.get(SANDBOX_RESOURCE, 0.0))
