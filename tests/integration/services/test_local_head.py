"""The local Ray head ``pairforge serve`` starts outlives the service (issue 10).

A real ``pairforge serve`` starts the head itself here: no Ray address is given, HOME is a
fresh directory (no Ray token yet) and Ray's temp dir (``RAY_TMPDIR``) and every port are
private to this module, so the head never meets another Ray instance on the machine. The
service runs in a session of its own, so Ctrl-C is what a terminal sends: SIGINT to the
service's whole process group, which holds every child the service did not detach.

Cleanup ends this module's head only, even when a test fails: the pairforge record of the
head (its process group), then any process still naming this module's Ray temp dir. Never
``ray stop``: it ends every Ray instance on the machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import REPO_ROOT, SANDBOX_IMAGE, SHARED_DATA, requires_sandbox_image
from tests.integration.services.conftest import free_port, quickstart_spec, wait_for

pytestmark = [pytest.mark.ray, pytest.mark.slow]

FINAL = {"succeeded", "failed", "cancelled"}


class LocalSetup:
    """The environment a newcomer's machine gives ``pairforge serve``: nothing configured."""

    def __init__(self, home: Path, ray_tmpdir: Path) -> None:
        self.home = home
        self.ray_tmpdir = ray_tmpdir
        self.workdir = home / "work"
        self.workdir.mkdir()
        self.ray_port = free_port()
        self.dashboard_port = free_port()
        self.dashboard_url = f"http://127.0.0.1:{self.dashboard_port}"
        # The head's other ports, free ones, so nothing clashes with a Ray on default ports.
        ports = " ".join(
            f"--{name} {free_port()}"
            for name in (
                "ray-client-server-port",
                "dashboard-agent-listen-port",
                "dashboard-agent-grpc-port",
                "runtime-env-agent-port",
                "metrics-export-port",
                "node-manager-port",
                "object-manager-port",
            )
        )
        self.env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("RAY_", "PAIRFORGE_"))
        }
        self.env.update(
            {
                # Whatever a user set, the head pairforge starts keeps token authentication.
                "RAY_AUTH_MODE": "disabled",
                "HOME": str(home),
                "RAY_TMPDIR": str(ray_tmpdir),
                "PAIRFORGE_DATABASE_URL": f"sqlite:///{self.workdir / 'jobs.db'}",
                "PAIRFORGE_OUTPUT_ROOT": "runs",
                "PAIRFORGE_INPUT_ROOTS": os.pathsep.join(
                    [".", str(REPO_ROOT / "examples"), str(SHARED_DATA)]
                ),
                "PAIRFORGE_LOCAL_RAY_PORT": str(self.ray_port),
                "PAIRFORGE_LOCAL_RAY_DASHBOARD_PORT": str(self.dashboard_port),
                "PAIRFORGE_LOCAL_RAY_ARGS": f"{ports} --num-cpus 4",
            }
        )
        self.services: list[subprocess.Popen[bytes]] = []

    @property
    def token_file(self) -> Path:
        return self.home / ".ray" / "auth_token"

    def record(self) -> dict[str, Any] | None:
        path = self.ray_tmpdir / "ray" / f"pairforge-head-{self.ray_port}.json"
        try:
            loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return loaded

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "services.cli", *args],
            cwd=self.workdir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def ray_jobs(self) -> list[dict[str, Any]]:
        """The Ray dashboard's job list, read as the dashboard's own page reads it."""
        token = self.token_file.read_text(encoding="utf-8").strip()
        answer = httpx.get(
            f"{self.dashboard_url}/api/jobs/",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        answer.raise_for_status()
        jobs: list[dict[str, Any]] = answer.json()
        return jobs

    def head_processes(self) -> list[int]:
        """Pids of every process that names this module's Ray temp dir (its head's)."""
        needle = str(self.ray_tmpdir).encode()
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            with contextlib.suppress(OSError):
                if needle in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
        return found

    def cleanup(self) -> None:
        for service in self.services:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(service.pid, signal.SIGKILL)
            service.wait()
        # The way a user ends it; then whatever is left of this head, and only of it.
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.cli("serve", "--stop-ray", timeout=60)
        record = self.record()
        if record is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(int(record["pgid"]), signal.SIGKILL)
        for pid in self.head_processes():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.ray_tmpdir, ignore_errors=True)


class Serve:
    """One ``pairforge serve`` process, in a session of its own like a terminal's job."""

    def __init__(self, setup: LocalSetup) -> None:
        self.setup = setup
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = setup.workdir / f"serve-{self.port}.log"
        with self.log.open("wb") as sink:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "services.cli", "serve", "--port", str(self.port)],
                cwd=setup.workdir,
                env=setup.env,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        setup.services.append(self.process)
        self.started_in = self._wait_until_up(timeout_s=180)

    def _wait_until_up(self, timeout_s: float) -> float:
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            if self.process.poll() is not None:
                break
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return time.monotonic() - started
            time.sleep(0.3)
        raise AssertionError(f"pairforge serve did not come up:\n{self.text()}")

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60)

    def ctrl_c(self) -> None:
        """What a terminal does on Ctrl-C: SIGINT to the foreground process group."""
        os.killpg(self.process.pid, signal.SIGINT)
        self.process.wait(timeout=60)

    def crash(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=60)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSetup]:
    # Short: Ray's Unix socket paths live under it and must stay under 107 bytes.
    ray_tmpdir = Path(tempfile.mkdtemp(prefix="pfs-", dir="/tmp"))
    local = LocalSetup(tmp_path_factory.mktemp("home"), ray_tmpdir)
    try:
        yield local
    finally:
        local.cleanup()
        leftovers = local.head_processes()
        assert not leftovers, f"processes of this module's Ray head survived: {leftovers}"


def _submit_mid_job(serve: Serve, output: str) -> tuple[str, Path]:
    """Submit the quickstart and return once its build is running and has not finished."""
    spec = quickstart_spec(output, sandbox={"image": SANDBOX_IMAGE})
    with serve.client() as client:
        created = client.post("/jobs", json=spec)
        assert created.status_code == 201, created.text
        job_id, output_dir = created.json()["id"], Path(created.json()["output_uri"])
        wait_for(client, job_id, {"running", *FINAL}, timeout_s=180)
    deadline = time.monotonic() + 180
    while not (output_dir / "progress.json").exists():
        assert time.monotonic() < deadline, "the build never reported progress"
        time.sleep(0.5)
    assert not (output_dir / "manifest.json").exists(), "the build ended before the restart"
    return job_id, output_dir


def _progress(output_dir: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((output_dir / "progress.json").read_text("utf-8"))
    return loaded


def _goes_on_without_the_service(output_dir: Path) -> None:
    """The build keeps reporting while no service runs."""
    before = _progress(output_dir)["updated_at"]
    deadline = time.monotonic() + 60
    while _progress(output_dir)["updated_at"] == before:
        assert time.monotonic() < deadline, "the build stopped when the service did"
        time.sleep(0.5)


def _finishes_and_stays_in_the_dashboard(serve: Serve, job_id: str) -> dict[str, Any]:
    with serve.client() as client:
        job = wait_for(client, job_id, FINAL, timeout_s=480)
    assert job["state"] == "succeeded", job
    assert job["dashboard_url"] == f"{serve.setup.dashboard_url}/#/jobs/{job_id}"
    listed = {j["submission_id"]: j for j in serve.setup.ray_jobs()}
    assert listed[job_id]["status"] == "SUCCEEDED"
    assert listed[job_id]["metadata"]["pairforge_job_id"] == job_id
    return job


@requires_sandbox_image
def test_ctrl_c_leaves_the_head_and_its_build_running(setup: LocalSetup) -> None:
    assert setup.record() is None and not setup.token_file.exists()
    first = Serve(setup)
    banner = first.text()
    # The head was started here, with a token made for it, and the banner says how to sign in.
    assert f"Ray dashboard: {setup.dashboard_url}" in banner
    assert "started by pairforge serve" in banner
    assert f"it is in {setup.token_file}" in banner and "ray get-auth-token" in banner
    assert "pairforge serve --stop-ray" in banner
    assert setup.token_file.stat().st_mode & 0o077 == 0
    assert httpx.get(f"{setup.dashboard_url}/api/jobs/", timeout=30).status_code == 401
    head = setup.record()
    assert head is not None and head["pgid"] != os.getpgid(first.process.pid)

    job_id, output_dir = _submit_mid_job(first, "sigint")
    first.ctrl_c()
    assert setup.head_processes(), "Ctrl-C on the service ended the Ray head"
    _goes_on_without_the_service(output_dir)
    # The dashboard's job API is whole: a SIGINT reaching the head's group would have
    # ended its job module and left the GCS holding the port.
    running = {j["submission_id"]: j["status"] for j in setup.ray_jobs()}
    assert running[job_id] == "RUNNING"

    second = Serve(setup)
    assert "started earlier by pairforge serve, reused" in second.text()
    assert "is trying to start" not in second.text()  # Ray's port clash
    assert setup.record() == head  # the same head, not a second one
    _finishes_and_stays_in_the_dashboard(second, job_id)
    print(
        f"serve up in {first.started_in:.1f} s (head started), {second.started_in:.1f} s (reused)"
    )
    second.ctrl_c()


@requires_sandbox_image
def test_a_crashed_service_leaves_the_head_and_its_build_running(setup: LocalSetup) -> None:
    first = Serve(setup)
    job_id, output_dir = _submit_mid_job(first, "sigkill")
    head = setup.record()
    first.crash()
    assert setup.record() == head and setup.head_processes()
    _goes_on_without_the_service(output_dir)
    assert {j["submission_id"]: j["status"] for j in setup.ray_jobs()}[job_id] == "RUNNING"

    second = Serve(setup)
    assert "reused" in second.text() and "is trying to start" not in second.text()
    job = _finishes_and_stays_in_the_dashboard(second, job_id)
    assert (Path(job["output_uri"]) / "manifest.json").is_file()
    second.crash()


def test_stop_ray_ends_the_head_and_only_it(setup: LocalSetup) -> None:
    serve = Serve(setup)  # starts the head when the tests above did not run
    serve.ctrl_c()
    record = setup.record()
    assert record is not None and setup.head_processes()
    started = time.monotonic()
    stopped = setup.cli("serve", "--stop-ray")
    took = time.monotonic() - started
    assert stopped.returncode == 0, stopped.stderr
    assert f"stopped the local Ray head on port {setup.ray_port}" in stopped.stdout
    assert setup.record() is None
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{setup.dashboard_url}/api/version", timeout=5)
    deadline = time.monotonic() + 30
    while setup.head_processes():
        assert time.monotonic() < deadline, f"left running: {setup.head_processes()}"
        time.sleep(0.5)
    print(f"--stop-ray took {took:.1f} s")
    again = setup.cli("serve", "--stop-ray")
    assert again.returncode == 0
    assert "no local Ray head started by pairforge serve" in again.stdout


def test_a_port_held_by_a_ray_without_dashboard_is_explained(setup: LocalSetup) -> None:
    # A Ray started by hand on the head's port, without the dashboard pairforge needs.
    argv = [
        sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block",
        "--port", str(setup.ray_port), "--include-dashboard", "false",
        *setup.env["PAIRFORGE_LOCAL_RAY_ARGS"].split(), "--disable-usage-stats",
    ]  # fmt: skip
    if not setup.token_file.exists():
        setup.token_file.parent.mkdir(exist_ok=True)
        setup.token_file.write_text("0" * 64, encoding="utf-8")
    env = {**setup.env, "RAY_AUTH_MODE": "token"}
    with (setup.workdir / "foreign-head.log").open("wb") as log:
        foreign = subprocess.Popen(
            argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        log = setup.workdir / "foreign-head.log"
        deadline = time.monotonic() + 120
        while "Ray runtime started" not in log.read_text(errors="replace"):
            assert foreign.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.5)
        refused = setup.cli("serve", "--port", str(free_port()), timeout=300)
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert f"another Ray instance already holds port {setup.ray_port}" in refused.stderr
        assert "--ray-address" in refused.stderr and "ray stop" in refused.stderr
        assert foreign.poll() is None, "pairforge serve stopped a head it did not start"
        assert setup.record() is None
    finally:
        foreign.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            foreign.wait(timeout=60)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(foreign.pid, signal.SIGKILL)
        foreign.wait()
