"""The ``openai`` sampler against a real HTTP server on loopback.

The server speaks the OpenAI wire format and answers with real CodeGen-16B samples from
the shared HumanEval data: the i-th code (test) sample of a problem for the request that
carries that sample's seed. Faults (a 429 with Retry-After, a 500, a server that keeps
failing) are injected by the server, so the real client, retry and regrouping code runs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import ray.data

from cluster.placement import build_placement
from cluster.samplers import add_sample_stage
from cluster.samplers.openai_http import OpenAISampler, OpenAISampleStage
from pipeline import prompts
from pipeline.config import SamplerConfig, parse_job_spec
from pipeline.problem_state import ProblemState
from pipeline.records import Problem, ReplayRow
from pipeline.sampling import SampleRole, sample_seed
from tests.conftest import HUMANEVAL_DIR, requires_shared_data

pytestmark = requires_shared_data

JOB_ID = "job-openai-test"
MODEL = "codegen-16B-mono"
API_KEY = "sk-test-4f2a9c"
KEY_ENV = "PAIRFORGE_TEST_OPENAI_KEY"

Key = tuple[str, str, int]
"""(problem_id, role, sample index)"""


@dataclass(frozen=True)
class Recorded:
    """One problem of the shared data with its recorded samples."""

    problem_id: str
    problem: Problem
    code_completions: list[str]
    test_completions: list[str]


def _recorded(n: int) -> list[Recorded]:
    out = []
    with (HUMANEVAL_DIR / "dev-k10.jsonl").open() as f:
        for _ in range(n):
            row = ReplayRow.model_validate_json(next(f))
            out.append(
                Recorded(
                    row.problem_id,
                    row.problem(),
                    row.code_completions or [],
                    row.test_completions or [],
                )
            )
    return out


@dataclass
class RecordedModel:
    """What the fake model knows: recorded samples by (prompt, seed), and injected faults."""

    rows: list[Recorded]
    k: int
    base_seed: int = 0
    chat: bool = False
    faults: dict[Key, list[tuple[int, dict[str, str]]]] = field(default_factory=dict)
    always_fail: int | None = None
    delay_s: float = 0.0
    attempts: list[tuple[Key, float, str | None]] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.by_prompt: dict[str, tuple[Recorded, SampleRole]] = {}
        self.by_seed: dict[tuple[str, str, int], int] = {}
        for row in self.rows:
            problem = row.problem
            self.by_prompt[prompts.code_prompt(problem)] = (row, SampleRole.CODE)
            self.by_prompt[prompts.test_prompt(problem)] = (row, SampleRole.TEST)
            for role in (SampleRole.CODE, SampleRole.TEST):
                for i in range(self.k):
                    seed = sample_seed(JOB_ID, self.base_seed, row.problem_id, role, i)
                    self.by_seed[(row.problem_id, role.value, seed)] = i

    def answer(
        self, body: dict[str, Any], auth: str | None
    ) -> tuple[int, dict[str, str], dict[str, Any]]:
        prompt = body["messages"][0]["content"] if self.chat else body["prompt"]
        row, role = self.by_prompt[prompt]
        index = self.by_seed[(row.problem_id, role.value, body["seed"])]
        key = (row.problem_id, role.value, index)
        with self.lock:
            self.attempts.append((key, time.monotonic(), auth))
            pending = self.faults.get(key)
            fault = pending.pop(0) if pending else None
        if self.always_fail is not None:
            return self.always_fail, {}, {"error": {"message": "overloaded"}}
        if fault is not None:
            status, headers = fault
            return status, headers, {"error": {"message": f"injected {status}"}}
        if role is SampleRole.CODE:
            text = row.code_completions[index]
        else:
            recorded = row.test_completions[index]
            # A model continuing the prompt's trailing "assert " does not repeat it.
            text = recorded if self.chat else recorded.removeprefix(prompts.TEST_COMPLETION_PREFIX)
        choice = (
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
            if self.chat
            else {"index": 0, "text": text, "logprobs": None, "finish_reason": "stop"}
        )
        return (
            200,
            {},
            {
                "id": f"cmpl-{len(self.attempts)}",
                "object": "chat.completion" if self.chat else "text_completion",
                "created": int(time.time()),
                "model": body["model"],
                "choices": [choice],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            },
        )

    def count(self, key: Key) -> int:
        return sum(1 for k, _, _ in self.attempts if k == key)


def _handler(model: RecordedModel) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            expected = "/v1/chat/completions" if model.chat else "/v1/completions"
            if self.path != expected:
                self.send_error(404, f"expected {expected}")
                return
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with model.lock:
                model.in_flight += 1
                model.max_in_flight = max(model.max_in_flight, model.in_flight)
            try:
                time.sleep(model.delay_s)
                status, headers, payload = model.answer(body, self.headers.get("Authorization"))
            finally:
                with model.lock:
                    model.in_flight -= 1
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            pass  # keep pytest output clean

    return Handler


@pytest.fixture
def serve() -> Iterator[Callable[[RecordedModel], str]]:
    servers: list[ThreadingHTTPServer] = []

    def start(model: RecordedModel) -> str:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(model))
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/v1"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _config(base_url: str, **update) -> SamplerConfig:
    base = {
        "kind": "openai",
        "model": MODEL,
        "base_url": base_url,
        "api_key_env": KEY_ENV,
        "k": 10,
        "max_concurrency": 4,
        "max_retries": 3,
        "request_timeout_s": 10,
    }
    return SamplerConfig.model_validate({**base, **update})


def _states(rows: list[Recorded]) -> list[ProblemState]:
    return [ProblemState(index=i, problem=r.problem) for i, r in enumerate(rows)]


def _sample(config: SamplerConfig, rows: list[Recorded]) -> list[ProblemState]:
    sampler = OpenAISampler(config, JOB_ID, backoff_base_s=0.02)

    async def run() -> list[ProblemState]:
        try:
            return await sampler.sample_all(_states(rows))
        finally:
            await sampler.aclose()

    return asyncio.run(run())


def test_sampler_retries_a_429_and_a_500_and_returns_the_recorded_completions(
    serve, monkeypatch, caplog
):
    monkeypatch.setenv(KEY_ENV, API_KEY)
    recorded = _recorded(3)
    p0, p1 = recorded[0].problem_id, recorded[1].problem_id
    model = RecordedModel(
        recorded,
        k=10,
        faults={
            (p0, "code", 0): [(429, {"Retry-After": "1"})],
            (p1, "test", 2): [(500, {})],
        },
    )
    caplog.set_level(logging.DEBUG)
    rows = _sample(_config(serve(model)), recorded)

    for row, rec in zip(rows, recorded, strict=True):
        assert row.problem == rec.problem
        assert row.sampler_errors == []
        assert row.code_completions == rec.code_completions  # in sample order
        assert row.test_completions == rec.test_completions  # "assert " given back
    assert model.count((p0, "code", 0)) == 2
    assert model.count((p1, "test", 2)) == 2
    assert len(model.attempts) == 3 * 20 + 2
    # the 429 asked for 1 s; the backoff alone would have waited ~0.02 s
    (first, second) = [t for k, t, _ in model.attempts if k == (p0, "code", 0)]
    assert second - first >= 0.95
    assert {auth for _, _, auth in model.attempts} == {f"Bearer {API_KEY}"}
    assert API_KEY not in caplog.text


def test_a_server_that_keeps_failing_yields_a_counted_error_per_sample(serve, monkeypatch):
    monkeypatch.setenv(KEY_ENV, API_KEY)
    recorded = _recorded(2)
    model = RecordedModel(recorded, k=2, always_fail=503)
    rows = _sample(_config(serve(model), k=2, max_retries=2), recorded)

    for row in rows:
        assert row.code_completions == [] and row.test_completions == []
        assert len(row.sampler_errors) == 4  # 2 code + 2 test samples, none dropped
        assert all("gave up after 3 attempts" in e and "HTTP 503" in e for e in row.sampler_errors)
        assert row.sampled().code_completions == []  # still a valid row for the parser
    assert Counter(k for k, _, _ in model.attempts) == {
        (r.problem_id, role, i): 3 for r in recorded for role in ("code", "test") for i in range(2)
    }


def test_requests_in_flight_stay_within_max_concurrency(serve, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    recorded = _recorded(2)
    model = RecordedModel(recorded, k=5, delay_s=0.05)
    rows = _sample(_config(serve(model), k=5, max_concurrency=3), recorded)
    assert [len(r.code_completions or []) for r in rows] == [5, 5]
    assert 2 <= model.max_in_flight <= 3
    assert {auth for _, _, auth in model.attempts} == {None}  # no key set: no header


def test_chat_endpoint_returns_answers_unprefixed(serve, monkeypatch):
    monkeypatch.setenv(KEY_ENV, API_KEY)
    recorded = _recorded(1)
    model = RecordedModel(recorded, k=3, chat=True)
    (row,) = _sample(_config(serve(model), k=3, endpoint="chat"), recorded)
    assert row.code_completions == recorded[0].code_completions[:3]
    assert row.test_completions == recorded[0].test_completions[:3]


def _dataset(rows: list[Recorded]) -> ray.data.Dataset:
    return ray.data.from_items([{"state": state} for state in _states(rows)])


def test_the_sampler_runs_inside_ray_data(serve, ray_local):
    recorded = _recorded(4)
    model = RecordedModel(recorded, k=3, faults={(recorded[2].problem_id, "code", 1): [(502, {})]})
    config = _config(serve(model), k=3)

    # The key reaches the actors through the runtime env, as on a cluster.
    out = (
        _dataset(recorded)
        .map_batches(
            OpenAISampleStage,
            fn_constructor_kwargs={"config": config, "job_id": JOB_ID, "backoff_base_s": 0.02},
            batch_size=2,
            concurrency=1,
            runtime_env={"env_vars": {KEY_ENV: API_KEY}},
        )
        .take_all()
    )

    rows = sorted((r["state"] for r in out), key=lambda r: r.index)
    assert [r.problem.problem_id for r in rows] == [r.problem_id for r in recorded]
    for row, rec in zip(rows, recorded, strict=True):
        assert row.code_completions == rec.code_completions[:3]
        assert row.test_completions == rec.test_completions[:3]
        assert row.sampler_errors == []
    assert model.count((recorded[2].problem_id, "code", 1)) == 2
    assert {auth for _, _, auth in model.attempts} == {f"Bearer {API_KEY}"}


def test_the_sample_stage_wires_the_openai_kind_and_carries_errors_as_data(serve, ray_local):
    recorded = _recorded(3)
    model = RecordedModel(
        recorded, k=2, faults={(recorded[1].problem_id, "test", 0): [(500, {})] * 10}
    )
    config = _config(serve(model), k=2, max_retries=1, api_key_env="PAIRFORGE_UNSET_KEY_ENV")
    spec = parse_job_spec(
        {
            "source": {"path": "unused.jsonl"},
            "sampler": config.model_dump(),
            "output": {"uri": "unused"},
        }
    )
    stage = add_sample_stage(_dataset(recorded), config, JOB_ID, build_placement(spec).sample)
    rows = {r["state"].problem_id: r["state"] for r in stage.take_all()}
    assert set(rows) == {r.problem_id for r in recorded}
    failed = rows[recorded[1].problem_id]
    assert failed.test_completions == recorded[1].test_completions[1:2]
    assert len(failed.sampler_errors) == 1 and "HTTP 500" in failed.sampler_errors[0]
    assert all(rows[r.problem_id].sampler_errors == [] for r in (recorded[0], recorded[2]))
