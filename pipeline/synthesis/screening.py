"""From the model's answers to the problems kept: validate, decontaminate, deduplicate.

    screened = screen_answers([(seed, text_or_None), ...], benchmark=index, dedup_threshold=0.8)
    screened.problems             # in the seeds' order
    screened.dropped              # Counter of DropReason values; one per seed not kept

Decontamination runs before deduplication, so a contaminated problem never stands in for
a clean near-duplicate of it. Pure: the answers were fetched elsewhere.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from pipeline.records import Problem
from pipeline.synthesis.answer import DropReason, read_answer
from pipeline.synthesis.decontamination import BenchmarkIndex
from pipeline.synthesis.dedup import DEFAULT_THRESHOLD, deduplicate
from pipeline.synthesis.seeds import SeedFunction


@dataclass(frozen=True)
class Screened:
    """The problems kept, in the order of their seeds, and the drops by reason."""

    problems: list[Problem]
    dropped: Counter[str] = field(default_factory=Counter)


def screen_answers(
    answers: Sequence[tuple[SeedFunction, str | None]],
    *,
    model: str | None = None,
    benchmark: BenchmarkIndex | None = None,
    dedup_threshold: float = DEFAULT_THRESHOLD,
) -> Screened:
    """The problems the answers state, each answer kept or dropped with a reason.

    Args:
        answers: each seed with the model's answer, or None when the request failed.
        model: recorded in each problem's metadata.
        benchmark: prompts to decontaminate against; none when None.
        dedup_threshold: see ``pipeline.synthesis.dedup.deduplicate``.
    """
    dropped: Counter[str] = Counter()
    valid: list[Problem] = []
    for seed, text in answers:
        outcome = (
            DropReason.REQUEST_FAILED if text is None else read_answer(text, seed, model=model)
        )
        if isinstance(outcome, DropReason):
            dropped[outcome.value] += 1
        elif benchmark is not None and benchmark.contaminated(outcome.prompt):
            dropped[DropReason.CONTAMINATED.value] += 1
        else:
            valid.append(outcome)
    deduplicated = deduplicate(valid, threshold=dedup_threshold)
    dropped.update(reason.value for _, reason in deduplicated.dropped)
    return Screened(problems=deduplicated.kept, dropped=dropped)
