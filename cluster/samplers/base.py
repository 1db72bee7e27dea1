"""What every sampler shares: the sampled-row contract, request planning and seeds.

Samplers turn source rows (``cluster.sources.SOURCE_COLUMNS``) into *sampled rows*: a
problem with its raw completions, exactly the fields of ``pipeline.records.ReplayRow``
plus ``sampler_errors``, so live samples and replayed ones go through the same parser::

    {"index": 3, "problem_id": "HumanEval/6", "problem_json": "{...Problem...}",
     "code_completions": ["    return ...", ...], "test_completions": ["assert f(1) == 2", ...],
     "completions": None, "sampler_errors": ["code sample 4: HTTP 503 after 6 attempts"]}

A sample that failed after its retries is left out of the completion lists and listed in
``sampler_errors``; a row whose samples all failed still flows on, so the driver records
``SAMPLER_ERROR`` for it rather than losing it. The problem travels as JSON text because
Arrow would unify the ``metadata`` structs of different rows (adding keys, ints to floats).

Everything here is plain Python (no Ray, no HTTP), like ``ray.data.llm``'s stage UDFs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from pipeline.config import SamplerConfig
from pipeline.errors import ContractViolation
from pipeline.prompts import TEST_COMPLETION_PREFIX, code_prompt, joint_prompt, test_prompt
from pipeline.records import Problem, ReplayRow
from pipeline.seeding import derive_seed

SAMPLED_COLUMNS = (
    "index",
    "problem_id",
    "problem_json",
    "code_completions",
    "test_completions",
    "completions",
    "sampler_errors",
)
"""Columns of a sampled row in Ray Data (see the module docstring)."""


class SampleRole(str, Enum):
    """What a single generation request asks for."""

    CODE = "code"
    TEST = "test"
    JOINT = "joint"
    """Code and tests in one completion."""


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
    seed: int


def plan_requests(problem: Problem, config: SamplerConfig, job_id: str) -> list[SampleRequest]:
    """The ``k`` code and ``k`` test requests of a problem (or ``k`` joint ones).

    Engines that keep only the first of ``n`` outputs (``ray.data.llm``'s vLLM stage) and
    endpoints that ignore ``seed`` with ``n > 1`` both get one request per sample instead;
    vLLM's prefix caching keeps the repeated prompt prefill cheap.
    """
    if config.prompt_mode == "joint":
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


@dataclass(frozen=True)
class SampleResult:
    """The outcome of one request: its text, or why it failed after the last retry."""

    request: SampleRequest
    text: str | None = None
    error: str | None = None


class SampledRow(BaseModel):
    """A problem with its raw completions: the row between the sampler and the parser."""

    model_config = ConfigDict(frozen=True)

    index: int = Field(ge=0, description="0-based position of the problem in the input.")
    problem: Problem = Field(description="The problem that was sampled.")
    code_completions: list[str] | None = Field(
        default=None, description="Raw code completions (separate mode), in sample order."
    )
    test_completions: list[str] | None = Field(
        default=None, description="Raw test completions (separate mode), in sample order."
    )
    completions: list[str] | None = Field(
        default=None, description="Raw joint completions (joint mode), in sample order."
    )
    sampler_errors: list[str] = Field(
        default_factory=list, description="One line per sample that failed after its retries."
    )

    def replay_row(self) -> ReplayRow:
        """The row as the parser takes it: ``ReplayRow`` (problem fields + completions)."""
        return ReplayRow.model_validate(
            {
                **self.problem.model_dump(),
                "code_completions": self.code_completions,
                "test_completions": self.test_completions,
                "completions": self.completions,
            }
        )

    def to_ray_row(self) -> dict[str, Any]:
        """The row as Ray Data carries it (see ``SAMPLED_COLUMNS``)."""
        return {
            "index": self.index,
            "problem_id": self.problem.problem_id,
            "problem_json": self.problem.model_dump_json(),
            "code_completions": self.code_completions,
            "test_completions": self.test_completions,
            "completions": self.completions,
            "sampler_errors": list(self.sampler_errors),
        }

    @classmethod
    def from_ray_row(cls, row: Mapping[str, Any]) -> SampledRow:
        """Decode a sampled row as Ray Data hands it back (lists may be numpy arrays)."""
        return cls(
            index=int(row["index"]),
            problem=Problem.model_validate_json(row["problem_json"]),
            code_completions=_str_list(row.get("code_completions")),
            test_completions=_str_list(row.get("test_completions")),
            completions=_str_list(row.get("completions")),
            sampler_errors=_str_list(row.get("sampler_errors")) or [],
        )


def _str_list(value: Any) -> list[str] | None:
    if value is None:
        return None
    return [str(v) for v in plain(value)]


def assemble(
    index: int,
    problem: Problem,
    config: SamplerConfig,
    results: Iterable[SampleResult],
    *,
    continuation: bool,
) -> SampledRow:
    """Regroup the per-sample results of one problem into its sampled row.

    Results may arrive in any order (concurrent requests, a shuffle); completions are put
    back in sample-index order, code and test samples separately.

    Raises:
        ContractViolation: a result belongs to another problem, or a role that does not
            match the prompt mode (a bug in the caller's grouping).
    """
    expected = (
        {SampleRole.JOINT} if config.prompt_mode == "joint" else {SampleRole.CODE, SampleRole.TEST}
    )
    texts: dict[SampleRole, list[tuple[int, str]]] = {role: [] for role in expected}
    errors: list[tuple[str, int, str]] = []
    for result in results:
        req = result.request
        if req.problem_id != problem.problem_id or req.role not in expected:
            raise ContractViolation(
                f"sample ({req.problem_id!r}, {req.role.value}, {req.index}) grouped under "
                f"problem {problem.problem_id!r} in {config.prompt_mode} mode"
            )
        if result.text is not None:
            texts[req.role].append(
                (req.index, finish_completion(req, result.text, continuation=continuation))
            )
        else:
            errors.append((req.role.value, req.index, result.error or "no completion"))
    ordered = {role: [t for _, t in sorted(pairs)] for role, pairs in texts.items()}
    return SampledRow(
        index=index,
        problem=problem,
        code_completions=ordered.get(SampleRole.CODE),
        test_completions=ordered.get(SampleRole.TEST),
        completions=ordered.get(SampleRole.JOINT),
        sampler_errors=[f"{role} sample {i}: {msg}" for role, i, msg in sorted(errors)],
    )


def plain(value: Any) -> Any:
    """``value`` with numpy arrays and scalars turned into lists and Python scalars.

    Ray Data's numpy batches hold list columns as object arrays of arrays.
    """
    if isinstance(value, np.ndarray):
        return [plain(v) for v in value.tolist()]
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    return value


def rows_of(batch: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A columnar batch (``{column: array}``) as a list of row dicts."""
    columns = list(batch)
    if not columns:
        return []
    length = len(batch[columns[0]])
    return [{c: plain(batch[c][i]) for c in columns} for i in range(length)]


def batch_of(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> dict[str, list[Any]]:
    """Row dicts as a columnar batch with exactly ``columns``."""
    return {c: [row[c] for row in rows] for c in columns}
