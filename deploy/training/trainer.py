"""A TRL DPOTrainer whose sequence log-probabilities are weighted sums over tokens.

TRL 1.16's ``DPOTrainer._compute_loss`` sums the fused LM head's per-token log-probs over
the completion for the policy and the reference model. Here each token's log-prob is
multiplied by its weight first, for both models alike, so the implicit reward of a
completion is ``β Σ_i ω_i (log π_θ(y_i|·) − log π_ref(y_i|·))`` (ALGORITHMS.md §1.8,
§2.4). The loss is TRL's ``sigmoid`` DPO loss on those rewards, plus ``alpha`` times the
mean token NLL over the chosen completions (RPO; Target-DPO's α = 1). With every weight 1
and ``alpha`` 0 it is TRL's own loss, which ``tests/training`` checks.

The weights travel with the batch: ``encoding.py`` tokenizes with offsets, and
``WeightedPreferenceCollator`` pads them alongside TRL's ``completion_mask``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from datasets import Dataset, IterableDataset
from trl.models.utils import disable_gradient_checkpointing
from trl.trainer.dpo_config import DPOConfig
from trl.trainer.dpo_trainer import DataCollatorForPreference, DPOTrainer
from trl.trainer.utils import pad

from deploy.training.encoding import ENCODED_COLUMNS, WeightScheme, encode_dataset


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


@dataclass
class WeightedPreferenceCollator(DataCollatorForPreference):
    """TRL's preference collator plus ``token_weights``: 0 on the prompt and padding."""

    def torch_call(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        batch = super().torch_call(examples)
        rows = [
            [0.0] * len(ex["prompt_ids"]) + list(ex[f"{side}_weights"])
            for side in ("chosen", "rejected")
            for ex in examples
        ]
        if self.max_length is not None:
            # Same cut as the collator applies to the ids (encoding drops long pairs anyway).
            cut = (
                slice(None, self.max_length)
                if self.truncation_mode == "keep_start"
                else slice(-self.max_length, None)
            )
            rows = [r[cut] for r in rows]
        batch["token_weights"] = pad(
            [torch.tensor(r, dtype=torch.float32) for r in rows],
            padding_value=0,  # pad() fills with this; 0 is 0.0 in a float tensor
            padding_side="right",
            pad_to_multiple_of=self.pad_to_multiple_of,
        )
        return batch


@dataclass(frozen=True)
class PreferenceStats:
    """Rewards of a set of pairs under the current policy (β·weighted log-ratios)."""

    pairs: int
    loss: float
    reward_margin: float
    reward_accuracy: float
    """Share of pairs whose chosen reward is strictly above the rejected one."""

    def as_dict(self) -> dict[str, float | int]:
        return {
            "pairs": self.pairs,
            "loss": self.loss,
            "reward_margin": self.reward_margin,
            "reward_accuracy": self.reward_accuracy,
        }


class WeightedDPOTrainer(DPOTrainer):
    """DPO with per-token weights on both models' log-probs, and an optional NLL term.

    Args:
        scheme: how pairs become weights (used when a dataset is not yet encoded).
        alpha: weight of the chosen-completion NLL added to the loss.
        ref_model: required; TRL would otherwise reload the policy from its config's path,
            which a GGUF-loaded model cannot do.
        max_prompt_length: pairs with a longer prompt are dropped (``max_length`` comes
            from ``args``).

    Only TRL's ``sigmoid`` loss and ``reverse_kl`` divergence are supported, without
    PEFT, ``ld_alpha`` or WPO weighting: the weights are the point of this trainer.
    """

    def __init__(
        self,
        model: Any,
        ref_model: Any,
        args: DPOConfig,
        *,
        scheme: WeightScheme,
        alpha: float = 0.0,
        max_prompt_length: int | None = None,
        **kwargs: Any,
    ) -> None:
        unsupported = {
            "loss_type": args.loss_type != ["sigmoid"],
            "f_divergence_type": args.f_divergence_type != "reverse_kl",
            "ld_alpha": args.ld_alpha is not None,
            "use_weighting": bool(args.use_weighting),
        }
        if any(unsupported.values()):
            raise ValueError(
                f"WeightedDPOTrainer supports the sigmoid DPO loss only; unsupported settings: "
                f"{[k for k, v in unsupported.items() if v]}"
            )
        if ref_model is None:
            raise ValueError("WeightedDPOTrainer needs an explicit ref_model")
        self.scheme = scheme
        self.alpha = alpha
        self.max_prompt_length = max_prompt_length
        self.dropped: dict[str, dict[str, int]] = {}
        self.train_tokens = 0
        tokenizer = kwargs["processing_class"]
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        kwargs.setdefault(
            "data_collator",
            WeightedPreferenceCollator(
                pad_token_id=tokenizer.pad_token_id,
                max_length=args.max_length,
                truncation_mode=args.truncation_mode,
                pad_to_multiple_of=_int_or_none(args.pad_to_multiple_of),
            ),
        )
        super().__init__(model=model, ref_model=ref_model, args=args, **kwargs)

    @property
    def _policy(self) -> Any:
        """The policy model (``Trainer.model``, typed loosely by transformers)."""
        return self.model

    @property
    def _checkpointing_kwargs(self) -> Any:
        return self.args.gradient_checkpointing_kwargs

    def _prepare_dataset(
        self,
        dataset: Dataset | IterableDataset,
        processing_class: Any,
        args: DPOConfig,
        dataset_name: str,
    ) -> Dataset:
        if all(c in dataset.column_names for c in ENCODED_COLUMNS):
            return dataset
        encoded, dropped = encode_dataset(
            dataset,
            processing_class,
            self.scheme,
            max_length=args.max_length,
            max_prompt_length=self.max_prompt_length,
        )
        self.dropped[dataset_name] = dropped
        return encoded

    def _set_signature_columns_if_needed(self) -> None:
        if self._signature_columns is None:
            # transformers declares the attribute as None-typed; it holds column names.
            self._signature_columns = list(ENCODED_COLUMNS)  # type: ignore[assignment]

    def _weighted_logps(
        self, model: Any, inputs: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sequence weighted log-probs ``[2B]`` and the per-token log-probs ``[2B, T-1]``."""
        completion_mask = inputs["completion_mask"]
        labels = inputs["input_ids"].masked_fill(completion_mask == 0, -100)
        outputs = model(
            input_ids=inputs["input_ids"],
            attention_mask=inputs["attention_mask"],
            labels=labels,
            use_cache=False,
            fused_lm_head=True,
        )
        seq_len = completion_mask.size(1) - 1
        per_token = outputs.log_probs[:, -seq_len:]
        weights = inputs["token_weights"][:, 1:].to(per_token.dtype)
        return (per_token * weights).sum(dim=1), per_token

    def _reference_logps(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        with (
            torch.no_grad(),
            disable_gradient_checkpointing(self._policy, self._checkpointing_kwargs),
        ):
            logps, _ = self._weighted_logps(self.ref_model, inputs)
        return logps

    def compute_ref_log_probs(self, model: Any, inputs: dict[str, torch.Tensor]) -> Any:
        """Weighted reference log-probs, also for ``precompute_ref_log_probs``."""
        with (
            torch.no_grad(),
            disable_gradient_checkpointing(self._policy, self._checkpointing_kwargs),
            self.accelerator.autocast(),
        ):
            logps, _ = self._weighted_logps(model, inputs)
        return logps.chunk(2, dim=0)

    def pair_terms(
        self, model: Any, inputs: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Loss, chosen and rejected rewards (β·weighted log-ratio per pair), chosen NLL."""
        logps, per_token = self._weighted_logps(model, inputs)
        if self.precompute_ref_logps:
            ref_chosen, ref_rejected = inputs["ref_chosen_logps"], inputs["ref_rejected_logps"]
        else:
            ref_chosen, ref_rejected = self._reference_logps(inputs).chunk(2, dim=0)
        chosen, rejected = logps.chunk(2, dim=0)
        chosen_logratios = chosen - ref_chosen
        rejected_logratios = rejected - ref_rejected
        loss = -F.logsigmoid(self.beta * (chosen_logratios - rejected_logratios)).mean()
        chosen_mask = inputs["completion_mask"][:, 1:].chunk(2, dim=0)[0].to(per_token.dtype)
        chosen_tokens = per_token.chunk(2, dim=0)[0]
        # Mean over every chosen completion token of the batch, as RPO and the official
        # Target-DPO trainer (cross-entropy over the batch) compute it.
        nll = -(chosen_tokens * chosen_mask).sum() / chosen_mask.sum().clamp(min=1.0)
        if self.alpha:
            loss = loss + self.alpha * nll
        return loss, self.beta * chosen_logratios, self.beta * rejected_logratios, nll

    def _compute_loss(
        self, model: Any, inputs: dict[str, torch.Tensor], return_outputs: bool
    ) -> Any:
        if return_outputs:
            raise ValueError("WeightedDPOTrainer computes no logits to return")
        mode = "train" if self._policy.training else "eval"
        loss, chosen_rewards, rejected_rewards, nll = self.pair_terms(model, inputs)
        chosen_rewards, rejected_rewards = chosen_rewards.detach(), rejected_rewards.detach()
        if mode == "train":
            tokens = self.accelerator.gather_for_metrics(inputs["attention_mask"].sum()).sum()
            self.train_tokens += int(tokens.item())
        gather = self.accelerator.gather
        metrics = self._metrics[mode]
        metrics["rewards/chosen"].append(gather(chosen_rewards).mean().item())
        metrics["rewards/rejected"].append(gather(rejected_rewards).mean().item())
        metrics["rewards/accuracies"].append(
            gather((chosen_rewards > rejected_rewards).float()).mean().item()
        )
        metrics["rewards/margins"].append(gather(chosen_rewards - rejected_rewards).mean().item())
        metrics["nll"].append(gather(nll.detach()).mean().item())
        return loss

    @torch.no_grad()
    def measure(self, dataset: Dataset, *, before_training: bool = False) -> PreferenceStats:
        """Loss, mean reward margin and reward accuracy of the policy on encoded pairs.

        ``before_training`` runs the reference model as the policy: the two are the same
        weights then, and the reference is already prepared (placed, or a DeepSpeed
        engine under ZeRO-3) while the policy is not until ``train`` starts.
        """
        was_training = self._policy.training
        model: Any = self.ref_model if before_training else self.model_wrapped
        model.eval()
        losses, margins, correct, pairs = [], [], 0, 0
        for batch in self.get_eval_dataloader(dataset):
            batch = self._prepare_inputs(batch)
            with self.compute_loss_context_manager():
                loss, chosen, rejected, _ = self.pair_terms(model, batch)
            chosen, rejected = self.accelerator.gather_for_metrics((chosen, rejected))
            losses.append(float(loss) * len(chosen))
            margins.extend((chosen - rejected).tolist())
            correct += int((chosen > rejected).sum())
            pairs += len(chosen)
        if was_training:
            self._policy.train()
        if pairs == 0:
            nan = float("nan")
            return PreferenceStats(pairs=0, loss=nan, reward_margin=nan, reward_accuracy=nan)
        return PreferenceStats(
            pairs=pairs,
            loss=sum(losses) / pairs,
            reward_margin=sum(margins) / pairs,
            reward_accuracy=correct / pairs,
        )
