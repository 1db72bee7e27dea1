"""The OpenAI-compatible sampler's request logic, through httpx's own transport seam.

The real-server tests (429/500 injection, real model outputs, Ray) live in
``tests/integration/cluster/test_openai_sampler.py``; these pin the details fast.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import time
from typing import Any

import httpx
import numpy as np
import pytest

from cluster.samplers.openai_http import OpenAISampler, OpenAISampleStage, stop_sequences
from pipeline import prompts
from pipeline.config import SamplerConfig
from pipeline.parsing import STOP_SEQUENCES, TEST_STOP_TOKENS, truncate_completion
from pipeline.problem_state import ProblemState
from pipeline.records import Problem, PromptStyle
from pipeline.sampling import SampleRequest, SampleRole

PROBLEM = Problem(problem_id="P/1", prompt="def inc(x):\n", entry_point="inc")


def _config(**update) -> SamplerConfig:
    base = {
        "kind": "openai",
        "model": "m",
        "base_url": "http://model.test/v1/",
        "k": 1,
        "max_retries": 2,
        "temperature": 0.7,
        "top_p": 0.9,
        "max_tokens": 33,
    }
    return SamplerConfig.model_validate({**base, **update})


def _sampler(handler, **update) -> OpenAISampler:
    return OpenAISampler(
        _config(**update),
        "job",
        api_key="sk-unit",
        transport=httpx.MockTransport(handler),
        backoff_base_s=0.001,
    )


def _request(role: SampleRole = SampleRole.CODE) -> SampleRequest:
    return SampleRequest(problem_id="P/1", role=role, index=0, prompt="PROMPT", seed=42)


def test_completions_request_body_and_headers():
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"choices": [{"text": "    return x + 1\n"}]})

    result = asyncio.run(_sampler(handler).request(_request()))
    assert result.text == "    return x + 1\n" and result.error is None
    (request,) = seen
    assert str(request.url) == "http://model.test/v1/completions"
    assert request.headers["authorization"] == "Bearer sk-unit"
    assert json.loads(request.content) == {
        "model": "m",
        "prompt": "PROMPT",
        "max_tokens": 33,
        "temperature": 0.7,
        "top_p": 0.9,
        "n": 1,
        "seed": 42,
    }


def test_chat_request_sends_messages_and_reads_message_content():
    seen: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        assert request.url.path == "/v1/chat/completions"
        return httpx.Response(200, json={"choices": [{"message": {"content": "answer"}}]})

    result = asyncio.run(_sampler(handler, endpoint="chat").request(_request()))
    assert result.text == "answer"
    assert seen[0]["messages"] == [{"role": "user", "content": "PROMPT"}]
    assert "prompt" not in seen[0]


def test_a_client_error_is_not_retried_and_says_why():
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(400, json={"error": "max_tokens too large"})

    result = asyncio.run(_sampler(handler).request(_request()))
    assert len(calls) == 1
    assert result.text is None
    assert "HTTP 400, not retried" in str(result.error) and "max_tokens too large" in str(
        result.error
    )


def test_a_malformed_success_body_is_a_sample_error():
    result = asyncio.run(
        _sampler(lambda r: httpx.Response(200, json={"object": "x"})).request(_request())
    )
    assert result.text is None and "choices[0].text" in str(result.error)


def test_timeouts_and_connection_errors_are_retried_until_one_succeeds():
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        if len(calls) == 1:
            raise httpx.ReadTimeout("slow", request=request)
        if len(calls) == 2:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(200, json={"choices": [{"text": "ok"}]})

    result = asyncio.run(_sampler(handler).request(_request()))
    assert (result.text, len(calls)) == ("ok", 3)


def test_the_last_error_is_reported_after_the_last_retry():
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        raise httpx.ConnectError("refused", request=request)

    result = asyncio.run(_sampler(handler, max_retries=3).request(_request()))
    assert len(calls) == 4
    assert "gave up after 4 attempts" in str(result.error) and "ConnectError" in str(result.error)


def test_retry_after_as_an_http_date_is_honoured():
    calls: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(time.monotonic())
        if len(calls) == 1:
            when = email.utils.formatdate(time.time() + 2, usegmt=True)
            return httpx.Response(503, headers={"Retry-After": when}, text="busy")
        return httpx.Response(200, json={"choices": [{"text": "ok"}]})

    result = asyncio.run(_sampler(handler).request(_request()))
    assert result.text == "ok"
    # HTTP dates have one-second resolution: at least ~1 s, not the 1 ms backoff.
    assert calls[1] - calls[0] >= 0.9


def test_sample_runs_k_code_and_k_test_requests_and_prefixes_the_tests():
    def handler(request: httpx.Request) -> httpx.Response:
        prompt = json.loads(request.content)["prompt"]
        text = "inc(1) == 2\n" if prompt == prompts.test_prompt(PROBLEM) else "    return x+1\n"
        return httpx.Response(200, json={"choices": [{"text": text}]})

    state = asyncio.run(_sampler(handler, k=3).sample(ProblemState(index=7, problem=PROBLEM)))
    assert (state.index, state.problem) == (7, PROBLEM)
    assert state.code_completions == ["    return x+1\n"] * 3
    assert state.test_completions == ["assert inc(1) == 2\n"] * 3
    assert state.sampler_errors == []
    assert state.timings["sample"] > 0


def test_the_sample_time_covers_the_slowest_request():
    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.2)
        return httpx.Response(200, json={"choices": [{"text": "    return x+1\n"}]})

    sampler = OpenAISampler(_config(k=2), "job", api_key="", transport=httpx.MockTransport(slow))
    state = ProblemState(index=0, problem=PROBLEM, timings={"read": 0.5})
    sampled = asyncio.run(sampler.sample(state))
    # Four concurrent requests of 0.2 s: about 0.2 s, and the earlier stage's time is kept.
    assert 0.2 <= sampled.timings["sample"] < 0.8
    assert sampled.timings["read"] == 0.5


def _bodies_by_role(
    sampler: OpenAISampler, problem: Problem, seen: list[dict[str, Any]]
) -> dict[str, list[dict[str, Any]]]:
    asyncio.run(sampler.sample(ProblemState(index=0, problem=problem)))
    # In completion style the code and the joint prompt are both the problem's prompt.
    roles = (
        {prompts.joint_prompt(problem): "joint"}
        if sampler._config.prompt_mode == "joint"
        else {prompts.code_prompt(problem): "code", prompts.test_prompt(problem): "test"}
    )
    by_role: dict[str, list[dict[str, Any]]] = {}
    for body in seen:
        prompt = body["messages"][0]["content"] if "messages" in body else body["prompt"]
        role = roles[prompt]
        by_role.setdefault(role, []).append(body)
    return by_role


def _recording_handler(seen: list[dict[str, Any]], answer: dict[str, Any]):
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return httpx.Response(200, json={"choices": [answer]})

    return handler


def test_completion_style_requests_carry_the_parsers_stop_sequences():
    seen: list[dict[str, Any]] = []
    sampler = _sampler(_recording_handler(seen, {"text": "    return x+1\n"}), k=2)
    by_role = _bodies_by_role(sampler, PROBLEM, seen)
    assert [b["stop"] for b in by_role["code"]] == [list(STOP_SEQUENCES)] * 2
    assert [b["stop"] for b in by_role["test"]] == [list(TEST_STOP_TOKENS)] * 2


def test_the_server_side_stop_cuts_where_the_parser_would():
    # Every code stop sequence, placed after a body, ends the completion where the
    # parser's own truncation does: the server saves the tokens, the candidate is the same.
    body = "    return x + 1\n"
    for stop in stop_sequences(PROBLEM, SampleRole.CODE, "completions"):
        text = body + stop + "rest()\n"
        assert truncate_completion(text) == text[: text.index(stop)] == body


@pytest.mark.parametrize(
    ("endpoint", "style", "mode"),
    [
        ("chat", PromptStyle.INSTRUCTION, "joint"),
        ("chat", PromptStyle.INSTRUCTION, "separate"),
        ("chat", PromptStyle.COMPLETION, "separate"),
        ("completions", PromptStyle.INSTRUCTION, "separate"),
        # A joint continuation writes its tests after the function: no stop may cut them.
        ("completions", PromptStyle.COMPLETION, "joint"),
    ],
)
def test_answers_that_are_not_plain_continuations_carry_no_stop(endpoint, style, mode):
    seen: list[dict[str, Any]] = []
    answer = {"message": {"content": "x"}} if endpoint == "chat" else {"text": "x"}
    sampler = _sampler(_recording_handler(seen, answer), endpoint=endpoint, prompt_mode=mode)
    problem = PROBLEM.model_copy(update={"style": style})
    by_role = _bodies_by_role(sampler, problem, seen)
    assert sum(map(len, by_role.values())) == (1 if mode == "joint" else 2)
    assert all("stop" not in b for bodies in by_role.values() for b in bodies)


def test_chat_answers_are_kept_as_the_model_wrote_them():
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, json={"choices": [{"message": {"content": "assert inc(1) == 2"}}]}
        )

    sampler = _sampler(handler, endpoint="chat")
    state = asyncio.run(sampler.sample(ProblemState(index=0, problem=PROBLEM)))
    assert state.test_completions == ["assert inc(1) == 2"]


def test_a_sample_that_keeps_failing_is_listed_and_the_others_are_kept():
    def handler(request: httpx.Request) -> httpx.Response:
        if json.loads(request.content)["prompt"] == prompts.test_prompt(PROBLEM):
            return httpx.Response(503, text="overloaded")
        return httpx.Response(200, json={"choices": [{"text": "    return x+1\n"}]})

    state = asyncio.run(_sampler(handler, k=2).sample(ProblemState(index=0, problem=PROBLEM)))
    assert state.code_completions == ["    return x+1\n"] * 2
    assert state.test_completions == []
    assert len(state.sampler_errors) == 2
    assert state.sampler_errors[0].startswith(
        "test sample 0: POST http://model.test/v1/completions"
    )
    assert "gave up after 3 attempts" in state.sampler_errors[0]
    assert "HTTP 503: overloaded" in state.sampler_errors[0]


def test_sample_all_keeps_the_order_of_the_states():
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, json={"choices": [{"text": json.loads(request.content)["prompt"]}]}
        )

    problems = [Problem(problem_id=f"P/{i}", prompt=f"def f{i}():\n") for i in range(6)]
    states = [ProblemState(index=i, problem=p) for i, p in enumerate(problems)]
    sampled = asyncio.run(_sampler(handler).sample_all(states))
    assert [(s.index, s.problem_id) for s in sampled] == [(i, f"P/{i}") for i in range(6)]
    assert [s.code_completions for s in sampled] == [[prompts.code_prompt(p)] for p in problems]


def test_the_ray_stage_maps_a_batch_of_states_to_the_same_states_sampled():
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(json.loads(request.content)["prompt"])
        return httpx.Response(200, json={"choices": [{"text": "    return 0\n"}]})

    stage = OpenAISampleStage(
        _config(k=2), "job", api_key="k", transport=httpx.MockTransport(handler)
    )
    try:
        # Ray Data hands a batch as one numpy object array per column.
        batch = {"state": np.array([ProblemState(index=i, problem=PROBLEM) for i in (3, 4)])}
        out = stage(batch)
        again = stage(batch)  # the actor's event loop and connections are reused
    finally:
        stage.close()
    assert list(out) == ["state"]
    assert [s.index for s in out["state"]] == [3, 4]
    assert all(s.code_completions == ["    return 0\n"] * 2 for s in out["state"])
    # The same samples again; only the measured sample time differs.
    untimed = [[s.model_copy(update={"timings": {}}) for s in b["state"]] for b in (out, again)]
    assert untimed[0] == untimed[1]
    assert len(calls) == 2 * 2 * 2 * 2  # two calls x two problems x (2 code + 2 test)


@pytest.mark.parametrize("env_value", [None, "sk-env"])
def test_api_key_comes_from_the_named_environment_variable(monkeypatch, env_value):
    seen = []
    if env_value is None:
        monkeypatch.delenv("PF_UNIT_KEY", raising=False)
    else:
        monkeypatch.setenv("PF_UNIT_KEY", env_value)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization"))
        return httpx.Response(200, json={"choices": [{"text": "x"}]})

    sampler = OpenAISampler(
        _config(api_key_env="PF_UNIT_KEY"), "job", transport=httpx.MockTransport(handler)
    )
    asyncio.run(sampler.request(_request()))
    assert seen == [None if env_value is None else "Bearer sk-env"]
