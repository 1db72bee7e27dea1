"""The driver's checks that run before Ray: resume safety and failure reporting.

Every test here must fail before Ray is needed; ``connect`` is replaced by a function that
fails the test if the driver gets that far.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cluster import driver
from cluster.shard_store import ShardStore
from pipeline.config import JobSpec, parse_job_spec
from pipeline.errors import InputFormatError, OutputLocationError
from pipeline.progress import BuildProgress
from pipeline.records import ProblemOutcome, SkipReason
from pipeline.shards import pairs_table, problems_table

IDS = ["p0", "p1", "p2", "p3", "p4"]


@pytest.fixture(autouse=True)
def no_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    def connect(*_: object, **__: object) -> None:
        pytest.fail("the driver reached Ray; it should have stopped before")

    monkeypatch.setattr(driver, "connect", connect)
    monkeypatch.setattr(driver, "_join_ray", connect)


def spec_for(tmp_path: Path, ids: list[str], per_unit: int = 2) -> JobSpec:
    source = tmp_path / "replay.jsonl"
    rows = [
        {"problem_id": i, "prompt": "def f():\n", "completions": ["    return 1\n"]} for i in ids
    ]
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return parse_job_spec(
        {
            "source": {"path": str(source)},
            "sampler": {"kind": "replay", "k": 1},
            "output": {"uri": str(tmp_path / "out"), "problems_per_unit": per_unit},
        }
    )


def write_unit(store: ShardStore, unit: int, job_id: str, ids: list[str]) -> None:
    outcomes = [
        ProblemOutcome(job_id=job_id, problem_id=i, skip_reason=SkipReason.NO_CODES) for i in ids
    ]
    store.write_unit(unit, pairs_table([]), problems_table(outcomes))


def progress_of(tmp_path: Path) -> BuildProgress:
    return BuildProgress.model_validate_json((tmp_path / "out" / "progress.json").read_text())


@pytest.mark.parametrize(
    ("unit", "job_id", "ids", "needle"),
    [
        (0, "j", ["p0", "p1", "p2"], "unit 0 was written"),  # written with problems_per_unit 3
        (0, "other", ["p0", "p1"], "job ['other']"),
        (1, "j", ["p3", "p2"], "unit 1 was written"),  # another input order
        (3, "j", ["p6"], "beyond this input's 3 units"),  # a longer input, or a higher limit
    ],
    ids=["other-layout", "other-job", "other-order", "extra-unit"],
)
def test_resume_refuses_shards_of_another_build(
    tmp_path: Path, unit: int, job_id: str, ids: list[str], needle: str
) -> None:
    spec = spec_for(tmp_path, IDS)
    write_unit(ShardStore(spec.output.uri), unit, job_id, ids)
    with pytest.raises(OutputLocationError, match=needle.replace("[", r"\[").replace("]", r"\]")):
        driver.run_build(spec, job_id="j", resume=True)
    failed = progress_of(tmp_path)
    assert failed.state == "failed" and failed.error is not None and needle in failed.error
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_a_rejected_input_on_resume_marks_the_earlier_runs_progress_failed(
    tmp_path: Path,
) -> None:
    spec = spec_for(tmp_path, IDS)
    store = ShardStore(spec.output.uri)
    write_unit(store, 0, "j", ["p0", "p1"])
    # A killed build left this behind; its resume then finds the input gone.
    store.write_text("progress.json", BuildProgress(job_id="j").model_dump_json())
    (tmp_path / "replay.jsonl").unlink()
    with pytest.raises(InputFormatError, match="input file not found"):
        driver.run_build(spec, job_id="j", resume=True)
    failed = progress_of(tmp_path)
    assert failed.state == "failed"
    assert failed.error is not None and "replay.jsonl" in failed.error
    assert failed.finished_at is not None
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_a_rejected_input_writes_nothing_at_all(tmp_path: Path) -> None:
    spec = spec_for(tmp_path, IDS)
    with (tmp_path / "replay.jsonl").open("a") as f:
        f.write('{"problem_id": "p5", "prompt": 3}\n')
    with pytest.raises(InputFormatError, match="line 6"):
        driver.run_build(spec, job_id="j")
    assert not (tmp_path / "out").exists()


def test_a_finished_dataset_is_returned_on_resume_without_ray(tmp_path: Path) -> None:
    spec = spec_for(tmp_path, IDS, per_unit=5)
    store = ShardStore(spec.output.uri)
    write_unit(store, 0, "j", IDS)
    store.write_manifest(spec, "j", 1, datetime.now(UTC))
    summary = driver.run_build(spec, job_id="j", resume=True)
    assert (summary.units_total, summary.units_skipped, summary.counts.problems) == (1, 1, 5)


def test_all_units_on_disk_but_no_manifest_finishes_without_ray(tmp_path: Path) -> None:
    spec = spec_for(tmp_path, IDS, per_unit=3)
    store = ShardStore(spec.output.uri)
    write_unit(store, 0, "j", IDS[:3])
    write_unit(store, 1, "j", IDS[3:])
    summary = driver.run_build(spec, job_id="j", resume=True)
    assert summary.counts.problems == 5 and summary.counts.skips == {"no_codes": 5}
    assert (tmp_path / "out" / "manifest.json").exists()
    assert progress_of(tmp_path).state == "succeeded"
