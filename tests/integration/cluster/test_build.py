"""The dataset build end to end: real local Ray, real Docker sandbox, real Parquet.

Builds run in-process (``run_build``) against one module-wide local Ray runtime, except
the resume test, which kills a real ``pairforge build`` process mid-run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from pipeline.config import JobSpec, parse_job_spec
from pipeline.manifest import Manifest
from pipeline.progress import BuildProgress
from sandbox.limits import PoolConfig
from sandbox.pool import ContainerPool
from sandbox.types import CellStatus, ExecutionRequest
from tests.conftest import (
    HUMANEVAL_DIR,
    REPO_ROOT,
    SANDBOX_IMAGE,
    requires_sandbox_image,
    requires_shared_data,
)

pytestmark = [requires_sandbox_image, pytest.mark.ray, pytest.mark.docker]

QUICKSTART = REPO_ROOT / "examples" / "quickstart"


def quickstart_spec(output: Path, **output_options: object) -> JobSpec:
    data = yaml.safe_load((QUICKSTART / "job.yaml").read_text())
    data["source"]["path"] = str(QUICKSTART / "problems.jsonl")
    data["output"] = {**data["output"], "uri": str(output), **output_options}
    data["sandbox"]["image"] = SANDBOX_IMAGE
    return parse_job_spec(data)


def read_rows(root: Path, table: str) -> list[dict[str, object]]:
    files = sorted((root / table).glob("part-*.parquet"))
    return [row for f in files for row in pq.read_table(f).to_pylist()]


def groundtruth_verdicts(programs: list[tuple[str, str]]) -> list[bool]:
    """Whether each (problem_id, program) passes the problem's hidden `check` (in the sandbox)."""
    truth = {
        row["problem_id"]: row
        for row in map(json.loads, (QUICKSTART / "groundtruth.jsonl").read_text().splitlines())
    }
    with ContainerPool(PoolConfig(image=SANDBOX_IMAGE, workers=1, timeout_s=3.0)) as pool:
        verdicts = []
        for problem_id, program in programs:
            gt = truth[problem_id]
            test = f"{gt['test']}\ncheck({gt['entry_point']})"
            result = pool.run(ExecutionRequest(program=program, tests=[test], timeout_s=3.0))
            verdicts.append(result.statuses == [CellStatus.PASSED])
    return verdicts


@pytest.fixture(scope="module")
def quickstart_build(ray_with_sandbox, tmp_path_factory):
    from cluster.driver import run_build

    out = tmp_path_factory.mktemp("quickstart")
    seen: list[BuildProgress] = []
    summary = run_build(quickstart_spec(out), job_id="qs", on_progress=seen.append)
    return out, summary, seen


def test_quickstart_build_writes_a_consistent_dataset(quickstart_build) -> None:
    out, summary, seen = quickstart_build
    manifest = Manifest.model_validate_json((out / "manifest.json").read_text())
    pairs = read_rows(out, "pairs")
    problems = read_rows(out, "problems")

    assert manifest.job_id == "qs"
    assert manifest.counts.problems == len(problems) == 30
    assert manifest.counts.pairs == len(pairs) == summary.counts.pairs
    assert sum(int(p["pairs_emitted"]) for p in problems) == len(pairs)
    skipped = sum(manifest.counts.skips.values())
    assert skipped == sum(1 for p in problems if p["skip_reason"] is not None)
    assert manifest.counts.cells == sum(len(p["codes"]) * len(p["tests"]) for p in problems)
    # The share of cells judged in the program's own process is reported per build.
    assert manifest.counts.fallback_cells == sum(int(p["fallback_cells"]) for p in problems)
    assert 0 <= manifest.counts.fallback_cells < manifest.counts.cells
    for shard in manifest.shards:
        assert pq.read_metadata(out / shard.path).num_rows == shard.rows
    # The example has 2 all-pass problems and 1 all-fail problem on purpose.
    assert manifest.counts.skips.get("all_pass") == 2
    assert manifest.counts.skips.get("all_fail") == 1
    assert len(pairs) >= 20

    for pair in pairs:
        chosen, rejected = str(pair["chosen"]), str(pair["rejected"])
        cs, ce = int(pair["chosen_mid_start"]), int(pair["chosen_mid_end"])
        rs, re_ = int(pair["rejected_mid_start"]), int(pair["rejected_mid_end"])
        assert 0 <= cs <= ce <= len(chosen) and 0 <= rs <= re_ <= len(rejected)
        assert chosen[:cs] == rejected[:rs]
        assert chosen[ce:] == rejected[re_:] or pair["spans_widened"]
        assert chosen != rejected

    final = json.loads((out / "progress.json").read_text())
    assert final["state"] == "succeeded" and final["units_done"] == final["units_total"]
    assert seen and seen[-1].state == "succeeded"


def test_quickstart_pairs_are_right_against_hidden_tests(quickstart_build) -> None:
    out, _, _ = quickstart_build
    pairs = read_rows(out, "pairs")
    programs = [(str(p["problem_id"]), str(p["prompt"]) + str(p["chosen"])) for p in pairs]
    programs += [(str(p["problem_id"]), str(p["prompt"]) + str(p["rejected"])) for p in pairs]
    verdicts = groundtruth_verdicts(programs)
    chosen_ok, rejected_ok = verdicts[: len(pairs)], verdicts[len(pairs) :]
    # Ranking uses only the generated tests; the hidden ones judge it.
    assert sum(chosen_ok) >= 0.9 * len(pairs)
    assert sum(rejected_ok) <= 0.1 * len(pairs)


def test_shards_load_with_datasets(quickstart_build) -> None:
    datasets = pytest.importorskip("datasets")
    out, _, _ = quickstart_build
    pairs = datasets.load_dataset(
        "parquet", data_files=str(out / "pairs" / "*.parquet"), split="train"
    )
    assert {"prompt", "chosen", "rejected"} <= set(pairs.column_names)
    assert isinstance(pairs[0]["chosen"], str)
    problems = datasets.load_dataset(
        "parquet", data_files=str(out / "problems" / "*.parquet"), split="train"
    )
    assert len(problems) == 30


def test_finished_output_is_not_overwritten(ray_with_sandbox, quickstart_build) -> None:
    from cluster.driver import run_build
    from pipeline.errors import OutputLocationError

    out, summary, _ = quickstart_build
    with pytest.raises(OutputLocationError, match="already holds a complete dataset"):
        run_build(quickstart_spec(out), job_id="qs")
    again = run_build(quickstart_spec(out), job_id="qs", resume=True)
    assert again.counts == summary.counts


@requires_shared_data
def test_humaneval_slice_builds(ray_with_sandbox, tmp_path) -> None:
    from cluster.driver import run_build

    spec = parse_job_spec(
        {
            "source": {"path": str(HUMANEVAL_DIR / "dev-k10.jsonl"), "limit": 12},
            "sampler": {"kind": "replay", "k": 10},
            "sandbox": {"image": SANDBOX_IMAGE, "timeout_s": 1.0},
            "output": {"uri": str(tmp_path / "he"), "problems_per_unit": 4},
        }
    )
    summary = run_build(spec, job_id="he")
    problems = read_rows(tmp_path / "he", "problems")
    pairs = read_rows(tmp_path / "he", "pairs")
    lines = (HUMANEVAL_DIR / "dev-k10.jsonl").read_text().splitlines()[:12]
    assert [p["problem_id"] for p in problems] == [json.loads(x)["problem_id"] for x in lines]
    assert summary.counts.pairs == len(pairs) > 0
    for p in problems:
        assert len(p["status"]) == len(p["codes"])
        assert all(len(row) == len(p["tests"]) for row in p["status"])


def _build_cli(job: Path, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("RAY_ADDRESS", None)
    return subprocess.Popen(
        [sys.executable, "-m", "services.cli", "build", str(job), "--job-id", "resume", *extra],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _without_timings(rows: list[dict[str, object]]) -> list[dict[str, object]]:
    return [{k: v for k, v in row.items() if k != "timings"} for row in rows]


def test_killed_build_resumes_to_the_same_rows(tmp_path) -> None:
    def job_file(out: Path) -> Path:
        spec = quickstart_spec(out, problems_per_unit=3)
        path = tmp_path / f"{out.name}.yaml"
        path.write_text(yaml.safe_dump(spec.model_dump(mode="json")))
        return path

    whole, killed = tmp_path / "whole", tmp_path / "killed"
    proc = _build_cli(job_file(killed))
    deadline = time.time() + 240
    while time.time() < deadline and len(list((killed / "problems").glob("part-*"))) < 2:
        if proc.poll() is not None:
            pytest.fail(f"build ended before it could be killed: {proc.communicate()[1][-2000:]}")
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # the process and its local Ray, mid-run
    proc.wait()
    assert not (killed / "manifest.json").exists()
    written_before = len(list((killed / "problems").glob("part-*")))
    assert 2 <= written_before < 10

    resumed = _build_cli(job_file(killed), "--resume")
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err[-2000:]
    uninterrupted = _build_cli(job_file(whole))
    _, err = uninterrupted.communicate(timeout=300)
    assert uninterrupted.returncode == 0, err[-2000:]

    assert read_rows(killed, "pairs") == read_rows(whole, "pairs")
    assert _without_timings(read_rows(killed, "problems")) == _without_timings(
        read_rows(whole, "problems")
    )
    manifest = Manifest.model_validate_json((killed / "manifest.json").read_text())
    assert manifest.counts.problems == 30
    assert not list(killed.rglob(".tmp-*"))


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda d: d["sampler"].update(temprature=1.0), "sampler.temprature: unknown field"),
        (lambda d: d["sampler"].update(k="ten"), "sampler.k"),
        (lambda d: d["source"].update(path="/nonexistent/problems.jsonl"), "problems.jsonl"),
    ],
    ids=["unknown-field", "wrong-type", "missing-file"],
)
def test_bad_spec_fails_cleanly(tmp_path, mutate, needle) -> None:
    data = quickstart_spec(tmp_path / "out").model_dump(mode="json")
    mutate(data)
    job = tmp_path / "job.yaml"
    job.write_text(yaml.safe_dump(data))
    proc = _build_cli(job)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, err
    assert needle in err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.parquet"))


def test_malformed_row_is_named_and_nothing_is_written(tmp_path) -> None:
    lines = (QUICKSTART / "problems.jsonl").read_text().splitlines()
    lines[6] = lines[6][:40]  # line 7: cut mid-JSON
    broken = tmp_path / "broken.jsonl"
    broken.write_text("\n".join(lines) + "\n")
    data = quickstart_spec(tmp_path / "out").model_dump(mode="json")
    data["source"]["path"] = str(broken)
    job = tmp_path / "job.yaml"
    job.write_text(yaml.safe_dump(data))
    proc = _build_cli(job)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, err
    assert "line 7" in err
    assert not (tmp_path / "out" / "manifest.json").exists()
    assert not list((tmp_path / "out").rglob("*.parquet"))


def test_missing_sandbox_image_fails_fast_and_says_how_to_build_it(tmp_path) -> None:
    data = quickstart_spec(tmp_path / "out").model_dump(mode="json")
    data["sandbox"]["image"] = "pairforge-no-such-image:none"
    job = tmp_path / "job.yaml"
    job.write_text(yaml.safe_dump(data))
    proc = _build_cli(job)
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 3, err[-2000:]
    assert "pairforge image --tag pairforge-no-such-image:none" in err
    progress = json.loads((tmp_path / "out" / "progress.json").read_text())
    assert progress["state"] == "failed"
    assert "does not exist" in progress["error"]
    assert not (tmp_path / "out" / "manifest.json").exists()


@pytest.mark.parametrize("how", ["process-killed", "actor-gone-for-good"])
def test_losing_the_progress_counter_never_fails_the_build(ray_with_sandbox, tmp_path, how):
    """Progress is best effort: the data path finishes and writes every row."""
    import threading

    from cluster.driver import run_build
    from cluster.progress import counter_name

    killed = threading.Event()

    def kill_counter(progress: BuildProgress) -> None:
        if killed.is_set() or progress.units_done < 1 or progress.state != "running":
            return
        killed.set()
        counter = ray_with_sandbox.get_actor(counter_name("lose"))
        if how == "actor-gone-for-good":
            ray_with_sandbox.kill(counter, no_restart=True)
        else:
            pid = ray_with_sandbox.get(counter.__ray_call__.remote(lambda _self: os.getpid()))
            os.kill(pid, signal.SIGKILL)

    spec = quickstart_spec(tmp_path / "out", problems_per_unit=3)
    summary = run_build(spec, job_id="lose", on_progress=kill_counter)
    assert killed.is_set()
    assert summary.counts.problems == len(read_rows(tmp_path / "out", "problems")) == 30
    final = BuildProgress.model_validate_json((tmp_path / "out" / "progress.json").read_text())
    assert final.state == "succeeded" and final.problems_ranked == 30
