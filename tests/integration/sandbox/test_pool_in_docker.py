"""The pool on a real engine: losing a container mid-request, and leaving nothing behind."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import cast

import pytest

from sandbox.docker_backend import WarmContainer
from sandbox.errors import DockerUnavailable
from sandbox.limits import PoolConfig, SandboxLimits
from sandbox.pool import ContainerPool
from sandbox.types import CellStatus, ExecutionRequest
from tests.conftest import REPO_ROOT, SANDBOX_IMAGE, requires_docker, requires_sandbox_image

pytestmark = [pytest.mark.docker]


def containers_labelled(key: str, value: str) -> list[str]:
    listing = subprocess.run(
        ["docker", "ps", "--all", "--quiet", "--filter", f"label={key}={value}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return listing.stdout.split()


@requires_sandbox_image
def test_a_container_killed_mid_request_is_replaced_and_the_request_retried() -> None:
    program = "import time\ndef slow(x):\n    time.sleep(0.6)\n    return x\n"
    request = ExecutionRequest(
        program=program, tests=["assert slow(3) == 3", "assert slow(3) == 4"], timeout_s=3.0
    )
    with ContainerPool(PoolConfig(image=SANDBOX_IMAGE, workers=1, retries=2)) as pool:
        victim = pool.live_containers()[0]
        killer = threading.Timer(0.3, victim.kill)
        killer.start()
        result = pool.run(request)
        killer.join()
        assert result.statuses == [CellStatus.PASSED, CellStatus.FAILED]
        assert result.attempts == 2
        assert pool.replacements == 1
        assert victim not in pool.live_containers()
        # The replacement keeps serving.
        again = pool.run(ExecutionRequest(program="x = 1", tests=["assert x == 1"]))
        assert again.statuses == [CellStatus.PASSED]


@requires_sandbox_image
def test_a_silent_container_is_replaced_after_the_answer_deadline() -> None:
    config = PoolConfig(image=SANDBOX_IMAGE, workers=1, retries=1, answer_margin_s=0.5)
    with ContainerPool(config) as pool:
        victim = pool.live_containers()[0]
        subprocess.run(["docker", "pause", victim.name], check=True, capture_output=True)
        started = time.monotonic()
        result = pool.run(ExecutionRequest(program="x = 1", tests=["assert x == 1"], timeout_s=0.2))
        waited = time.monotonic() - started
    assert result.statuses == [CellStatus.PASSED]
    assert result.attempts == 2
    # deadline: 1 test x (2 x 0.2 + 0.25) + 0.5 margin = 1.15 s, then a fresh container
    assert 1.15 <= waited < 10


@requires_sandbox_image
def test_repeated_losses_become_sandbox_errors_never_failures() -> None:
    request = ExecutionRequest(program="import time", tests=["time.sleep(2)"], timeout_s=5.0)
    config = PoolConfig(image=SANDBOX_IMAGE, workers=1, retries=1)
    with ContainerPool(config) as pool:
        stop = threading.Event()

        def keep_killing() -> None:
            while not stop.is_set():
                for container in pool.live_containers():
                    container.kill()
                time.sleep(0.1)

        killer = threading.Thread(target=keep_killing)
        killer.start()
        try:
            result = pool.run(request)
        finally:
            stop.set()
            killer.join()
    assert result.statuses == [CellStatus.SANDBOX_ERROR]
    assert result.attempts == 2
    assert result.details[0].startswith("sandbox failed 2 times")


@requires_sandbox_image
def test_close_leaves_no_container_behind() -> None:
    owner = f"test-{uuid.uuid4().hex[:8]}"
    pool = ContainerPool(PoolConfig(image=SANDBOX_IMAGE, workers=3, label=owner))
    with pool:
        assert len(containers_labelled("pairforge.pool", pool.pool_id)) == 3
        assert len(containers_labelled("pairforge.owner", owner)) == 3
        requests = [ExecutionRequest(program="x = 1", tests=["assert x == 1"] * 5)] * 6
        with ThreadPoolExecutor(3) as callers:
            results = list(callers.map(pool.run, requests))
        assert {status for result in results for status in result.statuses} == {CellStatus.PASSED}
    assert containers_labelled("pairforge.pool", pool.pool_id) == []
    assert containers_labelled("pairforge.owner", owner) == []


@requires_sandbox_image
def test_a_killed_host_process_leaves_no_container_running() -> None:
    owner = f"test-{uuid.uuid4().hex[:8]}"
    script = (
        "import sys, time\n"
        "from sandbox.limits import PoolConfig\n"
        "from sandbox.pool import ContainerPool\n"
        f"ContainerPool(PoolConfig(image={SANDBOX_IMAGE!r}, workers=2, label={owner!r})).start()\n"
        "print('ready', flush=True)\n"
        "time.sleep(120)\n"
    )
    host = subprocess.Popen(
        [sys.executable, "-c", script], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert host.stdout is not None and host.stdout.readline().strip() == "ready"
        assert len(containers_labelled("pairforge.owner", owner)) == 2
    finally:
        host.kill()  # no close(): the engine must clean up on its own
        host.wait()
    deadline = time.monotonic() + 20
    while containers_labelled("pairforge.owner", owner) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert containers_labelled("pairforge.owner", owner) == []


@requires_docker
def test_a_missing_image_says_how_to_build_it() -> None:
    config = PoolConfig(image="pairforge-sandbox:no-such-tag", workers=1)
    with pytest.raises(DockerUnavailable, match="pairforge image"):
        ContainerPool(config).start()


@requires_sandbox_image
def test_one_containers_processes_do_not_count_against_another_s() -> None:
    # RLIMIT_NPROC counts a uid's processes across the whole host: if every container's
    # cells shared one uid, the 31 sleepers below would leave the other container's cell
    # no room for a single fork (the default limit is 32 processes).
    limits = SandboxLimits()
    sleepers = limits.cell_processes - 1
    hog = ExecutionRequest(
        program="import os, time",
        tests=[
            f"for _ in range({sleepers}):\n"
            "    if os.fork() == 0:\n"
            "        time.sleep(4)\n"
            "        os._exit(0)\n"
            "time.sleep(4)"
        ],
        timeout_s=8.0,
    )
    forks_once = ExecutionRequest(
        program="import os",
        tests=["pid = os.fork()\nif pid == 0:\n    os._exit(0)\nassert os.waitpid(pid, 0)[1] == 0"],
        timeout_s=2.0,
    )
    with ContainerPool(PoolConfig(image=SANDBOX_IMAGE, workers=2, limits=limits)) as pool:
        first, second = (cast(WarmContainer, box) for box in pool.live_containers())
        assert first.cell_uid != second.cell_uid
        with ThreadPoolExecutor(1) as background:
            hogging = background.submit(pool.run, hog)
            time.sleep(1.5)  # the sleepers are all forked by now
            result = pool.run(forks_once)
            assert not hogging.done(), "the sleepers must still be alive during the fork"
            assert hogging.result().statuses == [CellStatus.PASSED]
    assert result.statuses == [CellStatus.PASSED], result.details
