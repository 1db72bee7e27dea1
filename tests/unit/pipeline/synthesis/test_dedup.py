"""Deduplication of synthesised problems by text, by signature and by near-identical text."""

from __future__ import annotations

import random
import time

import pytest

from pipeline.records import Problem
from pipeline.synthesis.answer import DropReason
from pipeline.synthesis.dedup import deduplicate, signature

VOCABULARY = (
    "parse merge sort count split join list string number integer float range key value "
    "dictionary tuple index window cache queue stack graph path node edge tree heap interval "
    "prefix suffix token line file header record field column row table matrix vector"
)


def _problem(pid: str, name: str, args: str, doc: str) -> Problem:
    return Problem(
        problem_id=pid, prompt=f'def {name}({args}):\n    """{doc}"""\n', entry_point=name
    )


def _sentence(rng: random.Random, n: int) -> str:
    words = VOCABULARY.split()
    return " ".join(rng.choice(words) for _ in range(n))


def test_same_text_up_to_whitespace_and_case_is_a_duplicate() -> None:
    a = _problem("a", "f", "x", "Return the Sum of x.")
    b = Problem(
        problem_id="b", prompt='def f(x):\n\n    """return the sum   of x."""\n', entry_point="f"
    )
    result = deduplicate([a, b])
    assert result.kept == [a]
    assert result.dropped == [(b, DropReason.DUPLICATE_TEXT)]


def test_same_signature_with_another_docstring_is_a_duplicate() -> None:
    a = _problem("a", "merge", "xs: list, gap: int = 0", "Merge overlapping ranges.")
    b = _problem("b", "merge", "xs:list,gap:int=0", "Something entirely different here.")
    c = _problem("c", "merge", "xs: list", "Merge overlapping ranges.")
    result = deduplicate([a, b, c])
    assert [p.problem_id for p in result.kept] == ["a", "c"]
    assert result.dropped == [(b, DropReason.DUPLICATE_SIGNATURE)]


def test_signature_ignores_spacing_comments_and_decorators() -> None:
    p = Problem(
        problem_id="p",
        prompt="@cache\ndef f( a , *b ,c=1 )->int:  # note\n    'doc'\n",
        entry_point="f",
    )
    assert signature(p) == "def f(a, *b, c=1) -> int:"


def test_near_duplicates_are_dropped_at_the_threshold_and_kept_above_it() -> None:
    rng = random.Random(7)
    words = _sentence(rng, 150).split()
    edited = list(words)
    edited[75] = "UNIQUEWORD"  # and another name: 10 of ~150 shingles differ
    a = _problem("a", "first", "x", " ".join(words))
    b = _problem("b", "second", "y", " ".join(edited))
    assert deduplicate([a, b], threshold=0.8).dropped == [(b, DropReason.NEAR_DUPLICATE)]
    assert [p.problem_id for p in deduplicate([a, b], threshold=1.0).kept] == ["a", "b"]


def test_different_problems_are_all_kept_and_the_first_of_a_group_wins() -> None:
    rng = random.Random(11)
    problems = [_problem(f"p{i}", f"fn{i}", "x", _sentence(rng, 40)) for i in range(200)]
    copies = [
        _problem(f"copy{i}", f"other{i}", "z", problems[i].prompt.split('"""')[1])
        for i in range(0, 200, 20)
    ]
    result = deduplicate([*problems, *copies])
    assert result.kept == problems
    assert [(p.problem_id, r) for p, r in result.dropped] == [
        (c.problem_id, DropReason.NEAR_DUPLICATE) for c in copies
    ]


def test_deduplication_scales_beyond_pairwise_comparison() -> None:
    rng = random.Random(3)
    problems = [_problem(f"p{i}", f"fn{i}", "x", _sentence(rng, 30)) for i in range(3000)]
    started = time.perf_counter()
    result = deduplicate(problems)
    elapsed = time.perf_counter() - started
    assert len(result.kept) == 3000
    # 3000 problems would be 4.5M exact comparisons; LSH makes it linear (~1 s here).
    assert elapsed < 20


@pytest.mark.parametrize("threshold", [0.0, 0.49, 1.01])
def test_threshold_out_of_range_is_refused(threshold: float) -> None:
    with pytest.raises(ValueError, match="threshold"):
        deduplicate([], threshold=threshold)
