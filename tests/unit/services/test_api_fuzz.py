"""Schema-driven fuzzing of the job API: schemathesis against the app's own OpenAPI.

Runs in-process over ASGI with the fake launcher and a real SQLite file; every generated
request (valid and invalid bodies, paths and query strings) must get no 5xx, and answers
must match the documented schemas.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)

from services.api.app import create_app
from services.api.deps import get_launcher
from services.api.settings import Settings
from tests.unit.services.fake_launcher import FakeLauncher


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory):
    workdir: Path = tmp_path_factory.mktemp("fuzz")
    (workdir / "runs").mkdir()
    (workdir / "problems.jsonl").write_text('{"problem_id": "p"}\n', encoding="utf-8")
    app = create_app(
        Settings(
            database_url=f"sqlite:///{workdir / 'jobs.db'}",
            output_root="runs",
            ray_address=None,
            api_token=None,
        ),
        cwd=workdir,
    )
    launcher = FakeLauncher()
    app.dependency_overrides[get_launcher] = lambda: launcher
    return schemathesis.openapi.from_asgi("/openapi.json", app)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_api_never_answers_5xx(api_schema, mode: GenerationMode) -> None:
    # Driven through hypothesis directly: schemathesis' pytest plugin reads a pytest
    # attribute (`Function._nodeid`) that pytest 9 removed.
    @given(case=api_schema.as_strategy(mode))
    @settings(
        max_examples=150,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    def check(case) -> None:
        case.call_and_validate(
            checks=[not_a_server_error, status_code_conformance, response_schema_conformance]
        )

    check()


def _runnable(case):
    """Point a generated JobSpec at the real source file and under the output root."""
    body = case.body
    spec = body.get("spec") if isinstance(body, dict) and "spec" in body else body
    if isinstance(spec, dict):
        spec["source"] = {**(spec.get("source") or {}), "path": "problems.jsonl", "limit": 1}
        spec["output"] = {**(spec.get("output") or {}), "uri": f"runs/{uuid.uuid4().hex}"}
    return case


def test_generated_jobs_survive_their_whole_lifecycle(api_schema) -> None:
    created = []

    @given(case=api_schema["/jobs"]["POST"].as_strategy().map(_runnable))
    @settings(
        max_examples=80,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    def check(case) -> None:
        answer = case.call_and_validate(
            checks=[not_a_server_error, status_code_conformance, response_schema_conformance]
        )
        if answer.status_code == 201:
            job_id = answer.json()["id"]
            created.append(job_id)
            for method, path in [
                ("GET", f"/jobs/{job_id}"),
                ("DELETE", f"/jobs/{job_id}"),
                ("POST", f"/jobs/{job_id}/resume"),
                ("GET", f"/jobs/{job_id}/manifest"),
            ]:
                operation = api_schema[path.replace(job_id, "{job_id}")][method]
                follow = operation.Case(path_parameters={"job_id": job_id})
                follow.call_and_validate(
                    checks=[
                        not_a_server_error,
                        status_code_conformance,
                        response_schema_conformance,
                    ]
                )

    check()
    # Many generated specs are valid once pointed at a real file (typically 9 to 20 of 80;
    # cross-field rules such as min_workers <= max_workers refuse the rest): the lifecycle
    # was really exercised, not just refused.
    assert len(created) >= 3
