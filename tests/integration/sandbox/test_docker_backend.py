"""The Docker backend against a real engine: listing while containers come and go."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from sandbox.docker_backend import connect, list_containers
from tests.conftest import SANDBOX_IMAGE, requires_sandbox_image

pytestmark = [requires_sandbox_image, pytest.mark.docker]


@pytest.fixture
def labelled() -> Iterator[tuple[str, list[str]]]:
    """Two created (never started) containers carrying a label of their own."""
    value = uuid.uuid4().hex[:12]
    ids = [
        subprocess.run(
            ["docker", "create", "--label", f"pairforge.test={value}", SANDBOX_IMAGE],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
        for _ in range(2)
    ]  # fmt: skip
    yield value, ids
    subprocess.run(["docker", "rm", "--force", *ids], capture_output=True, check=False)


def test_a_container_removed_between_list_and_inspect_is_left_out(
    labelled: tuple[str, list[str]],
) -> None:
    # Issue 9, finding 6b: the SDK lists ids, then inspects each; one of 30 concurrent
    # builds failed because an auto-removed container vanished in between, and the error
    # said to start the Docker engine. Here the engine removes one at exactly that moment.
    value, (doomed, survivor) = labelled
    client = connect()
    listed = client.api.containers

    def list_then_lose_one(*args: Any, **kwargs: Any) -> Any:
        found = listed(*args, **kwargs)
        subprocess.run(["docker", "rm", "--force", doomed], capture_output=True, check=True)
        return found

    client.api.containers = list_then_lose_one
    try:
        assert list_containers(client, {"pairforge.test": value}) == [survivor]
    finally:
        client.close()


def test_listing_finds_every_labelled_container(labelled: tuple[str, list[str]]) -> None:
    value, ids = labelled
    client = connect()
    try:
        assert sorted(list_containers(client, {"pairforge.test": value})) == sorted(ids)
        assert list_containers(client, {"pairforge.test": "no-such-value"}) == []
    finally:
        client.close()
