"""Target-DPO / CodeFlow: refine failing code with execution feedback, then pair versions.

A Target-DPO build runs the Focused-DPO steps once per round (ALGORITHMS.md §2.1, §2.5)::

    round 0   sample   k code samples (and k test samples when the problem has no tests)
              parse    distinct codes; the problem's own tests, or the sampled asserts
              execute  pass matrix with feedback                  (the sandbox's part)
              begin    verified tests (own, or those the top-ranked code passes, §1.5)
                       and one trajectory per distinct code, v0 = that code
    round r   sample   one refinement request per trajectory whose last version fails
              parse    the answer's code becomes version r
              execute  version r against the verified tests, with feedback
    finish    chosen = the final passing version, rejected = an earlier one drawn at
              random (seeded), D+/D- = line LCS; rule filters; the `problems` row

A trajectory that has not passed after ``pairs.max_rounds`` refinements is discarded
(``not_refined``). Every step is a pure function of a ``ProblemState``: the Ray dataflow
(``cluster.dataflow``) maps them, a notebook can call them with canned data. Model output
is untrusted: it is only parsed here, and only ever executed in the sandbox.
"""

from __future__ import annotations

import ast
import math
from collections import Counter
from collections.abc import Iterable, Sequence

from pipeline.config import JobSpec, PairsConfig, SamplerConfig
from pipeline.feedback import build_feedback
from pipeline.line_diff import FilterReason, codeflow_filter, line_diff, select_earlier_version
from pipeline.parsing import (
    continuation_of,
    extract_fenced_code,
    fenced_solution,
    starts_as_continuation,
    truncate_completion,
)
from pipeline.problem_state import ProblemState
from pipeline.prompts import code_prompt, refine_messages, refine_prompt
from pipeline.ranking import binary_matrix, make_ranker
from pipeline.records import (
    Candidates,
    CellStatus,
    CodeCandidate,
    GenerationInfo,
    PairMethod,
    PreferencePair,
    ProblemOutcome,
    PromptStyle,
    SkipReason,
    TestCandidate,
    TestsOrigin,
    Trajectory,
    Version,
)
from pipeline.sampling import (
    SampleRequest,
    SampleResult,
    SampleRole,
    assemble,
    plan_requests,
)
from pipeline.seeding import derive_seed
from pipeline.stages import generation_info, parse_step
from pipeline.verified_tests import ProblemTestsError, problem_tests

TARGET_DPO_RANKER = "refinement"
"""The `ranker` column of Target-DPO pairs: versions are ordered by refinement, not scored."""

BYTES_PER_TOKEN = 3
"""The token estimate of ``pairs.max_tokens``: ceil(UTF-8 bytes / 3). Code BPEs (Qwen2.5,
DeepSeek-Coder, StarCoder2) average 3-4 bytes a token on Python, so the estimate counts
high and drops a pair near the limit rather than keeping one the trainer would cut."""

MAX_ANSWER_CHARS = 100_000
"""Characters of a refinement answer that are parsed (as for sampled completions): model
output is untrusted, and ``sampler.max_tokens`` is only what the server was asked for."""

_FILTER_SKIPS: dict[FilterReason, SkipReason] = {
    "empty_diff": SkipReason.EMPTY_DIFF,
    "comment_only": SkipReason.COMMENT_ONLY,
    "too_many_lines": SkipReason.TOO_MANY_LINES,
    "identical_ast": SkipReason.IDENTICAL_AST,
}


def estimated_tokens(text: str) -> int:
    """Tokens ``text`` is taken to have for the ``pairs.max_tokens`` filter."""
    return math.ceil(len(text.encode("utf-8")) / BYTES_PER_TOKEN)


# ---------------------------------------------------------------- sampling, per round


def plan_round(
    state: ProblemState, config: SamplerConfig, job_id: str, round_: int
) -> list[SampleRequest]:
    """The generation requests of one round.

    Round 0 asks for ``k`` codes, plus ``k`` tests (or ``k`` joint answers) when the
    problem brings no tests of its own. Round r asks every trajectory whose last version
    fails for a corrected solution, as one text and as a chat conversation.
    """
    if round_ == 0:
        return plan_requests(state.problem, config, job_id, tests=state.problem.tests is None)
    requests = []
    for trajectory in state.trajectories:
        if not trajectory.needs_refinement:
            continue
        last = trajectory.versions[-1]
        requests.append(
            SampleRequest(
                problem_id=state.problem_id,
                role=SampleRole.REFINE,
                index=trajectory.index,
                prompt=refine_prompt(state.problem, last.program, last.feedback),
                seed=derive_seed(
                    job_id, config.seed, state.problem_id, "refine", trajectory.index, round_
                ),
                messages=refine_messages(state.problem, last.program, last.feedback),
            )
        )
    return requests


def collect_round(
    state: ProblemState,
    config: SamplerConfig,
    results: Iterable[SampleResult],
    *,
    continuation: bool,
    round_: int,
) -> ProblemState:
    """The state with one round's answers: round 0 as ``assemble`` does, round r as the
    pending answer of each trajectory (or the reason it stops: the request failed)."""
    if round_ == 0:
        return assemble(
            state, config, results, continuation=continuation, tests=state.problem.tests is None
        )
    by_index = {result.request.index: result for result in results}
    trajectories = []
    for trajectory in state.trajectories:
        result = by_index.get(trajectory.index)
        if result is None:
            trajectories.append(trajectory)
        elif result.text is None:
            stopped = f"round {round_}: the refinement request failed: {result.error}"
            trajectories.append(trajectory.model_copy(update={"stopped": stopped}))
        else:
            trajectories.append(trajectory.model_copy(update={"pending": result.text}))
    return state.model_copy(update={"trajectories": trajectories})


# ---------------------------------------------------------------- parsing, per round


def parse_round(state: ProblemState, round_: int) -> ProblemState:
    """Round 0: distinct codes and the tests to run them on. Round r: each pending answer
    becomes the trajectory's next version (not yet executed), or stops it (no code)."""
    if round_ == 0:
        return _parse_first_attempt(state)
    trajectories = []
    for trajectory in state.trajectories:
        if trajectory.pending is None:
            trajectories.append(trajectory)
            continue
        code = _answer_code(trajectory.pending[:MAX_ANSWER_CHARS])
        if code is None:
            stopped = f"round {round_}: the answer held no python code block"
            trajectories.append(trajectory.model_copy(update={"pending": None, "stopped": stopped}))
            continue
        completion, program = _version_texts(state, code)
        version = Version(round=round_, completion=completion, program=program, statuses=[])
        trajectories.append(
            trajectory.model_copy(
                update={"pending": None, "versions": [*trajectory.versions, version]}
            )
        )
    return state.model_copy(update={"trajectories": trajectories})


def _parse_first_attempt(state: ProblemState) -> ProblemState:
    if not state.has_samples():
        return state
    problem = state.problem
    if problem.tests is None:
        return parse_step(state)  # the Focused-DPO parser, unchanged
    try:
        tests = problem_tests(problem) or []
    except ProblemTestsError as exc:  # refused at submission; kept as data if it gets here
        return state.model_copy(update={"skip": SkipReason.BAD_TESTS, "error": str(exc)})
    codes: dict[str, CodeCandidate] = {}
    stats: Counter[str] = Counter()
    if state.sampler_errors:
        stats["sampler_errors"] = len(state.sampler_errors)
    for sample, raw in enumerate(state.code_completions or []):
        texts = _first_attempt_texts(state, raw[:MAX_ANSWER_CHARS])
        if texts is None:
            stats["no_code_block"] += 1
            continue
        completion, program = texts
        seen = codes.get(completion)
        if seen is not None:
            stats["duplicate_code"] += 1
            codes[completion] = seen.model_copy(update={"count": seen.count + 1})
        else:
            codes[completion] = CodeCandidate(
                completion=completion, program=program, count=1, first_sample=sample
            )
    candidates = Candidates(
        problem_id=state.problem_id,
        codes=list(codes.values()),
        tests=[TestCandidate(source=t, count=1, first_sample=0) for t in tests],
        parse_stats=dict(sorted(stats.items())),
    )
    return state.model_copy(
        update={
            "candidates": candidates,
            "verified_tests": tests,
            "tests_origin": TestsOrigin.PROBLEM,
        }
    )


def _first_attempt_texts(state: ProblemState, raw: str) -> tuple[str, str] | None:
    """(completion, program) of a first attempt, or None when it holds no code.

    A completion-style continuation (its first line indented, as a function body is) is
    cut at the parser's stop sequences, as in Focused-DPO. Anything else, a chat answer
    to the same prompt included, is read the way refinement answers are.
    """
    problem = state.problem
    if problem.style is PromptStyle.COMPLETION and starts_as_continuation(raw):
        completion = truncate_completion(raw)
        return (completion, problem.prompt + completion) if completion.strip() else None
    code = _answer_code(raw)
    return None if code is None else _version_texts(state, code)


def _answer_code(answer: str) -> str | None:
    """The code of a refinement answer: its first python block, or the whole answer when
    it is bare Python (small models often drop the fence)."""
    code = extract_fenced_code(answer)
    if code is not None:
        return code if code.strip() else None
    try:
        ast.parse(answer)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    return answer.strip() or None


def _version_texts(state: ProblemState, code: str) -> tuple[str, str]:
    """(completion, program) of a refined solution.

    Completion style keeps pairs as prompt + continuation when the model repeated the
    prompt (signature and docstring) verbatim, as asked; otherwise, and for instruction
    style, the completion is the whole solution as one ```python block (§2.2).
    """
    program = code + "\n"
    if state.problem.style is PromptStyle.COMPLETION:
        continuation = continuation_of(state.problem.prompt, code)
        if continuation is not None:
            return continuation, program
    return fenced_solution(code), program


# ---------------------------------------------------------------- execution results


def pending_programs(state: ProblemState) -> list[str]:
    """Programs of the versions parsed this round and not yet executed, trajectory order."""
    return [
        t.versions[-1].program
        for t in state.trajectories
        if t.versions and not t.versions[-1].statuses and t.stopped is None
    ]


def record_round(
    state: ProblemState,
    statuses: Sequence[Sequence[CellStatus]],
    errors: Sequence[Sequence[str]],
    outputs: Sequence[Sequence[str]],
    pairs: PairsConfig,
) -> ProblemState:
    """The state with the statuses and feedback of the versions ``pending_programs`` listed.

    ``statuses[i]``, ``errors[i]`` and ``outputs[i]`` belong to the i-th pending program;
    ``errors``/``outputs`` may be empty (no feedback was captured).
    """
    tests = state.verified_tests or []
    row = 0
    trajectories = []
    for trajectory in state.trajectories:
        last = trajectory.versions[-1] if trajectory.versions else None
        if last is None or last.statuses or trajectory.stopped is not None:
            trajectories.append(trajectory)
            continue
        version = _executed(
            last,
            tests,
            list(statuses[row]),
            errors[row] if row < len(errors) else [],
            outputs[row] if row < len(outputs) else [],
            pairs,
        )
        row += 1
        trajectories.append(
            trajectory.model_copy(update={"versions": [*trajectory.versions[:-1], version]})
        )
    return state.model_copy(update={"trajectories": trajectories})


def _executed(
    version: Version,
    tests: Sequence[str],
    statuses: list[CellStatus],
    errors: Sequence[str],
    outputs: Sequence[str],
    pairs: PairsConfig,
) -> Version:
    update: dict[str, object] = {"statuses": statuses}
    if not all(s is CellStatus.PASSED for s in statuses):
        update["feedback"] = build_feedback(
            tests,
            [s.value for s in statuses],
            errors,
            outputs,
            max_chars=pairs.feedback_chars,
            max_tests=pairs.feedback_tests,
        )
    return version.model_copy(update=update)


# ---------------------------------------------------------------- round 0 → trajectories


def begin(state: ProblemState, spec: JobSpec) -> ProblemState:
    """Verified tests and one trajectory per distinct code, from round 0's pass matrix.

    With the problem's own tests every code starts a trajectory on all of them. Without,
    the codes are ranked (``spec.ranking``) and the verified tests are those the top code
    passes (at least ``pairs.min_ground_truth_tests``, else ``no_ground_truth``).
    """
    if state.skip is not None or state.candidates is None or state.status is None:
        return state
    codes, status = state.candidates.codes, state.status
    if not codes:
        return state.model_copy(update={"skip": SkipReason.NO_CODES})
    columns = list(range(len(state.candidates.tests)))
    update: dict[str, object] = {}
    if state.tests_origin is not TestsOrigin.PROBLEM:
        if not columns:
            return state.model_copy(update={"skip": SkipReason.NO_TESTS})
        passed = binary_matrix(status)
        ranking = make_ranker(spec.ranking).rank(
            passed,
            state.candidates.code_counts,
            state.candidates.test_counts,
            [code.first_sample for code in codes],
        )
        columns = [j for j in columns if passed[ranking.order[0], j]]
        update["ranking"] = ranking
        if len(columns) < spec.pairs.min_ground_truth_tests:
            return state.model_copy(update={**update, "skip": SkipReason.NO_GROUND_TRUTH})
        update["verified_tests"] = [state.candidates.tests[j].source for j in columns]
        update["tests_origin"] = TestsOrigin.RANKING
    elif not columns:
        return state.model_copy(update={"skip": SkipReason.NO_TESTS})
    tests = [state.candidates.tests[j].source for j in columns]
    errors, outputs = state.cell_errors or [], state.cell_outputs or []
    trajectories = []
    for i, code in enumerate(codes[: spec.sampler.k]):
        v0 = Version(round=0, completion=code.completion, program=code.program, statuses=[])
        trajectories.append(
            Trajectory(
                index=i,
                versions=[
                    _executed(
                        v0,
                        tests,
                        [status[i][j] for j in columns],
                        [errors[i][j] for j in columns] if i < len(errors) else [],
                        [outputs[i][j] for j in columns] if i < len(outputs) else [],
                        spec.pairs,
                    )
                ],
            )
        )
    return state.model_copy(
        update={**update, "trajectories": trajectories, "cell_errors": None, "cell_outputs": None}
    )


# ---------------------------------------------------------------- pairs and the outcome


def finish(state: ProblemState, spec: JobSpec, *, job_id: str) -> ProblemState:
    """The problem's `problems` row (the trajectories as evidence) and its Target-DPO pairs:
    one per trajectory that passed after at least one refinement and survives the filters.

    The problem's skip reason, when no pair is left, is the most telling one: a reason
    from before refinement, else ``not_refined`` when no trajectory passed, else
    ``no_incorrect`` when every one passed at once, else the first filter that dropped one.
    """
    pairs: list[PreferencePair] = []
    reasons: list[SkipReason] = []
    generation = generation_info(spec, derive_seed(job_id, spec.sampler.seed, state.problem_id))
    for trajectory in state.trajectories:
        result = trajectory_pair(
            state,
            trajectory,
            spec.pairs,
            seed=derive_seed("target_dpo", spec.sampler.seed, state.problem_id, trajectory.index),
            job_id=job_id,
            generation=generation,
        )
        if isinstance(result, PreferencePair):
            pairs.append(result)
        else:
            reasons.append(result)
    skip: SkipReason | None = None
    if not pairs:
        if state.skip is not None:
            skip = state.skip
        elif state.candidates is None or not state.has_samples():
            skip = SkipReason.SAMPLER_ERROR if state.sampler_errors else SkipReason.NO_CODES
        elif not reasons or all(r is SkipReason.NOT_REFINED for r in reasons):
            skip = SkipReason.NOT_REFINED if reasons else SkipReason.NO_CODES
        elif all(r in (SkipReason.NOT_REFINED, SkipReason.NO_INCORRECT) for r in reasons):
            skip = SkipReason.NO_INCORRECT
        else:
            skip = next(r for r in reasons if r not in _TRAJECTORY_ENDS)
    trajectories = [t.model_copy(update={"pending": None}) for t in state.trajectories]
    outcome = ProblemOutcome(
        job_id=job_id,
        problem_id=state.problem_id,
        candidates=state.candidates,
        status=state.status or [],
        ranking=state.ranking,
        fallback_cells=state.fallback_cells,
        verified_tests=state.verified_tests,
        tests_origin=state.tests_origin,
        trajectories=trajectories,
        pairs_emitted=len(pairs),
        skip_reason=skip,
        error=state.error,
        timings=state.timings,
    )
    return state.model_copy(update={"outcome": outcome, "pairs": pairs})


_TRAJECTORY_ENDS = frozenset({SkipReason.NOT_REFINED, SkipReason.NO_INCORRECT})


def trajectory_outcome(trajectory: Trajectory) -> str:
    """What became of a trajectory, for progress and reports: `refined` (passed after at
    least one refinement), `passed_first` (v0 passed) or `not_refined`."""
    if not trajectory.passed:
        return "not_refined"
    return "refined" if len(trajectory.versions) > 1 else "passed_first"


def trajectory_pair(
    state: ProblemState,
    trajectory: Trajectory,
    config: PairsConfig,
    *,
    seed: int,
    job_id: str,
    generation: GenerationInfo,
) -> PreferencePair | SkipReason:
    """The Target-DPO pair of one trajectory (ALGORITHMS.md §2.1 steps 4-6), or why none.

    Chosen is the final, passing version; rejected one earlier version drawn uniformly
    with ``seed``. As in the paper one draw is made: if a filter drops it, the trajectory
    yields no pair rather than another draw.
    """
    versions = trajectory.versions
    if not trajectory.passed:
        return SkipReason.NOT_REFINED
    if len(versions) < 2:
        return SkipReason.NO_INCORRECT
    j = select_earlier_version(len(versions), seed)
    prompt, chosen, rejected = pair_texts(state, versions[-1], versions[j])
    d_plus, d_minus = line_diff(chosen, rejected)
    # Judge whole programs: a completion-style continuation is an indented function body,
    # which does not parse on its own, so its AST could never be compared.
    judged = (chosen, rejected) if _is_fenced(chosen) else (prompt + chosen, prompt + rejected)
    reason = codeflow_filter(
        *judged,
        line_diff(*judged)[1],
        max_diff_lines=config.max_diff_lines,
        drop_empty=config.empty_diff == "drop",
    )
    if reason is not None:
        return _FILTER_SKIPS[reason]
    if max(estimated_tokens(chosen), estimated_tokens(rejected)) > config.max_tokens:
        return SkipReason.TOO_LONG
    return PreferencePair(
        job_id=job_id,
        problem_id=state.problem_id,
        method=PairMethod.TARGET_DPO,
        prompt=prompt,
        chosen=chosen,
        rejected=rejected,
        chosen_lines=d_plus,
        rejected_lines=d_minus,
        chosen_score=1.0,
        rejected_score=0.0,
        chosen_index=len(versions) - 1,
        rejected_index=j,
        ranker=TARGET_DPO_RANKER,
        trajectory=trajectory.index,
        chosen_round=versions[-1].round,
        rejected_round=versions[j].round,
        generation=generation,
    )


def pair_texts(state: ProblemState, chosen: Version, rejected: Version) -> tuple[str, str, str]:
    """(prompt, chosen, rejected) as written to the `pairs` table.

    Completion style with both versions continuing the prompt: the prompt and the two
    continuations, as Focused-DPO pairs are. Otherwise Target-DPO's layout (§2.2): the
    instruction prompt and both versions as whole ```python blocks.
    """
    problem = state.problem
    if problem.style is PromptStyle.COMPLETION and not (
        _is_fenced(chosen.completion) or _is_fenced(rejected.completion)
    ):
        return problem.prompt, chosen.completion, rejected.completion
    instruction = code_prompt(problem.model_copy(update={"style": PromptStyle.INSTRUCTION}))
    return (
        instruction,
        _as_block(chosen),
        _as_block(rejected),
    )


def _is_fenced(completion: str) -> bool:
    return completion.startswith("```")


def _as_block(version: Version) -> str:
    return (
        version.completion if _is_fenced(version.completion) else fenced_solution(version.program)
    )
