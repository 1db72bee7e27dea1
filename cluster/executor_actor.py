"""The executor stage: Ray Data actors that each own one warm sandbox container.

Ray Data turns ``ExecutorUDF`` into an autoscaling actor pool (``ActorPoolStrategy``
with the JobSpec's ``(min_workers, max_workers)``), placed by the custom ``sandbox``
resource. Each actor builds one problem's pass matrix at a time: one request per code,
carrying all of the problem's tests. Untrusted code runs only inside the container.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from cluster.samplers.base import batch_of, rows_of
from cluster.stages import STAGE_COLUMNS, ProblemState, load_state
from pipeline.config import SandboxConfig
from pipeline.errors import SandboxUnavailable
from pipeline.records import CellStatus, SkipReason
from sandbox.errors import SandboxError
from sandbox.limits import PoolConfig, SandboxLimits
from sandbox.matrix import MatrixBuilder, MatrixProblem
from sandbox.pool import ContainerPool
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


class ExecutorUDF:
    """A Ray Data callable class: candidates in, status matrices out.

    A problem that runs past ``problem_budget_s`` is marked ``time_budget`` rather than
    ranked on a partial matrix.
    """

    def __init__(self, config: SandboxConfig, counter: Any = None, label: str = "") -> None:
        self.config = config
        self.counter = counter
        self.pool = ContainerPool(pool_config(config, label=label))
        try:
            self.pool.start()
        except SandboxError as exc:
            raise SandboxUnavailable(f"the executor could not start its sandbox: {exc}") from exc
        self.builder = MatrixBuilder(self.pool, budget_s=config.problem_budget_s)

    def __call__(self, batch: Mapping[str, Any]) -> dict[str, list[Any]]:
        rows = [self._execute(row) for row in rows_of(batch)]
        return batch_of(rows, STAGE_COLUMNS)

    def _execute(self, row: dict[str, Any]) -> dict[str, Any]:
        state = load_state(row)
        if state.candidates is None or state.skip_reason is not None:
            return row
        codes, tests = state.candidates.codes, state.candidates.tests
        if codes and tests:
            result = self.builder.build(
                MatrixProblem(
                    problem_id=state.problem.problem_id,
                    programs=[code.program for code in codes],
                    tests=[test.source for test in tests],
                )
            )
            status = [[CellStatus(cell.value) for cell in cells] for cells in result.status]
            update: dict[str, Any] = {
                "status": status,
                "timings": {**state.timings, "execute": result.timings.wall_s},
            }
            if result.budget_exceeded:
                update["skip_reason"] = SkipReason.TIME_BUDGET
                update["error"] = (
                    f"execution ran past the problem budget of {self.config.problem_budget_s} s"
                )
        else:
            update = {"status": [[] for _ in codes]}
        done: ProblemState = state.model_copy(update=update)
        if self.counter is not None:
            self.counter.add.remote("executed")
            self.counter.add.remote("cells", len(codes) * len(tests))
        return {**row, "state": done.model_dump_json()}

    def __del__(self) -> None:
        # Ray tears actors down at the end of a dataset; give the container back promptly.
        pool = getattr(self, "pool", None)
        if pool is not None:
            pool.close()
