"""Knobs of the sandbox: per-container and per-cell limits, and the pool that applies them.

Pure configuration (pydantic only); ``sandbox.docker_backend`` turns it into container
options and ``sandbox.protocol`` into the runner's rlimits.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sandbox.types import Isolation

DEFAULT_IMAGE = "pairforge-sandbox:latest"
POOL_LABEL = "pairforge.sandbox"
"""Every sandbox container carries this label (value "1"), plus ``pairforge.pool`` (the
pool's random id) and, when ``PoolConfig.label`` is set, ``pairforge.owner``."""


class SandboxLimits(BaseModel):
    """Resource limits of one warm container and of every cell process inside it.

    Example::

        SandboxLimits(memory_mb=256, cpus=0.5)   # a smaller box for tiny programs
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    memory_mb: int = Field(
        default=512,
        ge=64,
        description="Container memory limit in MiB; swap is capped at the same value (none).",
    )
    cell_address_space_mb: int | None = Field(
        default=None,
        ge=64,
        description=(
            "RLIMIT_AS of each cell process in MiB, so a memory bomb gets MemoryError before "
            "the container's OOM killer acts. Default: memory_mb minus 64."
        ),
    )
    cpus: float = Field(default=1.0, gt=0, description="CPUs per container (docker --cpus).")
    pids: int = Field(
        default=64, ge=8, description="Container pids limit; bounds fork bombs (docker --pids)."
    )
    cell_processes: int = Field(
        default=32,
        ge=1,
        description="RLIMIT_NPROC of the cell user: processes a cell may have at once.",
    )
    tmpfs_mb: int = Field(
        default=64, ge=1, description="Size of each tmpfs (/work, /tmp, /dev/shm) in MiB."
    )
    tmpfs_inodes: int = Field(
        default=4096,
        ge=64,
        le=1_000_000,
        description="Files and directories each tmpfs can hold: bounds what a cell can "
        "leave behind, and so the wipe after every test.",
    )
    nofile: int = Field(default=64, ge=16, description="RLIMIT_NOFILE: open files per cell.")
    fsize_mb: int = Field(
        default=16, ge=1, description="RLIMIT_FSIZE: largest file a cell may write, in MiB."
    )

    @model_validator(mode="after")
    def _address_space_fits(self) -> SandboxLimits:
        if self.cell_address_space_mb is not None and self.cell_address_space_mb > self.memory_mb:
            raise ValueError(
                f"cell_address_space_mb ({self.cell_address_space_mb}) must not exceed "
                f"memory_mb ({self.memory_mb}): the container's OOM killer would act first"
            )
        if self.cell_processes >= self.pids:
            raise ValueError(
                f"cell_processes ({self.cell_processes}) must be below pids ({self.pids}) "
                "so the runner can always fork"
            )
        return self

    @property
    def address_space_mb(self) -> int:
        """The effective RLIMIT_AS of a cell, in MiB."""
        if self.cell_address_space_mb is not None:
            return self.cell_address_space_mb
        return max(64, self.memory_mb - 64)


class PoolConfig(BaseModel):
    """How many warm containers to run, from which image, and how to treat failures.

    Example::

        with ContainerPool(PoolConfig(workers=2, limits=SandboxLimits(memory_mb=256))) as pool:
            result = pool.run(ExecutionRequest(program="x = 1", tests=["assert x == 1"]))
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    image: str = Field(default=DEFAULT_IMAGE, description="Sandbox image (build: pairforge image).")
    workers: int = Field(default=2, ge=1, le=256, description="Warm containers in the pool.")
    limits: SandboxLimits = Field(
        default_factory=SandboxLimits, description="Per-container and per-cell limits."
    )
    timeout_s: float = Field(
        default=1.0, gt=0, le=600, description="Default wall-clock limit per test."
    )
    isolation: Isolation = Field(
        default=Isolation.PROCESS, description="Default test isolation of requests."
    )
    retries: int = Field(
        default=2,
        ge=0,
        le=10,
        description="Fresh containers to try after a container is lost mid-request; then the "
        "request's cells become sandbox_error.",
    )
    answer_margin_s: float = Field(
        default=5.0,
        gt=0,
        description="Slack on top of the tests' own time limits before a silent container "
        "counts as wedged and is replaced.",
    )
    start_timeout_s: float = Field(
        default=30.0, gt=0, description="How long a new container may take to say it is ready."
    )
    label: str = Field(
        default="",
        description="Value of a pairforge.owner label on every container (e.g. a job id), so "
        "an operator can find one job's containers; the pool itself finds and removes its "
        "own by a random pool id (label pairforge.pool), so pools sharing a label never "
        "touch each other's containers.",
    )
