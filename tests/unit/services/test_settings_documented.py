"""Every setting of the service and every job limit has a row in the README's tables."""

from __future__ import annotations

import re

import pytest

from pipeline.job_limits import JobLimits
from services.api.settings import Settings
from tests.conftest import REPO_ROOT


def _documented() -> dict[str, str]:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `(PAIRFORGE_[A-Z0-9_]+)` \| ([^|]*) \|", readme, re.MULTILINE)
    return {name: default.strip("` ") for name, default in rows}


@pytest.mark.parametrize("field", sorted(Settings.model_fields))
def test_every_setting_is_in_the_readme(field: str) -> None:
    assert f"PAIRFORGE_{field.upper()}" in _documented()


@pytest.mark.parametrize("field", sorted(JobLimits.model_fields))
def test_every_limit_default_is_the_documented_one(field: str) -> None:
    documented = _documented()[JobLimits.env_name(field)]
    assert float(documented) == float(JobLimits.model_fields[field].default)
