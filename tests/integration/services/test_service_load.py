"""A bounded load test on loopback: 200 concurrent status reads, 20 concurrent submissions.

Its own event loop, its own service and Ray head; it stops by itself (every request has a
timeout and the whole run a deadline). The submitted jobs are valid but name a sandbox
image no machine has, so their builds fail fast (in the pre-flight check) instead of
loading the machine.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import numpy as np
import pytest

from tests.integration.services.conftest import MISSING_IMAGE, Service, quickstart_spec, wait_for

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def _failing_spec(uri: str) -> dict[str, object]:
    return quickstart_spec(
        uri, source={"limit": 1}, sampler={"k": 2}, sandbox={"image": MISSING_IMAGE}
    )


async def _timed(client: httpx.AsyncClient, method: str, url: str, **kw) -> tuple[int, float]:
    start = time.perf_counter()
    answer = await client.request(method, url, **kw)
    return answer.status_code, time.perf_counter() - start


async def _burst(url: str, job_id: str) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    limits = httpx.Limits(max_connections=250, max_keepalive_connections=250)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        reads = [_timed(client, "GET", f"/jobs/{job_id}") for _ in range(200)]
        writes = [
            _timed(
                client,
                "POST",
                "/jobs",
                json={"name": f"load-{i}", **_failing_spec(f"load-{i}")},
            )
            for i in range(20)
        ]
        results = await asyncio.wait_for(asyncio.gather(*reads, *writes), timeout=180)
    return results[:200], results[200:]


def test_concurrent_reads_and_submissions_get_no_5xx(service: Service) -> None:
    with service.client() as client:
        first = client.post("/jobs", json=_failing_spec("first"))
        assert first.status_code == 201, first.text
        job_id = first.json()["id"]

    reads, writes = asyncio.run(_burst(service.url, job_id))

    assert [code for code, _ in reads] == [200] * 200
    assert [code for code, _ in writes] == [201] * 20
    read_ms = np.array([t for _, t in reads]) * 1000
    write_ms = np.array([t for _, t in writes]) * 1000
    print(
        f"status p50 {np.percentile(read_ms, 50):.1f} ms p99 {np.percentile(read_ms, 99):.1f} ms; "
        f"submit p50 {np.percentile(write_ms, 50):.1f} ms p99 {np.percentile(write_ms, 99):.1f} ms"
    )
    with service.client() as client:
        listed = client.get("/jobs", params={"limit": 100}).json()
        assert listed["count"] == 21
        # The job really reached the build, which failed on the missing image.
        failed = wait_for(client, job_id, {"failed", "succeeded", "cancelled"}, timeout_s=240)
    assert failed["state"] == "failed"
    assert failed["error"]
