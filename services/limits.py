"""The operator's job limits, read from ``PAIRFORGE_MAX_*`` variables or a limits file.

``pipeline.job_limits.JobLimits`` says what the limits are; this module says where an
operator sets them. The job service reads them with its other settings (they are fields of
``services.api.settings.Settings``); ``pairforge build`` reads them here::

    PAIRFORGE_MAX_MEMORY_MB=1024 pairforge build job.yaml
    pairforge build job.yaml --limits limits.yaml     # YAML: {max_memory_mb: 1024, ...}

Values in a limits file win over the environment, which wins over the defaults.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from pipeline.errors import ConfigError
from pipeline.job_limits import ENV_PREFIX, JobLimits
from pipeline.validation_errors import describe_validation_errors


class LimitSettings(BaseSettings, JobLimits):
    """``JobLimits`` whose fields default to ``PAIRFORGE_<FIELD>`` environment variables."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    @property
    def limits(self) -> JobLimits:
        """Just the limits, without whatever else a subclass configures."""
        return JobLimits.model_validate(self.model_dump(include=set(JobLimits.model_fields)))


def load_limits(path: Path | None = None) -> JobLimits:
    """The limits from ``path`` (YAML or JSON), else the environment, else the defaults.

    Raises:
        ConfigError: the file cannot be read, is not a mapping, or names an unknown limit or
            an invalid value (one line per problem).
    """
    values: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read the limits file {path}: {exc}") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"the limits file {path} is not valid YAML or JSON: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(
                f"the limits file {path} must be a mapping of limits (max_memory_mb: 1024 ...), "
                f"got {type(loaded).__name__}"
            )
        values = {str(k): v for k, v in loaded.items()}
        unknown = sorted(k for k in values if k not in JobLimits.model_fields)
        if unknown:
            raise ConfigError(
                f"the limits file {path} names unknown limits {unknown}; known: "
                f"{sorted(JobLimits.model_fields)}"
            )
    try:
        return LimitSettings(**values).limits
    except ValidationError as exc:
        where = f"the limits file {path} or " if path is not None else ""
        problems = describe_validation_errors(exc)
        raise ConfigError(
            f"invalid job limits in {where}the PAIRFORGE_MAX_* variables:\n  "
            + "\n  ".join(problems)
        ) from exc
