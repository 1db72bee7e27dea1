"""The ``vllm`` sampler: ``ray.data.llm``'s vLLM processor, one row per sample.

``ray.data.llm``'s vLLM stage keeps only the first output of a request, so ``n = k`` is
not an option: every problem is expanded into ``k`` code rows and ``k`` test rows (or
``k`` joint rows), each with its own ``seed`` in ``sampling_params``, and the generated
rows are regrouped per problem afterwards. vLLM's prefix caching (enabled here) makes the
repeated prompts cost one prefill each.

Pipeline::

    {"state": ProblemState} ──flat_map(expand_row)──► one request row per sample
    ──processor──► generated rows ──map(generation_row)──► slim rows
    ──groupby("problem_id").map_groups(regroup_batch)──► {"state": ProblemState} with samples

Request rows hold only plain columns (the state travels as JSON text beside them), since
the processor's stages rebuild rows from their own columns.

vLLM and ``ray.data.llm`` are imported only when the processor is built; everything else
here is plain Python and is tested on CPU.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.config import SamplerConfig
from pipeline.errors import ConfigError, ContractViolation, SamplerUnavailable
from pipeline.problem_state import ProblemState
from pipeline.refinement import collect_round, plan_round
from pipeline.sampling import SampleRequest, SampleResult, SampleRole, assemble, plan_requests

if TYPE_CHECKING:
    import ray.data

GENERATION_COLUMNS = (
    "problem_id",
    "state_json",
    "role",
    "sample_index",
    "request_prompt",
    "seed",
    "generated_text",
    "error",
)
"""Columns of a generated sample row, between the vLLM processor and the regrouping."""

_ERROR_COLUMN = "__inference_error__"
"""Where ``ray.data.llm`` puts a per-row error when ``should_continue_on_error`` is set."""


def engine_kwargs(config: SamplerConfig) -> dict[str, Any]:
    """vLLM engine arguments: prefix caching on, the spec's parallelism, its engine options.

    Raises:
        ConfigError: ``engine_options`` sets ``tensor_parallel_size`` to a value other
            than the typed field's (two sources of truth for one knob).
    """
    options = dict(config.engine_options)
    tp = options.pop("tensor_parallel_size", config.tensor_parallel_size)
    if tp != config.tensor_parallel_size:
        raise ConfigError(
            f"sampler.engine_options.tensor_parallel_size ({tp}) contradicts "
            f"sampler.tensor_parallel_size ({config.tensor_parallel_size}); set it once, "
            "in sampler.tensor_parallel_size"
        )
    return {"enable_prefix_caching": True, **options, "tensor_parallel_size": tp}


def processor_config_kwargs(config: SamplerConfig) -> dict[str, Any]:
    """Keyword arguments of ``ray.data.llm.vLLMEngineProcessorConfig`` for this spec."""
    return {
        "model_source": config.model,
        "engine_kwargs": engine_kwargs(config),
        "concurrency": config.concurrency,
        "batch_size": config.batch_size,
        # `endpoint: chat` means "the model is a chat model" here too: apply its template.
        "chat_template_stage": config.endpoint == "chat",
        # vLLM tokenizes the prompt and returns the text itself; separate CPU stages for
        # that would only add two more actor pools and a tokenizer download each.
        "tokenize_stage": False,
        "detokenize_stage": False,
        # A failed sample becomes a sampler error on its problem instead of failing the job.
        "should_continue_on_error": True,
    }


def sampling_params(config: SamplerConfig, seed: int) -> dict[str, Any]:
    """vLLM ``SamplingParams`` of one sample (``n = 1``: the stage keeps one output)."""
    return {
        "n": 1,
        "temperature": config.temperature,
        "top_p": config.top_p,
        "max_tokens": config.max_tokens,
        "seed": seed,
    }


CARRY_ROLE = "carry"
"""Role of the one placeholder request of a problem with nothing to ask in a refinement
round: ``map_groups`` only sees problems that have rows, so a problem whose trajectories
all passed rides along as one one-token request, and ``regroup`` drops its answer."""


def _requests(
    state: ProblemState, config: SamplerConfig, job_id: str, round_: int | None
) -> list[SampleRequest]:
    if round_ is None:
        return plan_requests(state.problem, config, job_id)
    return plan_round(state, config, job_id, round_)


def expand_row(
    row: dict[str, Any], *, config: SamplerConfig, job_id: str, round_: int | None = None
) -> list[dict[str, Any]]:
    """Ray Data ``flat_map``: one source row → one request row per sample.

    Each request row holds the processor's inputs (``prompt`` or ``messages``, and
    ``sampling_params``) plus what regrouping needs (the problem and the sample's place).
    ``round_`` is the Target-DPO round (None in a Focused-DPO build).
    """
    state: ProblemState = row["state"]
    state_json = state.model_dump_json()
    out = []
    requests = _requests(state, config, job_id, round_)
    if not requests:
        carry = SampleRequest(state.problem_id, SampleRole.CODE, 0, ".", 0)
        params = {**sampling_params(config, 0), "max_tokens": 1}
        return [
            {
                "problem_id": state.problem_id,
                "state_json": state_json,
                "role": CARRY_ROLE,
                "sample_index": 0,
                "request_prompt": carry.prompt,
                "seed": 0,
                "sampling_params": params,
                **(
                    {"messages": carry.chat()}
                    if config.endpoint == "chat"
                    else {"prompt": carry.prompt}
                ),
            }
        ]
    for request in requests:
        item: dict[str, Any] = {
            "problem_id": state.problem_id,
            "state_json": state_json,
            "role": request.role.value,
            "sample_index": request.index,
            "request_prompt": request.prompt,
            "seed": request.seed,
            "sampling_params": sampling_params(config, request.seed),
        }
        if config.endpoint == "chat":
            item["messages"] = request.chat()
        else:
            item["prompt"] = request.prompt
        out.append(item)
    return out


def generation_row(row: dict[str, Any]) -> dict[str, Any]:
    """Ray Data ``map``: a processor output row → ``GENERATION_COLUMNS`` only."""
    error = str(row.get(_ERROR_COLUMN) or "")
    return {
        "problem_id": row["problem_id"],
        "state_json": row["state_json"],
        "role": row["role"],
        "sample_index": int(row["sample_index"]),
        "request_prompt": row["request_prompt"],
        "seed": int(row["seed"]),
        "generated_text": "" if error else str(row.get("generated_text") or ""),
        "error": error,
    }


def regroup(
    rows: Sequence[Mapping[str, Any]], config: SamplerConfig, round_: int | None = None
) -> ProblemState:
    """The generated rows of one problem → its state with the samples.

    Raises:
        ContractViolation: the rows are empty or belong to several problems.
    """
    if not rows:
        raise ContractViolation("regroup got no rows; a group holds at least one sample")
    problem_ids = {r["problem_id"] for r in rows}
    if len(problem_ids) != 1:
        raise ContractViolation(f"regroup got rows of several problems: {sorted(problem_ids)}")
    state = ProblemState.model_validate_json(rows[0]["state_json"])
    results = [
        SampleResult(
            SampleRequest(
                problem_id=r["problem_id"],
                role=SampleRole(r["role"]),
                index=int(r["sample_index"]),
                prompt=r["request_prompt"],
                seed=int(r["seed"]),
            ),
            text=None if r["error"] else r["generated_text"],
            error=f"vLLM: {r['error']}" if r["error"] else None,
        )
        for r in rows
        if r["role"] != CARRY_ROLE
    ]
    continuation = config.endpoint != "chat"
    if round_ is None:
        return assemble(state, config, results, continuation=continuation)
    return collect_round(state, config, results, continuation=continuation, round_=round_)


def regroup_batch(
    batch: Mapping[str, Any], *, config: SamplerConfig, round_: int | None = None
) -> dict[str, list[Any]]:
    """Ray Data ``map_groups`` UDF: one problem's generated rows → its state with samples."""
    return {"state": [regroup(rows_of(batch), config, round_)]}


def rows_of(batch: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A columnar numpy batch (``{column: array}``) as a list of plain row dicts."""
    columns = list(batch)
    length = len(batch[columns[0]]) if columns else 0
    return [{c: _plain(batch[c][i]) for c in columns} for i in range(length)]


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _require_vllm() -> None:
    missing = [m for m in ("vllm", "ray.data.llm") if importlib.util.find_spec(m) is None]
    if missing:
        raise SamplerUnavailable(
            f"sampler kind `vllm` needs {' and '.join(missing)}, which is not installed here; "
            "install the GPU extra (`pip install 'pairforge[gpu]'`) on the driver and the GPU "
            "nodes, or use sampler kind `openai` against a `vllm serve` endpoint"
        )


def build_vllm_sampler(
    config: SamplerConfig, job_id: str, round_: int | None = None
) -> Callable[[ray.data.Dataset], ray.data.Dataset]:
    """A function from source rows to sampled rows that runs vLLM through ``ray.data.llm``.

    ``round_`` is the Target-DPO round (None in a Focused-DPO build): each round is its
    own processor, so a refinement build holds ``max_rounds + 1`` engine replicas
    (``sampler.concurrency`` each); size ``engine_options.gpu_memory_utilization`` for that.

    Raises:
        SamplerUnavailable: vLLM (the ``gpu`` extra) is not installed.
    """
    _require_vllm()
    from ray.data.llm import build_processor, vLLMEngineProcessorConfig

    processor = build_processor(vLLMEngineProcessorConfig(**processor_config_kwargs(config)))

    def run(ds: ray.data.Dataset) -> ray.data.Dataset:
        requests = ds.flat_map(
            functools.partial(expand_row, config=config, job_id=job_id, round_=round_)
        )
        generated = processor(requests).map(generation_row)
        return generated.groupby("problem_id").map_groups(
            regroup_batch,  # type: ignore[arg-type]  # Ray converts our list columns itself
            fn_kwargs={"config": config, "round_": round_},
        )

    return run
