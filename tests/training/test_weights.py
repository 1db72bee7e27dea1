"""Per-token weights from stored character spans (ALGORITHMS.md §1.8, §1.9, §2.4).

The first tests use hand-written token spans, so every expected weight can be read off the
spans; the rest tokenize with the bundled model's real tokenizer, whose splits are listed
in the test so the expectation is checkable by eye.
"""

from __future__ import annotations

from typing import Any

import pytest

from deploy.training.config import FocusWeights
from deploy.training.encoding import WeightScheme, encode_pair
from deploy.training.weights import focused_weights, line_weights, segment_of_tokens
from pipeline.error_points import focus_spans
from pipeline.line_diff import line_diff

CHOSEN = {"prefix": 1.0, "mid_weight": 2.0, "suffix": 1.0}
REJECTED = {"prefix": 1.0, "mid_weight": 2.0, "suffix": 0.0}


def test_a_token_overlapping_the_mid_is_mid_where_the_mid_starts_and_ends_inside_tokens() -> None:
    # tokens: "def" " f" "(x" "):" + EOS at 9..19; the mid [4, 7) starts inside " f" and ends
    # inside "):", so " f", "(x" and "):" are mid; EOS is suffix.
    offsets = [(0, 3), (3, 5), (5, 7), (7, 9), (9, 19)]
    assert segment_of_tokens(offsets, (4, 8)) == ["prefix", "mid", "mid", "mid", "suffix"]
    assert focused_weights(offsets, (4, 8), **CHOSEN) == [1.0, 2.0, 2.0, 2.0, 1.0]
    assert focused_weights(offsets, (4, 8), **REJECTED) == [1.0, 2.0, 2.0, 2.0, 0.0]


def test_a_mid_on_token_boundaries_takes_only_its_tokens() -> None:
    offsets = [(0, 3), (3, 5), (5, 7), (7, 9), (9, 19)]
    assert focused_weights(offsets, (3, 7), **REJECTED) == [1.0, 2.0, 2.0, 0.0, 0.0]


def test_an_empty_mid_at_the_end_marks_eos_only() -> None:
    # "abc" then EOS: the codes differ only in where they stop (edit at the end).
    offsets = [(0, 2), (2, 3), (3, 13)]
    assert segment_of_tokens(offsets, (3, 3)) == ["prefix", "prefix", "mid"]
    assert focused_weights(offsets, (3, 3), **REJECTED) == [1.0, 1.0, 2.0]


def test_an_empty_mid_inside_marks_the_token_at_that_point() -> None:
    offsets = [(0, 2), (2, 5), (5, 6), (6, 16)]
    assert segment_of_tokens(offsets, (3, 3)) == ["prefix", "mid", "suffix", "suffix"]
    assert segment_of_tokens(offsets, (5, 5)) == ["prefix", "prefix", "mid", "suffix"]


def test_tokens_merged_across_the_prompt_boundary_are_prefix() -> None:
    # The first completion token began one character inside the prompt ("\n   ").
    offsets = [(-1, 3), (3, 9), (9, 19)]
    assert segment_of_tokens(offsets, (3, 9)) == ["prefix", "mid", "suffix"]
    assert segment_of_tokens(offsets, (2, 4)) == ["mid", "mid", "suffix"]


def test_zero_width_tokens_sit_at_their_position() -> None:
    offsets = [(0, 2), (2, 2), (2, 4), (4, 4)]
    assert segment_of_tokens(offsets, (2, 4)) == ["prefix", "mid", "mid", "suffix"]


def test_d_minus_lines_mark_the_tokens_that_overlap_them() -> None:
    # "a\n" "b\n" "c\n": lines [0,2) [2,4) [4,6); a token "\n b" merging lines 0 and 1.
    offsets = [(0, 1), (1, 3), (3, 4), (4, 6), (6, 16)]
    assert line_weights(offsets, [(0, 2)]) == [1.0, 1.0, 0.0, 0.0, 0.0]
    assert line_weights(offsets, [(4, 6)]) == [0.0, 0.0, 0.0, 1.0, 0.0]
    assert line_weights(offsets, []) == [0.0] * 5


def test_a_reversed_mid_is_refused() -> None:
    with pytest.raises(ValueError, match="start <= end"):
        segment_of_tokens([(0, 1)], (3, 2))


# --- with the bundled tokenizer ------------------------------------------------------------


def _scheme(method: str, **kw: Any) -> WeightScheme:
    return WeightScheme(
        method=method,  # type: ignore[arg-type]
        weights=FocusWeights(),
        unfocused=kw.get("unfocused", "weighted"),
        rejected_diff_only=kw.get("rejected_diff_only", True),
    )


def _focused_row(prompt: str, chosen: str, rejected: str, **extra: Any) -> dict[str, Any]:
    result = focus_spans(chosen, rejected, max_mid_frac=1.0)
    assert result.spans is not None
    s = result.spans
    return {
        "problem_id": "p",
        "method": "focused_dpo",
        "prompt": prompt,
        "chosen": chosen,
        "rejected": rejected,
        "chosen_mid_start": s.chosen_mid_start,
        "chosen_mid_end": s.chosen_mid_end,
        "rejected_mid_start": s.rejected_mid_start,
        "rejected_mid_end": s.rejected_mid_end,
        "spans_widened": s.widened,
        "focused": result.focused,
        **extra,
    }


def _pieces(tokenizer: Any, ids: list[int]) -> list[str]:
    return [tokenizer.decode([i]) for i in ids]


def test_multibyte_characters_use_character_offsets(tokenizer: Any) -> None:
    # "日" and "🎉" are split into byte-level pieces whose offsets all cover the character;
    # the spans are str indices, so the mid "日本" covers exactly the pieces of both.
    prompt = "# greeting\n"
    chosen = "s = 'héllo 日本 🎉'\n"
    rejected = "s = 'héllo 世界 🎉'\n"
    row = _focused_row(prompt, chosen, rejected)
    assert (row["chosen_mid_start"], row["chosen_mid_end"]) == (11, 13)
    out = encode_pair(
        row, tokenizer, _scheme("focused_dpo"), max_length=None, max_prompt_length=None
    )
    assert tokenizer.decode(out["chosen_ids"]) == chosen + tokenizer.eos_token
    # s | ␣= | ␣' | h | é | llo | ␣+日 | 日 | 日 | 本 | ␣+🎉 | 🎉 | 🎉 | ' | \n | EOS (byte pieces)
    assert out["chosen_weights"] == [1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1]
    mid_c = [i for i, w in zip(out["chosen_ids"], out["chosen_weights"], strict=True) if w == 2]
    assert tokenizer.decode(mid_c) == " 日本"
    mid_r = [i for i, w in zip(out["rejected_ids"], out["rejected_weights"], strict=True) if w == 2]
    assert tokenizer.decode(mid_r).strip() == "世界"
    assert out["rejected_weights"][-1] == 0.0  # rejected EOS is suffix


def test_an_edit_at_the_end_weights_eos_as_the_mid(tokenizer: Any) -> None:
    prompt = "def f(x):\n"
    chosen = "    y = x + 1\n    return y\n"
    rejected = "    y = x + 1\n"
    row = _focused_row(prompt, chosen, rejected)
    assert row["focused"] is False and row["rejected_mid_start"] == row["rejected_mid_end"] == len(
        rejected
    )
    out = encode_pair(
        row, tokenizer, _scheme("focused_dpo"), max_length=None, max_prompt_length=None
    )
    # Rejected: every token prefix (1) except EOS, the only mid (2).
    assert out["rejected_weights"] == [1.0] * (len(out["rejected_ids"]) - 1) + [2.0]
    # Chosen: the appended "    return y\n" is the mid, EOS the suffix.
    pieces = _pieces(tokenizer, out["chosen_ids"])
    marked = "".join(p for p, w in zip(pieces, out["chosen_weights"], strict=True) if w == 2.0)
    assert marked.strip() == "return y"
    assert out["chosen_weights"][-1] == 1.0
    # The default policy trains such a pair as plain DPO, as the shard contract advises.
    plain = encode_pair(
        row,
        tokenizer,
        _scheme("focused_dpo", unfocused="plain_dpo"),
        max_length=None,
        max_prompt_length=None,
    )
    assert set(plain["chosen_weights"]) == set(plain["rejected_weights"]) == {1.0}
    dropped = encode_pair(
        row,
        tokenizer,
        _scheme("focused_dpo", unfocused="drop"),
        max_length=None,
        max_prompt_length=None,
    )
    assert dropped["drop"] == "unfocused"


def test_a_widened_mid_covers_the_line_where_the_deletion_takes_effect(tokenizer: Any) -> None:
    prompt = "def f(xs):\n"
    chosen = "    t = 0\n    for x in xs:\n        t += x\n    return t\n"
    rejected = "    t = 0\n    for x in xs:\n    return t\n"
    row = _focused_row(prompt, chosen, rejected)
    assert row["spans_widened"] is True
    out = encode_pair(
        row, tokenizer, _scheme("focused_dpo"), max_length=None, max_prompt_length=None
    )
    pieces = _pieces(tokenizer, out["rejected_ids"])
    marked = "".join(p for p, w in zip(pieces, out["rejected_weights"], strict=True) if w == 2.0)
    # The widened mid is the line "    return t\n"; tokens overlapping it are mid (the token
    # holding the previous newline merges with this line's indentation).
    assert "return t" in marked and "for" not in marked
    assert out["rejected_weights"][-1] == 0.0


def test_the_prompt_boundary_token_is_prefix(tokenizer: Any) -> None:
    # The prompt ends with "\n" and the completion starts with spaces: BPE merges them into
    # one token that TRL counts as the completion's first token.
    prompt = 'def f(x):\n    """Add one."""\n'
    chosen, rejected = "    return x + 1\n", "    return x - 1\n"
    row = _focused_row(prompt, chosen, rejected)
    out = encode_pair(
        row, tokenizer, _scheme("focused_dpo"), max_length=None, max_prompt_length=None
    )
    assert _pieces(tokenizer, out["chosen_ids"])[0].startswith("\n")
    assert out["chosen_weights"][0] == 1.0
    assert 2.0 in out["chosen_weights"] and 2.0 in out["rejected_weights"]


def test_target_dpo_marks_d_minus_on_the_first_and_last_line(tokenizer: Any) -> None:
    chosen = "x = 1\ny = 2\nz = 3\nprint(x)\n"
    rejected = "x = 0\ny = 2\nz = 3\nprint(z)\n"
    plus, minus = line_diff(chosen, rejected)
    assert [s.line for s in minus] == [0, 3]
    row = {
        "problem_id": "t",
        "method": "target_dpo",
        "prompt": "# values\n",
        "chosen": chosen,
        "rejected": rejected,
        "chosen_line_spans": [s.model_dump() for s in plus],
        "rejected_line_spans": [s.model_dump() for s in minus],
    }
    out = encode_pair(
        row, tokenizer, _scheme("target_dpo"), max_length=None, max_prompt_length=None
    )
    assert set(out["chosen_weights"]) == {1.0}  # chosen: every token, EOS included
    pieces = _pieces(tokenizer, out["rejected_ids"])
    marked = [p for p, w in zip(pieces, out["rejected_weights"], strict=True) if w == 1.0]
    unmarked = [p for p, w in zip(pieces, out["rejected_weights"], strict=True) if w == 0.0]
    assert "".join(marked) == "x = 0\nprint(z)\n"
    assert "".join(unmarked) == "y = 2\nz = 3\n" + tokenizer.eos_token
    every = encode_pair(
        row,
        tokenizer,
        _scheme("target_dpo", rejected_diff_only=False),
        max_length=None,
        max_prompt_length=None,
    )
    assert set(every["rejected_weights"]) == {1.0}


def test_plain_dpo_weights_every_completion_token(tokenizer: Any) -> None:
    row = _focused_row("# p\n", "a = 1\n", "a = 2\n")
    out = encode_pair(row, tokenizer, _scheme("dpo"), max_length=None, max_prompt_length=None)
    assert out["chosen_weights"] == [1.0] * len(out["chosen_ids"])
    assert out["rejected_weights"] == [1.0] * len(out["rejected_ids"])


def test_long_pairs_are_dropped_with_their_reason(tokenizer: Any) -> None:
    row = _focused_row("# a prompt of several tokens here\n", "a = 1\n", "a = 2\n")
    scheme = _scheme("focused_dpo")
    assert (
        encode_pair(row, tokenizer, scheme, max_length=64, max_prompt_length=3)["drop"]
        == "prompt_too_long"
    )
    assert (
        encode_pair(row, tokenizer, scheme, max_length=12, max_prompt_length=10)["drop"]
        == "too_long"
    )
    assert encode_pair(row, tokenizer, scheme, max_length=64, max_prompt_length=32)["drop"] == ""


def test_a_method_without_its_spans_is_refused_naming_the_problem(tokenizer: Any) -> None:
    from deploy.training.errors import ConfigError

    row = _focused_row("# p\n", "a = 1\n", "a = 2\n", problem_id="qs/7")
    with pytest.raises(ConfigError, match=r"target_dpo needs rejected_line_spans.*qs/7"):
        encode_pair(row, tokenizer, _scheme("target_dpo"), max_length=None, max_prompt_length=None)
    target = {**row, "chosen_mid_start": None}
    with pytest.raises(ConfigError, match=r"focused_dpo needs the mid spans.*qs/7"):
        encode_pair(
            target, tokenizer, _scheme("focused_dpo"), max_length=None, max_prompt_length=None
        )
