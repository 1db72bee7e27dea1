"""Prefix/mid/suffix error points: worked examples and properties over arbitrary strings."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pipeline.error_points import focus_spans, prefix_mid_suffix

# Small alphabets make common prefixes, suffixes and pure insertions frequent.
texts = st.text(alphabet="ab\n x", max_size=30)


def test_prefix_and_suffix_do_not_overlap():
    # Without the bound the suffix "ab" would overlap the prefix "ab".
    assert prefix_mid_suffix("ab", "abab") == (2, 0)
    assert prefix_mid_suffix("aaa", "aaa") == (3, 0)


def test_substitution_gives_one_character_mids():
    chosen, rejected = "return a + b\n", "return a - b\n"
    result = focus_spans(chosen, rejected, max_mid_frac=1.0)
    assert result.spans is not None
    assert chosen[result.spans.chosen_mid_start : result.spans.chosen_mid_end] == "+"
    assert rejected[result.spans.rejected_mid_start : result.spans.rejected_mid_end] == "-"
    assert not result.spans.widened


def test_identical_strings_are_dropped():
    result = focus_spans("x = 1\n", "x = 1\n")
    assert result.spans is None
    assert result.drop_reason == "identical"


def test_missing_line_widens_to_the_line_where_it_takes_effect():
    chosen = "def f(n):\n    if n < 0:\n        return 0\n    return n\n"
    rejected = "def f(n):\n    return n\n"
    result = focus_spans(chosen, rejected, max_mid_frac=1.0)
    assert result.spans is not None
    # p = 14 ("def f(n):\n    "): the chosen mid is the guard, the rejected mid was empty
    # at 14 and becomes the rest of the line the guard is missing before.
    assert chosen[result.spans.chosen_mid_start : result.spans.chosen_mid_end] == (
        "if n < 0:\n        return 0\n    "
    )
    assert (result.spans.rejected_mid_start, result.spans.rejected_mid_end) == (14, 23)
    assert rejected[14:23] == "return n\n"
    assert result.spans.widened


def test_code_missing_at_the_end_never_pushes_a_shared_line_down():
    # The rejected code stops where the chosen one goes on: its mistake is the end of
    # sequence, not "a = 1\n", which both share and which must keep prefix weight.
    chosen, rejected = "a = 1\nb = 2\n", "a = 1\n"
    result = focus_spans(chosen, rejected, max_mid_frac=1.0)
    assert result.spans is not None and not result.focused
    assert (result.spans.rejected_mid_start, result.spans.rejected_mid_end) == (6, 6)
    assert (result.spans.chosen_mid_start, result.spans.chosen_mid_end) == (6, 12)
    assert not result.spans.widened
    dropped = focus_spans(chosen, rejected, max_mid_frac=1.0, edit_at_end="drop")
    assert dropped.spans is None and dropped.drop_reason == "edit_at_end"


def test_code_added_at_the_end_is_flagged_too():
    chosen, rejected = "a = 1\n", "a = 1\nprint(a)\n"
    result = focus_spans(chosen, rejected, max_mid_frac=1.0)
    assert result.spans is not None and not result.focused
    assert (result.spans.chosen_mid_start, result.spans.chosen_mid_end) == (6, 6)
    assert (result.spans.rejected_mid_start, result.spans.rejected_mid_end) == (6, 15)


def test_wide_mid_is_dropped_or_kept_by_flag():
    chosen, rejected = "x = compute_everything()\n", "y = 0\n"  # p = 0, s = 1
    dropped = focus_spans(chosen, rejected, max_mid_frac=0.5)
    assert dropped.spans is None and dropped.drop_reason == "unfocused"
    kept = focus_spans(chosen, rejected, max_mid_frac=0.5, unfocused="keep")
    assert kept.spans is not None and kept.drop_reason is None and not kept.focused
    assert (kept.spans.chosen_mid_start, kept.spans.chosen_mid_end) == (0, len(chosen) - 1)


def test_mid_fraction_is_checked_on_both_sides():
    # p = 6 ("y = f("), s = 2 (")\n"): the chosen mid "1" is 1/9 of chosen, but the
    # rejected mid "g(h(k(1)))" is 10/18 of rejected.
    chosen, rejected = "y = f(1)\n", "y = f(g(h(k(1))))\n"
    assert prefix_mid_suffix(chosen, rejected) == (6, 2)
    assert focus_spans(chosen, rejected, max_mid_frac=0.5).drop_reason == "unfocused"
    kept = focus_spans(chosen, rejected, max_mid_frac=0.6)
    assert kept.spans is not None
    assert rejected[kept.spans.rejected_mid_start : kept.spans.rejected_mid_end] == "g(h(k(1)))"


@given(texts, texts)
def test_prefix_mid_suffix_reassembles_both_strings(a, b):
    p, s = prefix_mid_suffix(a, b)
    assert p >= 0 and s >= 0 and p + s <= min(len(a), len(b))
    assert a[:p] == b[:p]
    assert a[len(a) - s :] == b[len(b) - s :]
    assert a[:p] + a[p : len(a) - s] + a[len(a) - s :] == a
    # Maximal: one more character of prefix (or of suffix, within the bound) differs.
    if p < min(len(a), len(b)):
        assert a[p] != b[p]
    if s < min(len(a), len(b)) - p:
        assert a[len(a) - s - 1] != b[len(b) - s - 1]


@given(texts, texts)
def test_focus_spans_are_consistent(chosen, rejected):
    result = focus_spans(chosen, rejected, max_mid_frac=1.0)
    if chosen == rejected:
        assert result.spans is None and result.drop_reason == "identical"
        return
    spans = result.spans
    assert spans is not None and result.drop_reason is None
    p, s = result.prefix_len, result.suffix_len
    c0, c1 = spans.chosen_mid_start, spans.chosen_mid_end
    r0, r1 = spans.rejected_mid_start, spans.rejected_mid_end
    assert 0 <= c0 <= c1 <= len(chosen)
    assert 0 <= r0 <= r1 <= len(rejected)
    assert chosen[:c0] + chosen[c0:c1] + chosen[c1:] == chosen
    orig_c = (p, len(chosen) - s)
    orig_r = (p, len(rejected) - s)
    if not spans.widened:
        assert (c0, c1) == orig_c and (r0, r1) == orig_r
        assert chosen[:c0] == rejected[:r0]
        assert chosen[c1:] == rejected[r1:]
        if result.focused:
            assert c1 > c0 and r1 > r0
        else:  # an edit at the very end: the empty mid stays empty, at the end
            assert (c0 == c1 == len(chosen)) != (r0 == r1 == len(rejected))
        return
    # Exactly one original mid was empty; that side's span now contains its position and
    # stays within one line (newline included); the other side is untouched.
    chosen_was_empty = orig_c[0] == orig_c[1]
    assert chosen_was_empty != (orig_r[0] == orig_r[1])
    if chosen_was_empty:
        text, span, pos, other, other_orig = chosen, (c0, c1), p, (r0, r1), orig_r
    else:
        text, span, pos, other, other_orig = rejected, (r0, r1), p, (c0, c1), orig_c
    assert other == other_orig
    assert span[0] <= pos <= span[1]
    if text:
        assert span[1] > span[0]
        assert "\n" not in text[span[0] : span[1] - 1]
    # Widening only ever reaches forward, into the suffix: never into the shared prefix.
    assert span[0] == pos < len(text)
    assert result.focused


@given(texts, texts, st.floats(min_value=0.01, max_value=1.0))
def test_dropped_unfocused_pairs_really_have_wide_mids(chosen, rejected, max_frac):
    result = focus_spans(chosen, rejected, max_mid_frac=max_frac)
    if result.drop_reason != "unfocused":
        return
    p, s = result.prefix_len, result.suffix_len
    c_frac = (len(chosen) - s - p) / len(chosen) if chosen else 0.0
    r_frac = (len(rejected) - s - p) / len(rejected) if rejected else 0.0
    assert max(c_frac, r_frac) > max_frac
