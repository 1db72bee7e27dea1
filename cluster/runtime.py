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
    """Join the Ray cluster a build should run on, deciding deliberately which one.

    In order:

    1. ``address`` (``--address``) or ``RAY_ADDRESS`` (set inside a Ray Job): join it.
    2. A local cluster already running on this machine (the head ``pairforge serve``
       started, or any ``ray start``) that offers the ``sandbox`` resource: join it, and
       say so, so the build shows in that cluster's dashboard.
    3. Otherwise start a private runtime for this build alone, advertising
       ``sandbox_slots`` units of the sandbox resource (one per executor). A bare
       ``ray.init()`` would join a running local cluster instead, and then refuse the
       resources, which is why the runtime is asked for explicitly.
    """
    if ray.is_initialized():
        return
    if address or os.environ.get("RAY_ADDRESS"):
        ray.init(address=address or None, log_to_driver=False)
        logger.info("joined Ray cluster at %s", address or os.environ["RAY_ADDRESS"])
        return
    running = _running_local_cluster()
    if running is not None:
        try:
            # No address: Ray joins the cluster it found itself and, only then, sends the
            # local token that `ray start` turned token authentication on with.
            ray.init(log_to_driver=False)
        except ConnectionError:
            logger.info("the local Ray cluster at %s does not answer; not joining it", running)
        else:
            slots = sandbox_slots_available()
            if slots >= 1:
                logger.warning(
                    "joined the local Ray cluster at %s, which offers %g sandbox slots; the "
                    "build shows in its dashboard (pass --address to choose another cluster)",
                    running,
                    slots,
                )
                return
            ray.shutdown()
            logger.warning(
                "the local Ray cluster at %s offers no `%s` resource; starting a private "
                "Ray runtime for this build instead",
                running,
                SANDBOX_RESOURCE,
            )
    ray.init(
        address="local",
        resources={SANDBOX_RESOURCE: float(sandbox_slots)},
        include_dashboard=False,
        log_to_driver=False,
    )
    logger.info("started a private Ray runtime with %d sandbox slots", sandbox_slots)


def _running_local_cluster() -> str | None:
    """The address of the local cluster a bare ``ray.init()`` would join, if any.

    That is the address the last ``ray start`` on this machine wrote to
    ``ray_current_cluster`` under Ray's temp dir (``RAY_TMPDIR``, else ``/tmp``).
    """
    from ray._private.services import find_bootstrap_address

    found: str | None = find_bootstrap_address(None)
    return found or None


def sandbox_slots_available() -> float:
    """Sandbox resource units the cluster has right now (0 if no node offers any)."""
    resources: dict[str, float] = ray.cluster_resources()  # type: ignore[no-untyped-call]
    return float(resources.get(SANDBOX_RESOURCE, 0.0))
