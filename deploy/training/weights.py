"""Per-token weights from the character spans a pairforge pair stores.

Pure functions: a completion's tokens arrive as character spans ``(start, end)`` relative
to the completion string, in Python ``str`` indices (what a fast tokenizer's
``offset_mapping`` gives, shifted by the prompt's length). A token that began inside the
prompt (BPE merged across the boundary) has a negative start; the EOS appended after the
completion starts at ``len(completion)``. A zero-width span is placed at its start.

- Focused-DPO (ALGORITHMS.md §1.8, §1.9): a token overlapping the mid is a mid token,
  tokens wholly before it prefix, the rest (EOS included) suffix. An empty mid ``[p, p)``
  marks the one token where the decision differs: the first token ending after ``p``; at
  the end of the completion that is EOS.
- Target-DPO (§2.4): a token counts when it overlaps any of the given line spans (D- on the
  rejected side). A token that merges the newline of one line with the indentation of the
  next overlaps both.
"""

from __future__ import annotations

from collections.abc import Sequence

Span = tuple[int, int]
"""Half-open character span ``[start, end)``."""


def _overlaps(token: Span, span: Span) -> bool:
    start, end = token
    if start == end:  # zero-width token: a point
        return span[0] <= start < span[1]
    return start < span[1] and end > span[0]


def segment_of_tokens(offsets: Sequence[Span], mid: Span) -> list[str]:
    """``"prefix"``, ``"mid"`` or ``"suffix"`` for each token of a completion.

    Raises:
        ValueError: ``mid`` is not a span (start after end).
    """
    mid_start, mid_end = mid
    if mid_start > mid_end:
        raise ValueError(f"a mid span needs start <= end, got {mid}")
    if mid_start == mid_end:
        marked = next((i for i, (_, end) in enumerate(offsets) if end > mid_start), None)
        return [
            "prefix" if marked is None or i < marked else "mid" if i == marked else "suffix"
            for i in range(len(offsets))
        ]
    segments = []
    for token in offsets:
        if _overlaps(token, mid):
            segments.append("mid")
        elif token[0] < mid_start:
            segments.append("prefix")
        else:
            segments.append("suffix")
    return segments


def focused_weights(
    offsets: Sequence[Span], mid: Span, *, prefix: float, mid_weight: float, suffix: float
) -> list[float]:
    """Focused-DPO weights of one completion: ``prefix``/``mid_weight``/``suffix`` per segment.

    Chosen side: ``(w_prefix, w_mid, w_suffix_chosen)``; rejected: ``(w_prefix, w_mid,
    w_suffix_rejected)``.
    """
    by_segment = {"prefix": prefix, "mid": mid_weight, "suffix": suffix}
    return [by_segment[s] for s in segment_of_tokens(offsets, mid)]


def line_weights(offsets: Sequence[Span], lines: Sequence[Span]) -> list[float]:
    """1 for each token overlapping one of ``lines``, else 0 (Target-DPO's D- mask)."""
    return [1.0 if any(_overlaps(token, line) for line in lines) else 0.0 for token in offsets]


def uniform_weights(offsets: Sequence[Span], weight: float = 1.0) -> list[float]:
    """The same weight for every token (plain DPO; Target-DPO's chosen side)."""
    return [weight] * len(offsets)
