"""Target-DPO / CodeFlow critical differences: an exact line LCS and the rule-based filters.

D+ are the lines of the chosen (final, passing) version outside a longest common
subsequence of lines, D- the lines of the rejected (earlier) version outside it
(ALGORITHMS.md §2.1 steps 5-6, §5.8). Unlike the official code's ``difflib.ndiff``
(Ratcliff-Obershelp with ``autojunk``), this is an exact LCS. Pure: no I/O.

The paper's token-length filter (y+ or y- longer than 2048 tokens) is applied with the
pair, in ``pipeline.refinement``.
"""

from __future__ import annotations

import ast
import io
import random
import re
import tokenize
from dataclasses import dataclass
from typing import Literal

from pipeline.records import LineSpan

FilterReason = Literal["empty_diff", "comment_only", "too_many_lines", "identical_ast"]
"""Why ``codeflow_filter`` drops a pair: D- is empty, D- holds only comments or blank
lines, D- has more lines than allowed, or both versions have the same AST."""

_LINE = re.compile(r"[^\n]*\n|[^\n]+\Z")
_FENCE = re.compile(r"\s*```")
_NON_CODE_TOKENS = frozenset(
    {
        tokenize.COMMENT,
        tokenize.NL,
        tokenize.NEWLINE,
        tokenize.INDENT,
        tokenize.DEDENT,
        tokenize.ENDMARKER,
        tokenize.ENCODING,
    }
)


@dataclass(frozen=True)
class _Lines:
    """A text cut into ``\\n``-terminated lines, and which of them are code."""

    lines: list[str]
    """The lines, each with its newline (the last one may lack it)."""
    starts: list[int]
    """Character offset where each line starts."""
    first: int
    """Index of the first code line (after an opening fence)."""
    end: int
    """Index after the last code line (the closing fence, or the line count)."""

    def span(self, line: int) -> LineSpan:
        start = self.starts[line]
        return LineSpan(line=line, start=start, end=start + len(self.lines[line]))

    @property
    def code(self) -> str:
        return "".join(self.lines[self.first : self.end])


def _split(text: str) -> _Lines:
    """Cut ``text`` into lines and locate the code inside a markdown fence, if any.

    The first line starting with three backticks opens the fence (```` ```python ````,
    a bare fence, or any tag) and the next such line closes it; without an opening fence
    the whole text is code. Splitting only on ``\\n`` keeps line numbers equal to the ones
    ``tokenize`` and ``ast`` report (``str.splitlines`` also splits on ``\\x0c`` and friends).
    """
    lines = _LINE.findall(text)
    starts: list[int] = []
    offset = 0
    for line in lines:
        starts.append(offset)
        offset += len(line)
    opening = next((i for i, line in enumerate(lines) if _FENCE.match(line)), None)
    if opening is None:
        return _Lines(lines, starts, 0, len(lines))
    closing = next(
        (i for i in range(opening + 1, len(lines)) if _FENCE.match(lines[i])), len(lines)
    )
    return _Lines(lines, starts, opening + 1, closing)


def _lcs_unmatched(a: list[str], b: list[str]) -> tuple[list[int], list[int]]:
    """Indices of ``a`` and of ``b`` left out of one longest common subsequence.

    Exact O(n·m) dynamic programme after trimming the common head and tail (which some
    LCS always matches). Ties go to leaving the ``a`` element out first, so the result is
    deterministic.
    """
    head = 0
    while head < len(a) and head < len(b) and a[head] == b[head]:
        head += 1
    tail = 0
    while tail < len(a) - head and tail < len(b) - head and a[-1 - tail] == b[-1 - tail]:
        tail += 1
    mid_a = a[head : len(a) - tail]
    mid_b = b[head : len(b) - tail]
    n, m = len(mid_a), len(mid_b)
    # suffix_lcs[i][j] = LCS length of mid_a[i:] and mid_b[j:].
    suffix_lcs = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n - 1, -1, -1):
        row, below = suffix_lcs[i], suffix_lcs[i + 1]
        for j in range(m - 1, -1, -1):
            if mid_a[i] == mid_b[j]:
                row[j] = below[j + 1] + 1
            else:
                row[j] = max(below[j], row[j + 1])
    out_a: list[int] = []
    out_b: list[int] = []
    i = j = 0
    while i < n and j < m:
        if mid_a[i] == mid_b[j]:
            i += 1
            j += 1
        elif suffix_lcs[i + 1][j] >= suffix_lcs[i][j + 1]:
            out_a.append(head + i)
            i += 1
        else:
            out_b.append(head + j)
            j += 1
    out_a.extend(head + k for k in range(i, n))
    out_b.extend(head + k for k in range(j, m))
    return out_a, out_b


def line_diff(chosen: str, rejected: str) -> tuple[list[LineSpan], list[LineSpan]]:
    """D+ and D-: lines of ``chosen`` and of ``rejected`` outside a line LCS.

    Lines compare by their text without the line ending (``\\n`` or ``\\r\\n``). Inside a
    markdown fence only the code lines take part; the fence lines and any prose around
    them are never in D+ or D-. Line indices and character offsets refer to the full
    strings, each span including its newline.

    >>> plus, minus = line_diff("x = 1\\ny = 2\\n", "x = 1\\ny = 3\\n")
    >>> [(s.line, s.start, s.end) for s in plus], [(s.line, s.start, s.end) for s in minus]
    ([(1, 6, 12)], [(1, 6, 12)])
    """
    c, r = _split(chosen), _split(rejected)

    def keys(lines: _Lines) -> list[str]:
        return [line.rstrip("\n").rstrip("\r") for line in lines.lines[lines.first : lines.end]]

    out_c, out_r = _lcs_unmatched(keys(c), keys(r))
    return [c.span(c.first + i) for i in out_c], [r.span(r.first + j) for j in out_r]


def _code_lines(lines: _Lines) -> set[int] | None:
    """Indices (in the full text) of lines holding a code token; None if untokenizable."""
    found: set[int] = set()
    try:
        for tok in tokenize.generate_tokens(io.StringIO(lines.code).readline):
            if tok.type not in _NON_CODE_TOKENS:
                # A multi-line string is code on every line it covers.
                found.update(range(lines.first + tok.start[0] - 1, lines.first + tok.end[0]))
    except (tokenize.TokenError, SyntaxError):
        return None
    return found


def _is_comment_or_blank(line: str) -> bool:
    stripped = line.strip()
    return not stripped or stripped.startswith("#")


def _ast_dump(code: str) -> str | None:
    try:
        return ast.dump(ast.parse(code))
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def codeflow_filter(
    chosen: str,
    rejected: str,
    d_minus: list[LineSpan],
    *,
    max_diff_lines: int = 20,
    drop_empty: bool = False,
) -> FilterReason | None:
    """Why the paper's rule-based filters drop a CodeFlow pair, or None to keep it.

    Checks, in order (ALGORITHMS.md §2.1 step 6, §5.8):

    - ``empty_diff``: D- is empty (the rejected version only lacks lines, so the
      Target-DPO rejected mask would be empty). Not one of the paper's filters, which keep
      such pure-insertion fixes: only with ``drop_empty``;
    - ``comment_only``: every D- line is a comment or blank, judged with ``tokenize``
      (a line-by-line ``#`` check when the rejected code cannot be tokenized);
    - ``too_many_lines``: D- has more than ``max_diff_lines`` lines;
    - ``identical_ast``: both codes parse to the same ``ast.dump``. Skipped when either
      fails to parse, since a syntax error is a real difference.

    Args:
        chosen: the final version, exactly as stored (fenced or not).
        rejected: the earlier version.
        d_minus: D- of ``line_diff(chosen, rejected)``.
        max_diff_lines: most D- lines a kept pair may have (20 in the paper).
        drop_empty: drop a pair whose D- is empty (``empty_diff``) instead of keeping it.
    """
    r = _split(rejected)
    if not d_minus:
        if drop_empty:
            return "empty_diff"
        return "identical_ast" if _same_ast(chosen, r) else None
    code_lines = _code_lines(r)
    if code_lines is None:
        comment_only = all(_is_comment_or_blank(r.lines[s.line]) for s in d_minus)
    else:
        comment_only = not any(s.line in code_lines for s in d_minus)
    if comment_only:
        return "comment_only"
    if len(d_minus) > max_diff_lines:
        return "too_many_lines"
    return "identical_ast" if _same_ast(chosen, r) else None


def _same_ast(chosen: str, rejected: _Lines) -> bool:
    chosen_ast = _ast_dump(_split(chosen).code)
    return chosen_ast is not None and chosen_ast == _ast_dump(rejected.code)


def select_earlier_version(n_versions: int, seed: int) -> int:
    """Index of the rejected version: uniform over the ``n_versions - 1`` earlier ones.

    ``n_versions`` counts every version including the final one (index
    ``n_versions - 1``); the paper's ablation found a random earlier version better than
    the first or the last (TD-paper App. C.8).

    Raises:
        ValueError: with fewer than two versions there is no earlier one.
    """
    if n_versions < 2:
        raise ValueError(f"need at least 2 versions to pick an earlier one, got {n_versions}")
    return random.Random(seed).randrange(n_versions - 1)
