"""``RayJobLauncher.submit`` waits out a head whose job agent is not ready yet.

Seconds after ``ray start`` (longer on a busy machine) the dashboard answers but refuses a
submission with 500 "No available agent to submit job, please try again later."; nothing
is created, and the job service would store the job as failed. A loopback server answers
as Ray's job API does, over real HTTP, so Ray's own SDK is what talks to it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from cluster.launcher import RayJobLauncher
from pipeline.errors import ClusterUnavailable


class _JobApi(BaseHTTPRequestHandler):
    refusals = 0
    posts: list[dict[str, Any]]
    answer = "No available agent to submit job, please try again later."

    def _reply(self, status: int, body: object) -> None:
        data = (body if isinstance(body, str) else json.dumps(body)).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._reply(200, {"ray_version": "2.60.0", "ray_commit": "x", "version": "4"})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).posts.append(body)
        if len(type(self).posts) <= type(self).refusals:
            self._reply(500, type(self).answer)
        else:
            self._reply(
                200, {"job_id": body["submission_id"], "submission_id": body["submission_id"]}
            )

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def job_api() -> Iterator[type[_JobApi]]:
    handler = type("JobApi", (_JobApi,), {"posts": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    handler.url = f"http://127.0.0.1:{server.server_address[1]}"  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield handler
    server.shutdown()
    thread.join()


def test_a_submission_is_retried_until_the_job_agent_is_up(job_api: type[_JobApi]) -> None:
    job_api.refusals = 2
    launcher = RayJobLauncher(job_api.url, auth_token="t", agent_wait_s=30)  # type: ignore[attr-defined]
    launcher.submit(submission_id="pf-1", job_id="pf-1", spec_path="/r/job.json", name="n")
    assert [post["submission_id"] for post in job_api.posts] == ["pf-1"] * 3
    assert job_api.posts[-1]["metadata"] == {
        "pairforge_job_id": "pf-1",
        "name": "n",
        "job_name": "n",
    }


def test_the_retry_is_bounded(job_api: type[_JobApi]) -> None:
    job_api.refusals = 1000
    launcher = RayJobLauncher(job_api.url, auth_token="t", agent_wait_s=1.5)  # type: ignore[attr-defined]
    with pytest.raises(ClusterUnavailable, match="No available agent"):
        launcher.submit(submission_id="pf-2", job_id="pf-2", spec_path="/r/job.json", name="")
    assert 2 <= len(job_api.posts) <= 4


def test_other_refusals_are_not_retried(job_api: type[_JobApi]) -> None:
    job_api.refusals = 1
    job_api.answer = "Job with submission_id pf-3 already exists."
    launcher = RayJobLauncher(job_api.url, auth_token="t", agent_wait_s=30)  # type: ignore[attr-defined]
    with pytest.raises(ClusterUnavailable, match="already exists"):
        launcher.submit(submission_id="pf-3", job_id="pf-3", spec_path="/r/job.json", name="")
    assert len(job_api.posts) == 1
