"""Ranking quality on CodeT's HumanEval dev split: pass@1 of the chosen code per ranker.

Runs a build (replay sampler, ``dev-k100.jsonl``: 82 HumanEval problems with 100 CodeGen-16B
code and 100 test samples each) or reuses one, then, from its ``problems`` shards alone,
re-ranks every problem with each ranker, runs every distinct code once against HumanEval's
own ``check(entry_point)`` in the sandbox, and prints per ranker:

- pass@1 of the top code after the deterministic tie-break, and the expectation over the
  top tie group (CodeT's figure: groups of equal score are merged and one *sample* of the
  merged top group is drawn uniformly, so duplicates weigh by their multiplicity);
- the random baseline: expected pass@1 of one uniformly random sample among all k samples
  of a problem, empty completions included;
- pair precision: chosen correct, rejected wrong, and both, for the build's own pairs and
  for the pairs each ranker would select from the same matrices.

Problems with no passing (code, test) cell use the random estimate, as CodeT does.
References on this split (ALGORITHMS.md §3.5): random 23.5 %, CodeT 38.2 %.

    .venv/bin/python benchmarks/ranking_quality.py                   # build + score
    .venv/bin/python benchmarks/ranking_quality.py --reuse           # score an existing build
    .venv/bin/python benchmarks/ranking_quality.py --timeout 0.1 --isolation shared  # as CodeT
    .venv/bin/python benchmarks/ranking_quality.py --k 10 --limit 5  # quick look

The build writes to ``runs/bench-ranking-k<k>-t<timeout>-<isolation>`` (``--output``); the
ground-truth verdicts are cached there as ``groundtruth-t<timeout>.json`` and the figures
written as ``ranking_quality.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.config import JobSpec, RankingConfig
from pipeline.parsing import truncate_completion
from pipeline.problem_state import ProblemState
from pipeline.ranking import binary_matrix, make_ranker, top_group
from pipeline.records import (
    Candidates,
    CellStatus,
    CodeCandidate,
    Problem,
    StatusMatrix,
    TestCandidate,
)
from pipeline.stages import rank_step

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("PAIRFORGE_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
HUMANEVAL_DIR = SHARED_DATA / "codet-humaneval-codegen16b"

RANKERS = ("codet", "pagerank", "hits", "passcount")
REFERENCE_RANDOM = 0.235
REFERENCE_CODET = 0.382
BAR_POINTS = 1.0
"""The ``codet`` ranker must land within this many points of CodeT's 38.2 %."""


# ---------------------------------------------------------------- pure scoring helpers


def random_pass_at_1(sample_correct: Sequence[bool]) -> float:
    """Expected pass@1 of one uniformly random sample: the fraction of correct samples.

    ``sample_correct`` has one entry per *sample* (k of them, duplicates and empty
    completions included), which is CodeT's ``pass@1`` estimator with n = k, c = correct.

    >>> random_pass_at_1([True, False, False, True])
    0.5
    """
    if not sample_correct:
        return 0.0
    return sum(bool(c) for c in sample_correct) / len(sample_correct)


def group_pass_at_1(
    group: Iterable[int], code_counts: Sequence[int], correct: Sequence[bool]
) -> float:
    """Expected pass@1 of one uniformly random *sample* from a group of distinct codes.

    A code produced by m samples is m samples of the group (CodeT expands solutions by
    their frequency before merging equal-score groups), so the result is
    ``Σ m_i·correct_i / Σ m_i`` over the group.

    >>> group_pass_at_1([0, 2], [3, 5, 1], [True, False, False])
    0.75
    """
    members = list(group)
    total = sum(code_counts[i] for i in members)
    if total == 0:
        return 0.0
    return sum(code_counts[i] for i in members if correct[i]) / total


@dataclass(frozen=True)
class RankedPick:
    """What one ranker chose on one problem, scored against the ground truth."""

    top1: float
    """1.0 if the top code after the tie-break is correct (the random estimate on fallback)."""
    group: float
    """Expected pass@1 over the top tie group, by sample multiplicity."""
    group_size: int
    """Samples in the top tie group (0 on fallback)."""
    fallback: bool
    """No code passed any test: both figures are the random estimate."""


def ranked_pick(
    ranker_name: str,
    status: StatusMatrix,
    code_counts: Sequence[int],
    test_counts: Sequence[int],
    correct: Sequence[bool],
    random_estimate: float,
) -> RankedPick:
    """Rank one problem's codes from its status matrix and score the pick.

    Args:
        ranker_name: ``codet``, ``pagerank``, ``hits`` or ``passcount`` (default settings).
        status: ``status[i][j]`` of distinct code i against distinct test j.
        code_counts: samples behind each distinct code.
        test_counts: occurrences of each distinct assert.
        correct: ground-truth verdict of each distinct code.
        random_estimate: the problem's random-sample pass@1, used when nothing passed.
    """
    if len(correct) != len(code_counts) or len(status) != len(code_counts):
        raise ValueError(
            f"need one status row, count and verdict per code; got {len(status)} rows, "
            f"{len(code_counts)} counts, {len(correct)} verdicts"
        )
    passed = binary_matrix(status)
    if passed.size == 0 or not passed.any():
        return RankedPick(random_estimate, random_estimate, 0, fallback=True)
    result = make_ranker(RankingConfig(ranker=ranker_name)).rank(passed, code_counts, test_counts)
    group = top_group(result)
    return RankedPick(
        top1=1.0 if correct[result.order[0]] else 0.0,
        group=group_pass_at_1(group, code_counts, correct),
        group_size=sum(code_counts[i] for i in group),
        fallback=False,
    )


@dataclass(frozen=True)
class PairPrecision:
    """How often pairs have a correct chosen and a wrong rejected code."""

    pairs: int
    chosen_correct: float
    rejected_wrong: float
    both: float


def pair_precision(labels: Iterable[tuple[bool, bool]]) -> PairPrecision:
    """Precision of pairs given ``(chosen is correct, rejected is correct)`` per pair.

    >>> pair_precision([(True, False), (True, True), (False, False), (True, False)])
    PairPrecision(pairs=4, chosen_correct=0.75, rejected_wrong=0.75, both=0.5)
    """
    rows = list(labels)
    if not rows:
        return PairPrecision(0, 0.0, 0.0, 0.0)
    n = len(rows)
    return PairPrecision(
        pairs=n,
        chosen_correct=sum(c for c, _ in rows) / n,
        rejected_wrong=sum(not r for _, r in rows) / n,
        both=sum(c and not r for c, r in rows) / n,
    )


# ---------------------------------------------------------------- data


@dataclass(frozen=True)
class InputProblem:
    """One input row: the problem, its raw code samples and its ground-truth check."""

    problem: Problem
    code_completions: list[str]
    check: str


def load_inputs(k: int, limit: int | None) -> list[InputProblem]:
    """``dev-k<k>.jsonl`` joined with ``dev-groundtruth.jsonl`` by problem id."""
    truth = {}
    with (HUMANEVAL_DIR / "dev-groundtruth.jsonl").open(encoding="utf-8") as lines:
        for line in lines:
            row = json.loads(line)
            truth[row["problem_id"]] = row
    inputs = []
    with (HUMANEVAL_DIR / f"dev-k{k}.jsonl").open(encoding="utf-8") as lines:
        for line in lines:
            row = json.loads(line)
            gt = truth[row["problem_id"]]
            problem = Problem(
                problem_id=row["problem_id"],
                prompt=row["prompt"],
                entry_point=row["entry_point"],
                style=row.get("style", "completion"),
            )
            check = f"{gt['test']}\ncheck({gt['entry_point']})\n"
            inputs.append(InputProblem(problem, list(row["code_completions"]), check))
            if limit is not None and len(inputs) >= limit:
                break
    return inputs


def build_spec(args: argparse.Namespace, output: Path) -> JobSpec:
    """The benchmark's build: replay, default ranker, a budget no problem reaches."""
    source: dict[str, Any] = {"path": str(HUMANEVAL_DIR / f"dev-k{args.k}.jsonl")}
    if args.limit is not None:
        source["limit"] = args.limit
    return JobSpec.model_validate(
        {
            "name": f"bench-ranking-k{args.k}",
            "source": source,
            "sampler": {"kind": "replay", "k": args.k},
            "sandbox": {
                "timeout_s": args.timeout,
                "isolation": args.isolation,
                # Slow problems at k=100 run for minutes; a partial matrix would be skipped
                # as time_budget and bias the figures, so the budget is out of the way.
                "problem_budget_s": 3600.0,
                "min_workers": args.workers,
                "max_workers": args.workers,
            },
            "ranking": {"ranker": args.build_ranker},
            "output": {"uri": str(output), "problems_per_unit": 8},
        }
    )


def run_or_reuse_build(args: argparse.Namespace, output: Path) -> None:
    """Build into ``output`` unless ``--reuse`` finds a finished build there."""
    if args.reuse and (output / "manifest.json").is_file():
        print(f"reusing the build in {output}")
        return
    from cluster.driver import run_build
    from cluster.runtime import connect, quiet_ray_data

    spec = build_spec(args, output)
    print(
        f"building {spec.source.path} into {output} (timeout {args.timeout} s, "
        f"{args.isolation} isolation, {args.workers} executors); this takes minutes"
    )
    started = time.perf_counter()
    connect(None, sandbox_slots=args.workers)
    quiet_ray_data(False)
    summary = run_build(spec, resume=args.reuse)
    print(
        f"build done in {time.perf_counter() - started:.0f} s: {summary.counts.problems} "
        f"problems, {summary.counts.cells} cells, {summary.counts.pairs} pairs"
    )


def read_table(output: Path, name: str) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    rows: list[dict[str, Any]] = pq.read_table(output / name).to_pylist()
    return rows


def ground_truth(
    inputs: Sequence[InputProblem],
    problems: Sequence[Mapping[str, Any]],
    output: Path,
    timeout_s: float,
    workers: int,
) -> dict[str, dict[str, CellStatus]]:
    """Status of every distinct code against ``check``, cached in ``output``.

    The codes are the raw input's completions truncated as the parser does, so codes the
    parser dropped (empty ones) are judged too, since the random baseline needs every
    sample, plus the build's own codes in case parsing altered one (oversize, bad unicode).
    """
    from sandbox.limits import PoolConfig
    from sandbox.matrix import MatrixBuilder, MatrixProblem
    from sandbox.pool import ContainerPool
    from sandbox.types import Isolation

    cache = output / f"groundtruth-t{timeout_s:g}.json"
    verdicts: dict[str, dict[str, CellStatus]] = {}
    if cache.is_file():
        stored = json.loads(cache.read_text(encoding="utf-8"))
        verdicts = {
            pid: {code: CellStatus(s) for code, s in codes.items()} for pid, codes in stored.items()
        }
    built = {row["problem_id"]: row["codes"] for row in problems}
    todo = []
    for item in inputs:
        pid = item.problem.problem_id
        known = verdicts.get(pid, {})
        wanted = {truncate_completion(c) for c in item.code_completions} | set(built.get(pid, []))
        codes = sorted(wanted - set(known))
        if codes:
            todo.append((item, codes))
    if todo:
        n_codes = sum(len(codes) for _, codes in todo)
        print(f"judging {n_codes} distinct codes of {len(todo)} problems against check()")
        by_id = {item.problem.problem_id: (item, codes) for item, codes in todo}
        started = time.perf_counter()
        config = PoolConfig(workers=workers, timeout_s=timeout_s, isolation=Isolation.PROCESS)
        with ContainerPool(config) as pool:
            builder = MatrixBuilder(pool, budget_s=3600.0)
            requests = (
                MatrixProblem(
                    problem_id=item.problem.problem_id,
                    programs=[item.problem.prompt + code for code in codes],
                    tests=[item.check],
                )
                for item, codes in todo
            )
            for result in builder.build_many(requests):
                _, codes = by_id[result.problem_id]
                known = verdicts.setdefault(result.problem_id, {})
                for code, row in zip(codes, result.status, strict=True):
                    known[code] = CellStatus(row[0].value)
        print(f"judged in {time.perf_counter() - started:.0f} s")
        cache.write_text(
            json.dumps(
                {pid: {c: s.value for c, s in codes.items()} for pid, codes in verdicts.items()}
            ),
            encoding="utf-8",
        )
    return verdicts


def candidates_from_row(row: Mapping[str, Any], problem: Problem) -> Candidates:
    """A problems-table row back to candidates (codes are stored in first-seen order)."""
    return Candidates(
        problem_id=row["problem_id"],
        codes=[
            CodeCandidate(completion=code, program=problem.prompt + code, count=n, first_sample=i)
            for i, (code, n) in enumerate(zip(row["codes"], row["code_counts"], strict=True))
        ],
        tests=[
            TestCandidate(source=test, count=n, first_sample=j)
            for j, (test, n) in enumerate(zip(row["tests"], row["test_counts"], strict=True))
        ],
    )


# ---------------------------------------------------------------- report


def score(
    inputs: Sequence[InputProblem],
    problems: Sequence[Mapping[str, Any]],
    build_pairs: Sequence[Mapping[str, Any]],
    verdicts: Mapping[str, Mapping[str, CellStatus]],
    spec: JobSpec,
) -> dict[str, Any]:
    """Every figure the benchmark prints, as a JSON-ready dict."""
    by_id = {row["problem_id"]: row for row in problems}
    missing = [item.problem.problem_id for item in inputs if item.problem.problem_id not in by_id]
    if missing:
        raise SystemExit(f"the build has no problems row for {missing[:5]} ({len(missing)} in all)")
    randoms: list[float] = []
    picks: dict[str, list[RankedPick]] = {name: [] for name in RANKERS}
    pair_labels: dict[str, list[tuple[bool, bool]]] = {name: [] for name in RANKERS}
    gt_status: dict[str, int] = {}
    cell_status: dict[str, int] = {}
    n_tests, n_asserts = [], []
    for item in inputs:
        pid = item.problem.problem_id
        row = by_id[pid]
        judged = verdicts[pid]
        for code in (truncate_completion(c) for c in item.code_completions):
            gt_status[judged[code].value] = gt_status.get(judged[code].value, 0) + 1
        sample_correct = [
            judged[truncate_completion(c)] is CellStatus.PASSED for c in item.code_completions
        ]
        random_estimate = random_pass_at_1(sample_correct)
        randoms.append(random_estimate)
        correct = [judged[code] is CellStatus.PASSED for code in row["codes"]]
        status = [[CellStatus(cell) for cell in cells] for cells in row["status"]]
        for cells in row["status"]:
            for cell in cells:
                cell_status[cell] = cell_status.get(cell, 0) + 1
        n_tests.append(len(row["tests"]))
        n_asserts.append(sum(row["test_counts"]))
        candidates = candidates_from_row(row, item.problem)
        for name in RANKERS:
            picks[name].append(
                ranked_pick(
                    name, status, row["code_counts"], row["test_counts"], correct, random_estimate
                )
            )
            if not row["codes"] or not row["tests"]:
                continue
            ranker_spec = spec.model_copy(
                update={"ranking": spec.ranking.model_copy(update={"ranker": name})}
            )
            state = ProblemState(
                index=0, problem=item.problem, candidates=candidates, status=status
            )
            pairs = rank_step(state, ranker_spec, job_id="bench").pairs
            pair_labels[name].extend(
                (correct[p.chosen_index], correct[p.rejected_index]) for p in pairs
            )
    build_labels = [
        (
            verdicts[p["problem_id"]][p["chosen"]] is CellStatus.PASSED,
            verdicts[p["problem_id"]][p["rejected"]] is CellStatus.PASSED,
        )
        for p in build_pairs
    ]
    return {
        "problems": len(inputs),
        "random": float(np.mean(randoms)),
        "rankers": {
            name: {
                "top1": float(np.mean([p.top1 for p in picks[name]])),
                "group": float(np.mean([p.group for p in picks[name]])),
                "mean_group_samples": float(
                    np.mean([p.group_size for p in picks[name] if not p.fallback] or [0])
                ),
                "fallback": sum(p.fallback for p in picks[name]),
                "pairs": asdict(pair_precision(pair_labels[name])),
            }
            for name in RANKERS
        },
        "build_ranker": spec.ranking.ranker,
        "build_pairs": asdict(pair_precision(build_labels)),
        "mean_distinct_tests": float(np.mean(n_tests)),
        "mean_asserts": float(np.mean(n_asserts)),
        "cell_status": dict(sorted(cell_status.items())),
        "groundtruth_status": dict(sorted(gt_status.items())),
    }


def print_report(figures: Mapping[str, Any], args: argparse.Namespace) -> None:
    pct = 100.0
    print()
    print(
        f"Ranking quality: {figures['problems']} problems of dev-k{args.k}, per-test timeout "
        f"{args.timeout} s ({args.isolation} isolation), ground truth timeout {args.gt_timeout} s"
    )
    print(
        f"parsed tests: {figures['mean_distinct_tests']:.1f} distinct asserts per problem "
        f"({figures['mean_asserts']:.1f} with duplicates; CodeT: 50.8 and 55.6)"
    )
    print(f"cells: {figures['cell_status']}")
    print(f"ground truth per sample: {figures['groundtruth_status']}")
    print()
    header = (
        f"{'ranker':<10} {'pass@1 top':>10} {'pass@1 tie-grp':>14} {'grp samples':>11} "
        f"{'fallback':>8} {'pairs':>5} {'chosen ok':>9} {'rejected bad':>12} {'both':>6}"
    )
    print(header)
    print("-" * len(header))
    print(f"{'random':<10} {figures['random'] * pct:>10.1f} {figures['random'] * pct:>14.1f}")
    for name in RANKERS:
        r = figures["rankers"][name]
        p = r["pairs"]
        print(
            f"{name:<10} {r['top1'] * pct:>10.1f} {r['group'] * pct:>14.1f} "
            f"{r['mean_group_samples']:>11.1f} {r['fallback']:>8d} {p['pairs']:>5d} "
            f"{p['chosen_correct'] * pct:>9.1f} {p['rejected_wrong'] * pct:>12.1f} "
            f"{p['both'] * pct:>6.1f}"
        )
    bp = figures["build_pairs"]
    print(
        f"build's own pairs ({figures['build_ranker']}): {bp['pairs']} pairs, chosen correct "
        f"{bp['chosen_correct'] * pct:.1f} %, rejected wrong {bp['rejected_wrong'] * pct:.1f} %, "
        f"both {bp['both'] * pct:.1f} %"
    )
    print()
    print(
        f"reference (CodeT's implementation on this split): random {REFERENCE_RANDOM * pct:.1f}, "
        f"CodeT {REFERENCE_CODET * pct:.1f}"
    )
    codet = figures["rankers"]["codet"]["group"]
    gap = (codet - REFERENCE_CODET) * pct
    verdict = "MEETS" if abs(gap) <= BAR_POINTS else "MISSES"
    print(
        f"codet tie-group pass@1 {codet * pct:.1f} vs 38.2: {gap:+.1f} points, {verdict} the "
        f"±{BAR_POINTS:g}-point bar"
        + ("" if figures["problems"] == 82 else " (partial run: the bar applies to all 82)")
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=None, help="Build directory.")
    parser.add_argument("--k", type=int, default=100, choices=(10, 100), help="Samples split.")
    parser.add_argument("--timeout", type=float, default=1.0, help="Per-test timeout (s).")
    parser.add_argument(
        "--isolation", choices=("process", "shared"), default="process", help="Test isolation."
    )
    parser.add_argument(
        "--gt-timeout", type=float, default=3.0, help="Timeout of the ground-truth check (s)."
    )
    parser.add_argument("--workers", type=int, default=2, help="Executors / containers.")
    parser.add_argument("--limit", type=int, default=None, help="First N problems only.")
    parser.add_argument(
        "--build-ranker", choices=RANKERS, default="pagerank", help="Ranker of the build's pairs."
    )
    parser.add_argument("--reuse", action="store_true", help="Reuse (or resume) --output.")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not HUMANEVAL_DIR.is_dir():
        print(
            f"ranking_quality: the shared HumanEval samples are not at {HUMANEVAL_DIR} "
            "(../shared is absent; set PAIRFORGE_SHARED_DATA); nothing to measure",
            file=sys.stderr,
        )
        return 2
    limit_tag = "" if args.limit is None else f"-n{args.limit}"
    output = args.output or (
        REPO_ROOT
        / "runs"
        / f"bench-ranking-k{args.k}{limit_tag}-t{args.timeout:g}-{args.isolation}"
    )
    inputs = load_inputs(args.k, args.limit)
    run_or_reuse_build(args, output)
    manifest = json.loads((output / "manifest.json").read_text(encoding="utf-8"))
    spec = JobSpec.model_validate(manifest["spec"])
    problems = read_table(output, "problems")
    verdicts = ground_truth(inputs, problems, output, args.gt_timeout, args.workers)
    figures = score(inputs, problems, read_table(output, "pairs"), verdicts, spec)
    figures["settings"] = {
        "k": args.k,
        "timeout_s": spec.sandbox.timeout_s,
        "isolation": spec.sandbox.isolation,
        "gt_timeout_s": args.gt_timeout,
        "output": str(output),
    }
    args.timeout, args.isolation = spec.sandbox.timeout_s, spec.sandbox.isolation
    (output / "ranking_quality.json").write_text(json.dumps(figures, indent=2), encoding="utf-8")
    print_report(figures, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
