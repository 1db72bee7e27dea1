"""The ``openai`` sampler: any OpenAI-compatible ``/v1/completions`` or ``/v1/chat/completions``.

``vllm serve`` exposes both. Each sample is its own request (``n = 1``) with its own
``seed``, so results are reproducible where the server honours seeds and a failed sample
is retried alone. Requests run concurrently, at most ``max_concurrency`` at a time per
sampler instance (one per Ray actor); 429, 5xx, timeouts and connection errors are retried
with exponential backoff and jitter, waiting at least what ``Retry-After`` asks. A sample
that still fails is listed in the row's ``sampler_errors`` (counted, never dropped); so is
one the server refuses outright (a prompt longer than its context window answers 400).

Completion-style prompts sent to ``/v1/completions`` carry the parser's stop sequences
(``stop_sequences``), so the server stops where the parser would cut anyway instead of
spending ``max_tokens`` on text that is thrown away. ``vllm serve`` and llama.cpp's server
take any number of them; OpenAI's own API takes at most four.

The API key is read from the environment variable the spec names (``api_key_env``) in the
process that sends the requests, and is never logged; on Ray, pass it to the actors with
``runtime_env={"env_vars": {...}}`` or the cluster's own environment.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import os
import random
import time
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from pipeline.config import SamplerConfig
from pipeline.parsing import STOP_SEQUENCES, TEST_STOP_TOKENS
from pipeline.problem_state import ProblemState
from pipeline.records import Problem, PromptStyle
from pipeline.refinement import collect_round, plan_round
from pipeline.sampling import SampleRequest, SampleResult, SampleRole, assemble, plan_requests

logger = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({408, 409, 425, 429})
"""Client-side codes worth retrying besides every 5xx (timeouts, conflicts, rate limits)."""

_ERROR_BODY_CHARS = 200
"""How much of an error response body goes into a sampler error (enough for the reason)."""


def _retry_after_s(response: httpx.Response) -> float | None:
    """Seconds the server asks us to wait: ``Retry-After`` as seconds or as an HTTP date."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))  # seconds, the usual form
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _snippet(response: httpx.Response) -> str:
    text = response.text.strip().replace("\n", " ")
    return text if len(text) <= _ERROR_BODY_CHARS else text[: _ERROR_BODY_CHARS - 3] + "..."


def stop_sequences(problem: Problem, role: SampleRole, endpoint: str) -> tuple[str, ...]:
    """Where the server should stop one sample of ``problem``: none for chat answers.

    A completion-style code sample continues a function body and ends at the next top-level
    statement (``pipeline.parsing.STOP_SEQUENCES``, where ``truncate_completion`` cuts); a
    test sample continues an ``assert`` line and ends at CodeT's test stop tokens. A joint
    continuation writes its tests after the function, so it must run on past them, and an
    instruction-style answer (fenced blocks, prose) is never cut by the server.
    """
    if endpoint != "completions" or problem.style is not PromptStyle.COMPLETION:
        return ()
    if role is SampleRole.CODE:
        return STOP_SEQUENCES
    if role is SampleRole.TEST:
        return TEST_STOP_TOKENS
    return ()


class _Fatal(Exception):
    """A response that retrying cannot fix (4xx other than rate limits, a malformed body)."""


class OpenAISampler:
    """Samples the raw completions of problems from an OpenAI-compatible endpoint.

    Args:
        config: the sampler section of the JobSpec (kind ``openai``).
        job_id: the job, part of every sample's seed.
        round_: the Target-DPO round whose requests to send (None: a Focused-DPO build).
        api_key: the key itself; by default read from ``os.environ[config.api_key_env]``
            (no ``Authorization`` header when it is unset, as for a local ``vllm serve``).
        transport: an httpx transport to use instead of the network (tests, proxies).
        backoff_base_s: first retry delay; it doubles per attempt up to ``backoff_max_s``,
            and a random half of it is jitter so that throttled workers do not retry in step.
        retry_after_max_s: longest ``Retry-After`` honoured, so a misbehaving server
            cannot stall a build for hours.
    """

    def __init__(
        self,
        config: SamplerConfig,
        job_id: str,
        *,
        round_: int | None = None,
        api_key: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 30.0,
        retry_after_max_s: float = 120.0,
    ) -> None:
        self._config = config
        self._job_id = job_id
        self._round = round_
        self._api_key = api_key if api_key is not None else os.environ.get(config.api_key_env)
        if not self._api_key:
            logger.info(
                "job %s: environment variable %s is not set; calling %s without an API key",
                job_id,
                config.api_key_env,
                config.base_url,
            )
        self._transport = transport
        self._backoff_base_s = backoff_base_s
        self._backoff_max_s = backoff_max_s
        self._retry_after_max_s = retry_after_max_s
        path = "chat/completions" if config.endpoint == "chat" else "completions"
        self._url = f"{config.base_url.rstrip('/')}/{path}"
        self._rng = random.Random()
        # Created on first use, inside the event loop that will run the requests.
        self._client: httpx.AsyncClient | None = None
        self._slots: asyncio.Semaphore | None = None

    def _client_and_slots(self) -> tuple[httpx.AsyncClient, asyncio.Semaphore]:
        if self._client is None or self._slots is None:
            headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
            limit = self._config.max_concurrency
            self._client = httpx.AsyncClient(
                headers=headers,
                timeout=httpx.Timeout(self._config.request_timeout_s),
                limits=httpx.Limits(max_connections=limit, max_keepalive_connections=limit),
                transport=self._transport,
            )
            self._slots = asyncio.Semaphore(limit)
        return self._client, self._slots

    async def aclose(self) -> None:
        """Close the HTTP connections (the sampler can be used again afterwards)."""
        if self._client is not None:
            await self._client.aclose()
        self._client = None
        self._slots = None

    def request_body(self, request: SampleRequest, stop: Sequence[str] = ()) -> dict[str, Any]:
        """The JSON body of one sample's request (``stop`` only when there are any)."""
        cfg = self._config
        body: dict[str, Any] = {
            "model": cfg.model,
            "max_tokens": cfg.max_tokens,
            "temperature": cfg.temperature,
            "top_p": cfg.top_p,
            "n": 1,
            "seed": request.seed,
        }
        if cfg.endpoint == "chat":
            body["messages"] = request.chat()
        else:
            body["prompt"] = request.prompt
        if stop:
            body["stop"] = list(stop)
        return body

    def _text_of(self, response: httpx.Response) -> str:
        try:
            choice = response.json()["choices"][0]
            text = (
                choice["message"]["content"] if self._config.endpoint == "chat" else choice["text"]
            )
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise _Fatal(
                f"unexpected response body (expected choices[0]."
                f"{'message.content' if self._config.endpoint == 'chat' else 'text'}): "
                f"{_snippet(response)}"
            ) from exc
        if not isinstance(text, str):
            raise _Fatal(f"unexpected completion of type {type(text).__name__}, expected text")
        return text

    def _delay_s(self, attempt: int, retry_after: float | None) -> float:
        backoff = min(self._backoff_max_s, self._backoff_base_s * 2.0**attempt)
        delay = backoff / 2 + self._rng.uniform(0, backoff / 2)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self._retry_after_max_s))
        return delay

    async def request(self, request: SampleRequest, stop: Sequence[str] = ()) -> SampleResult:
        """One sample, retried on 429, 5xx, timeouts and connection errors."""
        client, slots = self._client_and_slots()
        body = self.request_body(request, stop)
        attempts = self._config.max_retries + 1
        last_error = ""
        for attempt in range(attempts):
            retry_after: float | None = None
            # The slot is held for the request only, not while backing off.
            async with slots:
                try:
                    response = await client.post(self._url, json=body)
                except httpx.TimeoutException:
                    last_error = f"timed out after {self._config.request_timeout_s:g} s"
                except httpx.TransportError as exc:
                    last_error = f"connection error ({type(exc).__name__}: {exc})"
                else:
                    status = response.status_code
                    if status < 300:
                        try:
                            return SampleResult(request, text=self._text_of(response))
                        except _Fatal as exc:
                            return SampleResult(request, error=f"POST {self._url}: {exc}")
                    if status < 500 and status not in RETRYABLE_STATUS:
                        return SampleResult(
                            request,
                            error=f"POST {self._url}: HTTP {status}, not retried: "
                            f"{_snippet(response)}",
                        )
                    last_error = f"HTTP {status}: {_snippet(response)}"
                    retry_after = _retry_after_s(response)
            if attempt + 1 < attempts:
                await asyncio.sleep(self._delay_s(attempt, retry_after))
        return SampleResult(
            request,
            error=f"POST {self._url}: gave up after {attempts} attempts; last: {last_error}",
        )

    async def sample(self, state: ProblemState) -> ProblemState:
        """All samples of one problem, added to its state, with the wall time they took.

        The time (``timings["sample"]``) runs from the first request to the last answer,
        waits for a free request slot included: it is the problem's latency, not the
        server's time spent on it alone.
        """
        started = time.perf_counter()
        config, round_ = self._config, self._round
        if round_ is None:
            requests = plan_requests(state.problem, config, self._job_id)
        else:
            requests = plan_round(state, config, self._job_id, round_)
        if not requests:  # a refinement round with every trajectory done
            return state
        results = await asyncio.gather(
            *(
                self.request(r, stop_sequences(state.problem, r.role, config.endpoint))
                for r in requests
            )
        )
        continuation = config.endpoint == "completions"
        if round_ is None:
            sampled = assemble(state, config, results, continuation=continuation)
        else:
            sampled = collect_round(
                state, config, results, continuation=continuation, round_=round_
            )
        spent = sampled.timings.get("sample", 0.0) + time.perf_counter() - started
        sampled = sampled.model_copy(update={"timings": {**sampled.timings, "sample": spent}})
        if sampled.sampler_errors:
            logger.warning(
                "job %s: problem %s: %d of %d samples failed; first: %s",
                self._job_id,
                state.problem_id,
                len(sampled.sampler_errors),
                len(requests),
                sampled.sampler_errors[0],
            )
        return sampled

    async def sample_all(self, states: Sequence[ProblemState]) -> list[ProblemState]:
        """The states with their samples, in the given order."""
        return list(await asyncio.gather(*(self.sample(state) for state in states)))


class OpenAISampleStage:
    """Ray Data callable class: a batch of problems → the same problems with their samples.

    A class, so each Ray actor keeps one event loop and one connection pool; a batch of
    several problems keeps every request slot busy::

        ds.map_batches(OpenAISampleStage, concurrency=1,
                       fn_constructor_kwargs={"config": spec.sampler, "job_id": job_id})

    Requests in flight are bounded by ``max_concurrency`` per actor.
    """

    def __init__(self, config: SamplerConfig, job_id: str, **sampler_kwargs: Any) -> None:
        self._sampler = OpenAISampler(config, job_id, **sampler_kwargs)
        self._loop = asyncio.new_event_loop()

    def __call__(self, batch: Mapping[str, Any]) -> dict[str, list[ProblemState]]:
        states = self._loop.run_until_complete(self._sampler.sample_all(list(batch["state"])))
        return {"state": states}

    def close(self) -> None:
        """Close connections and the event loop."""
        if not self._loop.is_closed():
            self._loop.run_until_complete(self._sampler.aclose())
            self._loop.close()


class sample(OpenAISampleStage):
    """``OpenAISampleStage`` as the dashboard shows it: ``MapBatches(sample)``."""
