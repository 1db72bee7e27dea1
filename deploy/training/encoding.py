"""Pairs → token ids and per-token weights, the way TRL's DPOTrainer tokenizes them.

TRL (1.16) tokenizes ``prompt`` alone and ``prompt + completion + EOS`` whole, and starts
the completion where the two token lists diverge (a token may merge across the boundary).
This module does exactly that, but asks the fast tokenizer for offsets too, so every
completion token carries its character span and so its weight (``weights.py``). With all
weights 1 the ids are TRL's own, which the control test checks.

Pairs longer than the token limits are dropped and counted by reason; pairs the chosen
method cannot weight (no spans) are refused with the problem's id.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from datasets import Dataset

from deploy.training.config import FocusWeights, Method, TrainingConfig, UnfocusedPolicy
from deploy.training.errors import ConfigError
from deploy.training.weights import Span, focused_weights, line_weights, uniform_weights

ResolvedMethod = Literal["focused_dpo", "target_dpo", "dpo"]

ENCODED_COLUMNS = ("prompt_ids", "chosen_ids", "rejected_ids", "chosen_weights", "rejected_weights")
"""Columns an encoded dataset has; the collator reads them."""

_MID_COLUMNS = ("chosen_mid_start", "chosen_mid_end", "rejected_mid_start", "rejected_mid_end")

DROP_REASONS = ("prompt_too_long", "too_long", "unfocused")
"""Why a pair is left out of training, as counted in ``training_summary.json``."""


@dataclass(frozen=True)
class WeightScheme:
    """How a method turns a pair's spans into weights."""

    method: ResolvedMethod
    weights: FocusWeights
    unfocused: UnfocusedPolicy
    rejected_diff_only: bool

    @classmethod
    def from_config(cls, config: TrainingConfig, method: ResolvedMethod) -> WeightScheme:
        return cls(
            method=method,
            weights=config.weights,
            unfocused=config.unfocused,
            rejected_diff_only=config.rejected_diff_only,
        )


def resolve_method(configured: Method, methods_in_data: Sequence[str]) -> ResolvedMethod:
    """The method to train with: the configured one, or for ``auto`` the data's own.

    Raises:
        ConfigError: ``auto`` over pairs of several methods, or an unknown method value.
    """
    found = sorted(set(methods_in_data))
    unknown = [m for m in found if m not in ("focused_dpo", "target_dpo")]
    if unknown:
        raise ConfigError(
            f"pairs carry method(s) {unknown}; this training job knows focused_dpo and target_dpo"
        )
    if configured != "auto":
        return configured
    if len(found) != 1:
        raise ConfigError(
            f"method auto needs pairs of one method, the dataset holds {found or 'no pairs'}; "
            f"set `method` in the training config"
        )
    method: ResolvedMethod = "focused_dpo" if found[0] == "focused_dpo" else "target_dpo"
    return method


def _pair_weights(
    row: dict[str, Any], scheme: WeightScheme, chosen: list[Span], rejected: list[Span]
) -> tuple[list[float], list[float]] | None:
    """Weights of both completions, or None when the pair is dropped as unfocused."""
    if scheme.method == "dpo":
        return uniform_weights(chosen), uniform_weights(rejected)
    pid = row.get("problem_id", "?")
    if scheme.method == "target_dpo":
        lines = row.get("rejected_line_spans")
        if lines is None:
            raise ConfigError(
                f"method target_dpo needs rejected_line_spans (D- lines); the pair of problem "
                f"{pid!r} has none (method {row.get('method')!r}); use method dpo or focused_dpo"
            )
        minus = [(int(s["start"]), int(s["end"])) for s in lines]
        rej = (
            line_weights(rejected, minus)
            if scheme.rejected_diff_only
            else uniform_weights(rejected)
        )
        return uniform_weights(chosen), rej
    mids = [row.get(k) for k in _MID_COLUMNS]
    if any(m is None for m in mids):
        raise ConfigError(
            f"method focused_dpo needs the mid spans (chosen_mid_start/end, rejected_mid_start/"
            f"end); the pair of problem {pid!r} has none (method {row.get('method')!r}); use "
            f"method dpo or target_dpo"
        )
    # Shards written before schema version 1 lack `focused`; their pairs were all focused.
    if not row.get("focused", True):
        if scheme.unfocused == "drop":
            return None
        if scheme.unfocused == "plain_dpo":
            return uniform_weights(chosen), uniform_weights(rejected)
    w = scheme.weights
    c_mid = (int(mids[0]), int(mids[1]))  # type: ignore[arg-type]
    r_mid = (int(mids[2]), int(mids[3]))  # type: ignore[arg-type]
    return (
        focused_weights(
            chosen, c_mid, prefix=w.w_prefix, mid_weight=w.w_mid, suffix=w.w_suffix_chosen
        ),
        focused_weights(
            rejected, r_mid, prefix=w.w_prefix, mid_weight=w.w_mid, suffix=w.w_suffix_rejected
        ),
    )


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def encode_pair(
    row: dict[str, Any],
    tokenizer: Any,
    scheme: WeightScheme,
    *,
    max_length: int | None,
    max_prompt_length: int | None,
) -> dict[str, Any]:
    """Token ids and weights of one pair, with ``drop`` set to a reason or empty.

    The completions get the tokenizer's EOS appended unless they end with it, as TRL does.
    """
    prompt, eos = row["prompt"], tokenizer.eos_token
    texts = [c if c.endswith(eos) else c + eos for c in (row["chosen"], row["rejected"])]
    prompt_ids = tokenizer(text=prompt)["input_ids"]
    full = [tokenizer(text=prompt + t, return_offsets_mapping=True) for t in texts]
    prompt_len = min(_common_prefix(prompt_ids, f["input_ids"]) for f in full)
    ids = [list(f["input_ids"][prompt_len:]) for f in full]
    shift = len(prompt)
    offsets = [[(s - shift, e - shift) for s, e in f["offset_mapping"][prompt_len:]] for f in full]
    out: dict[str, Any] = {
        "prompt_ids": list(prompt_ids[:prompt_len]),
        "chosen_ids": ids[0],
        "rejected_ids": ids[1],
        "chosen_weights": [],
        "rejected_weights": [],
        "drop": "",
    }
    if max_prompt_length is not None and prompt_len > max_prompt_length:
        out["drop"] = "prompt_too_long"
        return out
    if max_length is not None and prompt_len + max(len(ids[0]), len(ids[1])) > max_length:
        out["drop"] = "too_long"
        return out
    weights = _pair_weights(row, scheme, offsets[0], offsets[1])
    if weights is None:
        out["drop"] = "unfocused"
        return out
    out["chosen_weights"], out["rejected_weights"] = weights
    return out


def encode_dataset(
    dataset: Dataset,
    tokenizer: Any,
    scheme: WeightScheme,
    *,
    max_length: int | None,
    max_prompt_length: int | None,
) -> tuple[Dataset, dict[str, int]]:
    """Encode every pair; drop those over the limits. Returns the dataset and drop counts.

    Raises:
        ConfigError: the tokenizer gives no offsets (not a fast tokenizer), or a pair has
            no spans for the method.
    """
    if not getattr(tokenizer, "is_fast", False):
        raise ConfigError(
            f"per-token weights need a fast tokenizer with offset mapping; "
            f"{type(tokenizer).__name__} is not one"
        )
    encoded = dataset.map(
        encode_pair,
        fn_kwargs={
            "tokenizer": tokenizer,
            "scheme": scheme,
            "max_length": max_length,
            "max_prompt_length": max_prompt_length,
        },
        remove_columns=dataset.column_names,
        desc="Tokenizing pairs with offsets",
    )
    drops = Counter(d for d in encoded["drop"] if d)
    kept = encoded.filter(lambda d: not d, input_columns="drop").remove_columns("drop")
    return kept, {reason: drops.get(reason, 0) for reason in DROP_REASONS}
