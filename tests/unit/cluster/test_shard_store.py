"""The shard store on a real filesystem, addressed by path and by `file://` URI.

Units, temporaries, the resume checks that keep two builds from mixing, totals read back
from disk, and the manifest that marks a dataset complete.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from cluster.shard_store import ShardStore, counts_of
from pipeline.config import JobSpec
from pipeline.errors import OutputLocationError, StorageError
from pipeline.manifest import MANIFEST_FILE, Manifest, ManifestCounts
from pipeline.records import (
    Candidates,
    CellStatus,
    CodeCandidate,
    ProblemOutcome,
    SkipReason,
    TestCandidate,
)
from pipeline.shards import pairs_table, problems_table

P, F = CellStatus.PASSED, CellStatus.FAILED
STARTED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def outcome(
    problem_id: str,
    *,
    job_id: str = "job-1",
    codes: int = 2,
    tests: int = 3,
    pairs: int = 0,
    skip: SkipReason | None = None,
) -> ProblemOutcome:
    """A problem's row with ``codes`` x ``tests`` cells."""
    candidates = Candidates(
        problem_id=problem_id,
        codes=[
            CodeCandidate(completion=f"c{i}", program=f"p{i}", count=1, first_sample=i)
            for i in range(codes)
        ],
        tests=[TestCandidate(source=f"assert {j}", count=1, first_sample=j) for j in range(tests)],
    )
    return ProblemOutcome(
        job_id=job_id,
        problem_id=problem_id,
        candidates=candidates if codes or tests else None,
        status=[[P if i == 0 else F] * tests for i in range(codes)],
        pairs_emitted=pairs,
        skip_reason=skip,
    )


def problems(*outcomes: ProblemOutcome) -> pa.Table:
    return problems_table(list(outcomes))


NO_PAIRS = pairs_table([])
UNIT_0 = problems(outcome("A", pairs=1), outcome("B", skip=SkipReason.ALL_FAIL))
UNIT_1 = problems(
    outcome("C", codes=1, tests=4, pairs=2),
    outcome("D", codes=0, tests=0, skip=SkipReason.NO_CODES),
)


def spec(uri: str) -> JobSpec:
    return JobSpec.model_validate(
        {
            "source": {"path": "in.jsonl"},
            "sampler": {"kind": "replay"},
            "output": {"uri": uri, "problems_per_unit": 2},
        }
    )


def store_at(tmp_path: Path, as_uri: bool) -> ShardStore:
    return ShardStore(f"file://{tmp_path}" if as_uri else str(tmp_path))


# ------------------------------------------------------------------ units and files


@pytest.mark.parametrize("as_uri", [False, True], ids=["path", "file-uri"])
def test_unit_is_done_only_once_its_problems_shard_is_in_place(tmp_path, as_uri) -> None:
    store = store_at(tmp_path, as_uri)
    assert store.done_units() == [] and not store.has_output()
    store.write_unit(0, NO_PAIRS, UNIT_0)
    store.write_unit(2, NO_PAIRS, UNIT_1)
    assert store.done_units() == [0, 2]
    assert store.has_output()
    assert store.read_table("problems", 2).equals(UNIT_1)
    info = store.shard_info("problems", 0)
    data = (tmp_path / "problems" / "part-00000.parquet").read_bytes()
    assert (info.rows, info.bytes, info.sha256) == (2, len(data), hashlib.sha256(data).hexdigest())
    assert info.path == "problems/part-00000.parquet"


def test_a_pairs_shard_alone_is_output_but_not_a_done_unit(tmp_path) -> None:
    # A build killed between the two shards of a unit: the unit is redone on resume.
    store = ShardStore(str(tmp_path))
    (tmp_path / "pairs").mkdir()
    (tmp_path / "pairs" / "part-00003.parquet").write_bytes(b"whatever")
    assert store.done_units() == []
    assert store.has_output()


def test_leftover_temporaries_are_ignored_then_removed(tmp_path) -> None:
    store = ShardStore(str(tmp_path))
    for table in ("pairs", "problems"):
        (tmp_path / table).mkdir()
        (tmp_path / table / ".tmp-abcd1234-part-00001.parquet").write_bytes(b"partial")
    store.write_unit(0, NO_PAIRS, UNIT_0)
    assert store.done_units() == [0]
    assert store.remove_temporaries() == 2
    assert sorted(p.name for p in (tmp_path / "problems").iterdir()) == ["part-00000.parquet"]
    assert store.remove_temporaries() == 0


def test_text_files_round_trip_atomically(tmp_path) -> None:
    store = ShardStore(str(tmp_path))
    assert store.read_json(MANIFEST_FILE) is None
    store.write_text(MANIFEST_FILE, '{"job_id": "j"}')
    assert store.read_json(MANIFEST_FILE) == {"job_id": "j"}
    assert [p.name for p in tmp_path.iterdir()] == [MANIFEST_FILE]


def test_unusable_location_is_a_storage_error(tmp_path) -> None:
    with pytest.raises(StorageError, match="cannot open 'nosuchscheme://bucket/x'"):
        ShardStore("nosuchscheme://bucket/x")
    with pytest.raises(StorageError, match="must not name a host"):
        ShardStore("file://elsewhere/out")
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StorageError, match="could not write"):
        ShardStore(str(blocker / "out")).write_unit(0, NO_PAIRS, UNIT_0)


# ------------------------------------------------------------------ resume checks


def test_an_empty_output_can_be_started_or_resumed(tmp_path) -> None:
    store = ShardStore(str(tmp_path / "fresh"))
    assert store.check_output(resume=False) is None
    assert store.check_output(resume=True) is None


def test_shards_of_an_unfinished_build_need_resume(tmp_path) -> None:
    store = ShardStore(str(tmp_path))
    store.write_unit(0, NO_PAIRS, UNIT_0)
    with pytest.raises(OutputLocationError, match="unfinished build; pass --resume"):
        store.check_output(resume=False)
    assert store.check_output(resume=True) is None


def test_a_complete_dataset_is_refused_or_handed_back_on_resume(tmp_path) -> None:
    store = ShardStore(str(tmp_path))
    store.write_unit(0, NO_PAIRS, UNIT_0)
    written = store.write_manifest(spec(str(tmp_path)), "job-1", 1, STARTED)
    with pytest.raises(OutputLocationError, match=r"complete dataset .*of job 'job-1'"):
        store.check_output(resume=False)
    assert store.check_output(resume=True) == written


@pytest.mark.parametrize("content", ["garbage", '{"job_id": "x"}'], ids=["not-json", "foreign"])
def test_a_manifest_that_is_not_ours_is_an_output_location_error(tmp_path, content) -> None:
    (tmp_path / MANIFEST_FILE).write_text(content)
    store = ShardStore(str(tmp_path))
    for resume in (False, True):
        with pytest.raises(OutputLocationError, match=MANIFEST_FILE):
            store.check_output(resume=resume)


def test_done_units_beyond_the_inputs_units_are_refused(tmp_path) -> None:
    store = ShardStore(str(tmp_path))
    for unit in (0, 1, 5):
        store.write_unit(unit, NO_PAIRS, UNIT_0)
    assert store.check_done_units(6) == [0, 1, 5]
    with pytest.raises(OutputLocationError, match=r"units \[5\], beyond this input's 3 units"):
        store.check_done_units(3)


def test_a_done_unit_of_this_build_passes_the_check(tmp_path) -> None:
    store = ShardStore(str(tmp_path))
    store.write_unit(0, NO_PAIRS, UNIT_0)
    store.check_done_unit(0, "job-1", ["A", "B"])


@pytest.mark.parametrize(
    ("job_id", "problem_ids"),
    [
        ("job-2", ["A", "B"]),  # another job wrote it
        ("job-1", ["B", "A"]),  # the input was reordered
        ("job-1", ["A"]),  # problems_per_unit or limit changed
        ("job-1", ["A", "B", "C"]),
        ("job-1", ["A", "X"]),  # the input changed
    ],
)
def test_a_done_unit_of_another_build_is_refused(tmp_path, job_id, problem_ids) -> None:
    store = ShardStore(str(tmp_path))
    store.write_unit(0, NO_PAIRS, UNIT_0)
    with pytest.raises(OutputLocationError, match="unit 0 was written by job"):
        store.check_done_unit(0, job_id, problem_ids)


def test_a_unit_mixing_two_jobs_is_refused(tmp_path) -> None:
    store = ShardStore(str(tmp_path))
    store.write_unit(0, NO_PAIRS, problems(outcome("A"), outcome("B", job_id="job-2")))
    with pytest.raises(OutputLocationError, match=r"\['job-1', 'job-2'\]"):
        store.check_done_unit(0, "job-1", ["A", "B"])


# ------------------------------------------------------------------ counts and manifest


def test_counts_of_a_problems_table() -> None:
    assert counts_of(UNIT_0) == ManifestCounts(
        problems=2, candidates=(2 + 3) * 2, cells=2 * 3 * 2, pairs=1, skips={"all_fail": 1}
    )
    # A problem without candidates adds neither candidates nor cells.
    assert counts_of(UNIT_1) == ManifestCounts(
        problems=2, candidates=1 + 4, cells=4, pairs=2, skips={"no_codes": 1}
    )
    assert counts_of(problems()) == ManifestCounts()


def test_counts_on_disk_add_up_the_units_given(tmp_path) -> None:
    store = ShardStore(str(tmp_path))
    store.write_unit(0, NO_PAIRS, UNIT_0)
    store.write_unit(1, NO_PAIRS, UNIT_1)
    store.write_unit(2, NO_PAIRS, problems(outcome("E", skip=SkipReason.ALL_FAIL)))
    assert store.counts_on_disk([0, 1]) == counts_of(UNIT_0) + counts_of(UNIT_1)
    assert store.counts_on_disk([0, 2]).skips == {"all_fail": 2}
    assert store.counts_on_disk([]) == ManifestCounts()


@pytest.mark.parametrize("as_uri", [False, True], ids=["path", "file-uri"])
def test_the_manifest_lists_every_shard_and_the_totals_read_back(tmp_path, as_uri) -> None:
    out = tmp_path / "out"
    store = store_at(out, as_uri)
    the_spec = spec(store.uri)
    store.write_unit(0, NO_PAIRS, UNIT_0)
    store.write_unit(1, NO_PAIRS, UNIT_1)
    manifest = store.write_manifest(the_spec, "job-1", 2, STARTED)

    on_disk = Manifest.model_validate_json((out / MANIFEST_FILE).read_text())
    assert on_disk == manifest
    assert (manifest.job_id, manifest.spec) == ("job-1", the_spec.model_dump(mode="json"))
    assert manifest.counts == ManifestCounts(
        problems=4, candidates=15, cells=16, pairs=3, skips={"all_fail": 1, "no_codes": 1}
    )
    assert [(s.table, s.unit, s.rows) for s in manifest.shards] == [
        ("pairs", 0, 0),
        ("pairs", 1, 0),
        ("problems", 0, 2),
        ("problems", 1, 2),
    ]
    for shard in manifest.shards:
        data = (out / shard.path).read_bytes()
        assert (shard.bytes, shard.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    assert STARTED <= manifest.finished_at <= datetime.now(UTC) + timedelta(seconds=1)
    # Nothing but the dataset is left in the output.
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST_FILE, "pairs", "problems"]
    assert json.loads((out / MANIFEST_FILE).read_text())["job_id"] == "job-1"


def test_fallback_cells_are_totalled_per_unit_and_per_dataset(tmp_path) -> None:
    from pipeline.records import ProblemOutcome

    outcomes = [
        ProblemOutcome(job_id="job-1", problem_id=p, fallback_cells=n)
        for p, n in (("A", 3), ("B", 0), ("C", 4))
    ]
    assert counts_of(problems_table(outcomes)).fallback_cells == 7
    store = ShardStore(str(tmp_path))
    store.write_unit(0, NO_PAIRS, problems_table(outcomes[:2]))
    store.write_unit(1, NO_PAIRS, problems_table(outcomes[2:]))
    assert store.counts_on_disk([0, 1]).fallback_cells == 7


def test_counts_of_a_target_dpo_table_count_its_trajectories_from_the_rows() -> None:
    from pipeline.manifest import RefinementCounts
    from pipeline.records import Trajectory, Version

    def version(round_: int, passed: bool) -> Version:
        status = CellStatus.PASSED if passed else CellStatus.FAILED
        return Version(round=round_, completion="c", program="p", statuses=[status])

    refined = Trajectory(index=0, versions=[version(0, False), version(1, True)])
    first = Trajectory(index=1, versions=[version(0, True)])
    never = Trajectory(index=0, versions=[version(0, False), version(1, False)])
    stopped = Trajectory(index=1, versions=[version(0, False)], stopped="no code")
    outcomes = [
        ProblemOutcome(job_id="j", problem_id="a", trajectories=[refined, first]),
        ProblemOutcome(job_id="j", problem_id="b", trajectories=[never, stopped]),
    ]
    counts = counts_of(problems_table(outcomes))
    assert counts.refinement == RefinementCounts(
        trajectories=4,
        versions_per_round={"0": 4, "1": 2},
        refined=1,
        passed_first=1,
        not_refined=2,
    )
    # Units add up; a Focused-DPO table counts none.
    assert (counts + counts).refinement == RefinementCounts(
        trajectories=8,
        versions_per_round={"0": 8, "1": 4},
        refined=2,
        passed_first=2,
        not_refined=4,
    )
    focused = counts_of(problems_table([ProblemOutcome(job_id="j", problem_id="c")]))
    assert focused.refinement is None
    assert (focused + counts).refinement == counts.refinement
