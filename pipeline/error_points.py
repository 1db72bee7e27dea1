"""Error-prone points of a Focused-DPO pair: common prefix, differing mid, common suffix.

Character-level, on the exact completion strings (ALGORITHMS.md §1.6, §5.3), so the spans
survive any tokenizer: the trainer maps them to tokens with an offset mapping. Pure: no
I/O, and nothing here imports Ray, Docker or the sandbox.

    >>> prefix_mid_suffix("return a + b\\n", "return a - b\\n")
    (9, 3)
    >>> focus_spans("return a + b\\n", "return a - b\\n", max_mid_frac=1.0).spans
    FocusSpans(chosen_mid_start=9, chosen_mid_end=10, rejected_mid_start=9, \
rejected_mid_end=10, widened=False)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pipeline.records import FocusSpans

DropReason = Literal["identical", "unfocused", "edit_at_end"]
"""Why a pair has no usable focus spans."""


def common_prefix_len(a: str, b: str) -> int:
    """Length of the longest common prefix of ``a`` and ``b``.

    Binary search over slice equality: O(log n) slice comparisons done in C. Measured on
    HumanEval completions (mean 226 characters) it is 4.7x faster than a Python loop over
    characters for near-identical pairs (one character changed), and as fast for unrelated
    pairs, whose common prefix is short.
    """
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def common_suffix_len(a: str, b: str, limit: int) -> int:
    """Length of the longest common suffix of ``a`` and ``b``, at most ``limit``."""
    lo, hi = 0, min(limit, len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[len(a) - mid :] == b[len(b) - mid :]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def prefix_mid_suffix(a: str, b: str) -> tuple[int, int]:
    """Common prefix length ``p`` and common suffix length ``s`` of two strings.

    The suffix never overlaps the prefix: ``s <= min(len(a), len(b)) - p``. Without that
    bound ``"ab"`` and ``"abab"`` would share prefix ``"ab"`` *and* suffix ``"ab"``.
    The mids are then ``a[p:len(a) - s]`` and ``b[p:len(b) - s]``.

    >>> prefix_mid_suffix("ab", "abab")
    (2, 0)
    >>> prefix_mid_suffix("abXcd", "abcd")
    (2, 2)
    """
    p = common_prefix_len(a, b)
    s = common_suffix_len(a, b, min(len(a), len(b)) - p)
    return p, s


@dataclass(frozen=True)
class SpanResult:
    """Focus spans of a pair, or why it has none.

    Exactly one of ``spans`` and ``drop_reason`` is set.
    """

    spans: FocusSpans | None
    drop_reason: DropReason | None
    focused: bool
    """False for kept spans that do not isolate the error: a mid wider than allowed, or an
    edit at the very end (see ``focus_spans``). A trainer may treat the pair as plain DPO."""
    prefix_len: int
    """Common prefix length p (before any widening)."""
    suffix_len: int
    """Common suffix length s (before any widening)."""


def _widen_empty_mid(text: str, pos: int) -> tuple[int, int]:
    """The first line of the suffix, ``[pos, end of that line]`` (newline included).

    For a pure insertion or deletion, that line is where the missing or extra code takes
    effect: the first token there is the one the code should not have produced. Widening
    forward keeps the common prefix intact. Needs ``pos < len(text)`` (a suffix).
    """
    newline = text.find("\n", pos)
    return pos, len(text) if newline == -1 else newline + 1


def focus_spans(
    chosen: str,
    rejected: str,
    *,
    max_mid_frac: float = 0.5,
    unfocused: Literal["drop", "keep"] = "drop",
    edit_at_end: Literal["flag", "drop"] = "flag",
) -> SpanResult:
    """Prefix/mid/suffix spans of a chosen/rejected pair (ALGORITHMS.md §1.6, §5.3).

    Rules, in order:

    1. identical strings: dropped (``identical``); there is nothing to prefer.
    2. a mid longer than ``max_mid_frac`` of its string (either side; mids measured before
       widening): dropped (``unfocused``), or kept with the same spans and ``focused``
       false when ``unfocused="keep"`` (the trainer may then treat the pair as plain DPO).
    3. exactly one mid empty at the very end of its string (one code is the other plus
       code at the end): the decision that differs is where one code stops, the end of
       sequence, which no character span holds. Widening back would put a line both codes
       share in the mid, and on the rejected side push a correct line down. So the empty
       mid stays empty, at the end, with ``focused`` false (``edit_at_end="flag"``), or
       the pair is dropped (``edit_at_end``).
    4. exactly one mid empty elsewhere (pure insertion or deletion): that mid is widened
       forward by ``_widen_empty_mid`` and ``widened`` is set. The other side is untouched.

    Args:
        chosen: the preferred completion, exactly as stored.
        rejected: the dispreferred completion, exactly as stored.
        max_mid_frac: largest fraction of either string the mid may cover.
        unfocused: what to do with a pair breaking ``max_mid_frac``.
        edit_at_end: what to do with a pair whose codes differ only by code at the end.

    Returns:
        A ``SpanResult`` whose spans are half-open Python ``str`` indices.

    >>> r = focus_spans("a\\nX\\nb\\n", "a\\nb\\n", max_mid_frac=1.0)
    >>> r.spans.rejected_mid_start, r.spans.rejected_mid_end, r.spans.widened
    (2, 4, True)
    """
    p, s = prefix_mid_suffix(chosen, rejected)

    def dropped(reason: DropReason) -> SpanResult:
        return SpanResult(spans=None, drop_reason=reason, focused=False, prefix_len=p, suffix_len=s)

    if chosen == rejected:
        return dropped("identical")
    c_start, c_end = p, len(chosen) - s
    r_start, r_end = p, len(rejected) - s

    def frac(mid_len: int, total: int) -> float:
        return mid_len / total if total else 0.0

    too_wide = (
        frac(c_end - c_start, len(chosen)) > max_mid_frac
        or frac(r_end - r_start, len(rejected)) > max_mid_frac
    )
    if too_wide and unfocused == "drop":
        return dropped("unfocused")
    # Both mids cannot be empty here: that would make the strings identical. An empty mid
    # is at the end exactly when there is no common suffix.
    empty_mid = c_start == c_end or r_start == r_end
    at_end = empty_mid and s == 0
    if at_end and edit_at_end == "drop":
        return dropped("edit_at_end")

    widened = empty_mid and not at_end
    if widened and c_start == c_end:
        c_start, c_end = _widen_empty_mid(chosen, c_start)
    elif widened:
        r_start, r_end = _widen_empty_mid(rejected, r_start)
    spans = FocusSpans(
        chosen_mid_start=c_start,
        chosen_mid_end=c_end,
        rejected_mid_start=r_start,
        rejected_mid_end=r_end,
        widened=widened,
    )
    return SpanResult(
        spans=spans,
        drop_reason=None,
        focused=not (too_wide or at_end),
        prefix_len=p,
        suffix_len=s,
    )
