"""The execute stage: Ray Data actors that each own one warm sandbox container.

Ray Data turns ``ExecuteStage`` into an autoscaling actor pool (the JobSpec's
``(min_workers, max_workers)``), placed by the custom ``sandbox`` resource
(``cluster.placement``). Each actor builds one problem's pass matrix at a time: one
request per code, carrying all of the problem's tests. Untrusted code runs only inside
the container; the actor only reads statuses back.
"""

from __future__ import annotations

import logging
from typing import Any

from cluster.progress import StageTally
from pipeline.config import PairsConfig, SandboxConfig
from pipeline.errors import SandboxUnavailable
from pipeline.problem_state import ProblemState
from pipeline.records import CellStatus
from pipeline.refinement import pending_programs, record_round
from sandbox.errors import SandboxError
from sandbox.limits import PoolConfig, SandboxLimits
from sandbox.matrix import MatrixBuilder, MatrixProblem
from sandbox.pool import BackendFactory, ContainerPool
from sandbox.types import Isolation

logger = logging.getLogger(__name__)


def pool_config(config: SandboxConfig, *, workers: int = 1, label: str = "") -> PoolConfig:
    """The sandbox pool settings a JobSpec's ``sandbox`` section asks for."""
    return PoolConfig(
        image=config.image,
        workers=workers,
        timeout_s=config.timeout_s,
        isolation=Isolation(config.isolation),
        limits=SandboxLimits(memory_mb=config.memory_mb, cpus=config.cpus, pids=config.pids),
        label=label,
    )


def check_sandbox(config: SandboxConfig) -> None:
    """Start and close one warm container, as an executor would; raise if that fails.

    Run as a Ray task on a sandbox node before a build: an executor failing in its
    constructor reaches the driver as an ``ActorDiedError`` that keeps only a message,
    while a task's error keeps its cause, so the build can say exactly what is missing.

    Raises:
        SandboxUnavailable: no Docker engine, no image, or the runner did not start.
    """
    try:
        with ContainerPool(pool_config(config)):
            pass
    except SandboxError as exc:
        raise SandboxUnavailable(f"the sandbox cannot start on this node: {exc}") from exc


class ExecuteStage:
    """A Ray Data callable class: problems with candidates → problems with a pass matrix.

    Args:
        config: the JobSpec's ``sandbox`` section.
        tally: where to count executed problems and cells (live progress), if anywhere.
        backend_factory: the container backend; Docker by default, a scripted fake in
            unit tests (``sandbox.pool.BackendFactory``).
        label: a label put on the containers (tests find their own by it).
        refine: a Target-DPO build's ``pairs`` section: cells then bring back their
            feedback (error text, captured output) for the refinement prompts.
        round_: the Target-DPO round: 0 builds the pass matrix, r runs the versions
            parsed in round r against the verified tests (``pipeline.refinement``).

    A problem that runs past ``problem_budget_s`` keeps its partial matrix and is marked
    ``budget_exceeded``; the skip rules decide what that means.
    """

    def __init__(
        self,
        config: SandboxConfig,
        tally: StageTally | None = None,
        backend_factory: BackendFactory | None = None,
        label: str = "",
        refine: PairsConfig | None = None,
        round_: int | None = None,
    ) -> None:
        self.config = config
        self.tally = tally
        self.refine = refine
        self.round = round_
        self.pool = ContainerPool(pool_config(config, label=label), backend_factory)
        try:
            self.pool.start()
        except SandboxError as exc:
            raise SandboxUnavailable(f"the executor could not start its sandbox: {exc}") from exc
        self.builder = MatrixBuilder(self.pool, budget_s=config.problem_budget_s)

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        state = self.execute(row["state"])
        if self.tally is not None and not self.round:  # a problem counts once, in round 0
            self.tally.add("executed")
        return {"state": state}

    def execute(self, state: ProblemState) -> ProblemState:
        """The problem's pass matrix (empty rows when there is nothing to run), or in a
        refinement round the statuses and feedback of its new versions."""
        if self.refine is not None and self.round:
            return self._execute_versions(state, self.refine)
        codes = state.candidates.codes if state.candidates else []
        tests = state.candidates.tests if state.candidates else []
        if not (codes and tests):
            return state.model_copy(update={"status": [[] for _ in codes]})
        result = self.builder.build(
            MatrixProblem(
                problem_id=state.problem_id,
                programs=[code.program for code in codes],
                tests=[test.source for test in tests],
                feedback=self.refine is not None,
            )
        )
        if self.tally is not None:
            self.tally.add("cells", len(codes) * len(tests))
        update: dict[str, object] = {
            "status": [[CellStatus(cell.value) for cell in cells] for cells in result.status],
            "budget_exceeded": result.budget_exceeded,
            "fallback_cells": result.fallback_cells,
            "timings": {**state.timings, "execute": result.timings.wall_s},
        }
        if self.refine is not None:
            update |= {"cell_errors": result.errors, "cell_outputs": result.outputs}
        return state.model_copy(update=update)

    def _execute_versions(self, state: ProblemState, pairs: PairsConfig) -> ProblemState:
        programs = pending_programs(state)
        tests = state.verified_tests or []
        if not (programs and tests):
            return state
        result = self.builder.build(
            MatrixProblem(
                problem_id=state.problem_id, programs=programs, tests=tests, feedback=True
            )
        )
        if self.tally is not None:
            self.tally.add("cells", len(programs) * len(tests))
            self.tally.add(f"versions_round_{self.round}", len(programs))
        status = [[CellStatus(cell.value) for cell in cells] for cells in result.status]
        state = record_round(state, status, result.errors, result.outputs, pairs)
        spent = state.timings.get("execute", 0.0) + result.timings.wall_s
        return state.model_copy(
            update={
                "fallback_cells": state.fallback_cells + result.fallback_cells,
                "timings": {**state.timings, "execute": spent},
            }
        )

    def __del__(self) -> None:
        # Ray tears actors down at the end of a dataset; give the container back promptly.
        pool = getattr(self, "pool", None)
        if pool is not None:
            pool.close()
