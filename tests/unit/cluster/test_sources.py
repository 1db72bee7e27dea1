"""Problem sources: validate the whole input in one streaming pass, then read it row by row.

JSONL and Parquet, local paths and ``file://`` URIs, plain and gzipped; every bad row named
with its line; memory bounded by the row limit, not by the file.
"""

from __future__ import annotations

import gzip
import json
import tracemalloc
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cluster.sources import (
    DEFAULT_MAX_ROW_BYTES,
    MAX_LISTED_ERRORS,
    SourceRecord,
    iter_records,
    scan_source,
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


def read(
    config: SourceConfig, kind: SamplerKind, *, max_row_bytes: int = DEFAULT_MAX_ROW_BYTES
) -> list[SourceRecord]:
    """What a build does: validate everything, then stream the records."""
    count = scan_source(config, kind, max_row_bytes=max_row_bytes)
    records = list(iter_records(config, kind, max_row_bytes=max_row_bytes))
    assert len(records) == count
    return records


def refusal(config: SourceConfig, kind: SamplerKind = SamplerKind.OPENAI, **kw: Any) -> str:
    """The message ``scan_source`` refuses the input with."""
    with pytest.raises(InputFormatError) as info:
        scan_source(config, kind, **kw)
    return str(info.value)


def _replay(record: SourceRecord) -> ReplayRow:
    if not isinstance(record.record, ReplayRow):
        raise TypeError(f"expected a ReplayRow, got {type(record.record).__name__}")
    return record.record


# ------------------------------------------------------------------ reading


def test_jsonl_problems_are_read_in_order_with_their_lines(tmp_path):
    path = _jsonl(tmp_path / "p.jsonl", PROBLEMS, blank_after=1)
    records = read(SourceConfig(path=str(path)), SamplerKind.OPENAI)
    assert [(r.index, r.line, r.record.problem_id) for r in records] == [
        (0, 1, "A"),
        (1, 3, "B"),  # line 2 is blank
        (2, 4, "C"),
    ]
    assert records[2].record == Problem.model_validate(PROBLEMS[2])
    assert all(type(r.record) is Problem for r in records)
    # metadata comes back exactly: no keys added, no int turned into float
    assert records[1].record.metadata == {"n": 1}


def test_replay_rows_are_validated_as_replay_rows(tmp_path):
    path = _jsonl(tmp_path / "r.jsonl", REPLAY)
    records = read(SourceConfig(path=str(path)), SamplerKind.REPLAY)
    assert [type(r.record) for r in records] == [ReplayRow, ReplayRow]
    assert _replay(records[1]).completions == REPLAY[1]["completions"]


def test_windows_line_endings_and_a_missing_final_newline_are_read(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_bytes(b"\r\n".join(json.dumps(p).encode() for p in PROBLEMS))
    records = read(SourceConfig(path=str(path)), SamplerKind.OPENAI)
    assert [(r.line, r.record.problem_id) for r in records] == [(1, "A"), (2, "B"), (3, "C")]


@pytest.mark.parametrize("as_uri", [False, True])
def test_parquet_from_a_local_path_or_a_file_uri(tmp_path, as_uri):
    path = tmp_path / "replay.parquet"
    separate = [REPLAY[0], {**PROBLEMS[2], "code_completions": [], "test_completions": ["t"]}]
    pq.write_table(pa.Table.from_pylist(separate), path)
    source = path.as_uri() if as_uri else str(path)
    assert source.startswith("file://") == as_uri
    records = read(SourceConfig(path=source), SamplerKind.REPLAY)
    assert [r.record.problem_id for r in records] == ["A", "C"]
    assert [r.line for r in records] == [1, 2]
    assert _replay(records[0]).code_completions == ["    return 1\n"]
    assert _replay(records[1]).test_completions == ["t"]


def test_gzipped_jsonl_is_read_through_a_file_uri(tmp_path):
    path = tmp_path / "p.jsonl.gz"
    path.write_bytes(gzip.compress("\n".join(json.dumps(p) for p in PROBLEMS).encode()))
    records = read(SourceConfig(path=path.as_uri()), SamplerKind.VLLM)
    assert [r.record.problem_id for r in records] == ["A", "B", "C"]


def test_a_gzipped_jsonl_is_counted_by_its_rows_not_its_bytes(tmp_path):
    # Many similar rows compress well: a count from the compressed bytes would be far off.
    rows = [{"problem_id": f"P/{i}", "prompt": "def f():\n" * 50} for i in range(3000)]
    path = tmp_path / "p.jsonl.gz"
    path.write_bytes(gzip.compress("\n".join(json.dumps(r) for r in rows).encode() + b"\n"))
    assert scan_source(SourceConfig(path=str(path)), SamplerKind.OPENAI) == 3000
    last = list(iter_records(SourceConfig(path=str(path)), SamplerKind.OPENAI))[-1]
    assert (last.index, last.line, last.record.problem_id) == (2999, 3000, "P/2999")


def test_format_can_be_forced_for_an_unusual_name(tmp_path):
    path = _jsonl(tmp_path / "problems.txt", PROBLEMS)
    assert "set `source.format`" in refusal(SourceConfig(path=str(path)))
    records = read(SourceConfig(path=str(path), format="jsonl"), SamplerKind.OPENAI)
    assert len(records) == 3


def test_limit_reads_and_validates_only_the_first_rows(tmp_path):
    path = _jsonl(tmp_path / "p.jsonl", [*PROBLEMS[:2], "garbage"])
    records = read(SourceConfig(path=str(path), limit=2), SamplerKind.OPENAI)
    assert [r.record.problem_id for r in records] == ["A", "B"]
    one = read(SourceConfig(path=str(path), limit=1), SamplerKind.OPENAI)
    assert [r.line for r in one] == [1]


def test_records_are_read_again_from_the_file_on_every_pass(tmp_path):
    path = _jsonl(tmp_path / "p.jsonl", PROBLEMS)
    config = SourceConfig(path=str(path))
    first = list(iter_records(config, SamplerKind.OPENAI))
    assert list(iter_records(config, SamplerKind.OPENAI)) == first


# ------------------------------------------------------------------ refusals


def test_a_malformed_line_is_named_with_its_file_and_line(tmp_path):
    path = _jsonl(tmp_path / "p.jsonl", [PROBLEMS[0], PROBLEMS[1], '{"problem_id": "X", '])
    with pytest.raises(InputFormatError) as info:
        scan_source(SourceConfig(path=str(path)), SamplerKind.OPENAI)
    message = str(info.value)
    assert message.startswith(f"{path}: 1 malformed input row")
    assert "line 3: not valid JSON" in message
    assert info.value.source == str(path)


def test_an_unknown_field_and_a_wrong_type_are_named_with_their_lines(tmp_path):
    rows = [PROBLEMS[0], REPLAY[0], {"problem_id": "D", "prompt": 5}, ["not", "an", "object"]]
    message = refusal(SourceConfig(path=str(_jsonl(tmp_path / "p.jsonl", rows))))
    assert "3 malformed input row(s)" in message
    assert "line 2: code_completions: unknown field; test_completions: unknown field" in message
    assert "line 3: prompt: Input should be a valid string (got 5)" in message
    assert "line 4: expected a JSON object, got list" in message
    assert "line 1" not in message


def test_a_replay_row_without_completions_is_refused(tmp_path):
    path = _jsonl(tmp_path / "r.jsonl", [REPLAY[0], PROBLEMS[2]])
    message = refusal(SourceConfig(path=str(path)), SamplerKind.REPLAY)
    assert "line 2: " in message and "needs `completions`" in message


def test_duplicate_problem_ids_are_refused_naming_both_lines(tmp_path):
    rows = [PROBLEMS[0], PROBLEMS[1], PROBLEMS[0], PROBLEMS[2], PROBLEMS[0], PROBLEMS[2]]
    message = refusal(SourceConfig(path=str(_jsonl(tmp_path / "p.jsonl", rows))))
    assert "3 malformed input row(s)" in message
    assert "line 3: duplicate problem_id 'A' (first seen on line 1)" in message
    assert "line 5: duplicate problem_id 'A' (first seen on line 1)" in message
    assert "line 6: duplicate problem_id 'C' (first seen on line 4)" in message
    assert "line 1:" not in message and "line 4:" not in message


def test_duplicates_are_listed_in_line_order_among_the_other_bad_rows(tmp_path):
    rows = [PROBLEMS[0], "not json", PROBLEMS[0], {"problem_id": "Z"}]
    message = refusal(SourceConfig(path=str(_jsonl(tmp_path / "p.jsonl", rows))))
    assert "3 malformed input row(s)" in message
    listed = [line.split(":", 1)[0].strip() for line in message.splitlines()[1:]]
    assert listed == ["line 2", "line 3", "line 4"]


def test_the_list_of_bad_rows_is_capped_but_the_count_is_exact(tmp_path):
    bad = MAX_LISTED_ERRORS + 987
    path = _jsonl(tmp_path / "p.jsonl", [PROBLEMS[0]] + [{"prompt": "no id"}] * bad)
    message = refusal(SourceConfig(path=str(path)))
    assert f"{bad} malformed input row(s)" in message
    assert message.count("problem_id: required field is missing") == MAX_LISTED_ERRORS
    assert message.endswith("... and 987 more bad rows")
    # The first bad rows are the ones listed.
    assert "line 2: problem_id" in message and f"line {MAX_LISTED_ERRORS + 1}: " in message
    assert f"line {MAX_LISTED_ERRORS + 2}: " not in message


def test_duplicates_beyond_the_listed_rows_are_still_counted(tmp_path):
    bad = MAX_LISTED_ERRORS + 5
    rows = [PROBLEMS[0]] + [{"prompt": "no id"}] * bad + [PROBLEMS[0], PROBLEMS[0]]
    message = refusal(SourceConfig(path=str(_jsonl(tmp_path / "p.jsonl", rows))))
    assert f"{bad + 2} malformed input row(s)" in message
    assert "duplicate problem_id" not in message  # the listed ones are the first bad lines
    assert message.endswith("... and 7 more bad rows")


def test_a_missing_file_is_a_clear_error(tmp_path):
    missing = tmp_path / "nope.jsonl"
    assert "nope.jsonl: input file not found" in refusal(SourceConfig(path=str(missing)))
    assert "input file not found" in refusal(SourceConfig(path=missing.as_uri()))


def test_a_file_uri_naming_a_host_is_refused_rather_than_read_locally(tmp_path):
    path = _jsonl(tmp_path / "p.jsonl", PROBLEMS)
    message = refusal(SourceConfig(path=f"file://otherhost{path}"))
    assert "must not name a host" in message and "'otherhost'" in message


def test_a_directory_and_a_broken_parquet_file_are_clear_errors(tmp_path):
    (tmp_path / "d.parquet").mkdir()
    assert "not a regular file" in refusal(SourceConfig(path=str(tmp_path / "d.parquet")))
    broken = tmp_path / "b.parquet"
    broken.write_text("this is not parquet")
    assert "not a readable Parquet file" in refusal(SourceConfig(path=str(broken)))


def test_an_empty_input_is_refused(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("\n\n")
    assert "holds no rows" in refusal(SourceConfig(path=str(path)))


def test_iter_records_refuses_a_file_that_changed_after_the_scan(tmp_path):
    path = _jsonl(tmp_path / "p.jsonl", PROBLEMS)
    config = SourceConfig(path=str(path))
    assert scan_source(config, SamplerKind.OPENAI) == 3
    _jsonl(path, [PROBLEMS[0], {"problem_id": "B"}, PROBLEMS[2]])
    records = iter_records(config, SamplerKind.OPENAI)
    assert next(records).record.problem_id == "A"
    with pytest.raises(InputFormatError, match="the input changed after it was validated") as info:
        next(records)
    assert info.value.line == 2
    assert "prompt: required field is missing" in str(info.value)


# ------------------------------------------------------------------ bounded memory, exact lines


def test_a_row_over_the_limit_is_named_with_its_line_and_the_rows_after_it_are_read(tmp_path):
    long = {"problem_id": "L", "prompt": "x" * 5000}
    path = _jsonl(tmp_path / "p.jsonl", [PROBLEMS[0], long, PROBLEMS[1], PROBLEMS[2]])
    message = refusal(SourceConfig(path=str(path)), max_row_bytes=1024)
    assert "1 malformed input row(s)" in message
    assert "line 2: row longer than the limit of 1024 bytes" in message
    # The same file is fine under a larger limit.
    assert scan_source(SourceConfig(path=str(path)), SamplerKind.OPENAI, max_row_bytes=8192) == 4


def test_the_row_limit_counts_bytes_and_a_row_of_exactly_the_limit_is_accepted(tmp_path):
    # Two-byte characters: counting characters instead of bytes would accept line 2.
    at_limit = json.dumps({"problem_id": "A", "prompt": "é" * 100}, ensure_ascii=False).encode()
    over = json.dumps({"problem_id": "B", "prompt": "é" * 100 + "a"}, ensure_ascii=False).encode()
    path = tmp_path / "p.jsonl"
    path.write_bytes(at_limit + b"\n" + over + b"\n")
    message = refusal(SourceConfig(path=str(path)), max_row_bytes=len(at_limit))
    assert "1 malformed input row(s)" in message
    assert f"line 2: row longer than the limit of {len(at_limit)} bytes" in message


def test_a_row_spanning_read_chunks_is_read_whole(tmp_path):
    # Longer than the reader's 1 MiB chunks, shorter than the limit: stitched together intact.
    prompt = "".join(chr(ord("a") + i % 26) for i in range(3 * 2**20 // 2))
    path = _jsonl(tmp_path / "p.jsonl", [PROBLEMS[0], {"problem_id": "L", "prompt": prompt}])
    (_, second) = read(SourceConfig(path=str(path)), SamplerKind.OPENAI)
    assert (second.line, second.record.prompt) == (2, prompt)


def test_the_default_row_limit_refuses_a_valid_but_huge_row(tmp_path):
    huge = {"problem_id": "H", "prompt": "x" * (DEFAULT_MAX_ROW_BYTES + 1)}
    path = _jsonl(tmp_path / "p.jsonl", [PROBLEMS[0], huge])
    message = refusal(SourceConfig(path=str(path)))
    assert f"line 2: row longer than the limit of {DEFAULT_MAX_ROW_BYTES} bytes" in message


def test_a_file_without_newlines_is_refused_in_memory_bounded_by_the_read_size(tmp_path):
    size = 20 * 2**20
    path = tmp_path / "one-line.jsonl"
    with path.open("wb") as out:
        for _ in range(20):
            out.write(b"x" * 2**20)
    assert path.stat().st_size == size
    tracemalloc.start()
    try:
        message = refusal(SourceConfig(path=str(path)), max_row_bytes=1024)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "line 1: row longer than the limit of 1024 bytes" in message
    # A few 1 MiB read chunks at most; holding the line would cost all 20 MiB.
    assert peak < size // 5, f"peak {peak} bytes while scanning a {size}-byte line"


def test_an_undecodable_byte_is_blamed_on_its_own_line(tmp_path):
    long_prompt = "def f():\n" + "    # padding\n" * 20_000  # ~280 kB per line
    lines = [
        json.dumps({"problem_id": f"P/{i}", "prompt": long_prompt}).encode() for i in range(10)
    ]
    good = lines[4]
    lines[4] = good[:100] + b"\xff" + good[100:]
    path = tmp_path / "p.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    message = refusal(SourceConfig(path=str(path)))
    assert "1 malformed input row(s)" in message
    assert "line 5: not valid UTF-8 (byte 101 of the line)" in message


def test_an_undecodable_byte_in_a_gzipped_file_is_blamed_on_its_own_line(tmp_path):
    lines = [json.dumps(p).encode() for p in PROBLEMS]
    lines.insert(1, b'{"problem_id": "\xc3\x28", "prompt": "x"}')
    path = tmp_path / "p.jsonl.gz"
    path.write_bytes(gzip.compress(b"\n".join(lines)))
    assert "line 2: not valid UTF-8 (byte 17 of the line)" in refusal(SourceConfig(path=str(path)))


def test_a_parquet_row_over_the_limit_is_named_with_its_row(tmp_path):
    rows = [
        {**REPLAY[0], "problem_id": "A"},
        {**REPLAY[0], "problem_id": "B", "code_completions": ["    return 1\n" * 500]},
        {**REPLAY[0], "problem_id": "C"},
    ]
    path = tmp_path / "r.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    message = refusal(SourceConfig(path=str(path)), SamplerKind.REPLAY, max_row_bytes=2048)
    assert "1 malformed input row(s)" in message
    assert "line 2: row longer than the limit of 2048 bytes" in message


def test_a_small_parquet_file_of_huge_rows_is_refused_in_bounded_memory(tmp_path):
    # Identical strings compress to almost nothing: a 1 kB file that decodes to 48 MiB.
    rows = [{"problem_id": f"P/{i}", "prompt": "x" * (4 * 2**20)} for i in range(12)]
    path = tmp_path / "bomb.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path, compression="zstd")
    del rows
    tracemalloc.start()
    try:
        message = refusal(SourceConfig(path=str(path)), max_row_bytes=1024)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "12 malformed input row(s)" in message
    assert peak < 16 * 2**20, f"peak {peak} bytes for a {path.stat().st_size}-byte file"


def test_the_row_limit_is_the_same_for_a_row_in_jsonl_and_in_parquet(tmp_path):
    row = {"problem_id": "A", "prompt": "é" * 600}  # 1,200 bytes of UTF-8
    jsonl = tmp_path / "p.jsonl"
    jsonl.write_text(json.dumps(row, ensure_ascii=False) + "\n", encoding="utf-8")
    parquet = tmp_path / "p.parquet"
    pq.write_table(pa.Table.from_pylist([row]), parquet)
    for path in (jsonl, parquet):
        assert (
            scan_source(SourceConfig(path=str(path)), SamplerKind.OPENAI, max_row_bytes=2048) == 1
        )


# ------------------------------------------------------------------ real data


@requires_shared_data
def test_real_humaneval_replay_rows_validate():
    source = SourceConfig(path=str(HUMANEVAL_DIR / "dev-k10.jsonl"), limit=5)
    records = read(source, SamplerKind.REPLAY)
    with (HUMANEVAL_DIR / "dev-k10.jsonl").open() as f:
        expected = [json.loads(next(f))["problem_id"] for _ in range(5)]
    assert [r.record.problem_id for r in records] == expected
    replays = [_replay(r) for r in records]
    assert all(len(r.code_completions or []) == 10 for r in replays)
    assert all(t.startswith("assert ") for r in replays for t in r.test_completions or [])
