"""Sampling as domain logic: which requests a problem needs, their seeds, and regrouping.

Every sampler (replay, OpenAI-compatible HTTP, vLLM) plans the same requests and puts the
results back the same way, so live and recorded samples reach the parser alike:

    requests = plan_requests(state.problem, spec.sampler, job_id)   # k code + k test, or k joint
    results = [SampleResult(request, text=...) or SampleResult(request, error=...), ...]
    state = assemble(state, spec.sampler, results, continuation=True)

A sample that failed after its retries is left out of the completion lists and listed in
``sampler_errors``: a problem whose samples all failed still flows on, and the skip rules
record ``SAMPLER_ERROR`` for it rather than losing it. Pure Python: no HTTP, no Ray.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from pipeline.config import SamplerConfig
from pipeline.errors import ContractViolation
from pipeline.problem_state import ProblemState
from pipeline.prompts import TEST_COMPLETION_PREFIX, code_prompt, joint_prompt, test_prompt
from pipeline.records import Problem
from pipeline.seeding import derive_seed


class SampleRole(StrEnum):
    """What a single generation request asks for."""

    CODE = "code"
    TEST = "test"
    JOINT = "joint"
    """Code and tests in one completion."""
    REFINE = "refine"
    """A corrected solution from execution feedback (Target-DPO / CodeFlow); the index is
    the trajectory's."""


def sample_seed(job_id: str, base_seed: int, problem_id: str, role: SampleRole, index: int) -> int:
    """The seed of one sample: stable across runs, distinct per job, problem, role and index.

    The role is part of the seed so the i-th code and the i-th test sample of a problem
    do not share a random stream.
    """
    return derive_seed(job_id, base_seed, problem_id, role.value, index)


@dataclass(frozen=True)
class SampleRequest:
    """One generation request: a prompt sampled once (``n = 1``) with its own seed."""

    problem_id: str
    role: SampleRole
    index: int
    """Sample index within its role, ``0 .. k-1``."""
    prompt: str
    """The prompt as one text (``/v1/completions``, or one user message for chat)."""
    seed: int
    messages: tuple[tuple[str, str], ...] = ()
    """The same request as a conversation of ``(role, content)`` turns, for chat endpoints
    and engines; empty when the prompt is one user message."""

    def chat(self) -> list[dict[str, str]]:
        """The request as OpenAI chat messages."""
        turns = self.messages or (("user", self.prompt),)
        return [{"role": role, "content": content} for role, content in turns]


@dataclass(frozen=True)
class SampleResult:
    """The outcome of one request: its text, or why it failed after the last retry."""

    request: SampleRequest
    text: str | None = None
    error: str | None = None


def plan_requests(
    problem: Problem, config: SamplerConfig, job_id: str, *, tests: bool = True
) -> list[SampleRequest]:
    """The ``k`` code and ``k`` test requests of a problem (or ``k`` joint ones).

    Engines that keep only the first of ``n`` outputs (``ray.data.llm``'s vLLM stage) and
    endpoints that ignore ``seed`` with ``n > 1`` both get one request per sample instead;
    vLLM's prefix caching keeps the repeated prompt prefill cheap. ``tests=False`` asks for
    the ``k`` code samples only (a problem that brings its own tests).
    """
    if not tests:
        roles = [(SampleRole.CODE, code_prompt(problem))]
    elif config.prompt_mode == "joint":
        roles = [(SampleRole.JOINT, joint_prompt(problem))]
    else:
        roles = [(SampleRole.CODE, code_prompt(problem)), (SampleRole.TEST, test_prompt(problem))]
    return [
        SampleRequest(
            problem_id=problem.problem_id,
            role=role,
            index=i,
            prompt=prompt,
            seed=sample_seed(job_id, config.seed, problem.problem_id, role, i),
        )
        for role, prompt in roles
        for i in range(config.k)
    ]


def finish_completion(request: SampleRequest, text: str, *, continuation: bool) -> str:
    """The raw completion as the parser expects it.

    A test prompt that ends with ``TEST_COMPLETION_PREFIX`` (``"assert "``) has the model
    continue an assert, so the prefix is given back to the completion, as in CodeT's data.
    Only for plain continuations: a chat answer starts afresh and keeps its own text.
    """
    if (
        continuation
        and request.role is SampleRole.TEST
        and request.prompt.endswith(TEST_COMPLETION_PREFIX)
    ):
        return TEST_COMPLETION_PREFIX + text
    return text


def assemble(
    state: ProblemState,
    config: SamplerConfig,
    results: Iterable[SampleResult],
    *,
    continuation: bool,
    tests: bool = True,
) -> ProblemState:
    """The problem's state with its samples: results regrouped in sample-index order.

    Results may arrive in any order (concurrent requests, a shuffle); completions are put
    back in sample-index order, code and test samples separately.

    Raises:
        ContractViolation: a result belongs to another problem, or a role that does not
            match the prompt mode (a bug in the caller's grouping).
    """
    joint = config.prompt_mode == "joint" and tests
    expected = {SampleRole.JOINT} if joint else {SampleRole.CODE, SampleRole.TEST}
    texts: dict[SampleRole, list[tuple[int, str]]] = {role: [] for role in expected}
    errors: list[tuple[str, int, str]] = []
    for result in results:
        req = result.request
        if req.problem_id != state.problem_id or req.role not in expected:
            raise ContractViolation(
                f"sample ({req.problem_id!r}, {req.role.value}, {req.index}) grouped under "
                f"problem {state.problem_id!r} in {config.prompt_mode} mode"
            )
        if result.text is not None:
            texts[req.role].append(
                (req.index, finish_completion(req, result.text, continuation=continuation))
            )
        else:
            errors.append((req.role.value, req.index, result.error or "no completion"))
    ordered = {role: [t for _, t in sorted(pairs)] for role, pairs in texts.items()}
    return state.model_copy(
        update={
            "code_completions": ordered.get(SampleRole.CODE),
            "test_completions": ordered.get(SampleRole.TEST),
            "completions": ordered.get(SampleRole.JOINT),
            "sampler_errors": [f"{role} sample {i}: {msg}" for role, i, msg in sorted(errors)],
        }
    )


def first_k(state: ProblemState, k: int) -> ProblemState:
    """A replayed problem with the first ``k`` recorded completions of each kind.

    A replay job with ``k = 10`` on a file of 100 samples per problem thus sees the same
    candidates as one on the 10-sample file.
    """

    def cut(values: list[str] | None) -> list[str] | None:
        return None if values is None else values[:k]

    return state.model_copy(
        update={
            "code_completions": cut(state.code_completions),
            "test_completions": cut(state.test_completions),
            "completions": cut(state.completions),
        }
    )
