"""Pass matrices: every program of a problem against every test, run over a container pool.

One request per program carries all of that problem's tests, so a program costs one round
trip however many tests it has. One thread per container keeps every container busy;
problems stream out as soon as their last program is done.

Per-problem budget: a problem's clock starts when its first program starts. A program that
starts after the budget ran out is not run, and a running one starts no further test once
it has. Such cells are ``sandbox_error`` (detail ``not run: ...``), not ``timeout``: nothing
was observed about the code, so they must not count against it; ``budget_exceeded`` says
the row is incomplete.

    with ContainerPool(PoolConfig(workers=2)) as pool:
        for result in MatrixBuilder(pool).build_many(problems):
            print(result.problem_id, result.status)
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Generator, Iterable
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field

from sandbox.pool import ContainerPool
from sandbox.types import CellMode, CellStatus, ExecutionRequest, ExecutionResult, Isolation

logger = logging.getLogger(__name__)


class MatrixProblem(BaseModel):
    """The programs and tests of one problem; a cell is one program against one test."""

    model_config = ConfigDict(frozen=True)

    problem_id: str = Field(description="Identifier copied to the result.")
    programs: list[str] = Field(description="Candidate programs (matrix rows).")
    tests: list[str] = Field(description="Test snippets (matrix columns).")
    budget_s: float | None = Field(
        default=None, gt=0, description="Time budget of this problem; None: the builder's."
    )
    feedback: bool = Field(
        default=False,
        description="Return each failing cell's error text and captured output "
        "(MatrixResult.errors and .outputs; see ExecutionRequest.feedback).",
    )


class MatrixTimings(BaseModel):
    """Where a problem's time went."""

    wall_s: float = Field(description="From its first program starting to its last finishing.")
    sandbox_s: float = Field(description="Sum of the requests' durations (container time).")
    cells: int = Field(description="Cells in the matrix (programs x tests).")


class MatrixResult(BaseModel):
    """The pass matrix of one problem: ``status[i][j]`` is program i against test j."""

    problem_id: str = Field(description="The problem's identifier.")
    status: list[list[CellStatus]] = Field(description="One row per program, one column per test.")
    details: list[list[str]] = Field(description="Short detail per cell (empty when passed).")
    timings: MatrixTimings = Field(description="Wall and container time spent.")
    budget_exceeded: bool = Field(description="Some cells were not run: the budget ran out.")
    errors: list[list[str]] = Field(
        default_factory=list,
        description="With feedback: per program, per test, the cell's error text (empty "
        "when passed; see ExecutionResult.errors). Empty rows without feedback.",
    )
    outputs: list[list[str]] = Field(
        default_factory=list,
        description="With feedback: per program, per test, what the cell printed (empty "
        "when passed; see ExecutionResult.outputs). Empty rows without feedback.",
    )
    fallback_cells: int = Field(
        default=0,
        ge=0,
        description="Cells whose test could not be split and ran on the fallback path, in "
        "the program's own process (see sandbox.runner): their outcome is only as "
        "trustworthy as the program. Share per problem: fallback_cells / timings.cells.",
    )


@dataclass
class _Open:
    """A problem being built: filled in by worker threads, under the builder's lock."""

    problem: MatrixProblem
    budget_s: float
    rows: list[ExecutionResult | None]
    pending: int
    started: float | None = None
    finished: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def result(self) -> MatrixResult:
        rows = [row for row in self.rows if row is not None]
        wall = self.finished - self.started if self.started is not None else 0.0
        return MatrixResult(
            problem_id=self.problem.problem_id,
            status=[list(row.statuses) for row in rows],
            details=[list(row.details) for row in rows],
            errors=[list(row.errors) for row in rows],
            outputs=[list(row.outputs) for row in rows],
            timings=MatrixTimings(
                wall_s=wall,
                sandbox_s=sum(row.duration_s for row in rows),
                cells=len(self.problem.programs) * len(self.problem.tests),
            ),
            budget_exceeded=any(row.budget_exceeded for row in rows),
            fallback_cells=sum(row.modes.count(CellMode.FALLBACK) for row in rows),
        )


class MatrixBuilder:
    """Builds pass matrices over a started ``ContainerPool``."""

    def __init__(
        self,
        pool: ContainerPool,
        timeout_s: float | None = None,
        isolation: Isolation | None = None,
        budget_s: float = 120.0,
        max_open_problems: int | None = None,
        split: bool = True,
    ) -> None:
        """
        Args:
            pool: a started pool; one thread per container feeds it.
            timeout_s: wall-clock limit per test (default: the pool's).
            isolation: test isolation (default: the pool's).
            budget_s: default per-problem budget in seconds.
            max_open_problems: problems read ahead of the slowest unfinished one (default:
                twice the containers), so huge inputs stream in bounded memory.
            split: judge splittable tests outside the program's process (the default);
                False only to measure the cost (``ExecutionRequest.split``).
        """
        self._pool = pool
        self._timeout_s = timeout_s or pool.config.timeout_s
        self._isolation = isolation or pool.config.isolation
        self._budget_s = budget_s
        self._workers = pool.config.workers
        self._max_open = max_open_problems or 2 * self._workers
        self._split = split

    def build(self, problem: MatrixProblem) -> MatrixResult:
        """The pass matrix of one problem."""
        return next(iter(self.build_many([problem])))

    def build_many(self, problems: Iterable[MatrixProblem]) -> Generator[MatrixResult, None, None]:
        """Pass matrices in the order problems finish, reading ``problems`` lazily."""
        tasks: queue.Queue[tuple[_Open, int] | None] = queue.Queue()
        finished: queue.Queue[_Open] = queue.Queue()
        threads = [
            threading.Thread(target=self._work, args=(tasks, finished), daemon=True)
            for _ in range(self._workers)
        ]
        for thread in threads:
            thread.start()
        open_count = 0
        try:
            for problem in problems:
                if not problem.programs or not problem.tests:
                    yield MatrixResult(
                        problem_id=problem.problem_id,
                        status=[[] for _ in problem.programs],
                        details=[[] for _ in problem.programs],
                        errors=[[] for _ in problem.programs],
                        outputs=[[] for _ in problem.programs],
                        timings=MatrixTimings(wall_s=0.0, sandbox_s=0.0, cells=0),
                        budget_exceeded=False,
                    )
                    continue
                state = _Open(
                    problem=problem,
                    budget_s=problem.budget_s or self._budget_s,
                    rows=[None] * len(problem.programs),
                    pending=len(problem.programs),
                )
                for index in range(len(problem.programs)):
                    tasks.put((state, index))
                open_count += 1
                while open_count >= self._max_open:
                    yield finished.get().result()
                    open_count -= 1
            while open_count:
                yield finished.get().result()
                open_count -= 1
        finally:
            # Also reached when the caller stops early: drop queued work, stop the threads.
            while True:
                try:
                    tasks.get_nowait()
                except queue.Empty:
                    break
            for _ in threads:
                tasks.put(None)
            for thread in threads:
                thread.join()

    def _work(self, tasks: queue.Queue[tuple[_Open, int] | None], done: queue.Queue[_Open]) -> None:
        while (task := tasks.get()) is not None:
            state, index = task
            try:
                row = self._run_program(state, index)
            except Exception as exc:  # a dying worker would leave its problem open forever
                logger.exception("matrix worker failed on %s", state.problem.problem_id)
                row = _not_run(state.problem, f"sandbox failure: {exc}"[:200])
            with state.lock:
                state.rows[index] = row
                state.pending -= 1
                complete = state.pending == 0
                if complete:
                    state.finished = time.monotonic()
            if complete:
                done.put(state)

    def _run_program(self, state: _Open, index: int) -> ExecutionResult:
        with state.lock:
            now = time.monotonic()
            if state.started is None:
                state.started = now
            remaining = state.budget_s - (now - state.started)
        tests = state.problem.tests
        if remaining <= 0:
            reason = f"not run: the problem's time budget of {state.budget_s:g} s ran out"
            return _not_run(state.problem, reason, budget_exceeded=True)
        request = ExecutionRequest(
            program=state.problem.programs[index],
            tests=tests,
            timeout_s=self._timeout_s,
            isolation=self._isolation,
            budget_s=remaining,
            split=self._split,
            feedback=state.problem.feedback,
        )
        return self._pool.run(request)


def _not_run(problem: MatrixProblem, reason: str, budget_exceeded: bool = False) -> ExecutionResult:
    n_tests = len(problem.tests)
    return ExecutionResult(
        statuses=[CellStatus.SANDBOX_ERROR] * n_tests,
        details=[reason] * n_tests,
        budget_exceeded=budget_exceeded,
        errors=[reason] * n_tests if problem.feedback else [],
        outputs=[""] * n_tests if problem.feedback else [],
    )
