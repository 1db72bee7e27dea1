"""Target-DPO against the bundled live model: the refinement loop on real model text.

Two builds, so that both routes to the verified tests and both endpoints are exercised:

- HumanEval problems with their OWN tests (``check(candidate)`` from the shared ground
  truth), posed instruction style through ``/v1/chat/completions``: the first attempt is
  a fenced answer and every refinement turn is a chat conversation (task, the current
  code as the assistant's turn, the execution feedback). Chat answers to a
  completion-style prompt are read as continuations by round 0's parser, which turns a
  fenced answer into its first line, so completion style goes through the other build.
- bare problems without tests (the first rows of ``examples/live``), completion style
  through ``/v1/completions``: k code and k test continuations, verified tests from
  Focused-DPO ranking, and refinement prompts sent as one plain text.

The 135M model's first attempt at HumanEval fails almost always, so refinement rounds run;
what they yield is not asserted. Its bare-problem codes seldom pass its own sampled tests,
so those problems often stop at ranking (``no_ground_truth``); the scripted-server test
(tests/integration/cluster/test_refinement_build.py) covers refining them.
Only mechanics are asserted: rows, trajectories, round numbers, statuses, feedback bounds,
requests sent, pairs consistent with their spans, skip reasons from the documented set.
``-s`` prints where the time went.
"""

from __future__ import annotations

import json
import re
import time
import unicodedata
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from pipeline.config import JobSpec, parse_job_spec
from pipeline.line_diff import line_diff
from pipeline.manifest import Manifest
from pipeline.progress import BuildProgress
from pipeline.records import CellStatus, Problem, SkipReason
from pipeline.verified_tests import problem_tests
from tests.conftest import (
    HUMANEVAL_DIR,
    REPO_ROOT,
    SANDBOX_IMAGE,
    requires_sandbox_image,
    requires_shared_data,
)

pytestmark = [requires_sandbox_image, pytest.mark.ray, pytest.mark.docker]

HUMANEVAL_IDS = ("HumanEval/34", "HumanEval/42", "HumanEval/30")
"""Three of the shortest dev prompts (unique, incr_list, get_positive): short answers keep
the build quick, and the tiny model's first attempt at each failed in every trial run."""
BARE_PROBLEMS = 2
MAX_ROUNDS = 2
FEEDBACK_CHARS = 600
"""Below the default so that real tracebacks of several failing tests hit the bound."""

EARLY_SKIPS = {
    SkipReason.NO_CODES,
    SkipReason.NO_TESTS,
    SkipReason.NO_GROUND_TRUTH,
    SkipReason.SAMPLER_ERROR,
    SkipReason.SANDBOX_ERROR,
    SkipReason.TIME_BUDGET,
    SkipReason.BAD_TESTS,
}
"""Reasons a problem stops before it has verified tests and trajectories."""
ALLOWED_CONTROL = {"\n", "\t"}
_ACCESS_LINE = re.compile(r'"POST /v1/(chat/completions|completions) HTTP/[0-9.]+" 200')


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _humaneval_rows() -> list[dict[str, Any]]:
    prompts = {r["problem_id"]: r for r in _jsonl(HUMANEVAL_DIR / "dev-k10.jsonl")}
    truth = {r["problem_id"]: r for r in _jsonl(HUMANEVAL_DIR / "dev-groundtruth.jsonl")}
    return [
        {
            "problem_id": pid,
            "prompt": prompts[pid]["prompt"],
            "entry_point": truth[pid]["entry_point"],
            "style": "instruction",
            "tests": truth[pid]["test"],
        }
        for pid in HUMANEVAL_IDS
    ]


def _spec(live_model: Any, source: Path, out: Path, *, endpoint: str, k: int) -> JobSpec:
    return parse_job_spec(
        {
            "source": {"path": str(source)},
            "sampler": {
                "kind": "openai",
                "base_url": live_model.base_url,
                "model": live_model.model,
                "endpoint": endpoint,
                "k": k,
                "temperature": 0.8,
                "max_tokens": 160,
                "max_concurrency": 2,
                "max_retries": 2,
                "request_timeout_s": 180,
            },
            "sandbox": {"image": SANDBOX_IMAGE, "min_workers": 1, "max_workers": 1},
            "pairs": {
                "method": "target_dpo",
                "max_rounds": MAX_ROUNDS,
                "feedback_chars": FEEDBACK_CHARS,
            },
            "output": {"uri": str(out), "problems_per_unit": 3},
        }
    )


def _read(root: Path, table: str) -> list[dict[str, Any]]:
    return [
        r
        for f in sorted((root / table).glob("part-*.parquet"))
        for r in pq.read_table(f).to_pylist()
    ]


def _requests_logged(live_model: Any) -> list[str]:
    """The endpoints of the requests the model server has answered so far (its access log)."""
    lines = live_model.log_path.read_text(errors="replace").splitlines()
    return [m.group(1) for m in map(_ACCESS_LINE.search, lines) if m]


def _build(
    spec: JobSpec, job_id: str, rows: list[dict[str, Any]], live_model: Any
) -> dict[str, Any]:
    from cluster.driver import run_build

    before = len(_requests_logged(live_model))
    started = time.monotonic()
    summary = run_build(spec, job_id=job_id)
    wall = time.monotonic() - started
    requests = _requests_logged(live_model)[before:]
    out = Path(spec.output.uri)
    problems = _read(out, "problems")
    timings = [json.loads(p["timings"]) for p in problems]
    print(
        f"\n{job_id}: wall {wall:.1f} s; per-problem sample "
        f"{sum(t.get('sample', 0.0) for t in timings):.1f} s, execute "
        f"{sum(t.get('execute', 0.0) for t in timings):.1f} s; counts {summary.counts}"
    )
    return {
        "spec": spec,
        "rows": {r["problem_id"]: r for r in rows},
        "out": out,
        "summary": summary,
        "manifest": Manifest.model_validate_json((out / "manifest.json").read_text()),
        "progress": BuildProgress.model_validate_json((out / "progress.json").read_text()),
        "problems": problems,
        "pairs": _read(out, "pairs"),
        "timings": timings,
        "requests": requests,
    }


@pytest.fixture(scope="module")
def humaneval_build(live_model, ray_with_sandbox, tmp_path_factory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("live-refine-humaneval")
    rows = _humaneval_rows()
    source = tmp / "problems.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = _spec(live_model, source, tmp / "out", endpoint="chat", k=1)
    return _build(spec, "live-refine-humaneval", rows, live_model)


@pytest.fixture(scope="module")
def bare_build(live_model, ray_with_sandbox, tmp_path_factory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("live-refine-bare")
    rows = _jsonl(REPO_ROOT / "examples" / "live" / "problems.jsonl")[:BARE_PROBLEMS]
    assert all("tests" not in r for r in rows)
    source = tmp / "problems.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    # k=3: ranking needs several codes and tests to pick the verified tests from.
    spec = _spec(live_model, source, tmp / "out", endpoint="completions", k=3)
    return _build(spec, "live-refine-bare", rows, live_model)


def _is_early_skip(problem: dict[str, Any]) -> bool:
    return problem["skip_reason"] is not None and SkipReason(problem["skip_reason"]) in EARLY_SKIPS


def _check_build(build: dict[str, Any], origin: str) -> None:
    """Every invariant of a Target-DPO build that holds whatever the model wrote."""
    problems, pairs, progress = build["problems"], build["pairs"], build["progress"]
    spec: JobSpec = build["spec"]
    assert sorted(p["problem_id"] for p in problems) == sorted(build["rows"])
    assert progress.state == "succeeded"
    assert build["manifest"].counts.pairs == len(pairs) == sum(p["pairs_emitted"] for p in problems)
    documented = {r.value for r in SkipReason}
    assert {p["skip_reason"] for p in problems if p["skip_reason"]} <= documented
    assert set(build["summary"].counts.skips) <= documented

    for p in problems:
        pid = p["problem_id"]
        assert json.loads(p["timings"])["sample"] > 0, pid  # requests went out for each
        if _is_early_skip(p):
            assert p["trajectories"] == [], pid
            continue
        assert p["tests_origin"] == origin, pid
        assert p["verified_tests"], pid
        assert 1 <= len(p["trajectories"]) <= spec.sampler.k, pid
        for trajectory in p["trajectories"]:
            _check_trajectory(pid, trajectory, len(p["verified_tests"]))

    # Requests really went out: every first attempt and every refinement turn is one
    # answered request in the server's access log (more only if one was retried).
    path = "chat/completions" if spec.sampler.endpoint == "chat" else "completions"
    assert set(build["requests"]) <= {path}, build["requests"]
    per_sample = {"problem": 1, "ranking": 2}[origin]  # code only, or code and test
    first = per_sample * spec.sampler.k * len(problems)
    refinements = sum(
        len(t["versions"]) - 1 + ("no python code block" in (t["stopped"] or ""))
        for p in problems
        for t in p["trajectories"]
    )
    sent = len(build["requests"])
    assert first + refinements <= sent <= (first + refinements) * (spec.sampler.max_retries + 1)

    # Progress in domain terms: versions executed per round are the versions stored.
    assert progress.refinement is not None, "progress.json lost its refinement counts"
    stored: dict[str, int] = {}
    for p in problems:
        for t in p["trajectories"]:
            for v in t["versions"]:
                stored[str(v["round"])] = stored.get(str(v["round"]), 0) + 1
    executed = {r: n for r, n in progress.refinement.versions_per_round.items() if n}
    assert executed == stored
    outcomes = progress.refinement.refined + progress.refinement.passed_first
    outcomes += progress.refinement.not_refined
    assert (
        outcomes
        == progress.refinement.trajectories
        == sum(len(p["trajectories"]) for p in problems)
    )

    by_id = {p["problem_id"]: p for p in problems}
    for pair in pairs:
        assert pair["method"] == "target_dpo"
        assert pair["chosen_round"] > pair["rejected_round"] >= 0
        d_plus, d_minus = line_diff(pair["chosen"], pair["rejected"])
        assert [(s.start, s.end) for s in d_plus] == [
            (s["start"], s["end"]) for s in pair["chosen_line_spans"]
        ]
        assert [(s.start, s.end) for s in d_minus] == [
            (s["start"], s["end"]) for s in pair["rejected_line_spans"]
        ]
        versions = by_id[pair["problem_id"]]["trajectories"][pair["trajectory"]]["versions"]
        assert all(s == CellStatus.PASSED.value for s in versions[-1]["statuses"])
        assert pair["chosen_round"] == versions[-1]["round"]


def _check_trajectory(pid: str, trajectory: dict[str, Any], tests: int) -> None:
    versions = trajectory["versions"]
    where = f"{pid} trajectory {trajectory['index']}"
    assert [v["round"] for v in versions] == list(range(len(versions))), where
    assert len(versions) <= MAX_ROUNDS + 1, where
    statuses = {s.value for s in CellStatus}
    for i, v in enumerate(versions):
        assert len(v["statuses"]) == tests, where
        assert set(v["statuses"]) <= statuses, where
        passed = all(s == CellStatus.PASSED.value for s in v["statuses"])
        # A passing version ends its trajectory: only the last one may pass.
        assert not passed or i == len(versions) - 1, where
        if passed:
            assert v["feedback"] == "", where
            continue
        if i < len(versions) - 1:
            assert v["feedback"].strip(), f"{where} v{i}: failed and was refined without feedback"
        assert len(v["feedback"]) <= FEEDBACK_CHARS, where
        controls = {
            c for c in v["feedback"] if unicodedata.category(c) == "Cc" and c not in ALLOWED_CONTROL
        }
        assert not controls, f"{where} v{i}: control characters {sorted(map(ord, controls))}"


@requires_shared_data
def test_humaneval_problems_refine_against_their_own_tests(humaneval_build) -> None:
    _check_build(humaneval_build, "problem")
    for p in humaneval_build["problems"]:
        # The problem's own tests, split into asserts as the sandbox judges them.
        problem = Problem.model_validate(humaneval_build["rows"][p["problem_id"]])
        assert p["verified_tests"] == problem_tests(problem)
        assert len(p["trajectories"]) == 1  # k=1: one trajectory per problem
    # The tiny model fails these at first: refinement rounds really ran.
    refined = [
        t for p in humaneval_build["problems"] for t in p["trajectories"] if len(t["versions"]) > 1
    ]
    assert refined, "no trajectory reached round 1"
    # Chat answers, instruction style: every refined version is one fenced block.
    for t in refined:
        for v in t["versions"][1:]:
            assert v["completion"].startswith("```python\n"), v["completion"][:80]


def test_bare_problems_take_their_tests_from_ranking(bare_build) -> None:
    _check_build(bare_build, "ranking")
    for p in bare_build["problems"]:
        # Sampled codes ran against sampled tests and were ranked: either the top code
        # passed some tests, which became the verified tests, or the problem stops at
        # ranking. (The 135M model's codes rarely pass its own tests, so both happen.)
        assert p["status"] and p["status"][0], p["problem_id"]
        assert p["ranker"] == "pagerank" and p["code_scores"], p["problem_id"]
        if p["trajectories"]:
            assert p["tests_origin"] == "ranking" and p["verified_tests"]
            assert set(p["verified_tests"]) <= set(p["tests"])
        else:
            assert p["skip_reason"] == SkipReason.NO_GROUND_TRUTH.value, p["problem_id"]
