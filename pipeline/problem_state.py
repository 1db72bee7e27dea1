"""One problem on its way through a build: the single row contract of every stage.

A build is a chain of steps over one record, ``ProblemState``, which each step returns
with more filled in::

    input row ─► ProblemState(index, problem[, replayed completions])
      sample   ─► code_completions / test_completions / completions, sampler_errors
      parse    ─► candidates (distinct codes and tests with multiplicities)
      execute  ─► status (the pass matrix), budget_exceeded
      rank     ─► outcome (the `problems` table row) and pairs (the `pairs` table rows)

A Target-DPO build (``pipeline.refinement``) runs the same sample ─► parse ─► execute
steps once per round: round 0 fills ``candidates``/``status`` as above (plus the cells'
feedback), ``begin`` turns them into ``verified_tests`` and one trajectory per code, and
each later round adds one version to every trajectory that still fails.

Nothing is decided early: a step that has nothing to work on passes the state on, and
``pipeline.skip_rules`` reads the whole state once, before ranking, to say why a problem
yields no pair. Ray carries the record itself from stage to stage; nothing re-encodes it.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from pipeline.records import (
    Candidates,
    PreferencePair,
    Problem,
    ProblemOutcome,
    RankingResult,
    ReplayRow,
    SkipReason,
    StatusMatrix,
    TestsOrigin,
    Trajectory,
)


class ProblemState(BaseModel):
    """Everything known about one problem so far; each stage returns a copy with more."""

    model_config = ConfigDict(frozen=True)

    index: int = Field(ge=0, description="0-based position of the problem in the input.")
    problem: Problem = Field(description="The problem, without any completions.")
    code_completions: list[str] | None = Field(
        default=None, description="Raw code completions (separate sampling), in sample order."
    )
    test_completions: list[str] | None = Field(
        default=None, description="Raw test completions (separate sampling), in sample order."
    )
    completions: list[str] | None = Field(
        default=None, description="Raw joint completions (code and tests), in sample order."
    )
    sampler_errors: list[str] = Field(
        default_factory=list, description="One line per sample that failed after its retries."
    )
    candidates: Candidates | None = Field(
        default=None, description="Distinct codes and tests, once parsed."
    )
    status: StatusMatrix | None = Field(
        default=None, description="Status of every code against every test, once executed."
    )
    budget_exceeded: bool = Field(
        default=False, description="Execution stopped at the problem's time budget."
    )
    fallback_cells: int = Field(
        default=0,
        ge=0,
        description="Cells the sandbox ran on its in-process fallback path (tests it could "
        "not split into calls and comparisons).",
    )
    cell_errors: list[list[str]] | None = Field(
        default=None,
        description="Target-DPO round 0: error text per cell (empty when passed), for feedback.",
    )
    cell_outputs: list[list[str]] | None = Field(
        default=None,
        description="Target-DPO round 0: captured output per cell, for feedback.",
    )
    verified_tests: list[str] | None = Field(
        default=None, description="Target-DPO: the tests every version must pass."
    )
    tests_origin: TestsOrigin | None = Field(
        default=None, description="Target-DPO: where the verified tests came from."
    )
    ranking: RankingResult | None = Field(
        default=None, description="Target-DPO: the ranking that chose ranking-route tests."
    )
    trajectories: list[Trajectory] = Field(
        default_factory=list, description="Target-DPO: the refinement trajectories so far."
    )
    skip: SkipReason | None = Field(
        default=None, description="Target-DPO: why the problem stopped before refining."
    )
    error: str | None = Field(default=None, description="Target-DPO: detail of an early stop.")
    timings: dict[str, float] = Field(
        default_factory=dict, description="Seconds spent per stage (`parse`, `execute`, ...)."
    )
    outcome: ProblemOutcome | None = Field(
        default=None, description="The problem's row of the `problems` table, once ranked."
    )
    pairs: list[PreferencePair] = Field(
        default_factory=list, description="The problem's preference pairs, once ranked."
    )

    @classmethod
    def from_input(cls, index: int, record: Problem | ReplayRow) -> ProblemState:
        """The state of an input row; a replay row brings its recorded completions along."""
        if isinstance(record, ReplayRow):
            return cls(
                index=index,
                problem=record.problem(),
                code_completions=record.code_completions,
                test_completions=record.test_completions,
                completions=record.completions,
            )
        return cls(index=index, problem=record)

    @property
    def problem_id(self) -> str:
        return self.problem.problem_id

    def unit(self, problems_per_unit: int) -> int:
        """The work unit (shard number) the problem belongs to."""
        return self.index // problems_per_unit

    def sampled(self) -> ReplayRow:
        """The problem and its raw completions, as the parser takes them."""
        return ReplayRow.model_validate(
            {
                **self.problem.model_dump(),
                "code_completions": self.code_completions,
                "test_completions": self.test_completions,
                "completions": self.completions,
            }
        )

    def has_samples(self) -> bool:
        """Whether the sampler produced anything to parse."""
        return bool(self.code_completions or self.completions)
