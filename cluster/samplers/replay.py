"""The replay sampler: pre-generated raw completions from the source rows (DESIGN.md §3.2).

Nothing is generated; the first ``k`` code and first ``k`` test completions (or the first
``k`` joint ones) of each row are passed on, so a replay job with ``k = 10`` on a file of
100 samples per problem sees the same candidates as one on the 10-sample file.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cluster.samplers.base import SAMPLED_COLUMNS, SampledRow, batch_of, rows_of
from pipeline.records import ReplayRow


def replay_sample(index: int, row: ReplayRow, k: int) -> SampledRow:
    """The sampled row of one replay row, keeping the first ``k`` completions of each kind."""

    def first_k(values: list[str] | None) -> list[str] | None:
        return None if values is None else values[:k]

    return SampledRow(
        index=index,
        problem=row.problem(),
        code_completions=first_k(row.code_completions),
        test_completions=first_k(row.test_completions),
        completions=first_k(row.completions),
    )


def replay_batch(batch: Mapping[str, Any], *, k: int) -> dict[str, list[Any]]:
    """Ray Data UDF: source rows (``cluster.sources.SOURCE_COLUMNS``) → sampled rows.

    Use as ``ds.map_batches(replay_batch, fn_kwargs={"k": spec.sampler.k})``.
    """
    out = [
        replay_sample(int(r["index"]), ReplayRow.model_validate_json(r["record"]), k).to_ray_row()
        for r in rows_of(batch)
    ]
    return batch_of(out, SAMPLED_COLUMNS)
