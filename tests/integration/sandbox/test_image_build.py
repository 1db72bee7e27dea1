"""``build_image`` against the real engine: the offline path on the cached base, then reuse.

Needs the offline base image (``pairforge image`` leaves it behind) and no registry; the
build runs the real Dockerfile, so it takes a few seconds.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator

import pytest

from sandbox import image
from sandbox.runner import PROTOCOL
from tests.conftest import requires_docker

pytestmark = [requires_docker, pytest.mark.docker]


def _has_base() -> bool:
    probe = subprocess.run(
        ["docker", "image", "inspect", image.OFFLINE_BASE_TAG], capture_output=True
    )
    return probe.returncode == 0


@pytest.fixture
def tag() -> Iterator[str]:
    name = f"pairforge-sandbox-test:{uuid.uuid4().hex[:8]}"
    yield name
    subprocess.run(["docker", "image", "rm", "--force", name], capture_output=True, check=False)


@pytest.mark.skipif(not _has_base(), reason=f"needs {image.OFFLINE_BASE_TAG} (pairforge image)")
def test_an_offline_build_is_labelled_with_the_digest_and_then_reused(tag: str) -> None:
    said = image.build_image(tag, image.BuildMethod.OFFLINE)
    assert said == f"built {tag} offline on {image.OFFLINE_BASE_TAG} (reused)"
    label = subprocess.run(
        ["docker", "image", "inspect", "--format",
         f'{{{{index .Config.Labels "{image.DIGEST_LABEL}"}}}}', tag],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    assert label == image.source_digest()
    assert image.build_image(tag) == f"{tag} is up to date (runner {label}); nothing to build"
    # The image runs this checkout's runner: it greets with this checkout's protocol.
    greeting = subprocess.run(
        ["docker", "run", "--rm", "-i", "--network", "none", tag],
        input=b"", capture_output=True, timeout=60,
    )  # fmt: skip
    assert greeting.stdout == json.dumps({"ready": True, "protocol": PROTOCOL}).encode() + b"\n"
    assert greeting.returncode == 0, greeting.stderr
