"""The manifest model and the shard layout."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from pipeline.config import parse_job_spec
from pipeline.manifest import MANIFEST_FILE, Manifest, ManifestCounts, ShardInfo, shard_name
from pipeline.records import (
    SCHEMA_VERSION,
    Candidates,
    CellStatus,
    CodeCandidate,
    ProblemOutcome,
    SkipReason,
    TestCandidate,
)

T0 = datetime(2025, 1, 1, 12, 0, tzinfo=timezone.utc)
SHA = "ab" * 32


def _shard(table: str, unit: int, rows: int = 2) -> ShardInfo:
    return ShardInfo(
        path=shard_name(table, unit), table=table, unit=unit, rows=rows, bytes=100, sha256=SHA
    )


def test_shard_names_sort_by_unit_and_glob_per_table():
    assert shard_name("pairs", 3) == "pairs/part-00003.parquet"
    assert shard_name("problems", 12345) == "problems/part-12345.parquet"
    assert sorted([shard_name("pairs", 10), shard_name("pairs", 9)]) == [
        "pairs/part-00009.parquet",
        "pairs/part-00010.parquet",
    ]
    assert MANIFEST_FILE == "manifest.json"


@pytest.mark.parametrize(("table", "unit"), [("pair", 0), ("pairs", -1)])
def test_shard_name_rejects_unknown_tables_and_negative_units(table, unit):
    with pytest.raises(ValueError):
        shard_name(table, unit)


@pytest.mark.parametrize("path", ["/abs/part-00000.parquet", "../x.parquet", "a\\b", ""])
def test_shard_paths_must_stay_under_the_output_root(path):
    with pytest.raises(ValidationError, match="relative to the output root"):
        ShardInfo(path=path, table="pairs", unit=0, rows=0, bytes=0, sha256=SHA)


def test_sha256_must_be_hex():
    with pytest.raises(ValidationError):
        ShardInfo(path="pairs/p.parquet", table="pairs", unit=0, rows=0, bytes=0, sha256="xyz")


def _outcome(pid: str, **kwargs) -> ProblemOutcome:
    return ProblemOutcome(job_id="job", problem_id=pid, **kwargs)


def test_counts_of_outcomes_are_hand_counted():
    cands = Candidates(
        problem_id="a",
        codes=[CodeCandidate(completion=c, program=c, count=1, first_sample=0) for c in ("x", "y")],
        tests=[TestCandidate(source=f"assert {t}", count=1, first_sample=0) for t in "pqr"],
    )
    status = [[CellStatus.PASSED] * 3, [CellStatus.FAILED] * 3]
    outcomes = [
        _outcome("a", candidates=cands, status=status, pairs_emitted=2),
        _outcome("b", candidates=cands, status=status, skip_reason=SkipReason.ALL_PASS),
        _outcome("c", skip_reason=SkipReason.SAMPLER_ERROR, error="503"),
        _outcome("d", error="boom"),
    ]
    counts = ManifestCounts.of(outcomes)
    assert (counts.problems, counts.candidates, counts.cells, counts.pairs) == (4, 10, 12, 2)
    assert counts.skips == {"all_pass": 1, "sampler_error": 1, "error": 1}
    total = counts + ManifestCounts.of(outcomes[1:2])
    assert (total.problems, total.candidates, total.cells, total.pairs) == (5, 15, 18, 2)
    assert total.skips == {"all_pass": 2, "sampler_error": 1, "error": 1}


def test_manifest_round_trips_through_json_with_the_full_spec():
    spec = parse_job_spec(
        {"source": {"path": "p.jsonl"}, "sampler": {"kind": "replay"}, "output": {"uri": "out"}}
    )
    manifest = Manifest(
        job_id="job",
        spec=spec.model_dump(mode="json"),
        counts=ManifestCounts(problems=2, pairs=1, skips={"all_pass": 1}),
        shards=[_shard("problems", 1), _shard("pairs", 1, 0), _shard("pairs", 0)],
        started_at=T0,
        finished_at=T0 + timedelta(minutes=3),
    )
    back = Manifest.model_validate_json(manifest.model_dump_json())
    assert back == manifest
    assert back.schema_version == SCHEMA_VERSION
    assert parse_job_spec(back.spec) == spec
    assert [s.unit for s in back.shards_of("pairs")] == [0, 1]
    assert [s.path for s in back.shards_of("problems")] == ["problems/part-00001.parquet"]


def test_manifest_rejects_duplicate_units_and_time_travel():
    base = {"job_id": "job", "spec": {}, "counts": ManifestCounts(), "started_at": T0}
    with pytest.raises(ValidationError, match="two pairs shards for unit 0"):
        Manifest(**base, shards=[_shard("pairs", 0), _shard("pairs", 0)], finished_at=T0)
    with pytest.raises(ValidationError, match="before started_at"):
        Manifest(**base, shards=[], finished_at=T0 - timedelta(seconds=1))
    with pytest.raises(ValidationError, match="extra"):
        Manifest(**base, shards=[], finished_at=T0, surprise=1)  # type: ignore[call-arg]
