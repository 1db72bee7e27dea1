"""Latency of the job service on loopback: p50/p99 of status reads and of submissions.

    python benchmarks/api_latency.py                       # own Ray head + service, then gone
    python benchmarks/api_latency.py --reads 2000 --concurrency 100 --submissions 20

Starts a private Ray head (``tests.integration.services.ray_head.PrivateRayHead``, test
infrastructure) and ``pairforge serve`` (real uvicorn) in a temporary directory, submits
valid one-problem jobs that name a sandbox image no machine has (their builds fail fast in
their pre-flight check, so the cluster stays idle), then measures:

- status: ``GET /jobs/{id}`` on ``--concurrency`` keep-alive connections at once;
- submit: ``POST /jobs`` one at a time, then ``--submissions`` at once.

Every request must answer 2xx; the script exits 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

# The private Ray head is test infrastructure: it lives under tests/, which is not part of
# the installed package, so this script finds it from the repository root.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.integration.services.ray_head import PrivateRayHead

SERVE = [sys.executable, "-m", "services.cli", "serve"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _start_service(workdir: Path, ray_address: str) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = {
        **os.environ,
        "PAIRFORGE_DATABASE_URL": f"sqlite:///{workdir / 'jobs.db'}",
        "PAIRFORGE_OUTPUT_ROOT": "runs",
    }
    env.pop("PAIRFORGE_API_TOKEN", None)
    log = (workdir / "service.log").open("wb")
    process = subprocess.Popen(
        [*SERVE, "--port", str(port), "--ray-address", ray_address],
        cwd=workdir,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit(f"service did not start; see {workdir / 'service.log'}")


_ROW = {
    "problem_id": "p0",
    "prompt": "def f():\n",
    "code_completions": ["    return 1\n"],
    "test_completions": ["assert f() == 1"],
}


def _spec(name: str) -> dict[str, object]:
    return {
        "source": {"path": "problems.jsonl"},
        "sampler": {"kind": "replay", "k": 2},
        "sandbox": {"image": "pairforge-no-such-image:never"},
        "output": {"uri": name},  # relative: under the service's output root
    }


async def _timed(
    client: httpx.AsyncClient, method: str, path: str, **kw: object
) -> tuple[int, float]:
    start = time.perf_counter()
    answer = await client.request(method, path, **kw)  # type: ignore[arg-type]
    return answer.status_code, (time.perf_counter() - start) * 1000


async def _reader(port: int, path: str, n: int) -> list[tuple[int, float]]:
    """One keep-alive connection sending ``n`` GETs back to back.

    Plain asyncio streams, not httpx: at 200 connections httpx's pool costs more CPU than
    the service does (measured: 85 vs 660 requests/s on 2 cores), which would time the
    client rather than the service.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    timings = []
    try:
        for _ in range(n):
            start = time.perf_counter()
            writer.write(request)
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            length = next(
                int(line.split(":", 1)[1])
                for line in lines
                if line.lower().startswith("content-length:")
            )
            await reader.readexactly(length)
            timings.append((int(lines[0].split()[1]), (time.perf_counter() - start) * 1000))
    finally:
        writer.close()
    return timings


async def _run(url: str, args: argparse.Namespace) -> dict[str, list[tuple[int, float]]]:
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        sequential = [
            await _timed(client, "POST", "/jobs", json=_spec(f"seq-{i}")) for i in range(5)
        ]
        job_id = (await client.get("/jobs", params={"limit": 1})).json()["data"][0]["id"]
        port = int(url.rsplit(":", 1)[1])
        per_connection = max(1, args.reads // args.concurrency)
        reads = await asyncio.wait_for(
            asyncio.gather(
                *(_reader(port, f"/jobs/{job_id}", per_connection) for _ in range(args.concurrency))
            ),
            timeout=300,
        )
        burst = await asyncio.gather(
            *(
                _timed(client, "POST", "/jobs", json=_spec(f"burst-{i}"))
                for i in range(args.submissions)
            )
        )
    return {
        "status (concurrent)": [t for connection in reads for t in connection],
        "submit (one at a time)": sequential,
        "submit (burst)": list(burst),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reads", type=int, default=1000, help="status requests (1000)")
    parser.add_argument("--concurrency", type=int, default=200, help="connections (200)")
    parser.add_argument("--submissions", type=int, default=20, help="burst submissions (20)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="pf-bench-") as tmp, PrivateRayHead() as ray_url:
        workdir = Path(tmp)
        (workdir / "runs").mkdir()
        (workdir / "problems.jsonl").write_text(json.dumps(_ROW) + "\n", encoding="utf-8")
        process, url = _start_service(workdir, ray_url)
        try:
            results = asyncio.run(_run(url, args))
        finally:
            process.terminate()
            process.wait(timeout=30)

    failed = False
    print(f"{'what':<24} {'n':>5} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8}")
    for what, samples in results.items():
        ms = np.array([t for _, t in samples])
        bad = sum(1 for code, _ in samples if not 200 <= code < 300)
        failed |= bad > 0
        print(
            f"{what:<24} {len(ms):>5} {np.percentile(ms, 50):>8.1f} "
            f"{np.percentile(ms, 99):>8.1f} {bad:>8}"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
