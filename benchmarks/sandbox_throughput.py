"""Pass-matrix throughput of the warm sandbox pool against two per-cell baselines.

Builds the pass matrices of real HumanEval problems (CodeGen-16B samples from the shared
data, parsed with ``pipeline.parsing.parse_replay_row``) through ``ContainerPool`` with
per-test process isolation, then runs a prefix of the same cells through

- ``docker run --rm`` per cell (a fresh container per execution), and
- ``subprocess.run([python, "-c", cell])`` per cell on the host (the human-eval style),

both with the same parallelism as the pool, and prints cells/s and the ratios.

With ``--split-vs-fallback`` it also builds the same matrices a second time with every
test on the fallback path (``ExecutionRequest.split=False``: each test runs in the
program's own process, which reports its outcome) and prints what judging split tests in
a separate process costs: cells/s of both, their ratio, the share of cells that fell back
in the split run, and the cell-by-cell agreement of the two.

    .venv/bin/python benchmarks/sandbox_throughput.py
    .venv/bin/python benchmarks/sandbox_throughput.py --split-vs-fallback \
        --docker-cells 0 --subprocess-cells 0
    .venv/bin/python benchmarks/sandbox_throughput.py --timeout 1.0 --docker-cells 100
    .venv/bin/python benchmarks/sandbox_throughput.py \
        --data ../shared/data/codet-humaneval-codegen16b/dev-k100.jsonl --limit 20

The host baseline executes untrusted model-written code directly on this machine, outside
any sandbox. That is acceptable only here, as the measured baseline (it is what human-eval
style harnesses do); nothing else in pairforge may run cells outside the sandbox.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pipeline.parsing import parse_replay_row
from pipeline.records import ReplayRow
from sandbox.limits import DEFAULT_IMAGE, PoolConfig
from sandbox.matrix import MatrixBuilder, MatrixProblem
from sandbox.pool import ContainerPool
from sandbox.types import CellStatus

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("PAIRFORGE_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
DEFAULT_DATA = SHARED_DATA / "codet-humaneval-codegen16b" / "dev-k10.jsonl"


def load_problems(path: Path, limit: int | None) -> list[MatrixProblem]:
    problems = []
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            candidates = parse_replay_row(ReplayRow.model_validate(json.loads(line)))
            problems.append(
                MatrixProblem(
                    problem_id=candidates.problem_id,
                    programs=[code.program for code in candidates.codes],
                    tests=[test.source for test in candidates.tests],
                )
            )
            if limit is not None and len(problems) >= limit:
                break
    return problems


def run_pool(
    problems: list[MatrixProblem], config: PoolConfig, split: bool = True
) -> dict[str, Any]:
    """Build every matrix; timings, the statuses by problem, fallback cells, CPU use."""
    started = time.perf_counter()
    with ContainerPool(config) as pool:
        ready = time.perf_counter()
        cpu_before = cpu_seconds(pool.pool_id)
        statuses = {}
        fallback = 0
        for result in MatrixBuilder(pool, budget_s=600, split=split).build_many(problems):
            statuses[result.problem_id] = result.status
            fallback += result.fallback_cells
        done = time.perf_counter()
        cpu_after = cpu_seconds(pool.pool_id)
    cpu = {key: cpu_after[key] - cpu_before[key] for key in cpu_before}
    return {
        "start_s": ready - started,
        "build_s": done - ready,
        "statuses": statuses,
        "cpu": cpu,
        "fallback_cells": fallback,
    }


def cpu_seconds(pool_id: str) -> dict[str, float]:
    """CPU seconds used so far by the pool's containers, this process and the Docker daemons.

    With other work on the machine, wall-clock rates understate what the pool does on
    dedicated cores; CPU time per cell does not depend on that. The daemons' share includes
    whatever else they serve at the time, so the projection from it is conservative.
    """
    ids = subprocess.run(
        ["docker", "ps", "--quiet", "--no-trunc", "--filter", f"label=pairforge.pool={pool_id}"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    containers = 0.0
    for container_id in ids:
        usage = Path(f"/sys/fs/cgroup/cpuacct/docker/{container_id}/cpuacct.usage")
        if usage.exists():  # cgroup v1 (cgroupfs driver)
            containers += int(usage.read_text()) / 1e9
            continue
        stat = Path(f"/sys/fs/cgroup/system.slice/docker-{container_id}.scope/cpu.stat")
        if stat.exists():  # cgroup v2 (systemd driver)
            fields = dict(line.split() for line in stat.read_text().splitlines())
            containers += int(fields["usage_usec"]) / 1e6
    own = os.times()
    return {
        "containers": containers,
        "benchmark": own.user + own.system,
        "docker_daemons": daemon_cpu_seconds(),
    }


def daemon_cpu_seconds() -> float:
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name, _, rest = text.partition(") ")
        if name.split("(", 1)[-1] in ("dockerd", "containerd", "containerd-shim"):
            fields = rest.split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def cells_of(problems: list[MatrixProblem]) -> list[tuple[str, int, int, str]]:
    """Every cell as (problem_id, program index, test index, source), in matrix order."""
    return [
        (problem.problem_id, i, j, program + "\n" + test)
        for problem in problems
        for i, program in enumerate(problem.programs)
        for j, test in enumerate(problem.tests)
    ]


def classify(done: subprocess.CompletedProcess[bytes]) -> CellStatus:
    if done.returncode == 0:
        return CellStatus.PASSED
    last = done.stderr.strip().splitlines()[-1:] or [b""]
    if last[0].startswith(b"AssertionError"):
        return CellStatus.FAILED
    if last[0].startswith(b"MemoryError"):
        return CellStatus.MEMORY
    return CellStatus.ERROR


def per_cell(command: Callable[[str], list[str]], timeout_s: float) -> Callable[[str], CellStatus]:
    def run(source: str) -> CellStatus:
        try:
            done = subprocess.run(command(source), capture_output=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return CellStatus.TIMEOUT
        return classify(done)

    return run


def run_baseline(
    cells: list[tuple[str, int, int, str]], execute: Callable[[str], CellStatus], workers: int
) -> tuple[float, list[CellStatus]]:
    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as executor:
        statuses = list(executor.map(execute, [cell[3] for cell in cells]))
    return time.perf_counter() - started, statuses


def agreement(
    cells: list[tuple[str, int, int, str]],
    statuses: list[CellStatus],
    matrices: dict[str, list[list[CellStatus]]],
) -> float:
    same = sum(
        matrices[problem_id][i][j] is status
        for (problem_id, i, j, _), status in zip(cells, statuses, strict=True)
    )
    return same / len(cells) if cells else 1.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="replay JSONL file")
    parser.add_argument("--limit", type=int, default=None, help="first N problems only")
    parser.add_argument("--workers", type=int, default=2, help="containers / parallel cells")
    # CodeT's per-test timeout (ALGORITHMS.md §3.3). The 8 cells of dev-k10 that never
    # finish cost 8 container-seconds at 1 s each: more than the other 3,991 cells together.
    parser.add_argument("--timeout", type=float, default=0.1, help="seconds per test (0.1)")
    parser.add_argument("--image", default=DEFAULT_IMAGE)
    parser.add_argument(
        "--docker-cells", type=int, default=40, help="cells for docker run (0: skip)"
    )
    parser.add_argument(
        "--subprocess-cells", type=int, default=400, help="cells for python -c (0: skip)"
    )
    parser.add_argument(
        "--split-vs-fallback",
        action="store_true",
        help="also build every matrix with all tests on the fallback path; print the ratio",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    problems = load_problems(args.data, args.limit)
    cells = cells_of(problems)
    config = PoolConfig(image=args.image, workers=args.workers, timeout_s=args.timeout)
    pool_run = run_pool(problems, config)
    pool_s, matrices, cpu = pool_run["build_s"], pool_run["statuses"], pool_run["cpu"]
    pool_rate = len(cells) / pool_s
    counts = Counter(
        status.value for matrix in matrices.values() for row in matrix for status in row
    )
    cpu_per_cell = sum(cpu.values()) / len(cells)
    cores = os.cpu_count() or 1
    print(f"data: {args.data.name}, {len(problems)} problems, {len(cells)} cells")
    print(f"statuses: {dict(counts.most_common())}")
    print(f"pool ({args.workers} warm containers, process isolation, timeout {args.timeout:g} s):")
    print(f"  start {pool_run['start_s']:.2f} s, {len(cells)} cells in {pool_s:.2f} s = "
          f"{pool_rate:.0f} cells/s (wall clock)")  # fmt: skip
    print("  CPU s: " + ", ".join(f"{key} {value:.2f}" for key, value in cpu.items())
          + f"; {cpu_per_cell * 1e3:.2f} ms per cell -> at most {cores / cpu_per_cell:.0f} "
          f"cells/s on {cores} idle cores")  # fmt: skip
    timeouts = counts.get(CellStatus.TIMEOUT.value, 0)
    print(f"  {timeouts} timeouts held a container {timeouts * args.timeout:.1f} s in all")
    fallback = pool_run["fallback_cells"]
    print(f"  {fallback} of {len(cells)} cells ({fallback / len(cells):.2%}) could not be split "
          "and ran on the fallback path")  # fmt: skip
    load = os.getloadavg()[0]
    print(f"  load average during the run: {load:.1f} on {cores} cores")
    figures: dict[str, Any] = {
        "cells": len(cells), "pool_cells_per_s": pool_rate, "pool_start_s": pool_run["start_s"],
        "pool_cpu_s": cpu, "timeout_s": args.timeout, "statuses": dict(counts),
        "fallback_cells": fallback,
    }  # fmt: skip
    if args.split_vs_fallback:
        figures.update(compare_fallback(problems, config, pool_run, len(cells)))

    rates = {"pool": pool_rate}
    docker_cells = cells[: args.docker_cells]
    if docker_cells:
        docker_command = [
            "docker", "run", "--rm", "--network", "none", "--user", "10001:10001",
            "--entrypoint", "python3", args.image, "-c",
        ]  # fmt: skip
        docker_s, docker_statuses = run_baseline(
            docker_cells, per_cell(lambda src: [*docker_command, src], args.timeout + 30),
            args.workers,
        )  # fmt: skip
        rates["docker"] = len(docker_cells) / docker_s
        print(f"docker run --rm per cell: {len(docker_cells)} cells in {docker_s:.2f} s = "
              f"{rates['docker']:.1f} cells/s (agreement with pool "
              f"{agreement(docker_cells, docker_statuses, matrices):.1%})")  # fmt: skip
        figures.update(docker_cells=len(docker_cells), docker_cells_per_s=rates["docker"])

    host_cells = cells[: args.subprocess_cells]
    if host_cells:
        host_s, host_statuses = run_baseline(
            host_cells,
            per_cell(lambda src: [sys.executable, "-c", src], args.timeout + 2),
            args.workers,
        )
        rates["subprocess"] = len(host_cells) / host_s
        print(f"subprocess python -c per cell (host): {len(host_cells)} cells in {host_s:.2f} s"
              f" = {rates['subprocess']:.1f} cells/s (agreement with pool "
              f"{agreement(host_cells, host_statuses, matrices):.1%})")  # fmt: skip
        figures.update(subprocess_cells=len(host_cells), subprocess_cells_per_s=rates["subprocess"])

    if "docker" in rates and "subprocess" in rates:
        print(f"ratios: pool / docker-run = {pool_rate / rates['docker']:.0f}x, "
              f"pool / subprocess = {pool_rate / rates['subprocess']:.1f}x")  # fmt: skip
        print(f"bar: >= 800 cells/s: {pool_rate >= 800}; >= 100x docker-run: "
              f"{pool_rate / rates['docker'] >= 100}; "
              f">= 4x subprocess: {pool_rate / rates['subprocess'] >= 4}")  # fmt: skip
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


def compare_fallback(problems: list[MatrixProblem], config: PoolConfig,
                     split_run: dict[str, Any], n_cells: int) -> dict[str, Any]:  # fmt: skip
    """Build the same matrices on the fallback path; print and return the comparison."""
    fallback_run = run_pool(problems, config, split=False)
    split_rate = n_cells / split_run["build_s"]
    fallback_rate = n_cells / fallback_run["build_s"]
    same = sum(
        a is b
        for problem_id, matrix in split_run["statuses"].items()
        for row_a, row_b in zip(matrix, fallback_run["statuses"][problem_id], strict=True)
        for a, b in zip(row_a, row_b, strict=True)
    )
    split_cpu = sum(split_run["cpu"].values()) / n_cells
    fallback_cpu = sum(fallback_run["cpu"].values()) / n_cells
    print(f"split vs fallback (the same {n_cells} cells, one run after the other):")
    print(f"  split    {split_rate:.0f} cells/s, {split_cpu * 1e3:.2f} ms CPU per cell")
    print(f"  fallback {fallback_rate:.0f} cells/s, {fallback_cpu * 1e3:.2f} ms CPU per cell")
    ratio = fallback_rate / split_rate
    print(f"  the split path takes {ratio:.2f}x the fallback path's time per cell "
          f"(target <= 1.5x: {ratio <= 1.5}); agreement {same / n_cells:.2%}")  # fmt: skip
    return {
        "fallback_path_cells_per_s": fallback_rate,
        "fallback_path_cpu_s": fallback_run["cpu"],
        "split_over_fallback_slowdown": ratio,
        "split_fallback_agreement": same / n_cells,
    }


if __name__ == "__main__":
    sys.exit(main())
