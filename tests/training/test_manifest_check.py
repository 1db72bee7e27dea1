"""The training job trusts a dataset only when its manifest and every shard check out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deploy.training.errors import ManifestError
from deploy.training.manifest_check import verify_dataset
from pipeline.records import PairMethod
from tests.training.conftest import quickstart_pairs, write_dataset


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    return write_dataset(tmp_path / "ds", quickstart_pairs(PairMethod.FOCUSED_DPO, limit=6))


def _edit_manifest(path: Path, change: dict[str, object]) -> None:
    raw = json.loads(path.read_text())
    raw.update(change)
    path.write_text(json.dumps(raw))


def test_a_complete_dataset_is_verified(dataset: Path) -> None:
    verified = verify_dataset(str(dataset))
    assert verified.manifest.job_id == "training-tests"
    assert [Path(p).name for p in verified.pairs_paths] == [
        "part-00000.parquet",
        "part-00001.parquet",
    ]
    assert len(verified.manifest_sha256) == 64
    # The directory and a file:// URI name the same dataset.
    assert verify_dataset(str(dataset.parent)).manifest_sha256 == verified.manifest_sha256
    assert verify_dataset(dataset.as_uri()).pairs_paths == verified.pairs_paths


def test_a_corrupted_shard_is_named(dataset: Path) -> None:
    shard = dataset.parent / "pairs" / "part-00001.parquet"
    blob = bytearray(shard.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    shard.write_bytes(bytes(blob))
    with pytest.raises(
        ManifestError, match=r"shard pairs/part-00001\.parquet does not match its checksum"
    ):
        verify_dataset(str(dataset))


def test_a_checksum_mismatch_in_the_manifest_is_named(dataset: Path) -> None:
    raw = json.loads(dataset.read_text())
    raw["shards"][0]["sha256"] = "0" * 64
    dataset.write_text(json.dumps(raw))
    with pytest.raises(ManifestError, match=r"shard pairs/part-00000\.parquet does not match"):
        verify_dataset(str(dataset))


def test_a_missing_shard_is_named(dataset: Path) -> None:
    (dataset.parent / "problems" / "part-00000.parquet").unlink()
    with pytest.raises(
        ManifestError, match=r"shard problems/part-00000\.parquet is listed .* missing"
    ):
        verify_dataset(str(dataset))


def test_a_truncated_shard_is_named_by_its_size(dataset: Path) -> None:
    shard = dataset.parent / "pairs" / "part-00000.parquet"
    shard.write_bytes(shard.read_bytes()[:-10])
    with pytest.raises(ManifestError, match=r"shard pairs/part-00000\.parquet has \d+ bytes"):
        verify_dataset(str(dataset))


def test_a_row_count_that_disagrees_is_named(dataset: Path) -> None:
    raw = json.loads(dataset.read_text())
    raw["shards"][0]["rows"] += 1
    raw["counts"]["pairs"] += 1
    dataset.write_text(json.dumps(raw))
    with pytest.raises(
        ManifestError, match=r"shard pairs/part-00000\.parquet holds 3 rows, the manifest lists 4"
    ):
        verify_dataset(str(dataset))


def test_an_incomplete_manifest_is_refused(dataset: Path) -> None:
    raw = json.loads(dataset.read_text())
    raw["shards"] = [s for s in raw["shards"] if not (s["table"] == "pairs" and s["unit"] == 0)]
    raw["counts"]["pairs"] = 3
    dataset.write_text(json.dumps(raw))
    with pytest.raises(ManifestError, match=r"incomplete: no pairs shard for work unit\(s\) \[0\]"):
        verify_dataset(str(dataset))


def test_a_pairs_total_that_disagrees_is_refused(dataset: Path) -> None:
    _edit_manifest(dataset, {"counts": {"pairs": 99}})
    with pytest.raises(ManifestError, match=r"list 6 rows but counts\.pairs is 99"):
        verify_dataset(str(dataset))


def test_a_newer_schema_is_refused_before_its_fields(dataset: Path) -> None:
    _edit_manifest(dataset, {"schema_version": "2", "a_field_from_the_future": True})
    with pytest.raises(ManifestError, match="schema_version '2', newer than the '1'"):
        verify_dataset(str(dataset))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "is not JSON"),
        ("[]", "must be a JSON object"),
        ('{"job_id": "x"}', "is invalid: spec: Field required"),
    ],
)
def test_a_malformed_manifest_is_refused(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "manifest.json"
    path.write_text(content)
    with pytest.raises(ManifestError, match=message):
        verify_dataset(str(path))


def test_no_manifest_at_all(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="does not exist"):
        verify_dataset(str(tmp_path / "nowhere" / "manifest.json"))
