"""The ``openai`` sampler against the bundled model's real server (llama.cpp).

What only a real server shows: that it honours the stop sequences the sampler sends, that
a prompt past its context window is refused with a 4xx the sampler counts per sample
without retrying, and that timeouts are retried and then counted. Requests are counted by
wrapping httpx's real network transport, so every request does reach the server.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx

from cluster.samplers.openai_http import OpenAISampler
from pipeline.config import SamplerConfig
from pipeline.parsing import parse_candidates, truncate_completion
from pipeline.problem_state import ProblemState
from pipeline.records import Problem, PromptStyle

ADD = Problem(
    problem_id="live/add",
    prompt='def add(a: int, b: int) -> int:\n    """Return the sum of a and b.\n\n'
    '    >>> add(2, 3)\n    5\n    """\n',
    entry_point="add",
)


class CountingTransport(httpx.AsyncBaseTransport):
    """httpx's real transport, counting the requests per prompt it sends."""

    def __init__(self) -> None:
        self._real = httpx.AsyncHTTPTransport()
        self.sent: Counter[str] = Counter()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = request.content.decode()
        self.sent["long" if len(body) > 20_000 else "short"] += 1
        return await self._real.handle_async_request(request)

    async def aclose(self) -> None:
        await self._real.aclose()


def _config(live_model, **update) -> SamplerConfig:
    base = {
        "kind": "openai",
        "base_url": live_model.base_url,
        "model": live_model.model,
        "k": 2,
        "max_tokens": 48,
        "temperature": 0.8,
        "max_concurrency": 2,
        "max_retries": 2,
        "request_timeout_s": 120,
    }
    return SamplerConfig.model_validate({**base, **update})


def _sample(config: SamplerConfig, problems: list[Problem], transport) -> list[ProblemState]:
    sampler = OpenAISampler(config, "live-sampler", transport=transport, backoff_base_s=0.05)

    async def run() -> list[ProblemState]:
        try:
            states = [ProblemState(index=i, problem=p) for i, p in enumerate(problems)]
            return await sampler.sample_all(states)
        finally:
            await sampler.aclose()

    return asyncio.run(run())


def test_completions_stop_where_the_parser_cuts_and_parse(live_model) -> None:
    (state,) = _sample(_config(live_model), [ADD], CountingTransport())
    assert state.sampler_errors == []
    assert len(state.code_completions or []) == len(state.test_completions or []) == 2
    for raw in state.code_completions or []:
        # The server stopped at the first top-level statement: nothing left to cut.
        assert truncate_completion(raw) == raw
    # The test prompt ends in "assert "; the sampler gives the keyword back.
    assert all(t.startswith("assert ") for t in state.test_completions or [])
    candidates = parse_candidates(ADD, state.code_completions or [], state.test_completions or [])
    stats = candidates.parse_stats
    assert sum(c.count for c in candidates.codes) + stats.get("empty_code", 0) == 2
    assert all(c.program == ADD.prompt + c.completion for c in candidates.codes)


def test_a_prompt_past_the_context_window_is_a_counted_error_not_retried(live_model) -> None:
    filler = "".join(f"    step {i}: add the numbers.\n" for i in range(live_model.n_ctx))
    long = ADD.model_copy(
        update={
            "problem_id": "live/long",
            "prompt": ADD.prompt.replace('    """\n', filler + '    """\n', 1),
        }
    )
    transport = CountingTransport()
    long_state, short_state = _sample(_config(live_model), [long, ADD], transport)

    # Refused outright: one request per sample, each failure listed, no completion.
    assert transport.sent["long"] == 4
    assert long_state.code_completions == [] and long_state.test_completions == []
    assert len(long_state.sampler_errors) == 4
    assert all("HTTP 400, not retried" in e for e in long_state.sampler_errors)
    # The other problem of the same batch is sampled as usual.
    assert transport.sent["short"] == 4
    assert short_state.sampler_errors == []
    assert len(short_state.code_completions or []) == 2


def test_timeouts_are_retried_then_counted_per_sample(live_model) -> None:
    # A chat answer takes far longer than 10 ms on a CPU: every attempt times out.
    config = _config(
        live_model, endpoint="chat", k=1, max_tokens=16, request_timeout_s=0.01, max_retries=2
    )
    problem = ADD.model_copy(update={"style": PromptStyle.INSTRUCTION})
    transport = CountingTransport()
    (state,) = _sample(config, [problem], transport)
    assert transport.sent["short"] == 2 * 3  # code and test sample, 1 + 2 retries each
    assert state.code_completions == [] and state.test_completions == []
    assert len(state.sampler_errors) == 2
    assert all("gave up after 3 attempts; last: timed out" in e for e in state.sampler_errors)
