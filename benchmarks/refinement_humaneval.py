"""Target-DPO refinement on HumanEval dev problems against a live model.

Runs a whole ``pairs.method: target_dpo`` build (``cluster.driver.run_build`` on a
private local Ray runtime with one sandbox slot) on the first N problems of CodeT's
HumanEval dev split, each with its OWN tests (HumanEval's ``check(candidate)`` from
``dev-groundtruth.jsonl``, prompts from ``dev-k10.jsonl``), then reads the shards and
prints:

- pass rate by round: the fraction of trajectories whose version at round r passes every
  verified test, and the cumulative fraction passed by round r;
- pairs per problem, skips by reason, trajectories refined / passed_first / not_refined;
- where the wall time went: the sums of the per-problem ``timings`` (sample, execute,
  ...) against the build's wall time. Stages overlap (one problem samples while another
  executes, and a problem's rounds interleave with other problems'), so a sum is not a
  slice of the wall: sum / wall is the mean number of problems in that stage at once.

By default it serves the bundled SmolLM2-135M-Instruct itself (``services.local_model``,
one thread, as the live tests do); ``--base-url``/``--model`` point it at any other
OpenAI-compatible endpoint instead. Problems are posed instruction style through the
chat endpoint (the refinement turn is a chat conversation); ``--endpoint completions``
poses them completion style through ``/v1/completions`` instead.

    .venv/bin/python benchmarks/refinement_humaneval.py                     # 20 problems
    .venv/bin/python benchmarks/refinement_humaneval.py --problems 5 --rounds 2
    .venv/bin/python benchmarks/refinement_humaneval.py --base-url http://HOST:8000/v1 \\
        --model Qwen/Qwen2.5-Coder-7B-Instruct --k 2

A benchmark: it measures and prints, it asserts nothing. Plain text, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("PAIRFORGE_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
HUMANEVAL_DIR = SHARED_DATA / "codet-humaneval-codegen16b"


def humaneval_rows(n: int, style: str) -> list[dict[str, Any]]:
    """The first ``n`` dev problems with their prompts and their own ``check`` tests."""

    def read(name: str) -> list[dict[str, Any]]:
        with (HUMANEVAL_DIR / name).open(encoding="utf-8") as lines:
            return [json.loads(line) for line in lines if line.strip()]

    truth = {r["problem_id"]: r for r in read("dev-groundtruth.jsonl")}
    return [
        {
            "problem_id": r["problem_id"],
            "prompt": r["prompt"],
            "entry_point": r["entry_point"],
            "style": style,
            "tests": truth[r["problem_id"]]["test"],
        }
        for r in read("dev-k10.jsonl")[:n]
    ]


def job_spec(args: argparse.Namespace, source: Path, out: Path, base_url: str, model: str) -> Any:
    from pipeline.config import parse_job_spec

    return parse_job_spec(
        {
            "name": "bench-refinement-humaneval",
            "source": {"path": str(source)},
            "sampler": {
                "kind": "openai",
                "base_url": base_url,
                "model": model,
                "endpoint": args.endpoint,
                "k": args.k,
                "temperature": args.temperature,
                "max_tokens": args.max_tokens,
                "max_concurrency": 2,
                "max_retries": 2,
                "request_timeout_s": 300,
            },
            "sandbox": {"min_workers": 1, "max_workers": 1},
            "pairs": {"method": "target_dpo", "max_rounds": args.rounds},
            "output": {"uri": str(out), "problems_per_unit": 4},
        }
    )


def read_table(root: Path, table: str) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    files = sorted((root / table).glob("part-*.parquet"))
    return [row for f in files for row in pq.read_table(f).to_pylist()]


def _passed(version: dict[str, Any]) -> bool:
    return bool(version["statuses"]) and all(s == "passed" for s in version["statuses"])


def measure(out: Path, rounds: int, wall_s: float) -> dict[str, Any]:
    """The figures, from the shards alone."""
    problems = read_table(out, "problems")
    pairs = read_table(out, "pairs")
    trajectories = [t for p in problems for t in p["trajectories"]]
    n = len(trajectories)
    at_round, passed_at, passed_by = [], [], []
    for r in range(rounds + 1):
        versions = [t["versions"][r] for t in trajectories if len(t["versions"]) > r]
        at_round.append(len(versions))
        passed_at.append(sum(map(_passed, versions)))
        passed_by.append(sum(any(_passed(v) for v in t["versions"][: r + 1]) for t in trajectories))
    outcomes: Counter[str] = Counter()
    for t in trajectories:
        if not t["versions"] or not _passed(t["versions"][-1]):
            outcomes["not_refined"] += 1
        else:
            outcomes["refined" if len(t["versions"]) > 1 else "passed_first"] += 1
    timings: Counter[str] = Counter()
    for p in problems:
        timings.update(json.loads(p["timings"]))
    return {
        "problems": len(problems),
        "trajectories": n,
        "versions_at_round": at_round,
        "pass_rate_at_round": [x / n if n else 0.0 for x in passed_at],
        "passed_by_round": [x / n if n else 0.0 for x in passed_by],
        "pairs": len(pairs),
        "pairs_per_problem": len(pairs) / len(problems) if problems else 0.0,
        "pair_rounds": sorted(
            Counter(f"{p['rejected_round']}->{p['chosen_round']}" for p in pairs).items()
        ),
        "skips": dict(Counter(p["skip_reason"] for p in problems if p["skip_reason"])),
        "outcomes": {k: outcomes[k] for k in ("refined", "passed_first", "not_refined")},
        "build_wall_s": wall_s,
        "timings_sum_s": dict(sorted(timings.items())),
    }


def report(args: argparse.Namespace, figures: dict[str, Any], setup: dict[str, float]) -> None:
    n = figures["trajectories"]
    print()
    print(
        f"Target-DPO on {figures['problems']} HumanEval dev problems (own tests), k={args.k}, "
        f"max_rounds={args.rounds}, endpoint {args.endpoint}, model {args.model_name}"
    )
    print(f"trajectories: {n}")
    print(f"{'round':>5} {'versions':>8} {'pass at r':>10} {'passed by r':>12}")
    for r, (v, at, by) in enumerate(
        zip(
            figures["versions_at_round"],
            figures["pass_rate_at_round"],
            figures["passed_by_round"],
            strict=True,
        )
    ):
        print(f"{r:>5} {v:>8} {100 * at:>9.1f}% {100 * by:>11.1f}%")
    print("  pass at r: trajectories whose version at round r passes, over all trajectories")
    print("  passed by r: trajectories with a passing version at round r or earlier")
    outcomes = figures["outcomes"]
    print(
        f"trajectories refined {outcomes['refined']}, passed_first {outcomes['passed_first']}, "
        f"not_refined {outcomes['not_refined']}"
    )
    print(
        f"pairs {figures['pairs']} ({figures['pairs_per_problem']:.2f} per problem); "
        f"rejected->chosen rounds {figures['pair_rounds']}"
    )
    print(f"skips by reason: {figures['skips']}")
    wall = figures["build_wall_s"]
    print()
    print(
        f"setup (not in the build): model server {setup['model_start_s']:.1f} s, "
        f"Ray {setup['ray_start_s']:.1f} s"
    )
    print(f"build wall {wall:.1f} s; per-problem timings summed over problems:")
    for stage, seconds in figures["timings_sum_s"].items():
        print(f"  {stage:<10} {seconds:>9.1f} s   sum/wall {seconds / wall:>5.2f}")
    sample = figures["timings_sum_s"].get("sample", 0.0)
    execute = figures["timings_sum_s"].get("execute", 0.0)
    rest = wall - max(sample, execute) if wall > max(sample, execute) else 0.0
    print(
        "  Stages overlap: one problem waits on the model while another executes, so the\n"
        "  sums are not slices of the wall. sum/wall is the mean number of problems in that\n"
        "  stage at any moment. A problem's `sample` runs from its first request to its last\n"
        "  answer, queueing at the model server included; `execute` is its sandbox time."
    )
    print(
        f"  wall not covered even by the longest stage sum: {rest:.1f} s "
        "(Ray scheduling, parse/begin/finish, shard writes, idle tails)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--problems", type=int, default=20, help="First N dev problems.")
    parser.add_argument("--rounds", type=int, default=5, help="pairs.max_rounds.")
    parser.add_argument("--k", type=int, default=1, help="Trajectories per problem.")
    parser.add_argument(
        "--endpoint",
        choices=("chat", "completions"),
        default="chat",
        help="chat: instruction-style problems; completions: completion style.",
    )
    parser.add_argument("--temperature", type=float, default=0.8, help="Sampling temperature.")
    parser.add_argument("--max-tokens", type=int, default=256, help="Tokens per answer.")
    parser.add_argument("--base-url", default=None, help="Another OpenAI-compatible endpoint.")
    parser.add_argument("--model", default=None, help="Its model name (with --base-url).")
    parser.add_argument("--threads", type=int, default=1, help="Bundled model's threads.")
    parser.add_argument("--keep", type=Path, default=None, help="Write the build here.")
    args = parser.parse_args(argv)
    if not HUMANEVAL_DIR.is_dir():
        print(f"needs the shared HumanEval samples at {HUMANEVAL_DIR}", file=sys.stderr)
        return 2
    if (args.base_url is None) != (args.model is None):
        print("--base-url and --model go together", file=sys.stderr)
        return 2

    import ray

    from cluster.driver import run_build
    from cluster.runtime import quiet_ray_data
    from services import local_model

    scratch = Path(tempfile.mkdtemp(prefix="bench-refine-"))
    out = args.keep if args.keep is not None else scratch / "out"
    if out.exists():
        shutil.rmtree(out)
    source = scratch / "problems.jsonl"
    style = "instruction" if args.endpoint == "chat" else "completion"
    rows = humaneval_rows(args.problems, style)
    source.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")

    server = None
    started = time.perf_counter()
    if args.base_url is None:
        server = local_model.start(
            threads=args.threads, log_path=scratch / "server.log", ready_timeout_s=180.0
        )
        base_url, model = server.base_url, server.model
    else:
        base_url, model = args.base_url, args.model
    args.model_name = model
    setup = {"model_start_s": time.perf_counter() - started}
    try:
        started = time.perf_counter()
        # A private runtime: never join a cluster someone else runs on this machine.
        ray.init(
            address="local",
            num_cpus=os.cpu_count() or 2,
            resources={"sandbox": 1},
            include_dashboard=False,
            log_to_driver=False,
        )
        quiet_ray_data(False)
        setup["ray_start_s"] = time.perf_counter() - started
        spec = job_spec(args, source, out, base_url, model)
        print(f"building {len(rows)} problems into {out}; this takes minutes", flush=True)
        started = time.perf_counter()
        run_build(spec, job_id="bench-refinement")
        wall = time.perf_counter() - started
    finally:
        if ray.is_initialized():
            ray.shutdown()
        if server is not None:
            local_model.stop(server)
    figures = measure(out, args.rounds, wall)
    report(args, figures, setup)
    print(
        json.dumps(
            {
                "benchmark": "refinement_humaneval",
                "model": model,
                "endpoint": args.endpoint,
                "k": args.k,
                "max_rounds": args.rounds,
                **setup,
                **figures,
            }
        )
    )
    if args.keep is None:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
