"""Build throughput on CodeT's HumanEval dev split, against the same work without Ray.

Runs a whole ``pairforge`` build (replay sampler, ``dev-k<k>.jsonl``) on a local Ray
runtime and prints problems/s, cells/s, the share of wall time the executors spend
building pass matrices (sum of the per-problem ``execute`` timings / (wall × executors)),
and where the rest goes: Ray startup, parse, ranking, shard writes, and what is left
(Ray Data scheduling, executor actors and their containers starting, serialisation, idle
executors at the tail).

Baseline, measured in the same run after Ray is shut down: the same pass matrices built
directly with ``sandbox.matrix.MatrixBuilder`` over a container pool of as many containers
as the build has executors, then ranked, paired and written as shards by the same pipeline
functions, in one process. build wall / baseline wall is the cost of the Ray layer; the
baseline also reports container time (the sum of the requests' durations), which the build
does not record.

    .venv/bin/python benchmarks/build_throughput.py                 # all 82 problems, k=100
    .venv/bin/python benchmarks/build_throughput.py --limit 10      # the first 10 problems
    .venv/bin/python benchmarks/build_throughput.py --timeout 0.1 --isolation shared
    .venv/bin/python benchmarks/build_throughput.py --skip-baseline --keep runs/bench-build

Timings on a shared machine are noisy: rerun both sides on an idle machine before trusting a
ratio. Infinite-loop candidates cost the whole per-test timeout per cell, so the timeout
dominates a k=100 build: expect tens of minutes at 1 s per test.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("PAIRFORGE_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
HUMANEVAL_DIR = SHARED_DATA / "codet-humaneval-codegen16b"


@dataclass(frozen=True)
class BuildRun:
    """What the Ray build measured."""

    ray_startup_s: float
    build_s: float
    problems: int
    cells: int
    pairs: int
    parse_s: float
    execute_s: float
    rank_s: float
    status: dict[str, list[list[str]]]


@dataclass(frozen=True)
class BaselineRun:
    """What the same work without Ray measured."""

    pool_start_s: float
    wall_s: float
    parse_s: float
    matrices_s: float
    sandbox_s: float
    rank_s: float
    write_s: float
    cells: int
    status: dict[str, list[list[str]]]


def job_spec(args: argparse.Namespace, output: Path) -> Any:
    from pipeline.config import JobSpec

    source: dict[str, Any] = {"path": str(HUMANEVAL_DIR / f"dev-k{args.k}.jsonl")}
    if args.limit is not None:
        source["limit"] = args.limit
    return JobSpec.model_validate(
        {
            "name": f"bench-throughput-k{args.k}",
            "source": source,
            "sampler": {"kind": "replay", "k": args.k},
            "sandbox": {
                "timeout_s": args.timeout,
                "isolation": args.isolation,
                # A problem past the default 120 s budget would be skipped half-executed,
                # which is less work than the baseline does; keep the comparison fair.
                "problem_budget_s": 3600.0,
                "min_workers": args.workers,
                "max_workers": args.workers,
            },
            "output": {"uri": str(output), "problems_per_unit": 8},
        }
    )


def run_ray_build(args: argparse.Namespace, output: Path) -> BuildRun:
    import pyarrow.parquet as pq
    import ray

    from cluster.driver import run_build
    from cluster.runtime import connect, quiet_ray_data

    spec = job_spec(args, output)
    started = time.perf_counter()
    connect(None, sandbox_slots=args.workers)
    quiet_ray_data(False)
    ray_startup = time.perf_counter() - started
    summary = run_build(spec)
    build_s = time.perf_counter() - started - ray_startup
    ray.shutdown()
    rows = pq.read_table(output / "problems").to_pylist()
    timings = [json.loads(row["timings"]) for row in rows]
    return BuildRun(
        ray_startup_s=ray_startup,
        build_s=build_s,
        problems=summary.counts.problems,
        cells=summary.counts.cells,
        pairs=summary.counts.pairs,
        parse_s=sum(t.get("parse", 0.0) for t in timings),
        execute_s=sum(t.get("execute", 0.0) for t in timings),
        rank_s=sum(t.get("rank", 0.0) for t in timings),
        status={row["problem_id"]: row["status"] for row in rows},
    )


def run_baseline(args: argparse.Namespace, scratch: Path) -> BaselineRun:
    """Parse, build matrices over a plain pool, rank, pair and write shards: no Ray."""
    import pyarrow.parquet as pq

    from cluster.executor_actor import pool_config
    from pipeline.problem_state import ProblemState
    from pipeline.records import CellStatus, ReplayRow
    from pipeline.shards import pairs_table, problems_table
    from pipeline.stages import parse_step, rank_step
    from sandbox.matrix import MatrixBuilder, MatrixProblem
    from sandbox.pool import ContainerPool

    spec = job_spec(args, scratch)
    rows = []
    with (HUMANEVAL_DIR / f"dev-k{args.k}.jsonl").open(encoding="utf-8") as lines:
        for line in lines:
            rows.append(ReplayRow.model_validate(json.loads(line)))
            if args.limit is not None and len(rows) >= args.limit:
                break
    started = time.perf_counter()
    states = {
        row.problem_id: parse_step(ProblemState.from_input(i, row)) for i, row in enumerate(rows)
    }
    candidates = {pid: s.candidates for pid, s in states.items() if s.candidates is not None}
    parse_s = time.perf_counter() - started
    matrices = [
        MatrixProblem(
            problem_id=pid,
            programs=[code.program for code in c.codes],
            tests=[test.source for test in c.tests],
        )
        for pid, c in candidates.items()
        if c.codes and c.tests
    ]
    pool_started = time.perf_counter()
    with ContainerPool(pool_config(spec.sandbox, workers=args.workers)) as pool:
        pool_start_s = time.perf_counter() - pool_started
        builder = MatrixBuilder(pool, budget_s=spec.sandbox.problem_budget_s)
        matrices_started = time.perf_counter()
        results = list(builder.build_many(matrices))
        matrices_s = time.perf_counter() - matrices_started
    status = {r.problem_id: [[cell.value for cell in row] for row in r.status] for r in results}
    rank_started = time.perf_counter()
    outcomes, pairs = [], []
    for pid, c in candidates.items():
        matrix = [[CellStatus(cell) for cell in row] for row in status.get(pid, [])]
        if not matrix:
            matrix = [[] for _ in c.codes]
        ranked = rank_step(
            states[pid].model_copy(update={"status": matrix}), spec, job_id="baseline"
        )
        if ranked.outcome is not None:
            outcomes.append(ranked.outcome)
        pairs.extend(ranked.pairs)
    rank_s = time.perf_counter() - rank_started
    write_started = time.perf_counter()
    pq.write_table(problems_table(outcomes), scratch / "baseline-problems.parquet")
    pq.write_table(pairs_table(pairs), scratch / "baseline-pairs.parquet")
    write_s = time.perf_counter() - write_started
    return BaselineRun(
        pool_start_s=pool_start_s,
        wall_s=time.perf_counter() - started,
        parse_s=parse_s,
        matrices_s=matrices_s,
        sandbox_s=sum(r.timings.sandbox_s for r in results),
        rank_s=rank_s,
        write_s=write_s,
        cells=sum(r.timings.cells for r in results),
        status=status,
    )


def agreement(a: dict[str, list[list[str]]], b: dict[str, list[list[str]]]) -> tuple[int, int]:
    """(cells with the same status in both runs, cells compared)."""
    same = total = 0
    for pid, rows in a.items():
        for row_a, row_b in zip(rows, b.get(pid, []), strict=False):
            for x, y in zip(row_a, row_b, strict=False):
                total += 1
                same += x == y
    return same, total


def report(args: argparse.Namespace, build: BuildRun, baseline: BaselineRun | None) -> None:
    wall = build.ray_startup_s + build.build_s
    w = args.workers
    print()
    print(
        f"Build throughput: {build.problems} problems of dev-k{args.k}, {build.cells} cells, "
        f"{build.pairs} pairs; timeout {args.timeout} s per test, {args.isolation} isolation, "
        f"{w} executors (timings on a shared machine are noisy)"
    )
    print(f"{'':<28} {'wall s':>8} {'problems/s':>10} {'cells/s':>9}")
    print(
        f"{'pairforge build (Ray)':<28} {wall:>8.1f} {build.problems / wall:>10.3f} "
        f"{build.cells / wall:>9.0f}"
    )
    if baseline is not None:
        print(
            f"{'baseline (MatrixBuilder)':<28} {baseline.wall_s:>8.1f} "
            f"{build.problems / baseline.wall_s:>10.3f} {baseline.cells / baseline.wall_s:>9.0f}"
        )
        print(f"build wall / baseline wall: {wall / baseline.wall_s:.2f}")
    print()
    print(f"build wall {wall:.1f} s, of which:")
    executing = build.execute_s / w
    rows = [
        ("Ray startup (ray.init)", build.ray_startup_s),
        (f"executing (Σ execute {build.execute_s:.1f} s / {w})", executing),
        (f"parse (Σ {build.parse_s:.2f} s, in Ray tasks)", build.parse_s),
        (f"rank + pairs (Σ {build.rank_s:.2f} s, in Ray tasks)", build.rank_s),
    ]
    for label, seconds in rows:
        print(f"  {label:<48} {seconds:>8.1f} s  {100 * seconds / wall:>5.1f} %")
    rest = wall - sum(seconds for _, seconds in rows)
    print(
        f"  {'rest: shard writes, scheduling, actor/container start, idle':<48} {rest:>8.1f} s  "
        f"{100 * rest / wall:>5.1f} %"
    )
    print(
        f"sandbox share of wall (Σ execute / (wall × executors)): "
        f"{100 * build.execute_s / (wall * w):.1f} %"
    )
    if baseline is not None:
        print()
        print(f"baseline wall {baseline.wall_s:.1f} s, of which:")
        for label, seconds in (
            ("container pool start", baseline.pool_start_s),
            ("pass matrices (MatrixBuilder.build_many)", baseline.matrices_s),
            ("parse", baseline.parse_s),
            ("rank + pairs", baseline.rank_s),
            ("shard writes (local Parquet)", baseline.write_s),
        ):
            print(f"  {label:<48} {seconds:>8.1f} s  {100 * seconds / baseline.wall_s:>5.1f} %")
        print(
            f"baseline container time Σ {baseline.sandbox_s:.1f} s: containers busy "
            f"{100 * baseline.sandbox_s / (baseline.matrices_s * w):.1f} % of the matrix phase"
        )
        same, total = agreement(build.status, baseline.status)
        print(
            f"status agreement build vs baseline: {same}/{total} cells "
            f"({100 * same / max(total, 1):.3f} %; timing-sensitive cells may differ)"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--k", type=int, default=100, choices=(10, 100), help="Samples split.")
    parser.add_argument("--limit", type=int, default=None, help="First N problems only.")
    parser.add_argument("--timeout", type=float, default=1.0, help="Per-test timeout (s).")
    parser.add_argument(
        "--isolation", choices=("process", "shared"), default="process", help="Test isolation."
    )
    parser.add_argument("--workers", type=int, default=2, help="Executors (and baseline pool).")
    parser.add_argument("--skip-baseline", action="store_true", help="Only run the build.")
    parser.add_argument(
        "--keep", type=Path, default=None, help="Write the build here and keep it (new dir)."
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not HUMANEVAL_DIR.is_dir():
        print(
            f"build_throughput: the shared HumanEval samples are not at {HUMANEVAL_DIR} "
            "(../shared is absent; set PAIRFORGE_SHARED_DATA); nothing to measure",
            file=sys.stderr,
        )
        return 2
    scratch = Path(tempfile.mkdtemp(prefix="pairforge-bench-"))
    try:
        output = args.keep or scratch / "build"
        print(f"building dev-k{args.k} into {output}; this takes minutes", flush=True)
        build = run_ray_build(args, output)
        baseline = None
        if not args.skip_baseline:
            print("baseline: the same matrices over a plain container pool", flush=True)
            baseline = run_baseline(args, scratch)
        report(args, build, baseline)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
