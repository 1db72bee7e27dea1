"""Settings of the job service, read from ``PAIRFORGE_*`` environment variables.

Built once in the entry point (``pairforge serve``) and passed to ``create_app``; nothing
reads the environment at import time.

    PAIRFORGE_DATABASE_URL=sqlite:///./pairforge.db   job store (postgresql+psycopg://... too)
    PAIRFORGE_API_TOKEN=...                           bearer token for every endpoint but /healthz
    PAIRFORGE_OUTPUT_ROOT=./runs                      jobs may only write under this directory
    PAIRFORGE_INPUT_ROOTS=./data:/srv/problems        jobs may only read under these
    PAIRFORGE_RAY_ADDRESS=http://127.0.0.1:8265       Ray dashboard (job API) address
    PAIRFORGE_LOCAL_RAY_PORT=6379                     the local head `pairforge serve` starts
    PAIRFORGE_MAX_MEMORY_MB=4096 ...                  the job limits (``JobLimits``)
    PAIRFORGE_TRAINING_ENTRYPOINTS='["python deploy/training/train.py"]'
                                                      training commands a hand-off may run
"""

from __future__ import annotations

import os
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from services.limits import LimitSettings
from services.training_job import DEFAULT_ENTRYPOINT


class Settings(LimitSettings):
    """Configuration of one service process, the job limits (``max_*``) included."""

    model_config = SettingsConfigDict(env_prefix="PAIRFORGE_", extra="ignore", frozen=True)

    database_url: str = Field(
        default="sqlite:///./pairforge.db",
        description="SQLAlchemy URL of the job store: SQLite file or PostgreSQL.",
    )
    api_token: str | None = Field(
        default=None,
        description="When set, every endpoint except /healthz needs `Authorization: Bearer "
        "<token>`.",
    )
    output_root: str = Field(
        default="./runs", description="Every job's output directory must resolve under this."
    )
    input_roots: Annotated[list[str], NoDecode] = Field(
        default=["."],
        min_length=1,
        description="Directories a job's `source.path` must resolve under (symlinks "
        "followed), separated by `:` in the environment; relative ones are from the "
        "service's working directory. Hidden files, the job database, special files and "
        "/proc, /sys and /dev are refused even under a root.",
    )
    ray_address: str | None = Field(
        default=None,
        description="Ray dashboard address (`http://host:8265`) where builds run as Ray Jobs; "
        "`pairforge serve` starts a local Ray head when it is unset.",
    )
    ray_dashboard_url: str | None = Field(
        default=None,
        description="Public base URL of the Ray dashboard for job links (default: ray_address).",
    )
    local_ray_port: int = Field(
        default=6379,
        ge=1,
        le=65535,
        description="GCS port of the local Ray head `pairforge serve` starts when "
        "ray_address is unset (and that `pairforge serve --stop-ray` stops).",
    )
    local_ray_dashboard_port: int = Field(
        default=8265,
        ge=1,
        le=65535,
        description="Dashboard port of that local head, bound to 127.0.0.1; a dashboard "
        "already answering there is reused.",
    )
    local_ray_args: str = Field(
        default="",
        description="More `ray start --head` arguments for that head, split like a shell "
        "line (`--num-cpus 8`).",
    )
    build_command: str | None = Field(
        default=None,
        description="Command that runs the pairforge CLI on the cluster (default: this "
        "interpreter's `python -m services.cli`; use `pairforge` for a remote cluster).",
    )
    max_body_bytes: int = Field(
        default=1_048_576, ge=1024, description="Largest request body accepted (HTTP 413)."
    )
    validation_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="Longest a submission may spend validating its input file; a slower "
        "one is refused (HTTP 422) as too large to check here.",
    )
    validations_at_once: int = Field(
        default=4,
        ge=1,
        description="Input files validated at once; a submission finding every slot taken "
        "is answered 503 (retry later). A validation past its time limit keeps its slot "
        "until it ends, so slow inputs cannot pile up threads.",
    )
    reconcile_interval_s: float = Field(
        default=1.0,
        ge=0,
        description="A job's state is refreshed from Ray at most this often per job.",
    )

    training_entrypoints: list[str] = Field(
        default=[DEFAULT_ENTRYPOINT],
        description="The training commands a JobSpec's `handoff.entrypoint` may name (a "
        "JSON list in the environment); any other is refused (HTTP 422), since the command "
        "runs on the cluster outside the sandbox. A leading `python` runs on the service's "
        "interpreter; the manifest and the training config are appended; the command runs "
        "from the pairforge checkout.",
    )
    handoff_poll_s: float = Field(
        default=5.0,
        ge=0,
        description="Every this many seconds the service looks at the jobs whose training "
        "hand-off may move (their build finished, their training job changed state) without "
        "waiting for a read; 0 looks only when a job is read.",
    )

    metrics_keep_finished_s: float = Field(
        default=3600.0,
        ge=0,
        description="A finished job's own metrics (`pairforge_job_*`) stay on /metrics this "
        "many seconds after it ends; queued and running jobs are always there.",
    )

    @field_validator("input_roots", mode="before")
    @classmethod
    def _split_roots(cls, roots: object) -> object:
        # One variable, several directories: separated like PATH.
        if isinstance(roots, str):
            return [part for part in roots.split(os.pathsep) if part.strip()]
        return roots

    @field_validator("api_token")
    @classmethod
    def _no_blank_token(cls, token: str | None) -> str | None:
        # Fail closed: a token of spaces is a mistake, not "no auth".
        if token is not None and token != "" and not token.strip():
            raise ValueError("PAIRFORGE_API_TOKEN is blank; unset it or give a real token")
        return token or None
