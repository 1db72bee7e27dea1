"""From answers to kept problems: every seed kept or dropped with exactly one reason."""

from __future__ import annotations

from pipeline.synthesis.answer import DropReason
from pipeline.synthesis.decontamination import BenchmarkIndex
from pipeline.synthesis.screening import screen_answers
from pipeline.synthesis.seeds import SeedFunction

BENCHMARK = (
    "def has_close_elements(numbers: list, threshold: float) -> bool:\n"
    '    """Check if in given list of numbers, are any two numbers closer to each other '
    'than given threshold."""\n'
)


LONG = (
    "merge the sorted ranges then count each window of keys and report the largest gap "
    "between consecutive values while keeping the original order of equal items stable "
    "and ignoring negative entries unless the flag asks to include them in the result"
)
"""A long docstring: problems that share it are near-duplicates whatever their names."""


def _seed(name: str) -> SeedFunction:
    return SeedFunction("m.py", name, 1, f"def {name}(x):\n    return x\n", False)


def _answer(name: str, doc: str) -> str:
    return f'```python\ndef {name}(x: int) -> int:\n    """{doc}"""\n```'


def test_each_answer_is_kept_or_counted_once_and_order_is_kept() -> None:
    answers = [
        (_seed("alpha"), _answer("alpha", LONG)),
        (_seed("beta"), None),
        (_seed("gamma"), "no code here"),
        (_seed("delta"), BENCHMARK.replace("has_close_elements", "delta")),
        (_seed("eps"), _answer("eps", "Count the set bits of the integer x quickly.")),
        (_seed("alpha2"), _answer("alpha2", LONG + " Quickly.")),
    ]
    screened = screen_answers(
        answers, model="m", benchmark=BenchmarkIndex([BENCHMARK]), dedup_threshold=0.8
    )
    assert [p.entry_point for p in screened.problems] == ["alpha", "eps"]
    assert dict(screened.dropped) == {
        DropReason.REQUEST_FAILED.value: 1,
        DropReason.NO_SIGNATURE.value: 1,
        DropReason.CONTAMINATED.value: 1,
        DropReason.NEAR_DUPLICATE.value: 1,
    }
    assert len(screened.problems) + sum(screened.dropped.values()) == len(answers)
    assert all(p.metadata["synthesized_by"] == "m" for p in screened.problems)


def test_a_contaminated_problem_never_stands_in_for_its_clean_duplicate() -> None:
    contaminated = BENCHMARK.replace("has_close_elements", "first").replace(
        'threshold."""', f'threshold. {LONG}"""'
    )
    answers = [
        (_seed("first"), contaminated),
        (_seed("first_b"), _answer("first_b", LONG)),
    ]
    without = screen_answers(answers, dedup_threshold=0.5)
    assert [p.entry_point for p in without.problems] == ["first"]
    assert dict(without.dropped) == {DropReason.NEAR_DUPLICATE.value: 1}
    screened = screen_answers(answers, benchmark=BenchmarkIndex([BENCHMARK]), dedup_threshold=0.5)
    assert [p.entry_point for p in screened.problems] == ["first_b"]
    assert dict(screened.dropped) == {DropReason.CONTAMINATED.value: 1}
