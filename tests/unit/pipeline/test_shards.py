"""The Parquet contract of the hand-off: schemas, round trips, and what `datasets` reads."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from pipeline.config import PairsConfig
from pipeline.error_points import focus_spans
from pipeline.line_diff import line_diff
from pipeline.manifest import shard_name
from pipeline.pairing import select_focused_pairs
from pipeline.records import (
    SCHEMA_VERSION,
    Candidates,
    CellStatus,
    CodeCandidate,
    GenerationInfo,
    PairMethod,
    PassGraphStats,
    PreferencePair,
    ProblemOutcome,
    RankingResult,
    SkipReason,
    TestCandidate,
)
from pipeline.shards import (
    pairs_from_table,
    pairs_table,
    problems_table,
)

GEN = GenerationInfo(model="codegen-16B", sampler="replay", temperature=1.5, top_p=0.95, k=4)

CANDIDATES = Candidates(
    problem_id="HumanEval/0",
    codes=[
        CodeCandidate(completion="    return a + b  # é\n", program="p0", count=3, first_sample=0),
        CodeCandidate(completion="    return a - b  # é\n", program="p1", count=1, first_sample=1),
    ],
    tests=[
        TestCandidate(source="assert add(1, 1) == 2", count=2, first_sample=0),
        TestCandidate(source="assert add(0, 0) == 0", count=1, first_sample=0),
    ],
    parse_stats={"no_code_block": 1},
)
STATUS = [[CellStatus.PASSED, CellStatus.PASSED], [CellStatus.FAILED, CellStatus.PASSED]]
RANKING = RankingResult(
    ranker="pagerank", code_scores=[2.0, 1.0], test_scores=[1.5, 2.0], order=[0, 1]
)


def _pairs() -> list[PreferencePair]:
    passed = np.array([[s is CellStatus.PASSED for s in row] for row in STATUS])
    focused = select_focused_pairs(
        CANDIDATES,
        passed,
        RANKING,
        PairsConfig(),
        job_id="job-1",
        prompt="def add(a, b):\n",
        generation=GEN,
    ).pairs
    chosen, rejected = "def f(x):\n    return x + 1\n", "def f(x):\n    return x - 1\n"
    d_plus, d_minus = line_diff(chosen, rejected)
    target = PreferencePair(
        job_id="job-1",
        problem_id="T/1",
        method=PairMethod.TARGET_DPO,
        prompt="Write f.",
        chosen=chosen,
        rejected=rejected,
        chosen_lines=d_plus,
        rejected_lines=d_minus,
        chosen_score=1.0,
        rejected_score=0.0,
        chosen_index=1,
        rejected_index=0,
        ranker="refinement",
        trajectory=0,
        chosen_round=1,
        rejected_round=0,
        generation=GEN,
    )
    assert len(focused) == 1
    widened = _pair_like(focused[0], "x = 1\ny = 2\nz = 3\n", "x = 1\nz = 3\n")
    assert widened.spans is not None and widened.spans.widened and widened.focused
    at_end = _pair_like(focused[0], "x = 1\ny = 2\n", "x = 1\n")
    assert not at_end.focused
    return [*focused, target, widened, at_end]


def _pair_like(pair: PreferencePair, chosen: str, rejected: str) -> PreferencePair:
    result = focus_spans(chosen, rejected, max_mid_frac=1.0)
    update = {"chosen": chosen, "rejected": rejected, "spans": result.spans}
    return pair.model_copy(update=update | {"focused": result.focused})


def _outcomes() -> list[ProblemOutcome]:
    return [
        ProblemOutcome(
            job_id="job-1",
            problem_id="HumanEval/0",
            candidates=CANDIDATES,
            status=STATUS,
            ranking=RANKING,
            pass_graph=PassGraphStats(components=1, consensus_sets=2, largest_consensus_samples=3),
            pairs_emitted=1,
            timings={"sample": 0.5, "execute": 1.25},
        ),
        ProblemOutcome(
            job_id="job-1",
            problem_id="HumanEval/1",
            skip_reason=SkipReason.SAMPLER_ERROR,
            error="endpoint returned 503 five times",
        ),
    ]


def test_pairs_table_rows():
    table = pairs_table(_pairs())
    assert table.schema.metadata[b"schema_version"] == SCHEMA_VERSION.encode()
    first, target, widened, at_end = table.to_pylist()
    assert first["chosen_line_spans"] is None
    assert (first["chosen_mid_start"], first["chosen_mid_end"]) == (13, 14)
    assert first["generator_model"] == "codegen-16B" and first["seed"] is None
    assert first["focused"] is True and first["spans_widened"] is False
    assert target["method"] == "target_dpo"
    assert target["chosen_mid_start"] is None and target["spans_widened"] is None
    assert target["rejected_line_spans"] == [{"line": 1, "start": 10, "end": 27}]
    assert target["focused"] is True
    assert widened["spans_widened"] is True and widened["focused"] is True
    # Code missing at the end of the rejected side: flagged, its mid empty at its end.
    assert at_end["focused"] is False and at_end["spans_widened"] is False
    assert at_end["rejected_mid_start"] == at_end["rejected_mid_end"] == len("x = 1\n")


def test_pairs_round_trip_through_parquet(tmp_path):
    pairs = _pairs()
    path = tmp_path / "pairs.parquet"
    pq.write_table(pairs_table(pairs), path)
    back = pq.read_table(path)
    assert back.schema.metadata[b"schema_version"] == SCHEMA_VERSION.encode()
    assert pairs_from_table(back) == pairs


def test_pairs_from_table_names_missing_columns():
    table = pairs_table(_pairs()).drop_columns(["chosen", "ranker"])
    with pytest.raises(ValueError, match=r"missing \['chosen', 'ranker'\]"):
        pairs_from_table(table)


def test_problems_table_round_trips_through_parquet(tmp_path):
    path = tmp_path / "problems.parquet"
    pq.write_table(problems_table(_outcomes()), path)
    rows = pq.read_table(path).to_pylist()
    first, second = rows
    assert first["codes"] == [c.completion for c in CANDIDATES.codes]
    assert first["code_counts"] == [3, 1] and first["test_counts"] == [2, 1]
    assert first["tests"] == ["assert add(1, 1) == 2", "assert add(0, 0) == 0"]
    assert first["status"] == [["passed", "passed"], ["failed", "passed"]]
    assert first["code_scores"] == [2.0, 1.0] and first["ranker"] == "pagerank"
    assert first["pass_graph_components"] == 1 and first["consensus_sets"] == 2
    assert first["largest_consensus_samples"] == 3
    assert json.loads(first["parse_stats"]) == {"no_code_block": 1}
    assert json.loads(first["timings"]) == {"execute": 1.25, "sample": 0.5}
    assert first["skip_reason"] is None and first["pairs_emitted"] == 1
    assert second["codes"] == [] and second["status"] == [] and second["code_scores"] is None
    assert second["pass_graph_components"] is None and second["consensus_sets"] is None
    assert second["skip_reason"] == "sampler_error"
    assert second["error"] == "endpoint returned 503 five times"


def test_datasets_reads_the_shards_as_trl_preference_data(tmp_path):
    datasets = pytest.importorskip("datasets")
    pairs = _pairs()
    for unit, chunk in enumerate((pairs[:2], pairs[2:])):
        for table_name, table in (
            ("pairs", pairs_table(chunk)),
            ("problems", problems_table(_outcomes()[unit : unit + 1])),
        ):
            path = tmp_path / shard_name(table_name, unit)
            path.parent.mkdir(exist_ok=True)
            pq.write_table(table, path)
    ds = datasets.load_dataset(
        "parquet",
        data_files=str(tmp_path / "pairs" / "*.parquet"),
        split="train",
        cache_dir=str(tmp_path / "hf-cache"),
    )
    assert ds.num_rows == 4
    for name in ("prompt", "chosen", "rejected"):
        assert ds.features[name] == datasets.Value("string")
    assert ds.features["chosen_mid_start"] == datasets.Value("int64")
    assert ds.features["focused"] == datasets.Value("bool")
    assert ds["focused"] == [True, True, True, False]
    for row in ds:
        assert isinstance(row["chosen"], str) and isinstance(row["rejected"], str)
        if row["method"] == "focused_dpo":
            c0, c1 = row["chosen_mid_start"], row["chosen_mid_end"]
            r0, r1 = row["rejected_mid_start"], row["rejected_mid_end"]
            assert all(isinstance(v, int) for v in (c0, c1, r0, r1))
            assert 0 <= c0 <= c1 <= len(row["chosen"]) and 0 <= r0 <= r1 <= len(row["rejected"])
        else:
            for text, spans in (
                (row["chosen"], row["chosen_line_spans"]),
                (row["rejected"], row["rejected_line_spans"]),
            ):
                for span in spans:
                    line = text[span["start"] : span["end"]]
                    assert line.endswith("\n") and line == text.splitlines(True)[span["line"]]
    # The focused pair's mids, read back through datasets, cut out the differing operator.
    first = ds[0]
    assert first["chosen"][first["chosen_mid_start"] : first["chosen_mid_end"]] == "+"
    assert first["rejected"][first["rejected_mid_start"] : first["rejected_mid_end"]] == "-"
    problems = datasets.load_dataset(
        "parquet",
        data_files=str(tmp_path / "problems" / "*.parquet"),
        split="train",
        cache_dir=str(tmp_path / "hf-cache"),
    )
    assert sorted(problems["problem_id"]) == ["HumanEval/0", "HumanEval/1"]
