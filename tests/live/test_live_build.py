"""Live builds: real model text from the bundled model, the real sandbox, real shards.

One build per prompt style over the first two problems of ``examples/live``:

- completion style: HumanEval-like prompts continued through ``/v1/completions`` (code
  and tests sampled separately, with the parser's stop sequences), plus one problem whose
  prompt exceeds the server's context window: its samples are refused (HTTP 400) and the
  problem is counted as a sampler error, not a crash;
- instruction style: chat answers to the joint prompt (a solution and a test file, fenced).

Only mechanics and invariants are asserted, never how good the 135M model's code is.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import yaml

from pipeline.config import JobSpec, parse_job_spec
from pipeline.manifest import Manifest
from pipeline.records import CellStatus, SkipReason
from tests.conftest import REPO_ROOT, SANDBOX_IMAGE, requires_sandbox_image

pytestmark = [requires_sandbox_image, pytest.mark.ray, pytest.mark.docker]

EXAMPLE = REPO_ROOT / "examples" / "live"
K = 2
PROBLEMS_PER_STYLE = 2
OVERFLOW_ID = "live/overflow"


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _overflow_problem(n_ctx: int) -> dict[str, Any]:
    # Each line is several tokens, so the docstring alone is far past the context window.
    filler = "".join(f"    step {i}: add the numbers together.\n" for i in range(n_ctx))
    return {
        "problem_id": OVERFLOW_ID,
        "prompt": f'def add(a: int, b: int) -> int:\n    """Add.\n\n{filler}    """\n',
        "entry_point": "add",
        "style": "completion",
    }


def _live_spec(job: str, live_model, source: Path, out: Path, max_tokens: int) -> JobSpec:
    data = yaml.safe_load((EXAMPLE / job).read_text())
    data["source"]["path"] = str(source)
    data["sampler"].update(
        base_url=live_model.base_url, model=live_model.model, k=K, max_tokens=max_tokens
    )
    data["sandbox"]["image"] = SANDBOX_IMAGE
    data["output"] = {"uri": str(out), "problems_per_unit": 2}
    return parse_job_spec(data)


def _read(root: Path, table: str) -> list[dict[str, Any]]:
    return [
        r
        for f in sorted((root / table).glob("part-*.parquet"))
        for r in pq.read_table(f).to_pylist()
    ]


def _build(spec: JobSpec, job_id: str) -> dict[str, Any]:
    from cluster.driver import run_build

    started = time.monotonic()
    summary = run_build(spec, job_id=job_id)
    wall = time.monotonic() - started
    out = Path(spec.output.uri)
    problems = _read(out, "problems")
    timings = [json.loads(p["timings"]) for p in problems]
    # For the note: where a live build's time goes (-s shows it).
    print(
        f"\n{job_id}: wall {wall:.1f} s; per-problem sample "
        f"{sum(t.get('sample', 0.0) for t in timings):.1f} s, execute "
        f"{sum(t.get('execute', 0.0) for t in timings):.1f} s; counts {summary.counts}"
    )
    return {
        "out": out,
        "summary": summary,
        "manifest": Manifest.model_validate_json((out / "manifest.json").read_text()),
        "problems": problems,
        "pairs": _read(out, "pairs"),
        "timings": timings,
    }


@pytest.fixture(scope="module")
def completion_build(live_model, ray_with_sandbox, tmp_path_factory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("live-completion")
    rows = _rows(EXAMPLE / "problems.jsonl")[:PROBLEMS_PER_STYLE]
    rows.append(_overflow_problem(live_model.n_ctx))
    source = tmp / "problems.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = _live_spec("job.yaml", live_model, source, tmp / "out", max_tokens=64)
    return _build(spec, "live-completion")


@pytest.fixture(scope="module")
def instruct_build(live_model, ray_with_sandbox, tmp_path_factory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("live-instruct")
    rows = _rows(EXAMPLE / "problems-instruct.jsonl")[:PROBLEMS_PER_STYLE]
    source = tmp / "problems.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = _live_spec("job-instruct.yaml", live_model, source, tmp / "out", max_tokens=256)
    return _build(spec, "live-instruct")


def _check_consistent(build: dict[str, Any], expected_ids: list[str]) -> None:
    manifest, problems, pairs = build["manifest"], build["problems"], build["pairs"]
    assert [p["problem_id"] for p in problems] == expected_ids
    assert manifest.counts.problems == build["summary"].counts.problems == len(problems)
    assert manifest.counts.pairs == len(pairs) == sum(p["pairs_emitted"] for p in problems)
    assert sum(manifest.counts.skips.values()) == sum(
        p["skip_reason"] is not None for p in problems
    )
    assert manifest.counts.cells == sum(len(p["codes"]) * len(p["tests"]) for p in problems)
    assert manifest.counts.candidates == sum(len(p["codes"]) + len(p["tests"]) for p in problems)
    for shard in manifest.shards:
        assert pq.read_metadata(build["out"] / shard.path).num_rows == shard.rows
    progress = json.loads((build["out"] / "progress.json").read_text())
    assert progress["state"] == "succeeded"
    statuses = {s.value for s in CellStatus} - {CellStatus.SANDBOX_ERROR.value}
    for p in problems:
        # The pass matrix: one row per distinct code, one column per distinct test, every
        # cell a real verdict of the sandbox (no infrastructure errors).
        assert len(p["status"]) == len(p["codes"]) == len(p["code_counts"])
        assert all(len(row) == len(p["tests"]) == len(p["test_counts"]) for row in p["status"])
        assert {cell for row in p["status"] for cell in row} <= statuses
    for pair_row in pairs:
        assert pair_row["generator_model"] == manifest.spec["sampler"]["model"]
        assert pair_row["chosen"] != pair_row["rejected"]


def _accounted_codes(problem: dict[str, Any]) -> int:
    """Code samples the row accounts for: distinct codes with their repeats, plus drops."""
    stats = json.loads(problem["parse_stats"])
    dropped = stats.get("empty_code", 0) + stats.get("no_code_block", 0)
    return sum(problem["code_counts"]) + dropped


def test_completion_build_is_consistent_and_counts_the_overflow(completion_build) -> None:
    ids = [r["problem_id"] for r in _rows(EXAMPLE / "problems.jsonl")[:PROBLEMS_PER_STYLE]]
    _check_consistent(completion_build, [*ids, OVERFLOW_ID])
    problems = {p["problem_id"]: p for p in completion_build["problems"]}

    # Too long for the context window: refused at once, counted, the build goes on.
    overflow = problems.pop(OVERFLOW_ID)
    assert overflow["skip_reason"] == SkipReason.SAMPLER_ERROR.value
    assert "HTTP 400, not retried" in overflow["error"]
    assert overflow["codes"] == [] and overflow["status"] == []
    assert completion_build["manifest"].counts.skips.get(SkipReason.SAMPLER_ERROR.value) == 1

    entry_points = {r["problem_id"]: r["entry_point"] for r in _rows(EXAMPLE / "problems.jsonl")}
    for p in problems.values():
        stats = json.loads(p["parse_stats"])
        assert "sampler_errors" not in stats, p["error"]
        # Every real sample was parsed: a distinct code (with its repeats) or a counted drop.
        assert _accounted_codes(p) == K
        # Completion-style tests continue "assert " and must call the entry point.
        assert all(t.startswith("assert ") for t in p["tests"])
        assert all(entry_points[p["problem_id"]] in t for t in p["tests"])


def test_instruct_build_is_consistent(instruct_build) -> None:
    ids = [r["problem_id"] for r in _rows(EXAMPLE / "problems-instruct.jsonl")[:PROBLEMS_PER_STYLE]]
    _check_consistent(instruct_build, ids)
    for p in instruct_build["problems"]:
        stats = json.loads(p["parse_stats"])
        assert "sampler_errors" not in stats, p["error"]
        assert _accounted_codes(p) == K
        for code in p["codes"]:
            # Instruction style keeps the solution as a fenced block (Target-DPO's layout).
            assert code.startswith("```python\n") and code.endswith("\n```")


def test_every_problem_records_its_sample_and_execute_time(completion_build, instruct_build):
    for build in (completion_build, instruct_build):
        for p, timings in zip(build["problems"], build["timings"], strict=True):
            assert timings["sample"] > 0, p["problem_id"]
            if p["codes"] and p["tests"]:
                assert timings["execute"] > 0, p["problem_id"]


def test_live_shards_load_with_datasets(completion_build, instruct_build) -> None:
    datasets = pytest.importorskip("datasets")
    for build in (completion_build, instruct_build):
        out = build["out"]
        problems = datasets.load_dataset(
            "parquet", data_files=str(out / "problems" / "*.parquet"), split="train"
        )
        assert len(problems) == len(build["problems"])
        # Every pairs shard, empty ones included: the 135M model often yields no pair, and
        # `datasets` refuses a dataset that holds no rows at all.
        if build["manifest"].counts.pairs:
            pairs = datasets.load_dataset(
                "parquet", data_files=str(out / "pairs" / "*.parquet"), split="train"
            )
            assert len(pairs) == build["manifest"].counts.pairs
