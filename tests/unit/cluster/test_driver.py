"""The driver's checks that run before Ray: resume safety and failure reporting.

Every test here must fail before Ray is needed; ``connect`` is replaced by a function that
fails the test if the driver gets that far.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cluster import driver
from cluster.shard_store import ShardStore
from pipeline.config import JobSpec, parse_job_spec
from pipeline.errors import InputFormatError, OutputLocationError
from pipeline.manifest import ManifestCounts
from pipeline.progress import BuildProgress
from pipeline.records import ProblemOutcome, SkipReason
from pipeline.shards import pairs_table, problems_table

IDS = ["p0", "p1", "p2", "p3", "p4"]


@pytest.fixture(autouse=True)
def no_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    def connect(*_: object, **__: object) -> None:
        pytest.fail("the driver reached Ray; it should have stopped before")

    monkeypatch.setattr(driver, "connect", connect)


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


def test_a_failure_before_ray_replaces_a_running_progress_with_failed(tmp_path: Path) -> None:
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


def test_malformed_input_leaves_failed_progress_and_no_shards(tmp_path: Path) -> None:
    spec = spec_for(tmp_path, IDS)
    with (tmp_path / "replay.jsonl").open("a") as f:
        f.write('{"problem_id": "p5", "prompt": 3}\n')
    with pytest.raises(InputFormatError, match="line 6"):
        driver.run_build(spec, job_id="j")
    failed = progress_of(tmp_path)
    assert failed.state == "failed" and failed.error is not None and "line 6" in failed.error
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["progress.json"]


def test_finished_progress_takes_the_manifest_totals_over_a_lagging_counter(
    tmp_path: Path,
) -> None:
    store = ShardStore(str(tmp_path / "out"))
    # The counter had seen only 3 of 4 problems ranked when the last unit was written.
    lagging = BuildProgress(
        job_id="j", problems_total=4, problems_sampled=4, problems_executed=4, problems_ranked=3
    )
    progress = driver._Progress(store, lagging, None)
    counts = ManifestCounts(problems=4, candidates=9, cells=20, pairs=2, skips={"all_pass": 2})
    progress.finish(counts, units_total=2, cells_per_s=5.0)
    final = progress_of(tmp_path)
    assert final.state == "succeeded" and final.finished_at is not None
    assert (final.problems_sampled, final.problems_executed, final.problems_ranked) == (4, 4, 4)
    assert (final.candidates, final.cells, final.pairs) == (9, 20, 2)
    assert final.skips == {"all_pass": 2}
    assert (final.units_done, final.cells_per_s) == (2, 5.0)
