"""Choosing preference pairs: Focused-DPO from a ranked pass matrix, Target-DPO from versions.

Focused-DPO (ALGORITHMS.md §1.5, §1.7, §5.4): the tests the top-ranked code passes are the
ground truth; codes passing all of them are correct, the rest incorrect; the pair
maximising ``Diff`` (score gap plus a bonus for long common prefix and suffix) wins.
Target-DPO / CodeFlow (§2.1): the final passing version against a seeded random earlier
one, with line-diff spans. Pure: no I/O, and the ranker is only seen through its result.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field

from pipeline.config import PairsConfig
from pipeline.error_points import focus_spans, prefix_mid_suffix
from pipeline.errors import ContractViolation
from pipeline.ranking.base import cells_with
from pipeline.records import (
    Candidates,
    CellStatus,
    GenerationInfo,
    PairMethod,
    PreferencePair,
    RankingResult,
    SkipReason,
    StatusMatrix,
)

logger = logging.getLogger(__name__)


class PairSelection(BaseModel):
    """Focused-DPO pairs of one problem and the evidence behind them."""

    model_config = ConfigDict(frozen=True)

    pairs: list[PreferencePair] = Field(
        default_factory=list, description="Selected pairs, best Diff first."
    )
    skip_reason: SkipReason | None = Field(
        default=None, description="Why no pair was selected; None when `pairs` is non-empty."
    )
    top_code: int | None = Field(default=None, description="c*: index of the top-ranked code.")
    ground_truth_tests: list[int] = Field(
        default_factory=list, description="T*: indices of the tests c* passes."
    )
    correct: list[int] = Field(
        default_factory=list, description="C+: codes passing every ground-truth test."
    )
    incorrect: list[int] = Field(
        default_factory=list,
        description="C-: codes with an observed failure (not a sandbox_error) on a test of T*.",
    )
    undetermined: list[int] = Field(
        default_factory=list,
        description="Codes in neither set: no observed failure on T*, but a sandbox_error "
        "cell where a pass was needed, so nothing says whether they are correct.",
    )


def normalised_scores(scores: Sequence[float]) -> NDArray[np.float64]:
    """``s / max(s)``, so Diff's score term lies in [-1, 1] whatever the ranker's scale.

    When ``max(s) <= 0`` (no ranker signal, or a ranker with non-positive scores) the
    scores are all zero and Diff is decided by the common-length term alone.
    """
    s = np.asarray(scores, dtype=np.float64)
    top = float(s.max()) if s.size else 0.0
    return s / top if top > 0 else np.zeros_like(s)


def _check_shapes(
    candidates: Candidates,
    passed: NDArray[np.bool_],
    unknown: NDArray[np.bool_],
    ranking: RankingResult,
) -> None:
    expected = (len(candidates.codes), len(candidates.tests))
    if passed.shape != expected:
        raise ContractViolation(
            f"pass matrix of problem {candidates.problem_id!r} should be codes x tests = "
            f"{expected}, got shape {passed.shape}"
        )
    if unknown.shape != expected:
        raise ContractViolation(
            f"status matrix of problem {candidates.problem_id!r} should be codes x tests = "
            f"{expected}, got shape {unknown.shape}"
        )
    if len(ranking.code_scores) != expected[0] or sorted(ranking.order) != list(range(expected[0])):
        raise ContractViolation(
            f"ranking of problem {candidates.problem_id!r} should score and order "
            f"{expected[0]} codes, got {len(ranking.code_scores)} scores and order "
            f"{ranking.order}"
        )


def select_focused_pairs(
    candidates: Candidates,
    passed: NDArray[np.bool_],
    ranking: RankingResult,
    config: PairsConfig,
    *,
    job_id: str,
    prompt: str,
    generation: GenerationInfo,
    status: StatusMatrix | None = None,
) -> PairSelection:
    """Focused-DPO pairs of one problem (ALGORITHMS.md §1.5, §1.7).

    c* = ``ranking.order[0]``; T* = tests c* passes (at least
    ``config.min_ground_truth_tests``); C+ = codes passing all of T*; C- = codes with an
    observed failure on T*. A ``sandbox_error`` cell is infrastructure trouble, never a
    failure of the code: a code whose only misses on T* are such cells is in neither set
    (``undetermined``), so it is neither rejected nor vouched for. Every (i, j) in
    C+ x C- is scored

        Diff(i, j) = (ŝ_i - ŝ_j) + λ·(|prefix_ij| + |suffix_ij|) / max(len c_i, len c_j)

    on the completion strings, with ŝ = ``normalised_scores``. Pairs are tried best Diff
    first (ties: longer common length, then lower (i, j)); a pair whose spans
    ``focus_spans`` drops (identical strings, unfocused, an edit at the end when
    ``config.edit_at_end`` is ``drop``) is skipped for the next one.
    Up to ``config.pairs_per_problem`` pairs are taken; they are distinct (i, j), but a
    code may appear in several of them, since the best chosen code is usually the best
    partner for several rejected codes.

    Args:
        candidates: distinct codes and tests of the problem.
        passed: ``passed[i, j]`` is True when code i passes test j (``status == passed``).
        ranking: the ranker's scores and best-first order of the codes.
        config: pair-selection settings (λ, pairs per problem, span rules).
        job_id: job the pairs belong to.
        prompt: prompt text stored with each pair.
        generation: provenance of the samples.
        status: the status matrix ``passed`` was built from; its ``sandbox_error`` cells
            are told apart from failures. None: every cell was executed.

    Raises:
        ContractViolation: a matrix or the ranking does not match the candidates.
    """
    n_codes, n_tests = len(candidates.codes), len(candidates.tests)
    if n_codes == 0:
        return PairSelection(skip_reason=SkipReason.NO_CODES)
    if n_tests == 0:
        return PairSelection(skip_reason=SkipReason.NO_TESTS)
    passed = np.asarray(passed, dtype=np.bool_)
    unknown = (
        np.zeros(passed.shape, dtype=np.bool_)
        if status is None
        else cells_with(status, CellStatus.SANDBOX_ERROR)
    )
    _check_shapes(candidates, passed, unknown, ranking)
    if not passed.any():
        return PairSelection(skip_reason=SkipReason.ALL_FAIL)
    if (passed | unknown).all():
        return PairSelection(skip_reason=SkipReason.ALL_PASS)

    top = ranking.order[0]
    truth = np.flatnonzero(passed[top])
    correct: list[int] = []
    incorrect: list[int] = []
    undetermined: list[int] = []

    def outcome(pairs: list[PreferencePair], skip: SkipReason | None) -> PairSelection:
        return PairSelection(
            pairs=pairs,
            skip_reason=skip,
            top_code=top,
            ground_truth_tests=truth.tolist(),
            correct=correct,
            incorrect=incorrect,
            undetermined=undetermined,
        )

    if truth.size < config.min_ground_truth_tests:
        return outcome([], SkipReason.NO_GROUND_TRUTH)
    is_correct = passed[:, truth].all(axis=1)
    failed_one = (~passed[:, truth] & ~unknown[:, truth]).any(axis=1)
    correct = np.flatnonzero(is_correct).tolist()
    incorrect = np.flatnonzero(failed_one).tolist()
    undetermined = np.flatnonzero(~is_correct & ~failed_one).tolist()
    # C+ always holds c* itself (it passes T* by definition), so only C- can be empty.
    if not incorrect:
        return outcome([], SkipReason.NO_INCORRECT)

    texts = [code.completion for code in candidates.codes]
    s_hat = normalised_scores(ranking.code_scores)
    ranked: list[tuple[float, int, int, int]] = []
    for i in correct:
        for j in incorrect:
            a, b = texts[i], texts[j]
            common = sum(prefix_mid_suffix(a, b))
            longest = max(len(a), len(b))
            diff = float(s_hat[i] - s_hat[j])
            if longest:
                diff += config.diff_lambda * common / longest
            ranked.append((-diff, -common, i, j))
    ranked.sort()

    pairs: list[PreferencePair] = []
    for _, _, i, j in ranked:
        result = focus_spans(
            texts[i],
            texts[j],
            max_mid_frac=config.max_mid_frac,
            unfocused=config.unfocused,
            edit_at_end=config.edit_at_end,
        )
        if result.spans is None:
            continue
        pairs.append(
            PreferencePair(
                job_id=job_id,
                problem_id=candidates.problem_id,
                method=PairMethod.FOCUSED_DPO,
                prompt=prompt,
                chosen=texts[i],
                rejected=texts[j],
                spans=result.spans,
                focused=result.focused,
                chosen_score=float(s_hat[i]),
                rejected_score=float(s_hat[j]),
                chosen_index=i,
                rejected_index=j,
                ranker=ranking.ranker,
                generation=generation,
            )
        )
        if len(pairs) == config.pairs_per_problem:
            break
    return outcome(pairs, None if pairs else SkipReason.NO_DISTINCT_PAIR)
