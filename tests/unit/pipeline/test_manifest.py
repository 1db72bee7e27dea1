"""The manifest model and the shard layout."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from pipeline.config import parse_job_spec
from pipeline.manifest import Manifest, ManifestCounts, ShardInfo, shard_name
from pipeline.records import SCHEMA_VERSION

T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
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


def test_counts_add_field_by_field_and_merge_skips():
    on_disk = ManifestCounts(
        problems=4, candidates=10, cells=12, pairs=2, skips={"all_pass": 1, "error": 1}
    )
    written = ManifestCounts(problems=1, candidates=5, cells=6, skips={"all_pass": 1, "x": 2})
    total = on_disk + written
    assert (total.problems, total.candidates, total.cells, total.pairs) == (5, 15, 18, 2)
    assert total.skips == {"all_pass": 2, "error": 1, "x": 2}
    assert on_disk + ManifestCounts() == on_disk


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
