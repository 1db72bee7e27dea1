"""The shard store on a real filesystem, addressed by path and by `file://` URI."""

from __future__ import annotations

import hashlib

import pyarrow as pa
import pytest

from cluster.shard_store import ShardStore
from pipeline.errors import StorageError
from pipeline.manifest import MANIFEST_FILE


def tables() -> tuple[pa.Table, pa.Table]:
    return pa.table({"x": [1, 2, 3]}), pa.table({"problem_id": ["a", "b"]})


@pytest.mark.parametrize("as_uri", [False, True], ids=["path", "file-uri"])
def test_unit_is_done_only_once_its_problems_shard_is_in_place(tmp_path, as_uri) -> None:
    store = ShardStore(f"file://{tmp_path}" if as_uri else str(tmp_path))
    assert store.done_units() == [] and not store.has_output()
    pairs, problems = tables()
    store.write_unit(0, pairs, problems)
    store.write_unit(2, pairs, problems)
    assert store.done_units() == [0, 2]
    assert store.has_output()
    assert store.read_table("pairs", 2).equals(pairs)
    info = store.shard_info("problems", 0)
    data = (tmp_path / "problems" / "part-00000.parquet").read_bytes()
    assert (info.rows, info.bytes, info.sha256) == (2, len(data), hashlib.sha256(data).hexdigest())


def test_leftover_temporaries_are_ignored_then_removed(tmp_path) -> None:
    store = ShardStore(str(tmp_path))
    (tmp_path / "problems").mkdir()
    (tmp_path / "problems" / ".tmp-abcd1234-part-00001.parquet").write_bytes(b"partial")
    assert store.done_units() == []
    assert store.remove_temporaries() == 1
    assert list((tmp_path / "problems").iterdir()) == []


def test_text_files_round_trip_atomically(tmp_path) -> None:
    store = ShardStore(str(tmp_path))
    assert store.read_json(MANIFEST_FILE) is None
    store.write_text(MANIFEST_FILE, '{"job_id": "j"}')
    assert store.read_json(MANIFEST_FILE) == {"job_id": "j"}
    assert [p.name for p in tmp_path.iterdir()] == [MANIFEST_FILE]


def test_unusable_location_is_a_storage_error(tmp_path) -> None:
    with pytest.raises(StorageError, match="cannot open output location"):
        ShardStore("nosuchscheme://bucket/x")
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StorageError, match="could not write"):
        ShardStore(str(blocker / "out")).write_unit(0, *tables())
