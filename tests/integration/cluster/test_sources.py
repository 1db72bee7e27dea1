"""Problem sources: JSONL and Parquet, local paths and URIs, and clear errors on bad input."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cluster.sources import (
    MAX_LISTED_ERRORS,
    SOURCE_COLUMNS,
    SourceRecord,
    read_records,
    read_source,
)
from pipeline.config import SamplerKind, SourceConfig
from pipeline.errors import InputFormatError
from pipeline.records import Problem, ReplayRow
from tests.conftest import HUMANEVAL_DIR, requires_shared_data

PROBLEMS: list[dict[str, Any]] = [
    {"problem_id": "A", "prompt": "def a():\n", "entry_point": "a"},
    {"problem_id": "B", "prompt": "Write b.", "style": "instruction", "metadata": {"n": 1}},
    {"problem_id": "C", "prompt": "def c():\n", "metadata": {"tags": ["x"], "level": "easy"}},
]
REPLAY: list[dict[str, Any]] = [
    {
        **PROBLEMS[0],
        "code_completions": ["    return 1\n"],
        "test_completions": ["assert a() == 1"],
    },
    {**PROBLEMS[1], "completions": ["```python\ndef b(): ...\n```"]},
]


def _jsonl(path: Path, rows: list[Any], *, blank_after: int | None = None) -> Path:
    lines = [r if isinstance(r, str) else json.dumps(r) for r in rows]
    if blank_after is not None:
        lines.insert(blank_after, "   ")
    path.write_text("\n".join(lines) + "\n")
    return path


def _replay(record: SourceRecord) -> ReplayRow:
    if not isinstance(record.record, ReplayRow):
        raise TypeError(f"expected a ReplayRow, got {type(record.record).__name__}")
    return record.record


def test_jsonl_problems_are_read_in_order_with_their_lines(tmp_path):
    path = _jsonl(tmp_path / "p.jsonl", PROBLEMS, blank_after=1)
    records = read_records(SourceConfig(path=str(path)), SamplerKind.OPENAI)
    assert [(r.index, r.line, r.record.problem_id) for r in records] == [
        (0, 1, "A"),
        (1, 3, "B"),  # line 2 is blank
        (2, 4, "C"),
    ]
    assert records[2].record == Problem.model_validate(PROBLEMS[2])
    assert all(type(r.record) is Problem for r in records)


def test_replay_rows_are_validated_as_replay_rows(tmp_path):
    path = _jsonl(tmp_path / "r.jsonl", REPLAY)
    records = read_records(SourceConfig(path=str(path)), SamplerKind.REPLAY)
    assert [type(r.record) for r in records] == [ReplayRow, ReplayRow]
    assert _replay(records[1]).completions == REPLAY[1]["completions"]


@pytest.mark.parametrize("as_uri", [False, True])
def test_parquet_from_a_local_path_or_a_file_uri(tmp_path, as_uri):
    path = tmp_path / "replay.parquet"
    separate = [REPLAY[0], {**PROBLEMS[2], "code_completions": [], "test_completions": ["t"]}]
    pq.write_table(pa.Table.from_pylist(separate), path)
    source = path.as_uri() if as_uri else str(path)
    assert source.startswith("file://") == as_uri
    records = read_records(SourceConfig(path=source), SamplerKind.REPLAY)
    assert [r.record.problem_id for r in records] == ["A", "C"]
    assert [r.line for r in records] == [1, 2]
    assert _replay(records[0]).code_completions == ["    return 1\n"]
    assert _replay(records[1]).test_completions == ["t"]


def test_gzipped_jsonl_is_read_through_a_file_uri(tmp_path):
    path = tmp_path / "p.jsonl.gz"
    path.write_bytes(gzip.compress("\n".join(json.dumps(p) for p in PROBLEMS).encode()))
    records = read_records(SourceConfig(path=path.as_uri()), SamplerKind.VLLM)
    assert [r.record.problem_id for r in records] == ["A", "B", "C"]


def test_format_can_be_forced_for_an_unusual_name(tmp_path):
    path = _jsonl(tmp_path / "problems.txt", PROBLEMS)
    with pytest.raises(InputFormatError, match=r"set `source\.format`"):
        read_records(SourceConfig(path=str(path)), SamplerKind.OPENAI)
    records = read_records(SourceConfig(path=str(path), format="jsonl"), SamplerKind.OPENAI)
    assert len(records) == 3


def test_a_malformed_line_is_named_with_its_file_and_line(tmp_path):
    path = _jsonl(tmp_path / "p.jsonl", [PROBLEMS[0], PROBLEMS[1], '{"problem_id": "X", '])
    with pytest.raises(InputFormatError) as info:
        read_records(SourceConfig(path=str(path)), SamplerKind.OPENAI)
    message = str(info.value)
    assert message.startswith(f"{path}: 1 malformed input row")
    assert "line 3: not valid JSON" in message
    assert info.value.source == str(path)


def test_an_unknown_field_and_a_wrong_type_are_named_with_their_lines(tmp_path):
    rows = [PROBLEMS[0], REPLAY[0], {"problem_id": "D", "prompt": 5}, ["not", "an", "object"]]
    path = _jsonl(tmp_path / "p.jsonl", rows)
    with pytest.raises(InputFormatError) as info:
        read_records(SourceConfig(path=str(path)), SamplerKind.OPENAI)
    message = str(info.value)
    assert "3 malformed input row(s)" in message
    assert "line 2: code_completions: unknown field; test_completions: unknown field" in message
    assert "line 3: prompt: Input should be a valid string (got 5)" in message
    assert "line 4: expected a JSON object, got list" in message
    assert "line 1" not in message


def test_a_replay_row_without_completions_is_refused(tmp_path):
    path = _jsonl(tmp_path / "r.jsonl", [REPLAY[0], PROBLEMS[2]])
    with pytest.raises(InputFormatError, match=r"line 2: .*needs `completions`"):
        read_records(SourceConfig(path=str(path)), SamplerKind.REPLAY)


def test_duplicate_problem_ids_are_refused_naming_both_lines(tmp_path):
    path = _jsonl(tmp_path / "p.jsonl", [PROBLEMS[0], PROBLEMS[1], PROBLEMS[0]])
    with pytest.raises(
        InputFormatError, match=r"line 3: duplicate problem_id 'A' \(first seen on line 1\)"
    ):
        read_records(SourceConfig(path=str(path)), SamplerKind.OPENAI)


def test_the_list_of_bad_rows_is_capped(tmp_path):
    bad = MAX_LISTED_ERRORS + 7
    path = _jsonl(tmp_path / "p.jsonl", [{"prompt": "no id"}] * bad)
    with pytest.raises(InputFormatError) as info:
        read_records(SourceConfig(path=str(path)), SamplerKind.OPENAI)
    message = str(info.value)
    assert f"{bad} malformed input row(s)" in message
    assert message.count("problem_id: required field is missing") == MAX_LISTED_ERRORS
    assert message.endswith("... and 7 more bad rows")


def test_a_missing_file_is_a_clear_error(tmp_path):
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(InputFormatError, match=r"nope.jsonl: input file not found"):
        read_records(SourceConfig(path=str(missing)), SamplerKind.OPENAI)
    with pytest.raises(InputFormatError, match="input file not found"):
        read_records(SourceConfig(path=missing.as_uri()), SamplerKind.OPENAI)


def test_a_directory_and_a_broken_parquet_file_are_clear_errors(tmp_path):
    (tmp_path / "d.parquet").mkdir()
    with pytest.raises(InputFormatError, match="is a directory"):
        read_records(SourceConfig(path=str(tmp_path / "d.parquet")), SamplerKind.OPENAI)
    broken = tmp_path / "b.parquet"
    broken.write_text("this is not parquet")
    with pytest.raises(InputFormatError, match="not a readable Parquet file"):
        read_records(SourceConfig(path=str(broken)), SamplerKind.OPENAI)


def test_an_empty_input_is_refused(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("\n\n")
    with pytest.raises(InputFormatError, match="holds no rows"):
        read_records(SourceConfig(path=str(path)), SamplerKind.OPENAI)


def test_limit_reads_and_validates_only_the_first_rows(tmp_path):
    path = _jsonl(tmp_path / "p.jsonl", [*PROBLEMS[:2], "garbage"])
    records = read_records(SourceConfig(path=str(path), limit=2), SamplerKind.OPENAI)
    assert [r.record.problem_id for r in records] == ["A", "B"]
    one = read_records(SourceConfig(path=str(path), limit=1), SamplerKind.OPENAI)
    assert [r.line for r in one] == [1]


@requires_shared_data
def test_real_humaneval_replay_rows_validate():
    source = SourceConfig(path=str(HUMANEVAL_DIR / "dev-k10.jsonl"), limit=5)
    records = read_records(source, SamplerKind.REPLAY)
    with (HUMANEVAL_DIR / "dev-k10.jsonl").open() as f:
        expected = [json.loads(next(f))["problem_id"] for _ in range(5)]
    assert [r.record.problem_id for r in records] == expected
    replays = [_replay(r) for r in records]
    assert all(len(r.code_completions or []) == 10 for r in replays)
    assert all(t.startswith("assert ") for r in replays for t in r.test_completions or [])


def test_read_source_builds_a_ray_dataset_of_validated_rows(tmp_path, ray_local):
    path = _jsonl(tmp_path / "p.jsonl", PROBLEMS)
    ds = read_source(SourceConfig(path=str(path)), SamplerKind.OPENAI)
    rows = sorted(ds.take_all(), key=lambda r: r["index"])
    assert set(rows[0]) == set(SOURCE_COLUMNS)
    assert [(r["index"], r["line"], r["problem_id"]) for r in rows] == [
        (0, 1, "A"),
        (1, 2, "B"),
        (2, 3, "C"),
    ]
    # Decoded the way the live samplers decode it.
    decoded = [Problem.model_validate_json(r["record"]) for r in rows]
    assert decoded == [Problem.model_validate(p) for p in PROBLEMS]
    # metadata comes back exactly: no keys added by Arrow, no int turned into float
    assert decoded[1].metadata == {"n": 1}


def test_read_source_fails_before_creating_any_dataset_on_bad_input(tmp_path, ray_local):
    path = _jsonl(tmp_path / "p.jsonl", [PROBLEMS[0], {"problem_id": "Z"}])
    with pytest.raises(InputFormatError, match="line 2: prompt: required field is missing"):
        read_source(SourceConfig(path=str(path)), SamplerKind.OPENAI)
