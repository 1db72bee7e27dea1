"""The JobSpec: one validated description of a dataset build (DESIGN.md §3.6).

The same model is loaded from YAML by ``pairforge build``, accepted as the body of
``POST /jobs`` and handed to the Ray driver. Every field is described, so the OpenAPI
schema documents the API. Unknown fields are refused (``extra="forbid"``).

    >>> spec = parse_job_spec({"source": {"path": "problems.jsonl"},
    ...                        "sampler": {"kind": "replay"},
    ...                        "output": {"uri": "runs/demo"}})
    >>> spec.sampler.k
    10
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pipeline.errors import JobSpecError
from pipeline.records import PairMethod
from pipeline.validation_errors import describe_validation_errors


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SynthesizeConfig(_Section):
    """Problems written by a model from Python source (ALGORITHMS.md §1.1).

    Top-level public functions of the source files seed one request each; the answers are
    checked, decontaminated and deduplicated (``pipeline.synthesis``).
    """

    source: str = Field(
        min_length=1,
        description="Python files to draw functions from: a directory (searched "
        "recursively), a glob (`src/**/*.py`) or one file, on the machine that runs the build. "
        "Test files are skipped.",
    )
    base_url: str = Field(
        min_length=1,
        description="Base URL of the OpenAI-compatible API that writes the problems "
        "(`http://127.0.0.1:8080/v1`).",
    )
    model: str = Field(min_length=1, description="Model name the endpoint serves.")
    endpoint: Literal["chat", "completions"] = Field(
        default="chat", description="Which OpenAI endpoint to call."
    )
    api_key_env: str = Field(
        default="OPENAI_API_KEY",
        description="Environment variable that holds the API key (never the key itself).",
    )
    limit: int | None = Field(
        default=None,
        ge=1,
        description="Ask the model about at most this many functions (the first in path "
        "order); every one is a request.",
    )
    decontaminate: str | None = Field(
        default=None,
        min_length=1,
        description="JSONL file of benchmark prompts (a `prompt` field per row, as HumanEval "
        "ships it): a local path or pyarrow URI. Problems whose word 8-grams overlap one of "
        "them by 30% or more are dropped.",
    )
    dedup_threshold: float = Field(
        default=0.8,
        ge=0.5,
        le=1.0,
        description="Two problems whose prompts share this Jaccard fraction of word 5-grams "
        "are near-duplicates; only the first is kept.",
    )
    max_tokens: int = Field(default=512, ge=1, description="Tokens per answer.")
    temperature: float = Field(default=0.7, ge=0.0, le=5.0, description="Sampling temperature.")
    seed: int = Field(default=0, description="Base seed; per-request seeds derive from it.")
    max_concurrency: int = Field(default=4, ge=1, description="Requests in flight at once.")
    max_retries: int = Field(default=3, ge=0, description="Retries on 429, 5xx and timeouts.")
    request_timeout_s: float = Field(default=120.0, gt=0, description="Per-request timeout.")


class SourceConfig(_Section):
    """Where the problems come from: a file of problems, or problems synthesised first."""

    path: str = Field(
        default="",
        description="JSONL or Parquet file of problems or replay rows: a local path or any "
        "pyarrow filesystem URI (`s3://...`, `gs://...`, `file://...`). With `synthesize`, "
        "leave it out: the build writes `<output.uri>/synthesized/problems.jsonl` and reads "
        "that.",
    )
    synthesize: SynthesizeConfig | None = Field(
        default=None,
        description="Synthesise the problems from Python source with a model before the "
        "build, then build from them.",
    )
    format: Literal["auto", "jsonl", "parquet"] = Field(
        default="auto", description="File format; `auto` decides by the file extension."
    )
    limit: int | None = Field(
        default=None, ge=1, description="Read at most this many problems (for trial runs)."
    )

    @model_validator(mode="after")
    def _has_problems(self) -> SourceConfig:
        if not self.path and self.synthesize is None:
            raise ValueError(
                "source needs `path` (a file of problems) or `synthesize` (problems written "
                "by a model from Python source)"
            )
        if self.synthesize is not None and self.format == "parquet":
            raise ValueError("synthesized problems are written as JSONL; remove `format`")
        return self


class SamplerKind(StrEnum):
    VLLM = "vllm"
    OPENAI = "openai"
    REPLAY = "replay"


class SamplerConfig(_Section):
    """How candidates are sampled."""

    kind: SamplerKind = Field(
        description="`vllm` (ray.data.llm on GPUs), `openai` (any OpenAI-compatible "
        "endpoint) or `replay` (pre-generated completions in the source rows)."
    )
    model: str = Field(default="", description="Model name or path (vllm, openai).")
    k: int = Field(
        default=10,
        ge=1,
        le=1000,
        description="Code (and test) samples per problem; in `target_dpo` mode the "
        "trajectories per problem (1 unless set).",
    )
    temperature: float = Field(
        default=1.5, ge=0.0, le=5.0, description="Sampling temperature (Focused-DPO uses 1.5)."
    )
    top_p: float = Field(default=1.0, gt=0.0, le=1.0, description="Nucleus sampling threshold.")
    max_tokens: int = Field(default=512, ge=1, description="Tokens per completion.")
    seed: int = Field(default=0, description="Base seed; per-sample seeds derive from it.")
    prompt_mode: Literal["separate", "joint"] = Field(
        default="separate",
        description="`separate`: one prompt for code, one for tests (CodeT style); "
        "`joint`: one completion holds both.",
    )
    # vllm
    tensor_parallel_size: int = Field(default=1, ge=1, description="vLLM tensor parallelism.")
    concurrency: int = Field(default=1, ge=1, description="vLLM engine replicas.")
    batch_size: int = Field(default=64, ge=1, description="Rows per vLLM batch.")
    engine_options: dict[str, Any] = Field(
        default_factory=dict, description="Extra keyword arguments for the vLLM engine."
    )
    # openai
    base_url: str = Field(
        default="", description="Base URL of an OpenAI-compatible API (`http://host:8000/v1`)."
    )
    endpoint: Literal["completions", "chat"] = Field(
        default="completions", description="Which OpenAI endpoint to call."
    )
    api_key_env: str = Field(
        default="OPENAI_API_KEY",
        description="Environment variable that holds the API key (never the key itself).",
    )
    max_concurrency: int = Field(default=8, ge=1, description="Requests in flight at once.")
    max_retries: int = Field(default=5, ge=0, description="Retries on 429, 5xx and timeouts.")
    request_timeout_s: float = Field(default=120.0, gt=0, description="Per-request timeout.")

    @model_validator(mode="after")
    def _kind_needs(self) -> SamplerConfig:
        if self.kind is SamplerKind.VLLM and not self.model:
            raise ValueError("sampler kind `vllm` needs `model` (a model name or path)")
        if self.kind is SamplerKind.OPENAI and not (self.base_url and self.model):
            raise ValueError("sampler kind `openai` needs `base_url` and `model`")
        return self


class SandboxConfig(_Section):
    """How candidates are executed."""

    image: str = Field(
        default="pairforge-sandbox:latest", description="Docker image of the sandbox."
    )
    timeout_s: float = Field(default=1.0, gt=0, le=60, description="Wall-clock limit per test.")
    # The bounds are the sandbox's own (sandbox.limits.SandboxLimits, which pipeline may not
    # import; a unit test compares them), so a spec that validates here also starts a
    # container. pids must exceed the 32 processes a cell may fork, so the runner can fork.
    memory_mb: int = Field(
        default=512, ge=64, description="Memory limit per container, in MiB (at least 64)."
    )
    cpus: float = Field(default=1.0, gt=0, description="CPU limit per container.")
    pids: int = Field(
        default=128,
        ge=33,
        description="Process limit per container (at least 33: a cell may have 32 processes "
        "and the runner must still fork).",
    )
    isolation: Literal["process", "shared"] = Field(
        default="process",
        description="`process`: each test in a fresh fork; `shared`: one process runs all "
        "tests of a code (faster, tests can affect each other).",
    )
    min_workers: int = Field(default=1, ge=1, description="Executor actors kept warm.")
    max_workers: int = Field(default=2, ge=1, description="Executor actors at most.")
    problem_budget_s: float = Field(
        default=120.0, gt=0, description="Execution time budget for one problem."
    )

    @model_validator(mode="after")
    def _workers_ordered(self) -> SandboxConfig:
        if self.min_workers > self.max_workers:
            raise ValueError(
                f"min_workers ({self.min_workers}) must not exceed max_workers ({self.max_workers})"
            )
        return self


class RankingConfig(_Section):
    """How codes and tests are scored."""

    ranker: Literal["pagerank", "codet", "hits", "passcount"] = Field(
        default="pagerank", description="Ranking algorithm (ALGORITHMS.md §1.4, §3.4)."
    )
    damping: float = Field(default=0.85, gt=0, le=1, description="PageRank damping d.")
    iterations: int = Field(default=10, ge=1, le=1000, description="PageRank rounds T_max.")
    early_stop: bool = Field(
        default=True, description="Stop when the code order is unchanged for 2 iterations."
    )


class PairsConfig(_Section):
    """How preference pairs are chosen."""

    method: PairMethod = Field(
        default=PairMethod.FOCUSED_DPO, description="`focused_dpo` or `target_dpo`."
    )
    diff_lambda: float = Field(
        default=1.0, ge=0, description="λ in Diff = score gap + λ·(common length fraction)."
    )
    pairs_per_problem: int = Field(default=1, ge=1, description="Pairs emitted per problem.")
    min_ground_truth_tests: int = Field(
        default=1, ge=1, description="Tests the top code must pass to anchor the split."
    )
    max_mid_frac: float = Field(
        default=0.5, gt=0, le=1, description="Drop pairs whose mid covers more of either code."
    )
    unfocused: Literal["drop", "keep"] = Field(
        default="drop",
        description="What to do with a pair whose mid exceeds `max_mid_frac`: drop it, or keep "
        "it with spans covering the whole mid and `focused` false (a trainer may treat it as "
        "plain DPO).",
    )
    edit_at_end: Literal["flag", "drop"] = Field(
        default="flag",
        description="What to do with a pair whose codes differ only by code at the end of one "
        "of them (the other's mid is empty, at its end; no shared line is put in a mid): keep "
        "it with `focused` false, or drop it.",
    )
    max_rounds: int = Field(
        default=5, ge=1, le=20, description="Target-DPO: refinement rounds at most."
    )
    feedback_chars: int = Field(
        default=2000,
        ge=200,
        le=20_000,
        description="Target-DPO: most characters of execution feedback in one refinement "
        "prompt (failing tests, error messages or traceback tails, captured output).",
    )
    feedback_tests: int = Field(
        default=5, ge=1, le=100, description="Target-DPO: failing tests shown in the feedback."
    )
    max_diff_lines: int = Field(
        default=20, ge=1, description="Target-DPO: drop a pair whose D- has more lines."
    )
    max_tokens: int = Field(
        default=2048,
        ge=1,
        description="Target-DPO: drop a pair whose chosen or rejected side is longer, in "
        "tokens estimated as ceil(UTF-8 bytes / 3) (code BPEs average 3-4 bytes a token, "
        "so the estimate errs towards dropping).",
    )
    empty_diff: Literal["keep", "drop"] = Field(
        default="keep",
        description="Target-DPO: a pair whose rejected side only lacks lines (D- empty, a "
        "pure insertion fix) has nothing to weight on the rejected side; the paper keeps "
        "it, `drop` removes it.",
    )
    max_sandbox_error_frac: float = Field(
        default=0.2, ge=0, le=1, description="Skip a problem with more sandbox_error cells."
    )


class OutputConfig(_Section):
    """Where and how shards are written."""

    uri: str = Field(min_length=1, description="Output directory: local path or pyarrow URI.")
    problems_per_unit: int = Field(
        default=16, ge=1, description="Problems per work unit (one shard pair per unit)."
    )


class HandoffConfig(_Section):
    """Optional training job submitted once the dataset is complete."""

    submit: bool = Field(default=False, description="Submit the training job automatically.")
    training_config: str = Field(
        default="",
        description="Path of the training config (deploy/training's YAML) passed to the "
        "training job; the service confines it to its input roots, like `source.path`.",
    )
    entrypoint: str = Field(
        default="python deploy/training/train.py",
        description="Command of the training job, run from the project root; the manifest "
        "path and the training config are appended, and a leading `python` is the "
        "service's interpreter. The service only runs commands its operator allows "
        "(`PAIRFORGE_TRAINING_ENTRYPOINTS`).",
    )


class JobSpec(_Section):
    """A whole dataset build."""

    name: str = Field(default="", max_length=200, description="Human-readable job name.")
    source: SourceConfig = Field(description="Where the problems come from.")
    sampler: SamplerConfig = Field(description="How candidates are sampled.")
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig, description="Execution.")
    ranking: RankingConfig = Field(default_factory=RankingConfig, description="Ranking.")
    pairs: PairsConfig = Field(default_factory=PairsConfig, description="Pair selection.")
    output: OutputConfig = Field(description="Where shards and the manifest go.")
    handoff: HandoffConfig | None = Field(default=None, description="Optional training hand-off.")

    @model_validator(mode="after")
    def _refinement_needs_a_model(self) -> JobSpec:
        if self.pairs.method is PairMethod.TARGET_DPO and self.sampler.kind is SamplerKind.REPLAY:
            raise ValueError(
                "pairs.method: `target_dpo` refines failing code with a model, and sampler kind "
                "`replay` only has recorded completions; use sampler kind `openai` (any "
                "OpenAI-compatible endpoint) or `vllm`"
            )
        return self

    @model_validator(mode="after")
    def _one_trajectory_unless_asked(self) -> JobSpec:
        # k=10 suits ranking many candidates; a refinement trajectory is one model call
        # per round, so target_dpo starts from one per problem unless k is given.
        if self.pairs.method is PairMethod.TARGET_DPO and "k" not in self.sampler.model_fields_set:
            sampler = self.sampler.model_copy(update={"k": 1})
            object.__setattr__(self, "sampler", sampler)
        return self

    @model_validator(mode="after")
    def _synthesized_problems_are_sampled(self) -> JobSpec:
        if self.source.synthesize is not None and self.sampler.kind is SamplerKind.REPLAY:
            raise ValueError(
                "source.synthesize writes new problems, which have no recorded completions to "
                "replay; use sampler kind `openai` or `vllm`"
            )
        return self


def parse_job_spec(data: object) -> JobSpec:
    """Validate a decoded JobSpec (a mapping), raising ``JobSpecError`` naming each bad field."""
    if not isinstance(data, Mapping):
        raise JobSpecError(
            f"a JobSpec must be a mapping of sections, got {type(data).__name__}",
            [f"(spec): expected a mapping, got {type(data).__name__}"],
        )
    try:
        return JobSpec.model_validate(data)
    except ValidationError as exc:
        problems = describe_validation_errors(exc)
        raise JobSpecError("invalid JobSpec:\n  " + "\n  ".join(problems), problems) from exc


def job_spec_from_yaml(text: str) -> JobSpec:
    """Parse a JobSpec from YAML (or JSON, which is YAML) text."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise JobSpecError(f"JobSpec is not valid YAML or JSON: {exc}") from exc
    return parse_job_spec(data)
