"""What ``POST /jobs`` refuses before anything is stored or submitted (issue 9's findings).

Operator maxima a caller cannot lift, specs this version cannot run, inputs confined to the
input roots without leaking anything about files outside them, the input validated at
submission with the CLI's messages, and output locations the file system cannot hold.
"""

from __future__ import annotations

import json
import os
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.unit.services.conftest import replay_row, spec
from tests.unit.services.fake_launcher import FakeLauncher


def _refused(client: TestClient, body: object, status: int = 422) -> dict[str, Any]:
    answer = client.post("/jobs", json=body)
    assert answer.status_code == status, answer.text
    refused: dict[str, Any] = answer.json()
    return refused


def _nothing_kept(client: TestClient, launcher: FakeLauncher) -> None:
    assert client.get("/jobs").json()["count"] == 0
    assert launcher.submitted == []


# ---------------------------------------------------------------- limits a caller cannot lift


def test_resources_above_the_operator_limits_are_422_naming_each(
    client: TestClient, launcher: FakeLauncher
) -> None:
    body = spec(
        sandbox={
            "memory_mb": 10_000_000,
            "pids": 1_000_000,
            "max_workers": 100_000,
            "problem_budget_s": 1e12,
        }
    )
    refused = _refused(client, body)
    fields = [p.split(":")[0] for p in refused["problems"]]
    assert fields == [
        "sandbox.memory_mb",
        "sandbox.pids",
        "sandbox.max_workers",
        "sandbox.problem_budget_s",
    ]
    assert "10000000 is over the limit of 4096" in refused["problems"][0]
    assert "PAIRFORGE_MAX_MEMORY_MB" in refused["problems"][0]
    _nothing_kept(client, launcher)


def test_limits_come_from_the_service_settings(make_client: Callable[..., TestClient]) -> None:
    client = make_client(max_memory_mb=256, max_k=5)
    refused = _refused(client, spec(sandbox={"memory_mb": 512}))
    assert refused["problems"] == [
        "sandbox.memory_mb: 512 is over the limit of 256 set by the operator "
        "(PAIRFORGE_MAX_MEMORY_MB); ask for at most 256",
        "sampler.k: 10 is over the limit of 5 set by the operator (PAIRFORGE_MAX_K); "
        "ask for at most 5",
    ]
    body = spec(sandbox={"memory_mb": 256})
    body["sampler"]["k"] = 5
    assert client.post("/jobs", json=body).status_code == 201


def test_limits_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from services.api.settings import Settings

    monkeypatch.setenv("PAIRFORGE_MAX_PIDS", "64")
    monkeypatch.setenv("PAIRFORGE_INPUT_ROOTS", "/data/a:/data/b")
    settings = Settings()
    assert settings.limits.max_pids == 64
    assert settings.input_roots == ["/data/a", "/data/b"]


def test_too_many_samples_reports_the_exact_count(
    make_client: Callable[..., TestClient], workdir: Path
) -> None:
    rows = [replay_row(f"p{i}") for i in range(30)]
    (workdir / "many.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    client = make_client(max_samples_per_job=20)
    body = spec("many")
    body["source"]["path"] = "many.jsonl"
    (problem,) = _refused(client, body)["problems"]
    # Counting used to stop early and present its partial count (3) as the job's size.
    assert problem.startswith(
        "sampler.k: 30 problems × k=10 = 300 samples at most, over the limit of 20"
    )


@pytest.mark.parametrize(
    ("section", "field"),
    [
        ({"pairs": {"method": "target_dpo"}}, "pairs.method"),
        ({"handoff": {"submit": True}}, "handoff.training_config"),
    ],
)
def test_a_spec_this_version_cannot_run_is_422(
    client: TestClient, launcher: FakeLauncher, section: dict[str, Any], field: str
) -> None:
    (problem,) = _refused(client, spec(**section))["problems"]
    # `target_dpo` with the replay sampler is refused by the spec's own validation.
    assert problem.removeprefix("body: ").startswith(field + ":")
    _nothing_kept(client, launcher)


# ---------------------------------------------------------------- inputs confined to the roots


def _source(path: str) -> dict[str, Any]:
    body = spec()
    body["source"]["path"] = path
    return body


def _same_refusal(client: TestClient, paths: list[str]) -> str:
    """Every path gets one refusal that differs only by the path as the caller wrote it."""
    details = set()
    for path in paths:
        refused = _refused(client, _source(path))
        details.add(refused["detail"].replace(repr(path), "PATH"))
        assert refused["problems"] == [refused["detail"]]
    assert len(details) == 1, details
    (detail,) = details
    return detail


def test_inputs_outside_the_roots_are_refused_revealing_nothing(
    client: TestClient,
    launcher: FakeLauncher,
    workdir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    outside = tmp_path_factory.mktemp("outside")
    secret = outside / "secret.jsonl"
    secret.write_text("TOKEN=abc123\n")
    (workdir / "link.jsonl").symlink_to(secret)
    (workdir / "dangling.jsonl").symlink_to(outside / "missing.jsonl")
    detail = _same_refusal(
        client,
        [
            "/etc/shadow",
            "/etc/passwd",
            "/etc/no-such-file-here",
            "/proc/self/environ",
            str(secret),
            str(outside / "missing.jsonl"),
            "link.jsonl",
            "dangling.jsonl",
            f"../{outside.name}/secret.jsonl",
            f"file://{secret}",
        ],
    )
    assert "input roots" in detail
    for leak in ("abc123", "TOKEN", "exist", "denied", "line", "shadow", "secret"):
        assert leak not in detail
    _nothing_kept(client, launcher)


def test_special_files_are_refused_even_under_a_root(
    make_client: Callable[..., TestClient], workdir: Path
) -> None:
    os.mkfifo(workdir / "fifo.jsonl")
    (workdir / "dir.jsonl").mkdir()
    (workdir / ".env").write_text("PAIRFORGE_API_TOKEN=abc\n")
    client = make_client(input_roots="/")
    started = time.monotonic()
    _same_refusal(
        client,
        [
            str(workdir / "fifo.jsonl"),  # opening it would block the service forever
            str(workdir / "dir.jsonl"),
            str(workdir / ".env"),  # hidden files hold secrets more often than problems
            str(workdir / "jobs.db"),  # the job store itself
            "/dev/zero",
            "/proc/self/environ",
            "/proc/self/cmdline",
            "/sys/kernel/mm/transparent_hugepage/enabled",
        ],
    )
    assert time.monotonic() - started < 30


def test_remote_sources_are_refused(client: TestClient) -> None:
    detail = _refused(client, _source("s3://bucket/problems.jsonl"))["detail"]
    assert "input roots" in detail


def test_input_roots_are_configurable(
    make_client: Callable[..., TestClient], workdir: Path
) -> None:
    (workdir / "data").mkdir()
    (workdir / "data" / "p.jsonl").write_text(json.dumps(replay_row("p")) + "\n")
    client = make_client(input_roots="data")
    assert client.post("/jobs", json=_source(str(workdir / "data" / "p.jsonl"))).status_code == 201
    # The working directory is no root now, by absolute path or by relative path.
    _refused(client, _source(str(workdir / "problems.jsonl")))
    _refused(client, _source("problems.jsonl"))


def test_a_missing_file_under_a_root_is_named(client: TestClient, workdir: Path) -> None:
    detail = _refused(client, _source("nope.jsonl"))["detail"]
    assert str(workdir / "nope.jsonl") in detail


# ---------------------------------------------------------------- the input, checked at submission


def test_a_malformed_input_is_422_with_the_cli_messages(
    client: TestClient, launcher: FakeLauncher, workdir: Path
) -> None:
    lines = [
        json.dumps(replay_row("p0")),
        "{not json",
        json.dumps({"problem_id": "p2", "prompt": "x"}),
        json.dumps(replay_row("p0")),
    ]
    (workdir / "bad.jsonl").write_text("\n".join(lines) + "\n")
    refused = _refused(client, _source("bad.jsonl"))
    detail = refused["detail"]
    assert "line 2:" in detail and "line 3:" in detail and "line 4:" in detail
    assert "line 1:" not in detail
    _nothing_kept(client, launcher)


def test_a_row_over_the_size_limit_is_422_naming_its_line(
    make_client: Callable[..., TestClient], workdir: Path
) -> None:
    big = replay_row("p1")
    big["prompt"] = "x" * 5000
    rows = [replay_row("p0"), big]
    (workdir / "big.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    client = make_client(max_row_bytes=2048)
    detail = _refused(client, _source("big.jsonl"))["detail"]
    assert "line 2" in detail


def test_a_huge_line_is_refused_in_bounded_memory(client: TestClient, workdir: Path) -> None:
    # Issue 9, finding 5: 2 GB without a newline took the service to 4.5 GB at submission.
    with (workdir / "one-line.jsonl").open("wb") as out:
        for _ in range(64):
            out.write(b"x" * (1 << 20))  # 64 MiB, no newline
    tracemalloc.start()
    try:
        detail = _refused(client, _source("one-line.jsonl"))["detail"]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "line 1" in detail
    assert peak < 48 * (1 << 20), f"peak {peak / (1 << 20):.0f} MiB while checking the input"


def test_an_input_too_slow_to_validate_is_422(
    make_client: Callable[..., TestClient], workdir: Path
) -> None:
    rows = "".join(json.dumps(replay_row(f"p{i}")) + "\n" for i in range(50_000))
    (workdir / "slow.jsonl").write_text(rows)
    client = make_client(validation_timeout_s=0.01)
    detail = _refused(client, _source("slow.jsonl"))["detail"]
    assert "too large to validate within 0.01 s" in detail


def test_validations_past_their_time_keep_their_slot(
    make_client: Callable[..., TestClient], workdir: Path
) -> None:
    rows = "".join(json.dumps(replay_row(f"p{i}")) + "\n" for i in range(50_000))
    (workdir / "slow.jsonl").write_text(rows)
    client = make_client(validation_timeout_s=0.05, validations_at_once=1)
    _refused(client, _source("slow.jsonl"))  # its thread reads on, holding the one slot
    busy = _refused(client, spec("next"), status=503)
    assert "retry" in busy["detail"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # the slow file is read to its end, then freed
        answer = client.post("/jobs", json=spec("next"))
        if answer.status_code != 503:
            break
    assert answer.status_code == 201, answer.text


# ---------------------------------------------------------------- outputs the file system can hold


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("x" * 300, "longer than"),
        ("/".join(["y" * 200] * 25), "longer than"),
        ("a\nb", "control character"),
        ("a\rb", "control character"),
        ("a\x1b[31mred", "control character"),
        ("a\u2028b", "control character"),
        ("file://otherhost{workdir}/runs/a", "host part"),
        ("file://localhost{workdir}/runs/a", "host part"),
        ("file://{workdir}/runs/a?x=1", "query"),
    ],
)
def test_unusable_output_paths_are_422_and_not_stored(
    client: TestClient, launcher: FakeLauncher, workdir: Path, output: str, expected: str
) -> None:
    detail = _refused(client, spec(output.replace("{workdir}", str(workdir))))["detail"]
    assert expected in detail
    _nothing_kept(client, launcher)


def test_an_existing_file_as_output_is_422(
    client: TestClient, launcher: FakeLauncher, workdir: Path
) -> None:
    (workdir / "runs" / "file").write_text("not a directory")
    for output in ("file", "file/below"):
        detail = _refused(client, spec(output))["detail"]
        assert "not a directory" in detail
    _nothing_kept(client, launcher)


# ---------------------------------------------------------------- resume re-checks the output


def test_resume_refuses_an_output_that_became_a_symlink(
    client: TestClient,
    launcher: FakeLauncher,
    workdir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    job = client.post("/jobs", json=spec("a")).json()
    client.delete(f"/jobs/{job['id']}")
    outside = tmp_path_factory.mktemp("elsewhere")
    (workdir / "runs" / "a").rename(workdir / "runs" / "a.moved")
    (workdir / "runs" / "a").symlink_to(outside)
    answer = client.post(f"/jobs/{job['id']}/resume")
    assert answer.status_code == 422, answer.text
    assert "symlink" in answer.json()["detail"]
    assert list(outside.iterdir()) == []
    assert [s.submission_id for s in launcher.submitted] == [job["id"]]


def test_resume_refuses_a_symlink_planted_inside_the_output(
    client: TestClient,
    launcher: FakeLauncher,
    workdir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    job = client.post("/jobs", json=spec("a")).json()
    client.delete(f"/jobs/{job['id']}")
    victim = tmp_path_factory.mktemp("elsewhere") / "victim"
    victim.write_text("precious")
    for name in (".job.json.partial", "shards"):
        (workdir / "runs" / "a" / name).symlink_to(victim)
    answer = client.post(f"/jobs/{job['id']}/resume")
    assert answer.status_code == 422, answer.text
    assert "symlink" in answer.json()["detail"]
    assert victim.read_text() == "precious"
    assert len(launcher.submitted) == 1


def test_a_synthesize_source_is_refused_saying_how_to_run_it(
    client: TestClient, launcher: FakeLauncher
) -> None:
    body = spec(sampler={"kind": "openai", "model": "m", "base_url": "http://127.0.0.1:1/v1"})
    body["source"] = {
        "synthesize": {
            "source": "/usr/lib/python3.11",
            "base_url": "http://127.0.0.1:8080/v1",
            "model": "m",
        }
    }
    (problem,) = _refused(client, body)["problems"]
    assert problem.startswith("source.synthesize:") and "pairforge synthesize" in problem
    _nothing_kept(client, launcher)
