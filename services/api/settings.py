"""Settings of the job service, read from ``PAIRFORGE_*`` environment variables.

Built once in the entry point (``pairforge serve``) and passed to ``create_app``; nothing
reads the environment at import time.

    PAIRFORGE_DATABASE_URL=sqlite:///./pairforge.db   job store (postgresql+psycopg://... too)
    PAIRFORGE_API_TOKEN=...                           bearer token for every endpoint but /healthz
    PAIRFORGE_OUTPUT_ROOT=./runs                      jobs may only write under this directory
    PAIRFORGE_RAY_ADDRESS=http://127.0.0.1:8265       Ray dashboard (job API) address
"""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Configuration of one service process."""

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
    ray_address: str | None = Field(
        default=None,
        description="Ray dashboard address (`http://host:8265`) where builds run as Ray Jobs; "
        "`pairforge serve` starts a local Ray head when it is unset.",
    )
    ray_dashboard_url: str | None = Field(
        default=None,
        description="Public base URL of the Ray dashboard for job links (default: ray_address).",
    )
    build_command: str | None = Field(
        default=None,
        description="Command that runs the pairforge CLI on the cluster (default: this "
        "interpreter's `python -m services.cli`; use `pairforge` for a remote cluster).",
    )
    max_body_bytes: int = Field(
        default=1_048_576, ge=1024, description="Largest request body accepted (HTTP 413)."
    )
    max_samples_per_job: int = Field(
        default=200_000,
        ge=1,
        description="Largest k × problems one job may sample (HTTP 422 above it).",
    )
    reconcile_interval_s: float = Field(
        default=1.0,
        ge=0,
        description="A job's state is refreshed from Ray at most this often per job.",
    )

    @field_validator("api_token")
    @classmethod
    def _no_blank_token(cls, token: str | None) -> str | None:
        # Fail closed: a token of spaces is a mistake, not "no auth".
        if token is not None and token != "" and not token.strip():
            raise ValueError("PAIRFORGE_API_TOKEN is blank; unset it or give a real token")
        return token or None
