"""The ZeRO-3 path: ``accelerate launch`` with the shipped configs, a few bf16 steps.

Needs CUDA GPUs and DeepSpeed; elsewhere it skips with the reason. The model is randomly
initialised in SmolLM2-135M's shape (no weights travel to a GPU machine); only the
mechanics are asserted (exit 0, the summary, a saved model), never a score.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.records import PairMethod
from tests.training.conftest import (
    REPO_ROOT,
    SMOKE_CONFIG,
    TRAIN_SCRIPT,
    quickstart_pairs,
    write_dataset,
)

ACCELERATE_CONFIG = REPO_ROOT / "deploy" / "training" / "accelerate-zero3.yaml"


@pytest.fixture(scope="session")
def gpus() -> int:
    """GPUs visible here; skips without them (session scope: before the model is loaded)."""
    if importlib.util.find_spec("deepspeed") is None:
        pytest.skip("needs DeepSpeed: pip install -e '.[train]'")
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU (torch.cuda.is_available() is False)")
    return int(torch.cuda.device_count())


def test_zero3_launch_trains_a_few_steps(gpus: int, tmp_path: Path, model_dir: Path) -> None:
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    random_dir = tmp_path / "random-model"
    shape = AutoConfig.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_config(shape)  # type: ignore[no-untyped-call]
    model.save_pretrained(random_dir)
    AutoTokenizer.from_pretrained(model_dir).save_pretrained(random_dir)
    manifest = write_dataset(tmp_path / "data", quickstart_pairs(PairMethod.FOCUSED_DPO))
    config = yaml.safe_load(SMOKE_CONFIG.read_text(encoding="utf-8"))
    config.update(
        model=str(random_dir),
        output_dir=str(tmp_path / "out"),
        bf16=True,
        gradient_checkpointing=True,
        per_device_batch_size=1,
        gradient_accumulation_steps=2,
        max_steps=4,
    )
    config_path = tmp_path / "train.yaml"
    config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
    result = subprocess.run(
        [
            sys.executable, "-m", "accelerate.commands.launch",
            "--config_file", str(ACCELERATE_CONFIG),
            "--num_processes", str(gpus),
            str(TRAIN_SCRIPT), str(manifest), str(config_path),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    summary = json.loads((tmp_path / "out" / "training_summary.json").read_text())
    print(json.dumps({k: summary[k] for k in ("losses", "tokens_per_second", "seconds_per_step")}))
    assert summary["steps"] == 4 and len(summary["losses"]) == 4
    assert (tmp_path / "out" / "config.json").is_file()
