"""Deduplication of synthesised problems: same text, same signature, or nearly the same text.

Three keys, checked in this order against the problems kept so far, the first problem of a
group winning (callers pass problems in a stable order):

- the prompt with whitespace collapsed and lower-cased (``duplicate_text``);
- the signature: the entry point's ``def`` line as ``ast.unparse`` writes it, so spacing
  and comments do not matter (``duplicate_signature``; ALGORITHMS.md §1.1 step 4);
- near-duplicates: Jaccard similarity of word 5-gram shingles at or above a threshold
  (``near_duplicate``). Candidates come from datasketch's MinHash LSH, so the cost grows
  with the number of problems, not its square; each candidate is then confirmed with the
  exact Jaccard similarity, so the threshold means what it says (LSH may miss a pair, with
  a probability below 0.0004 at the threshold, but never drops a pair below it).

Pure computation: no I/O.
"""

from __future__ import annotations

import ast
import copy
from collections.abc import Sequence
from dataclasses import dataclass

from datasketch import MinHash, MinHashLSH

from pipeline.records import Problem
from pipeline.synthesis.answer import DropReason
from pipeline.synthesis.decontamination import ngrams

SHINGLE = 5
NUM_PERM = 128
"""MinHash permutations: the estimate's standard error is about 1/sqrt(128) = 0.09, and
every candidate is confirmed exactly, so this only sets how many close pairs LSH finds."""

DEFAULT_THRESHOLD = 0.8
MIN_THRESHOLD = 0.5
"""Below half their shingles shared, two prompts are different problems, not near-copies."""

_LSH_SLACK = 0.3
"""LSH looks for candidates 0.3 below the real threshold, so it finds a pair exactly at the
threshold with probability above 0.9996 (at 0.1 below it would miss 13% of them at 0.8);
every candidate is confirmed exactly, so the extra candidates cost only a set comparison."""


@dataclass(frozen=True)
class Dedup:
    """The problems kept, and each dropped one with its reason."""

    kept: list[Problem]
    dropped: list[tuple[Problem, DropReason]]


def _normalized(text: str) -> str:
    return " ".join(text.split()).lower()


def signature(problem: Problem) -> str | None:
    """The ``def`` line of the problem's entry point, normalised (None when absent).

    >>> signature(Problem(problem_id="p", prompt="def f( x ,y=1 ):  # c\\n  'doc'\\n",
    ...                   entry_point="f"))
    'def f(x, y=1):'
    """
    try:
        tree = ast.parse(problem.prompt)
    except SyntaxError:
        return None
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == problem.entry_point:
            header = copy.copy(node)
            header.body, header.decorator_list = [ast.Pass()], []
            return ast.unparse(header).splitlines()[0]
    return None


def _minhash(shingles: set[tuple[str, ...]]) -> MinHash:
    digest = MinHash(num_perm=NUM_PERM, seed=1)
    digest.update_batch([" ".join(s).encode() for s in shingles])
    return digest


def deduplicate(problems: Sequence[Problem], *, threshold: float = DEFAULT_THRESHOLD) -> Dedup:
    """Keep the first of every group of duplicate problems.

    Args:
        problems: in the order that decides which of a group is kept.
        threshold: Jaccard similarity of shingles at or above which two prompts are
            near-duplicates; 1.0 drops only prompts with the same shingles.

    >>> a = Problem(problem_id="a", prompt="def f(x):\\n    'Add one to x.'\\n", entry_point="f")
    >>> b = Problem(problem_id="b", prompt="def f(x):\\n    'add one  to x.'\\n", entry_point="f")
    >>> [(p.problem_id, r.value) for p, r in deduplicate([a, b]).dropped]
    [('b', 'duplicate_text')]
    """
    if not MIN_THRESHOLD <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [{MIN_THRESHOLD}, 1], got {threshold}")
    lsh = MinHashLSH(threshold=threshold - _LSH_SLACK, num_perm=NUM_PERM)
    texts: set[str] = set()
    signatures: set[str] = set()
    shingles: dict[str, set[tuple[str, ...]]] = {}
    kept: list[Problem] = []
    dropped: list[tuple[Problem, DropReason]] = []
    for problem in problems:
        text = _normalized(problem.prompt)
        sig = signature(problem)
        grams = ngrams(problem.prompt, n=SHINGLE)
        digest = _minhash(grams)
        reason: DropReason | None = None
        if text in texts:
            reason = DropReason.DUPLICATE_TEXT
        elif sig is not None and sig in signatures:
            reason = DropReason.DUPLICATE_SIGNATURE
        elif any(
            len(grams & shingles[key]) / max(1, len(grams | shingles[key])) >= threshold
            for key in lsh.query(digest)
        ):
            reason = DropReason.NEAR_DUPLICATE
        if reason is not None:
            dropped.append((problem, reason))
            continue
        kept.append(problem)
        texts.add(text)
        if sig is not None:
            signatures.add(sig)
        # LSH keys must be unique; ids are unique within a synthesis run, but the index
        # key is the position so that callers need not guarantee it.
        key = str(len(kept))
        shingles[key] = grams
        lsh.insert(key, digest)
    return Dedup(kept=kept, dropped=dropped)
