"""Target-DPO line diffs (exact LCS), fence handling and the CodeFlow rule-based filters."""

from __future__ import annotations

import functools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.line_diff import (
    FilterReason,
    codeflow_filter,
    line_diff,
    select_earlier_version,
)
from pipeline.records import LineSpan


def _lines(spans: list[LineSpan]) -> list[int]:
    return [s.line for s in spans]


def test_changed_line_is_in_both_diffs():
    chosen = "def f(x):\n    return x + 1\n"
    rejected = "def f(x):\n    return x - 1\n"
    plus, minus = line_diff(chosen, rejected)
    assert [(s.line, s.start, s.end) for s in plus] == [(1, 10, 27)]
    assert [(s.line, s.start, s.end) for s in minus] == [(1, 10, 27)]
    assert chosen[10:27] == "    return x + 1\n"


def test_inserted_line_is_only_in_d_plus():
    chosen = "a = 1\nif a:\n    a = 2\nprint(a)"
    rejected = "a = 1\nif a:\nprint(a)"
    plus, minus = line_diff(chosen, rejected)
    assert [(s.line, s.start, s.end) for s in plus] == [(2, 12, 22)]
    assert minus == []


def test_last_line_without_newline_ends_at_the_string_end():
    plus, minus = line_diff("x = 1\ny = 2", "x = 1\ny = 3")
    assert [(s.line, s.start, s.end) for s in plus] == [(1, 6, 11)]
    assert [(s.line, s.start, s.end) for s in minus] == [(1, 6, 11)]


def test_exact_lcs_where_greedy_matching_would_lose():
    # Lines a b c d vs b c d a: the LCS is "b c d" (3), so only one line differs per side.
    chosen = "a\nb\nc\nd\n"
    rejected = "b\nc\nd\na\n"
    plus, minus = line_diff(chosen, rejected)
    assert _lines(plus) == [0]
    assert _lines(minus) == [3]


def test_fence_lines_and_prose_are_excluded_but_offsets_are_full_string():
    chosen = "Fixed:\n```python\nx = 1\ny = 2\n```\nDone."
    rejected = "Here:\n```python\nx = 1\ny = 3\n```"
    plus, minus = line_diff(chosen, rejected)
    # Line 0 (prose) differs too, but it is outside the fence.
    assert [(s.line, s.start, s.end) for s in plus] == [(3, 23, 29)]
    assert chosen[23:29] == "y = 2\n"
    assert [(s.line, s.start, s.end) for s in minus] == [(3, 22, 28)]
    assert rejected[22:28] == "y = 3\n"


def test_crlf_and_lf_lines_compare_equal():
    plus, minus = line_diff("x = 1\r\ny = 2\r\n", "x = 1\ny = 2\n")
    assert plus == [] and minus == []


# ---------------------------------------------------------------- properties

line_lists = st.lists(st.sampled_from(["a", "b", "c", "", "# c"]), max_size=9)


def _reference_lcs_len(a: tuple[str, ...], b: tuple[str, ...]) -> int:
    @functools.cache
    def lcs(i: int, j: int) -> int:
        if i == len(a) or j == len(b):
            return 0
        if a[i] == b[j]:
            return 1 + lcs(i + 1, j + 1)
        return max(lcs(i + 1, j), lcs(i, j + 1))

    return lcs(0, 0)


@given(line_lists, line_lists, st.booleans())
def test_diff_is_the_complement_of_a_longest_common_subsequence(a, b, trailing_newline):
    chosen = "\n".join(a) + ("\n" if trailing_newline and a else "")
    rejected = "\n".join(b) + ("\n" if b else "")
    plus, minus = line_diff(chosen, rejected)
    c_lines, r_lines = chosen.split("\n"), rejected.split("\n")
    # A trailing "\n" does not start another line.
    c_lines = c_lines[:-1] if chosen.endswith("\n") or not chosen else c_lines
    r_lines = r_lines[:-1] if rejected.endswith("\n") or not rejected else r_lines
    kept_c = [line for i, line in enumerate(c_lines) if i not in set(_lines(plus))]
    kept_r = [line for i, line in enumerate(r_lines) if i not in set(_lines(minus))]
    assert kept_c == kept_r  # a common subsequence ...
    assert len(kept_c) == _reference_lcs_len(tuple(c_lines), tuple(r_lines))  # ... longest
    for text, spans in ((chosen, plus), (rejected, minus)):
        for s in spans:
            assert 0 <= s.start < s.end <= len(text)
            assert text[s.start : s.end].rstrip("\n") == text.split("\n")[s.line]


# ---------------------------------------------------------------- filters


def _filter(chosen: str, rejected: str, max_diff_lines: int = 20) -> FilterReason | None:
    _, minus = line_diff(chosen, rejected)
    return codeflow_filter(chosen, rejected, minus, max_diff_lines=max_diff_lines)


def test_real_logic_change_is_kept():
    chosen = "def f(x):\n    return x + 1\n"
    rejected = "def f(x):\n    return x - 1\n"
    assert _filter(chosen, rejected) is None


def test_comment_only_difference_is_dropped():
    chosen = "def f(x):\n    # add one\n    return x + 1\n"
    rejected = "def f(x):\n    # increment\n\n    return x + 1\n"
    assert _filter(chosen, rejected) == "comment_only"


def test_hash_inside_a_multiline_string_is_code_not_a_comment():
    chosen = 'def f():\n    return """\n# header\n"""\n'
    rejected = 'def f():\n    return """\n# title\n"""\n'
    assert _filter(chosen, rejected) is None


def test_a_pure_insertion_fix_is_kept_unless_empty_diffs_are_dropped():
    # The fix only adds a line: D- is empty. The paper keeps it; `drop_empty` removes it.
    chosen, rejected = "a = 1\nb = 2\n", "a = 1\n"
    _, d_minus = line_diff(chosen, rejected)
    assert d_minus == []
    assert codeflow_filter(chosen, rejected, d_minus) is None
    assert codeflow_filter(chosen, rejected, d_minus, drop_empty=True) == "empty_diff"
    # An inserted comment changes no AST: still dropped.
    assert codeflow_filter("a = 1\n# note\n", "a = 1\n", []) == "identical_ast"


def test_more_than_max_diff_lines_is_dropped():
    chosen = "".join(f"x{i} = {i}\n" for i in range(21))
    rejected = "".join(f"x{i} = {i + 1}\n" for i in range(21))
    assert _filter(chosen, rejected) == "too_many_lines"
    assert _filter(chosen, rejected, max_diff_lines=21) is None


def test_formatting_only_change_has_identical_ast():
    chosen = "def f(x):\n    return x+1\n"
    rejected = "def f(x):\n    return (x + 1)\n"
    assert _filter(chosen, rejected) == "identical_ast"


def test_syntax_error_skips_the_ast_check():
    chosen = "def f(x):\n    return x + 1\n"
    rejected = "def f(x):\n    return x + 1 +\n"
    assert _filter(chosen, rejected) is None


def test_untokenizable_rejected_falls_back_to_line_comments():
    chosen = 'x = 1\ns = "ok"\n'
    rejected = 'x = 1\n# note\ns = """unterminated\n'
    _, minus = line_diff(chosen, rejected)
    assert _lines(minus) == [1, 2]
    assert codeflow_filter(chosen, rejected, minus) is None
    only_comment = 'x = 1\n# note\ns = "ok"\n"""\n'
    _, minus = line_diff(chosen, only_comment)
    assert _lines(minus) == [1, 3]
    # The stray quotes make tokenize fail; line 3 is not a comment, so the pair is kept.
    assert codeflow_filter(chosen, only_comment, minus) is None


def test_fenced_versions_are_filtered_on_the_code_inside():
    chosen = "```python\ndef f(x):\n    return x+1\n```"
    rejected = "```python\ndef f(x):\n    return (x + 1)\n```"
    assert _filter(chosen, rejected) == "identical_ast"


# ---------------------------------------------------------------- earlier version


def test_earlier_version_is_seeded_and_uniform_over_earlier_versions():
    picks = [select_earlier_version(4, seed) for seed in range(300)]
    assert set(picks) == {0, 1, 2}
    assert all(picks.count(v) > 60 for v in (0, 1, 2))  # ~100 each for a uniform draw
    assert picks == [select_earlier_version(4, seed) for seed in range(300)]
    assert select_earlier_version(2, 123) == 0


def test_earlier_version_needs_two_versions():
    with pytest.raises(ValueError, match="at least 2 versions"):
        select_earlier_version(1, 0)
