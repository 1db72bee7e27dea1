"""Decontamination: drop synthesised problems that overlap a benchmark's prompts.

Texts are compared by their word n-grams (``\\w+`` tokens, lower-cased, ``NGRAM`` words).
The overlap of a problem with one benchmark prompt is the number of n-grams they share over
the n-grams of the shorter of the two, so a benchmark prompt copied whole into a longer
problem scores 1 as surely as a problem copied from a longer prompt; a problem is
contaminated when its overlap with some prompt reaches ``THRESHOLD``. An inverted index from
n-gram to prompts makes checking a problem cost its own n-grams, whatever the benchmark's
size. Pure: the caller reads the benchmark file and hands over its lines.

    index = BenchmarkIndex(load_benchmark_prompts(lines, source="humaneval.jsonl"))
    index.overlap(problem.prompt)        # 0.0 .. 1.0
    index.contaminated(problem.prompt)   # overlap >= THRESHOLD
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence

from pipeline.errors import InputFormatError

NGRAM = 8
THRESHOLD = 0.3
"""Measured on HumanEval's 82 shared prompts and 802 signature-and-docstring prompts of
public standard-library functions: two different HumanEval prompts overlap by at most 0.12
(one pair), a standard-library prompt overlaps HumanEval by at most 0.03, and a prompt
against itself by 1. 8-grams still catch a prompt with a few words changed; at 5-grams
different HumanEval prompts reach 0.29 through shared boilerplate."""

_WORD = re.compile(r"\w+")


def ngrams(text: str, n: int = NGRAM) -> set[tuple[str, ...]]:
    """The word n-grams of a text; a text shorter than ``n`` words is one n-gram.

    >>> sorted(ngrams("def f(x): return x", n=3))
    [('def', 'f', 'x'), ('f', 'x', 'return'), ('x', 'return', 'x')]
    """
    words = _WORD.findall(text.lower())
    if len(words) < n:
        return {tuple(words)} if words else set()
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def load_benchmark_prompts(lines: Iterable[str], *, source: str) -> list[str]:
    """The prompts of a benchmark file: JSONL rows, each with a string field ``prompt``.

    HumanEval ships this shape (so do pairforge's own problem files); blank lines are
    skipped.

    Raises:
        InputFormatError: a line is not a JSON object with a string ``prompt``
            (names the file and line), or the file holds no prompt at all.
    """
    prompts = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputFormatError(
                f"expected one JSON object per line, got invalid JSON ({exc.msg})",
                source=source,
                line=number,
            ) from None
        prompt = row.get("prompt") if isinstance(row, dict) else None
        if not isinstance(prompt, str):
            seen = sorted(row) if isinstance(row, dict) else type(row).__name__
            raise InputFormatError(
                f"expected an object with a string field `prompt` (a benchmark prompt), got {seen}",
                source=source,
                line=number,
            )
        prompts.append(prompt)
    if not prompts:
        raise InputFormatError(
            "holds no benchmark prompts; expected JSONL rows with a `prompt` field", source=source
        )
    return prompts


class BenchmarkIndex:
    """The n-grams of a benchmark's prompts, indexed for overlap queries."""

    def __init__(self, prompts: Sequence[str], *, threshold: float = THRESHOLD) -> None:
        self.threshold = threshold
        self._sizes: list[int] = []
        self._postings: defaultdict[tuple[str, ...], list[int]] = defaultdict(list)
        for index, prompt in enumerate(prompts):
            grams = ngrams(prompt)
            self._sizes.append(len(grams))
            for gram in grams:
                self._postings[gram].append(index)

    def __len__(self) -> int:
        return len(self._sizes)

    def overlap(self, text: str) -> float:
        """The largest overlap of ``text`` with one benchmark prompt (0 when none)."""
        grams = ngrams(text)
        shared: Counter[int] = Counter()
        for gram in grams:
            shared.update(self._postings.get(gram, ()))
        return max(
            (count / min(len(grams), self._sizes[i]) for i, count in shared.items()), default=0.0
        )

    def contaminated(self, text: str) -> bool:
        return self.overlap(text) >= self.threshold
