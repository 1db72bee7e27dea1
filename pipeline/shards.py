"""The Parquet layout of a dataset: the `pairs` and `problems` schemas and table building.

Records become ``pyarrow.Table``s here; writing them (temporary name, atomic rename) is the
shard writer's job in ``cluster``. The pairs columns follow TRL's explicit-prompt layout
(``prompt``, ``chosen``, ``rejected``) so a trainer reads shards with no mapping layer
(DESIGN.md §3.5). Dict-valued fields (``parse_stats``, ``timings``) are stored as JSON
strings, which every Parquet reader, ``datasets`` included, reads without surprises.

Both schemas carry ``schema_version`` as a column and in the schema metadata. Columns are
only ever added within a schema version, never renamed or given a new meaning.

The focus columns of a Focused-DPO pair, for a trainer that weights tokens (DESIGN.md §3.5,
ALGORITHMS.md §1.6, §5.3):

- ``chosen_mid_start``/``chosen_mid_end`` and ``rejected_mid_start``/``rejected_mid_end``:
  half-open character offsets of the mid, the error-prone point, in ``chosen`` and
  ``rejected``; before it lies the common prefix, after it the common suffix. Null for
  Target-DPO pairs, which carry ``chosen_line_spans``/``rejected_line_spans`` instead.
- ``spans_widened``: an empty mid (pure insertion or deletion) was widened forward to the
  line where the edit takes effect. Null for Target-DPO pairs.
- ``focused`` (bool, never null): false when the spans do not isolate the error, so the
  pair should be trained as plain DPO: a mid wider than ``pairs.max_mid_frac`` kept by
  ``pairs.unfocused: keep``, or codes that differ only by code at the end of one of them
  (``pairs.edit_at_end: flag``; the other mid is then empty, at the end of its text).
  Always true for Target-DPO pairs. Added in schema version 1; shards written before it
  lack the column, and a reader may take its absence as true for every row.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from pipeline.records import (
    SCHEMA_VERSION,
    FocusSpans,
    GenerationInfo,
    LineSpan,
    PairMethod,
    PreferencePair,
    ProblemOutcome,
)

SCHEMA_METADATA = {b"schema_version": SCHEMA_VERSION.encode()}

LINE_SPAN_TYPE = pa.struct(
    [
        pa.field("line", pa.int64(), nullable=False),
        pa.field("start", pa.int64(), nullable=False),
        pa.field("end", pa.int64(), nullable=False),
    ]
)
"""One Target-DPO diff line: 0-based index and half-open character span (newline in)."""

PAIRS_SCHEMA = pa.schema(
    [
        pa.field("job_id", pa.string(), nullable=False),
        pa.field("problem_id", pa.string(), nullable=False),
        pa.field("method", pa.string(), nullable=False),
        pa.field("prompt", pa.string(), nullable=False),
        pa.field("chosen", pa.string(), nullable=False),
        pa.field("rejected", pa.string(), nullable=False),
        # Focused-DPO: half-open mids; null for Target-DPO.
        pa.field("chosen_mid_start", pa.int64()),
        pa.field("chosen_mid_end", pa.int64()),
        pa.field("rejected_mid_start", pa.int64()),
        pa.field("rejected_mid_end", pa.int64()),
        pa.field("spans_widened", pa.bool_()),
        pa.field("focused", pa.bool_(), nullable=False),
        # Target-DPO: D+ and D- lines; null for Focused-DPO.
        pa.field("chosen_line_spans", pa.list_(LINE_SPAN_TYPE)),
        pa.field("rejected_line_spans", pa.list_(LINE_SPAN_TYPE)),
        pa.field("chosen_score", pa.float64(), nullable=False),
        pa.field("rejected_score", pa.float64(), nullable=False),
        pa.field("chosen_index", pa.int64(), nullable=False),
        pa.field("rejected_index", pa.int64(), nullable=False),
        pa.field("ranker", pa.string(), nullable=False),
        # Target-DPO: the trajectory and the rounds of both versions; null for Focused-DPO.
        pa.field("trajectory", pa.int64()),
        pa.field("chosen_round", pa.int64()),
        pa.field("rejected_round", pa.int64()),
        pa.field("generator_model", pa.string(), nullable=False),
        pa.field("sampler", pa.string(), nullable=False),
        pa.field("temperature", pa.float64()),
        pa.field("top_p", pa.float64()),
        pa.field("k", pa.int64(), nullable=False),
        pa.field("seed", pa.int64()),
        pa.field("schema_version", pa.string(), nullable=False),
    ],
    metadata=SCHEMA_METADATA,
)
"""One row per preference pair."""

VERSION_TYPE = pa.struct(
    [
        pa.field("round", pa.int64(), nullable=False),
        pa.field("completion", pa.string(), nullable=False),
        pa.field("program", pa.string(), nullable=False),
        pa.field("statuses", pa.list_(pa.string()), nullable=False),
        pa.field("feedback", pa.string(), nullable=False),
    ]
)
"""One version of a refinement trajectory: its statuses against the verified tests, and
the feedback the next refinement prompt showed (empty once it passed)."""

TRAJECTORY_TYPE = pa.struct(
    [
        pa.field("index", pa.int64(), nullable=False),
        pa.field("versions", pa.list_(VERSION_TYPE), nullable=False),
        pa.field("stopped", pa.string()),
    ]
)
"""One Target-DPO trajectory: v0, v1, ... and why it ended early, if it did."""

PROBLEMS_SCHEMA = pa.schema(
    [
        pa.field("job_id", pa.string(), nullable=False),
        pa.field("problem_id", pa.string(), nullable=False),
        pa.field("codes", pa.list_(pa.string()), nullable=False),
        pa.field("code_counts", pa.list_(pa.int64()), nullable=False),
        pa.field("tests", pa.list_(pa.string()), nullable=False),
        pa.field("test_counts", pa.list_(pa.int64()), nullable=False),
        pa.field("status", pa.list_(pa.list_(pa.string())), nullable=False),
        pa.field("code_scores", pa.list_(pa.float64())),
        pa.field("test_scores", pa.list_(pa.float64())),
        pa.field("ranker", pa.string()),
        pa.field("pass_graph_components", pa.int64()),
        pa.field("consensus_sets", pa.int64()),
        pa.field("largest_consensus_samples", pa.int64()),
        pa.field("pairs_emitted", pa.int64(), nullable=False),
        pa.field("fallback_cells", pa.int64(), nullable=False),
        pa.field("verified_tests", pa.list_(pa.string())),
        pa.field("tests_origin", pa.string()),
        pa.field("trajectories", pa.list_(TRAJECTORY_TYPE), nullable=False),
        pa.field("skip_reason", pa.string()),
        pa.field("error", pa.string()),
        pa.field("parse_stats", pa.string(), nullable=False),
        pa.field("timings", pa.string(), nullable=False),
        pa.field("schema_version", pa.string(), nullable=False),
    ],
    metadata=SCHEMA_METADATA,
)
"""One row per problem: candidates (completions), the status matrix, scores, skip reason.

``status[i][j]`` is the ``CellStatus`` value of code i against test j; ``parse_stats``
and ``timings`` are JSON objects (``{"sample": 1.2, ...}``). ``pass_graph_components``,
``consensus_sets`` and ``largest_consensus_samples`` describe how the candidates agree
(``PassGraphStats``); like the scores they are null for a problem that was not ranked.
``fallback_cells`` counts the cells judged on the sandbox's in-process fallback path.
Target-DPO rows add ``verified_tests`` (what every version ran against), ``tests_origin``
(``problem`` or ``ranking``) and ``trajectories`` (every version with its statuses and
feedback); those are null / empty for Focused-DPO rows.
"""


def _line_spans(spans: list[LineSpan] | None) -> list[dict[str, int]] | None:
    if spans is None:
        return None
    return [{"line": s.line, "start": s.start, "end": s.end} for s in spans]


def _pair_row(pair: PreferencePair) -> dict[str, Any]:
    spans, gen = pair.spans, pair.generation
    return {
        "job_id": pair.job_id,
        "problem_id": pair.problem_id,
        "method": pair.method.value,
        "prompt": pair.prompt,
        "chosen": pair.chosen,
        "rejected": pair.rejected,
        "chosen_mid_start": spans.chosen_mid_start if spans else None,
        "chosen_mid_end": spans.chosen_mid_end if spans else None,
        "rejected_mid_start": spans.rejected_mid_start if spans else None,
        "rejected_mid_end": spans.rejected_mid_end if spans else None,
        "spans_widened": spans.widened if spans else None,
        "focused": pair.focused,
        "chosen_line_spans": _line_spans(pair.chosen_lines),
        "rejected_line_spans": _line_spans(pair.rejected_lines),
        "chosen_score": pair.chosen_score,
        "rejected_score": pair.rejected_score,
        "chosen_index": pair.chosen_index,
        "rejected_index": pair.rejected_index,
        "ranker": pair.ranker,
        "trajectory": pair.trajectory,
        "chosen_round": pair.chosen_round,
        "rejected_round": pair.rejected_round,
        "generator_model": gen.model,
        "sampler": gen.sampler,
        "temperature": gen.temperature,
        "top_p": gen.top_p,
        "k": gen.k,
        "seed": gen.seed,
        "schema_version": pair.schema_version,
    }


def pairs_table(pairs: Sequence[PreferencePair]) -> pa.Table:
    """The `pairs` table of some pairs (an empty table with the schema for none)."""
    return pa.Table.from_pylist([_pair_row(p) for p in pairs], schema=PAIRS_SCHEMA)


def _problem_row(outcome: ProblemOutcome) -> dict[str, Any]:
    cands, ranking, graph = outcome.candidates, outcome.ranking, outcome.pass_graph
    return {
        "job_id": outcome.job_id,
        "problem_id": outcome.problem_id,
        "codes": [c.completion for c in cands.codes] if cands else [],
        "code_counts": cands.code_counts if cands else [],
        "tests": [t.source for t in cands.tests] if cands else [],
        "test_counts": cands.test_counts if cands else [],
        "status": [[cell.value for cell in row] for row in outcome.status],
        "code_scores": ranking.code_scores if ranking else None,
        "test_scores": ranking.test_scores if ranking else None,
        "ranker": ranking.ranker if ranking else None,
        "pass_graph_components": graph.components if graph else None,
        "consensus_sets": graph.consensus_sets if graph else None,
        "largest_consensus_samples": graph.largest_consensus_samples if graph else None,
        "pairs_emitted": outcome.pairs_emitted,
        "fallback_cells": outcome.fallback_cells,
        "verified_tests": outcome.verified_tests,
        "tests_origin": outcome.tests_origin.value if outcome.tests_origin else None,
        "trajectories": [
            {
                "index": t.index,
                "versions": [
                    {
                        "round": v.round,
                        "completion": v.completion,
                        "program": v.program,
                        "statuses": [s.value for s in v.statuses],
                        "feedback": v.feedback,
                    }
                    for v in t.versions
                ],
                "stopped": t.stopped,
            }
            for t in outcome.trajectories
        ],
        "skip_reason": outcome.skip_reason.value if outcome.skip_reason else None,
        "error": outcome.error,
        "parse_stats": json.dumps(cands.parse_stats if cands else {}, sort_keys=True),
        "timings": json.dumps(outcome.timings, sort_keys=True),
        "schema_version": outcome.schema_version,
    }


def problems_table(outcomes: Sequence[ProblemOutcome]) -> pa.Table:
    """The `problems` table of some outcomes (an empty table with the schema for none)."""
    return pa.Table.from_pylist([_problem_row(o) for o in outcomes], schema=PROBLEMS_SCHEMA)


def _line_spans_back(rows: list[dict[str, int]] | None) -> list[LineSpan] | None:
    return None if rows is None else [LineSpan(**row) for row in rows]


def pairs_from_table(table: pa.Table) -> list[PreferencePair]:
    """Pairs back from a `pairs` table (the inverse of ``pairs_table``).

    Raises:
        ValueError: a column of ``PAIRS_SCHEMA`` is missing.
    """
    missing = [name for name in PAIRS_SCHEMA.names if name not in table.column_names]
    if missing:
        raise ValueError(
            f"a pairs table needs the columns of PAIRS_SCHEMA; missing {missing}, "
            f"got {table.column_names}"
        )
    pairs = []
    for row in table.to_pylist():
        spans = None
        if row["chosen_mid_start"] is not None:
            spans = FocusSpans(
                chosen_mid_start=row["chosen_mid_start"],
                chosen_mid_end=row["chosen_mid_end"],
                rejected_mid_start=row["rejected_mid_start"],
                rejected_mid_end=row["rejected_mid_end"],
                widened=bool(row["spans_widened"]),
            )
        pairs.append(
            PreferencePair(
                job_id=row["job_id"],
                problem_id=row["problem_id"],
                method=PairMethod(row["method"]),
                prompt=row["prompt"],
                chosen=row["chosen"],
                rejected=row["rejected"],
                spans=spans,
                focused=row["focused"],
                chosen_lines=_line_spans_back(row["chosen_line_spans"]),
                rejected_lines=_line_spans_back(row["rejected_line_spans"]),
                chosen_score=row["chosen_score"],
                rejected_score=row["rejected_score"],
                chosen_index=row["chosen_index"],
                rejected_index=row["rejected_index"],
                ranker=row["ranker"],
                trajectory=row["trajectory"],
                chosen_round=row["chosen_round"],
                rejected_round=row["rejected_round"],
                generation=GenerationInfo(
                    model=row["generator_model"],
                    sampler=row["sampler"],
                    temperature=row["temperature"],
                    top_p=row["top_p"],
                    k=row["k"],
                    seed=row["seed"],
                ),
                schema_version=row["schema_version"],
            )
        )
    return pairs
