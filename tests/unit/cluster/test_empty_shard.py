"""A dataset whose units do not all have pairs must still load with ``datasets``.

Found by the live tier: the bundled 135M model often leaves a unit without any pair, and
``ShardStore`` writes that unit's empty pairs table with ``pq.write_table``, which puts a
row group of 0 rows in the file. ``datasets`` (5.2) takes the first row group's size as
its batch size and fails the whole load with ``ArrowInvalid: BatchSize must be greater
than 0, got 0``, even when other shards hold pairs. A file with no row group at all (a
``pq.ParquetWriter`` closed without writing) is read as empty and the load succeeds.

``ShardStore`` therefore writes an empty table as a file with no row group.
"""

from __future__ import annotations

import pytest

from cluster.shard_store import ShardStore
from pipeline.records import GenerationInfo, PairMethod, PreferencePair
from pipeline.shards import pairs_table, problems_table


def _pair() -> PreferencePair:
    return PreferencePair(
        job_id="j",
        problem_id="p/1",
        method=PairMethod.FOCUSED_DPO,
        prompt="def f():\n",
        chosen="    return 1\n",
        rejected="    return 2\n",
        chosen_score=1.0,
        rejected_score=0.0,
        chosen_index=0,
        rejected_index=1,
        ranker="pagerank",
        generation=GenerationInfo(model="m", sampler="openai", k=2),
    )


def test_pairs_load_with_datasets_when_a_unit_has_none(tmp_path) -> None:
    datasets = pytest.importorskip("datasets")
    store = ShardStore(str(tmp_path))
    store.write_unit(0, pairs_table([_pair()]), problems_table([]))
    store.write_unit(1, pairs_table([]), problems_table([]))
    pairs = datasets.load_dataset(
        "parquet", data_files=str(tmp_path / "pairs" / "*.parquet"), split="train"
    )
    assert len(pairs) == 1
