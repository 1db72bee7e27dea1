"""Runs dataset builds as Ray Jobs: the ``JobLauncher`` port on ``JobSubmissionClient``.

Each build is one Ray Job whose entrypoint is ``pairforge build SPEC --job-id ID --resume``,
submitted under the pairforge job id with metadata ``pairforge_job_id``, ``name`` and
``job_name`` (the dashboard's Name column), so it shows in the Ray dashboard under both.
Ray's errors are mapped here, at the boundary, onto ``ClusterUnavailable`` (an
``InfrastructureError``).

    launcher = RayJobLauncher("http://127.0.0.1:8265")
    launcher.submit(submission_id="pf-1a2b", job_id="pf-1a2b", spec_path="/runs/x/job.json",
                    name="demo")
    launcher.status("pf-1a2b")   # RemoteStatus(state=<JobState.RUNNING>, message="...")

A build's training job is a Ray Job of its own (``submit_training``), tagged
``pairforge_job_id`` (its own submission id) and ``pairforge_training_of`` (the build's job
id), and given the GPUs its training config asks for, so the dashboard lists it beside the
build and Ray places it on a node that has them.
"""

from __future__ import annotations

import logging
import re
import shlex
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from ray.exceptions import RayError
from ray.job_submission import JobStatus, JobSubmissionClient

from cluster.local_ray import read_auth_token
from pipeline.errors import ClusterUnavailable
from pipeline.ports import JobState, RemoteStatus

logger = logging.getLogger(__name__)

_STATES = {
    JobStatus.PENDING: JobState.QUEUED,
    JobStatus.RUNNING: JobState.RUNNING,
    JobStatus.SUCCEEDED: JobState.SUCCEEDED,
    JobStatus.FAILED: JobState.FAILED,
    JobStatus.STOPPED: JobState.CANCELLED,
}

# The SDK reports every non-200 answer as RuntimeError("Request failed with status code N:
# ..."); a 404 is the only way to learn that a submission does not exist.
_NOT_FOUND = re.compile(r"status code 404\b")
# A head whose dashboard answers but whose job agent is not up yet (seconds after `ray
# start`, longer on a busy machine) refuses a submission with this; nothing was created.
_NO_AGENT = re.compile(r"status code 500: No available agent")

AGENT_WAIT_S = 60.0
"""How long ``submit`` retries while the cluster has no job agent ready."""

T = TypeVar("T")


def default_build_command() -> list[str]:
    """``pairforge`` run by this interpreter: a Ray Job's PATH need not hold the venv."""
    return [sys.executable, "-m", "services.cli"]


def ray_auth_token() -> str | None:
    """The Ray cluster token, found where the Ray CLI looks for it, or None.

    Ray 2.60 turns token authentication on for ``ray start`` whenever a token exists (and
    ``pairforge serve`` always starts its head with one), but its job SDK only sends the
    token when ``RAY_AUTH_MODE=token`` is set in the client's environment; sending it
    ourselves works either way.
    """
    return read_auth_token()


class RayJobLauncher:
    """``JobLauncher`` on a Ray cluster's job API (the dashboard address, port 8265).

    Args:
        address: dashboard address, ``http://127.0.0.1:8265``.
        build_command: argv prefix that runs the ``pairforge`` CLI on the cluster; default
            is this interpreter's ``-m services.cli``, right when the cluster runs on this
            machine. Use ``["pairforge"]`` for a remote cluster with pairforge installed.
        dashboard_url: public base URL for dashboard links (default: ``address``).
        auth_token: Ray cluster token; default from ``ray_auth_token()``.
        agent_wait_s: how long a submission is retried while the cluster answers that no
            job agent is available yet (a head that has just started).

    Every method raises ``ClusterUnavailable`` when the job API does not answer or refuses
    the token; the connection is made on first use.
    """

    def __init__(
        self,
        address: str,
        *,
        build_command: Sequence[str] | None = None,
        dashboard_url: str | None = None,
        auth_token: str | None = None,
        agent_wait_s: float = AGENT_WAIT_S,
    ) -> None:
        self._address = address.rstrip("/")
        self._build_command = list(build_command or default_build_command())
        self._dashboard_url = (dashboard_url or self._address).rstrip("/")
        token = auth_token if auth_token is not None else ray_auth_token()
        self._headers = {"Authorization": f"Bearer {token}"} if token else None
        self._agent_wait_s = agent_wait_s
        self._client_lock = threading.Lock()
        self._connected: JobSubmissionClient | None = None

    @property
    def _client(self) -> JobSubmissionClient:
        # Connect on first use, so a service whose Ray head is down still starts and
        # serves what its store knows; the next call retries the connection.
        with self._client_lock:
            if self._connected is None:
                self._connected = self._call(
                    "connect", lambda: JobSubmissionClient(self._address, headers=self._headers)
                )
            return self._connected

    def entrypoint(self, job_id: str, spec_path: str) -> str:
        """The shell command the Ray Job runs."""
        argv = [*self._build_command, "build", spec_path, "--job-id", job_id, "--resume"]
        return shlex.join(argv)

    def submit(self, *, submission_id: str, job_id: str, spec_path: str, name: str) -> None:
        entrypoint = self.entrypoint(job_id, spec_path)
        # `job_name` is what the dashboard's Jobs page shows and searches by as "Name".
        metadata = {"pairforge_job_id": job_id, "name": name or job_id, "job_name": name or job_id}
        self._submit(submission_id, entrypoint, metadata)

    def submit_training(
        self, *, submission_id: str, training_of: str, command: str, num_gpus: int, name: str
    ) -> None:
        """Start a training job: ``command`` (a shell line) as its own Ray Job.

        Args:
            submission_id: the training job's submission id (its ``pairforge_job_id``).
            training_of: the pairforge job id of the build whose dataset it trains on.
            command: the whole shell line to run (``cd ROOT && exec python train.py ...``).
            num_gpus: GPUs its training config asks for; Ray reserves them for the
                entrypoint process (none when 0).
            name: what the dashboard's Name column shows.
        """
        metadata = {
            "pairforge_job_id": submission_id,
            "pairforge_training_of": training_of,
            "name": name or submission_id,
            "job_name": name or submission_id,
        }
        self._submit(submission_id, command, metadata, num_gpus=num_gpus or None)

    def _submit(
        self,
        submission_id: str,
        entrypoint: str,
        metadata: dict[str, str],
        *,
        num_gpus: int | None = None,
    ) -> None:
        deadline = time.monotonic() + self._agent_wait_s
        while True:
            try:
                self._call(
                    f"submit {submission_id}",
                    lambda: self._client.submit_job(
                        entrypoint=entrypoint,
                        submission_id=submission_id,
                        metadata=metadata,
                        entrypoint_num_gpus=num_gpus,
                    ),
                )
                break
            except ClusterUnavailable as exc:
                if not _NO_AGENT.search(str(exc)) or time.monotonic() >= deadline:
                    raise
                logger.info("Ray has no job agent ready yet; retrying %s", submission_id)
                time.sleep(1.0)
        logger.info("submitted Ray Job %s: %s", submission_id, entrypoint)

    def stop(self, submission_id: str) -> bool:
        try:
            return bool(self._call(f"stop {submission_id}", lambda: self._stop(submission_id)))
        except _Missing:
            return False

    def status(self, submission_id: str) -> RemoteStatus | None:
        try:
            info: Any = self._call(f"status of {submission_id}", lambda: self._info(submission_id))
        except _Missing:
            return None
        return RemoteStatus(state=_STATES[JobStatus(info.status)], message=info.message or "")

    def dashboard_url(self, submission_id: str) -> str | None:
        return f"{self._dashboard_url}/#/jobs/{submission_id}"

    def exit_code(self, submission_id: str) -> int | None:
        """The entrypoint's exit code once it has ended (None before, or when unknown)."""
        try:
            info: Any = self._call(f"status of {submission_id}", lambda: self._info(submission_id))
        except _Missing:
            return None
        code = info.driver_exit_code
        return int(code) if code is not None else None

    def logs(self, submission_id: str) -> str:
        """Everything the submission's entrypoint has printed so far ("" when unknown)."""
        try:
            return str(self._call(f"logs of {submission_id}", lambda: self._logs(submission_id)))
        except _Missing:
            return ""

    def _logs(self, submission_id: str) -> str:
        try:
            return self._client.get_job_logs(submission_id)
        except RuntimeError as exc:
            if _NOT_FOUND.search(str(exc)):
                raise _Missing from exc
            raise

    def _stop(self, submission_id: str) -> bool:
        try:
            return self._client.stop_job(submission_id)
        except RuntimeError as exc:
            if _NOT_FOUND.search(str(exc)):
                raise _Missing from exc
            raise

    def _info(self, submission_id: str) -> Any:
        try:
            return self._client.get_job_info(submission_id)
        except RuntimeError as exc:
            if _NOT_FOUND.search(str(exc)):
                raise _Missing from exc
            raise

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except _Missing:
            raise
        except (OSError, RuntimeError, ValueError, RayError) as exc:
            # OSError covers requests' errors (RequestException is an IOError); RayError
            # covers AuthenticationError (a wrong or missing cluster token); RuntimeError is
            # how the SDK reports any other non-200 answer.
            raise ClusterUnavailable(
                f"Ray job API at {self._address} failed to {what}: {exc}. Check that the "
                "Ray head is running (`ray status`) and that PAIRFORGE_RAY_ADDRESS points "
                "at its dashboard (http://HOST:8265)."
            ) from exc


class _Missing(Exception):
    """Internal: the cluster answered 404 for a submission id."""
