"""The layering holds at run time: pure packages load no infrastructure libraries.

import-linter checks the static graph (see pyproject.toml); this test checks what a fresh
interpreter really loads, which also keeps the driver and API processes light.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

HEAVY = ["ray", "docker", "fastapi", "vllm", "torch", "starlette", "httpx", "sqlalchemy"]


def _loaded_after(statement: str) -> list[str]:
    code = (
        f"import sys, json\n{statement}\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    return list(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize(
    "statement",
    [
        "import pipeline",
        "import pipeline.config, pipeline.records, pipeline.errors, pipeline.progress",
        "import pkgutil, pipeline; [__import__(m.name) for m in "
        "pkgutil.walk_packages(pipeline.__path__, 'pipeline.')]",
    ],
)
def test_pipeline_loads_no_infrastructure(statement: str) -> None:
    assert _loaded_after(statement) == []


def test_sandbox_core_loads_no_docker_or_ray() -> None:
    loaded = _loaded_after("import sandbox, sandbox.types")
    assert loaded == []


def test_cli_help_is_light() -> None:
    # `pairforge --help` must not pay for Ray or Docker.
    loaded = _loaded_after("import services.cli; services.cli.make_parser()")
    assert "ray" not in loaded and "docker" not in loaded


@pytest.mark.parametrize("package", ["pipeline", "sandbox", "cluster", "services"])
def test_packages_come_from_this_repository(package: str) -> None:
    # `pipeline`, `services` and `cluster` are also names of unrelated PyPI projects.
    module = __import__(package)
    assert Path(module.__file__).resolve().is_relative_to(REPO_ROOT)
