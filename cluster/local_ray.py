"""Find or start a local Ray head for ``pairforge serve`` when no cluster address is given.

The head runs as its own daemon processes (``ray start --head``), not inside the service,
so the service can restart, or crash, without killing the builds running on it. Stop it
with ``ray stop``.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from collections.abc import Mapping

import httpx

from pipeline.errors import ClusterUnavailable

logger = logging.getLogger(__name__)

DEFAULT_DASHBOARD_PORT = 8265
DEFAULT_RESOURCES: Mapping[str, float] = {"sandbox": 2}


def dashboard_answers(url: str, timeout_s: float = 2.0) -> bool:
    """True when something answers HTTP at the dashboard's version endpoint.

    Any answer counts, 401 included: a token-protected dashboard is still up.
    """
    try:
        httpx.get(f"{url}/api/version", timeout=timeout_s)
    except httpx.HTTPError:
        return False
    return True


def ensure_local_ray(
    *,
    dashboard_port: int = DEFAULT_DASHBOARD_PORT,
    resources: Mapping[str, float] = DEFAULT_RESOURCES,
    wait_s: float = 60.0,
) -> str:
    """Return the dashboard URL of a local Ray head, starting one if none answers.

    Raises:
        ClusterUnavailable: ``ray start`` failed or the dashboard did not come up.
    """
    url = f"http://127.0.0.1:{dashboard_port}"
    if dashboard_answers(url):
        logger.info("using the Ray head already running at %s", url)
        return url
    argv = [
        sys.executable,
        "-m",
        "ray.scripts.scripts",
        "start",
        "--head",
        "--dashboard-host",
        "127.0.0.1",
        "--dashboard-port",
        str(dashboard_port),
        "--resources",
        json.dumps(dict(resources)),
        "--disable-usage-stats",
    ]
    logger.info("starting a local Ray head: %s", " ".join(argv))
    started = subprocess.run(argv, capture_output=True, text=True, check=False)
    if started.returncode != 0:
        raise ClusterUnavailable(
            f"`ray start --head` exited with {started.returncode}: "
            f"{(started.stderr or started.stdout)[-2000:]}. Is another Ray instance using "
            "port 6379? Stop it with `ray stop` or pass --ray-address."
        )
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if dashboard_answers(url):
            return url
        time.sleep(0.5)
    raise ClusterUnavailable(
        f"the Ray dashboard did not answer at {url} within {wait_s:.0f} s after `ray start`; "
        "see /tmp/ray/session_latest/logs/dashboard.log"
    )
