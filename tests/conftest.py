"""Shared test fixtures and guards.

Tiers by directory: ``tests/unit`` is pure and fast, ``tests/integration`` uses a real
Docker engine, a real local Ray and real loopback HTTP, ``tests/gpu`` needs vLLM and a GPU,
``tests/live`` samples from the bundled model (the ``local-llm`` extra) served on loopback.
Markers are added from the path so nobody forgets them. A missing capability skips with a
reason; it never fails silently and never passes vacuously.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from sandbox.limits import DEFAULT_IMAGE

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("PAIRFORGE_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
HUMANEVAL_DIR = SHARED_DATA / "codet-humaneval-codegen16b"
SANDBOX_IMAGE = os.environ.get("PAIRFORGE_SANDBOX_IMAGE", DEFAULT_IMAGE)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).relative_to(REPO_ROOT).parts
        if "integration" in parts:
            item.add_marker(pytest.mark.integration)
        if "gpu" in parts:
            item.add_marker(pytest.mark.gpu)
        if "live" in parts:
            item.add_marker(pytest.mark.live)
        if "training" in parts:
            item.add_marker(pytest.mark.training)


def docker_engine_available() -> bool:
    if shutil.which("docker") is None:
        return False
    probe = subprocess.run(["docker", "info"], capture_output=True, timeout=30)
    return probe.returncode == 0


def sandbox_image_available() -> bool:
    if not docker_engine_available():
        return False
    probe = subprocess.run(["docker", "image", "inspect", SANDBOX_IMAGE], capture_output=True)
    return probe.returncode == 0


requires_docker = pytest.mark.skipif(
    not docker_engine_available(), reason="needs a running Docker engine (`docker info` failed)"
)
requires_sandbox_image = pytest.mark.skipif(
    not sandbox_image_available(),
    reason=f"needs the sandbox image {SANDBOX_IMAGE}: build it with `pairforge image`",
)
requires_shared_data = pytest.mark.skipif(
    not HUMANEVAL_DIR.is_dir(),
    reason=f"needs the shared HumanEval samples at {HUMANEVAL_DIR} (../shared is absent)",
)


@pytest.fixture(scope="module")
def ray_local():
    """One local Ray runtime per test module (starting Ray costs about 3 s)."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, ignore_reinit_error=True, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def ray_with_sandbox():
    """One local Ray runtime per module that offers 2 units of the sandbox resource."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, resources={"sandbox": 2}, include_dashboard=False, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()
