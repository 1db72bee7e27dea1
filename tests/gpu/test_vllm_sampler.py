"""The ``vllm`` sampler through ``ray.data.llm`` on a real GPU with a small real model.

Asserts structure (counts, ids, the assert prefix, determinism), never exact text.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip(
    "vllm", reason="needs vLLM: install the GPU extra (pip install 'pairforge[gpu]')"
)

from cluster.samplers import sample_dataset
from cluster.samplers.base import SampledRow
from cluster.sources import read_source
from pipeline.config import SamplerConfig, SamplerKind, SourceConfig
from pipeline.records import Problem

PROBLEMS = [
    Problem(
        problem_id="add",
        prompt='def add(a: int, b: int) -> int:\n    """Return a + b."""\n',
        entry_point="add",
    ),
    Problem(
        problem_id="is_even",
        prompt='def is_even(n: int) -> bool:\n    """True when n is even."""\n',
        entry_point="is_even",
    ),
]


def _sample(path: Path, model: str) -> list[SampledRow]:
    config = SamplerConfig(
        kind="vllm",
        model=model,
        k=2,
        temperature=0.8,
        max_tokens=24,
        batch_size=8,
        engine_options={"max_model_len": 512, "gpu_memory_utilization": 0.3, "enforce_eager": True},
    )
    ds = read_source(SourceConfig(path=str(path)), SamplerKind.VLLM)
    rows = [SampledRow.from_ray_row(r) for r in sample_dataset(ds, config, "gpu-job").take_all()]
    return sorted(rows, key=lambda r: r.index)


def test_vllm_sampler_returns_k_code_and_k_test_samples_per_problem(
    gpu_test_model, tmp_path, ray_local
):
    path = tmp_path / "problems.jsonl"
    path.write_text("".join(p.model_dump_json() + "\n" for p in PROBLEMS))

    rows = _sample(path, gpu_test_model)

    assert [r.problem for r in rows] == PROBLEMS
    for row in rows:
        assert row.sampler_errors == []
        codes, tests = row.code_completions or [], row.test_completions or []
        assert (len(codes), len(tests)) == (2, 2)
        assert all(t.startswith("assert ") for t in tests)
    # seeds derive from the job and problem ids: a second run samples the same text
    again = _sample(path, gpu_test_model)
    assert [(r.code_completions, r.test_completions) for r in again] == [
        (r.code_completions, r.test_completions) for r in rows
    ]
