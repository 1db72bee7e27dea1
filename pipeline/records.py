"""Records that flow through a dataset build: problems, candidates, statuses, scores, pairs.

Every stage takes and returns these plain pydantic models, so the pipeline runs in a
notebook with canned data and the Ray layer only moves them around. Field names follow
DESIGN.md §3; the shard schema in ``pipeline.shards`` is built from them.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

SCHEMA_VERSION = "1"
"""Version of the shard and record layout; bump it when a column changes meaning."""


class PromptStyle(StrEnum):
    """How the model is asked for code."""

    COMPLETION = "completion"
    """The model continues the prompt; the program is prompt + completion (HumanEval)."""
    INSTRUCTION = "instruction"
    """The model answers an instruction with fenced code blocks."""


class PairMethod(StrEnum):
    """Which preference method a pair is built for."""

    FOCUSED_DPO = "focused_dpo"
    TARGET_DPO = "target_dpo"


class CellStatus(StrEnum):
    """Outcome of one code run against one test (DESIGN.md §3.4)."""

    PASSED = "passed"
    FAILED = "failed"
    """The assertion was false."""
    ERROR = "error"
    """Another exception, a syntax error, or the program died."""
    TIMEOUT = "timeout"
    MEMORY = "memory"
    SANDBOX_ERROR = "sandbox_error"
    """Infrastructure trouble; never counted as a failure of the code."""


class SkipReason(StrEnum):
    """Why a problem produced no pair."""

    NO_CODES = "no_codes"
    NO_TESTS = "no_tests"
    ALL_FAIL = "all_fail"
    """No code passes any test (A = 0)."""
    ALL_PASS = "all_pass"
    """Every code passes every test (A = 1): no negative exists."""
    SANDBOX_ERROR = "sandbox_error"
    """Too many cells could not be executed to trust the matrix."""
    NO_GROUND_TRUTH = "no_ground_truth"
    """The top code passes fewer ground-truth tests than required."""
    NO_CORRECT = "no_correct"
    NO_INCORRECT = "no_incorrect"
    NO_DISTINCT_PAIR = "no_distinct_pair"
    """Every candidate pair was dropped by the span rules (identical, unfocused, or an
    edit at the end with ``pairs.edit_at_end: drop``)."""
    SAMPLER_ERROR = "sampler_error"
    TIME_BUDGET = "time_budget"
    NOT_REFINED = "not_refined"
    """CodeFlow: no trajectory passed within the last refinement round."""
    EMPTY_DIFF = "empty_diff"
    """CodeFlow, with `pairs.empty_diff: drop`: the rejected version only lacks lines."""
    COMMENT_ONLY = "comment_only"
    """CodeFlow: the rejected version's differing lines are only comments or blank."""
    TOO_MANY_LINES = "too_many_lines"
    """CodeFlow: the rejected version has more differing lines than `pairs.max_diff_lines`."""
    TOO_LONG = "too_long"
    """CodeFlow: chosen or rejected is longer than `pairs.max_tokens` tokens."""
    IDENTICAL_AST = "identical_ast"
    """CodeFlow: both versions parse to the same syntax tree."""
    BAD_TESTS = "bad_tests"
    """CodeFlow: the problem's own `tests` could not be turned into runnable tests."""


class Problem(BaseModel):
    """One programming problem (DESIGN.md §3.1)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    problem_id: str = Field(min_length=1, description="Unique id of the problem within a job.")
    prompt: str = Field(description="Prompt text given to the model.")
    entry_point: str | None = Field(
        default=None, description="Name of the function the tests call; tests must mention it."
    )
    style: PromptStyle = Field(
        default=PromptStyle.COMPLETION,
        description="`completion`: program = prompt + completion; `instruction`: fenced code.",
    )
    language: str = Field(default="python", description="Programming language; only `python`.")
    tests: list[str] | str | None = Field(
        default=None,
        description="The problem's own tests, if it ships them: a list of `assert` statements, "
        "or a test program defining `check(candidate)` as HumanEval does. Target-DPO builds "
        "refine against these; without them the tests come from Focused-DPO ranking.",
    )
    metadata: dict[str, Any] = Field(
        default_factory=dict, description="Free-form metadata carried into the problems table."
    )


class ReplayRow(Problem):
    """A problem with pre-generated raw completions (DESIGN.md §3.2).

    Either ``code_completions`` and ``test_completions`` (separate sampling, CodeT style)
    or ``completions`` (joint code+test outputs) must be present.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    code_completions: list[str] | None = Field(
        default=None, description="Raw code completions, one per sample."
    )
    test_completions: list[str] | None = Field(
        default=None, description="Raw test completions (assert statements), one per sample."
    )
    completions: list[str] | None = Field(
        default=None, description="Raw joint completions holding both code and tests."
    )

    @model_validator(mode="after")
    def _has_completions(self) -> ReplayRow:
        separate = self.code_completions is not None or self.test_completions is not None
        if separate and (self.code_completions is None or self.test_completions is None):
            raise ValueError(
                "separate sampling needs both `code_completions` and `test_completions`; "
                f"got only {'code' if self.test_completions is None else 'test'}_completions"
            )
        if not separate and self.completions is None:
            raise ValueError(
                "a replay row needs `completions` (joint) or `code_completions` and "
                "`test_completions` (separate); it has none of them"
            )
        return self

    def problem(self) -> Problem:
        """The problem without its completions."""
        return Problem.model_validate(self.model_dump(include=set(Problem.model_fields)))


class CodeCandidate(BaseModel):
    """One distinct code, with how many samples produced it."""

    model_config = ConfigDict(frozen=True)

    completion: str = Field(
        description="Text the model should produce after the prompt (truncated, as trained on)."
    )
    program: str = Field(description="The full program that is executed.")
    count: int = Field(ge=1, description="Number of samples that produced this exact code.")
    first_sample: int = Field(ge=0, description="Lowest sample index that produced it.")


class TestCandidate(BaseModel):
    """One distinct single-assert test, with how many samples produced it."""

    model_config = ConfigDict(frozen=True)
    __test__ = False  # not a pytest class

    source: str = Field(description="A single `assert` statement.")
    count: int = Field(ge=1, description="Number of times the assert occurred across samples.")
    first_sample: int = Field(ge=0, description="Lowest sample index that produced it.")


class Candidates(BaseModel):
    """Distinct codes and tests of one problem, ready to execute."""

    model_config = ConfigDict(frozen=True)

    problem_id: str = Field(description="Problem these candidates belong to.")
    codes: list[CodeCandidate] = Field(description="Distinct codes, in first-seen order.")
    tests: list[TestCandidate] = Field(description="Distinct asserts, in first-seen order.")
    parse_stats: dict[str, int] = Field(
        default_factory=dict,
        description="Counts of what parsing dropped or altered, by reason (e.g. `no_code_block`).",
    )

    @property
    def code_counts(self) -> list[int]:
        return [c.count for c in self.codes]

    @property
    def test_counts(self) -> list[int]:
        return [t.count for t in self.tests]


StatusMatrix = list[list[CellStatus]]
"""``status[i][j]``: outcome of code i against test j."""


class RankingResult(BaseModel):
    """Scores a ranker gave to the codes and tests of one problem."""

    model_config = ConfigDict(frozen=True)

    ranker: str = Field(description="Ranker name (`pagerank`, `codet`, `hits`, `passcount`).")
    code_scores: list[float] = Field(description="One score per distinct code; higher is better.")
    test_scores: list[float] = Field(description="One score per distinct test; higher is better.")
    order: list[int] = Field(
        description="Code indices best first, ties broken by (score, tests passed, sample index)."
    )
    iterations: int = Field(default=0, ge=0, description="Iterations the ranker ran.")


class PassGraphStats(BaseModel):
    """How the candidates of one problem agree, from its code–test pass graph.

    Computed by ``pipeline.ranking.graph.pass_graph_stats``; codes and tests in no passing
    cell count in neither figure.
    """

    model_config = ConfigDict(frozen=True)

    components: int = Field(
        ge=0,
        description="Connected components of the pass graph: groups of codes and tests that "
        "share no passing cell with each other.",
    )
    consensus_sets: int = Field(
        ge=0, description="Distinct non-empty sets of passed tests (CodeT's consensus sets)."
    )
    largest_consensus_samples: int = Field(
        ge=0, description="Samples behind the codes of the largest consensus set."
    )


class FocusSpans(BaseModel):
    """Where the error-prone point lies in a chosen/rejected pair (ALGORITHMS.md §1.6, §5.3).

    Offsets are half-open ``[start, end)`` Python string indices. The prefix is
    ``[0, *_mid_start)``, the suffix ``[*_mid_end, len)``.
    """

    model_config = ConfigDict(frozen=True)

    chosen_mid_start: int = Field(ge=0, description="Start of the mid span in `chosen`.")
    chosen_mid_end: int = Field(ge=0, description="End (exclusive) of the mid span in `chosen`.")
    rejected_mid_start: int = Field(ge=0, description="Start of the mid span in `rejected`.")
    rejected_mid_end: int = Field(
        ge=0, description="End (exclusive) of the mid span in `rejected`."
    )
    widened: bool = Field(
        default=False,
        description="True when an empty mid was widened to the line where the edit takes effect.",
    )


class LineSpan(BaseModel):
    """A diff line as both a 0-based line index and a half-open character span."""

    model_config = ConfigDict(frozen=True)

    line: int = Field(ge=0, description="0-based line index.")
    start: int = Field(ge=0, description="Character offset where the line starts.")
    end: int = Field(ge=0, description="Character offset after the line, newline included.")


class GenerationInfo(BaseModel):
    """Provenance of the samples behind a pair."""

    model_config = ConfigDict(frozen=True)

    model: str = Field(default="", description="Model that produced the samples.")
    sampler: str = Field(default="", description="Sampler kind (`vllm`, `openai`, `replay`).")
    temperature: float | None = Field(default=None, description="Sampling temperature.")
    top_p: float | None = Field(default=None, description="Nucleus sampling threshold.")
    k: int = Field(default=0, ge=0, description="Samples drawn per problem.")
    seed: int | None = Field(default=None, description="Base seed of the problem's samples.")


class TestsOrigin(StrEnum):
    """Where a Target-DPO problem's verified tests came from."""

    __test__ = False  # not a pytest class

    PROBLEM = "problem"
    """The problem's own `tests` field."""
    RANKING = "ranking"
    """The tests the top-ranked code passes among k sampled code+test candidates (§1.5)."""


class Version(BaseModel):
    """One version of a refinement trajectory, run against the verified tests."""

    model_config = ConfigDict(frozen=True)

    round: int = Field(ge=0, description="0 for the first attempt, r for the r-th refinement.")
    completion: str = Field(
        description="The text after the prompt, as trained on (completion style: the "
        "continuation; instruction style: one ```python fenced block)."
    )
    program: str = Field(description="The program that was executed.")
    statuses: list[CellStatus] = Field(description="One status per verified test.")
    feedback: str = Field(
        default="",
        description="Execution feedback built from the failing tests (empty when it passed): "
        "what the next refinement prompt showed the model.",
    )

    @property
    def passed(self) -> bool:
        return bool(self.statuses) and all(s is CellStatus.PASSED for s in self.statuses)


class Trajectory(BaseModel):
    """One first attempt and its refinements (CodeFlow, ALGORITHMS.md §2.1 step 3)."""

    model_config = ConfigDict(frozen=True)

    index: int = Field(ge=0, description="Trajectory number within the problem.")
    versions: list[Version] = Field(
        default_factory=list, description="v0, v1, ...: every version, in round order."
    )
    pending: str | None = Field(
        default=None,
        description="Raw model answer of the current round, awaiting parsing and execution.",
    )
    stopped: str | None = Field(
        default=None,
        description="Why the trajectory ended before passing (a failed request, an answer "
        "without code); None while it runs or once it passed.",
    )

    @property
    def passed(self) -> bool:
        return bool(self.versions) and self.versions[-1].passed

    @property
    def needs_refinement(self) -> bool:
        """Whether the next round should ask the model for a new version."""
        return bool(self.versions) and not self.passed and self.stopped is None


class PreferencePair(BaseModel):
    """One preference pair, in TRL's explicit-prompt layout plus focus spans."""

    model_config = ConfigDict(frozen=True)

    job_id: str = Field(description="Job that produced the pair.")
    problem_id: str = Field(description="Problem the pair answers.")
    method: PairMethod = Field(description="`focused_dpo` or `target_dpo`.")
    prompt: str = Field(description="Prompt text; in completion style prompt + chosen is runnable.")
    chosen: str = Field(description="Preferred completion (the text after the prompt).")
    rejected: str = Field(description="Dispreferred completion.")
    spans: FocusSpans | None = Field(default=None, description="Focused-DPO prefix/mid/suffix.")
    focused: bool = Field(
        default=True,
        description="False when the spans do not isolate the error (a mid wider than "
        "`pairs.max_mid_frac` kept by `pairs.unfocused: keep`, or an edit at the very end "
        "flagged by `pairs.edit_at_end: flag`): a trainer may treat the pair as plain DPO.",
    )
    chosen_lines: list[LineSpan] | None = Field(
        default=None, description="Target-DPO: lines of `chosen` outside the line LCS (D+)."
    )
    rejected_lines: list[LineSpan] | None = Field(
        default=None, description="Target-DPO: lines of `rejected` outside the line LCS (D-)."
    )
    chosen_score: float = Field(description="Ranker score of the chosen code (normalised).")
    rejected_score: float = Field(description="Ranker score of the rejected code (normalised).")
    chosen_index: int = Field(ge=0, description="Index of the chosen code among the candidates.")
    rejected_index: int = Field(ge=0, description="Index of the rejected code.")
    ranker: str = Field(description="Ranker that scored the codes.")
    trajectory: int | None = Field(
        default=None, description="Target-DPO: the trajectory both versions belong to."
    )
    chosen_round: int | None = Field(
        default=None, description="Target-DPO: round of the chosen (final, passing) version."
    )
    rejected_round: int | None = Field(
        default=None, description="Target-DPO: round of the rejected (earlier) version."
    )
    generation: GenerationInfo = Field(
        default_factory=GenerationInfo, description="Provenance of the samples."
    )
    schema_version: str = Field(default=SCHEMA_VERSION, description="Record layout version.")


class ProblemOutcome(BaseModel):
    """Everything known about one problem after a build: the row of the `problems` table."""

    model_config = ConfigDict(frozen=True)

    job_id: str = Field(description="Job that processed the problem.")
    problem_id: str = Field(description="Problem id.")
    candidates: Candidates | None = Field(
        default=None, description="Parsed candidates; None if sampling failed."
    )
    status: StatusMatrix = Field(
        default_factory=list, description="Status of every code against every test."
    )
    ranking: RankingResult | None = Field(default=None, description="Ranker output, if ranked.")
    pass_graph: PassGraphStats | None = Field(
        default=None, description="Components and consensus sets of the pass graph, if ranked."
    )
    pairs_emitted: int = Field(default=0, ge=0, description="Pairs written for this problem.")
    fallback_cells: int = Field(
        default=0,
        ge=0,
        description="Cells the sandbox judged on its in-process fallback path (tests it could "
        "not split into calls and comparisons): only as trustworthy as the program.",
    )
    verified_tests: list[str] | None = Field(
        default=None, description="Target-DPO: the tests every version was run against."
    )
    tests_origin: TestsOrigin | None = Field(
        default=None, description="Target-DPO: where the verified tests came from."
    )
    trajectories: list[Trajectory] = Field(
        default_factory=list,
        description="Target-DPO: every trajectory with all its versions, statuses and feedback.",
    )
    skip_reason: SkipReason | None = Field(
        default=None, description="Why no pair was written, if none was."
    )
    error: str | None = Field(default=None, description="Error message for a failed problem.")
    timings: dict[str, float] = Field(
        default_factory=dict, description="Seconds spent per stage (`sample`, `execute`, ...)."
    )
    schema_version: str = Field(default=SCHEMA_VERSION, description="Record layout version.")
