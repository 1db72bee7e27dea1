"""A ``TrainingLauncher`` that runs nothing: tests script what the cluster reports."""

from __future__ import annotations

import dataclasses

from pipeline.errors import InfrastructureError
from pipeline.ports import JobState, RemoteStatus


@dataclasses.dataclass
class Submitted:
    submission_id: str
    job_id: str
    spec_path: str
    name: str


@dataclasses.dataclass
class TrainingSubmitted:
    submission_id: str
    training_of: str
    command: str
    num_gpus: int
    name: str


class FakeLauncher:
    """Keeps submissions in a dict; ``reachable = False`` makes every call fail like Ray down."""

    def __init__(self) -> None:
        self.submitted: list[Submitted] = []
        self.trainings: list[TrainingSubmitted] = []
        self.stopped: list[str] = []
        self.remote: dict[str, RemoteStatus] = {}
        self.reachable = True

    def _check(self) -> None:
        if not self.reachable:
            raise InfrastructureError("fake Ray cluster is unreachable")

    def set(self, submission_id: str, state: JobState, message: str = "") -> None:
        self.remote[submission_id] = RemoteStatus(state=state, message=message)

    def vanish(self, submission_id: str) -> None:
        del self.remote[submission_id]

    def submit(self, *, submission_id: str, job_id: str, spec_path: str, name: str) -> None:
        self._check()
        if submission_id in self.remote:
            raise InfrastructureError(f"submission {submission_id} exists")
        self.submitted.append(Submitted(submission_id, job_id, spec_path, name))
        self.set(submission_id, JobState.QUEUED)

    def submit_training(
        self, *, submission_id: str, training_of: str, command: str, num_gpus: int, name: str
    ) -> None:
        self._check()
        if submission_id in self.remote:
            raise InfrastructureError(f"submission {submission_id} exists")
        self.trainings.append(
            TrainingSubmitted(submission_id, training_of, command, num_gpus, name)
        )
        self.set(submission_id, JobState.QUEUED)

    def stop(self, submission_id: str) -> bool:
        self._check()
        status = self.remote.get(submission_id)
        if status is None or status.state.final:
            return False
        self.stopped.append(submission_id)
        self.set(submission_id, JobState.CANCELLED)
        return True

    def status(self, submission_id: str) -> RemoteStatus | None:
        self._check()
        return self.remote.get(submission_id)

    def dashboard_url(self, submission_id: str) -> str | None:
        return f"http://ray.test:8265/#/jobs/{submission_id}"
