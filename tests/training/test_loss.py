"""The weighted DPO loss on a fixed batch, against a direct computation and TRL's own loss.

The policy is the bundled model with its last layer perturbed, the reference the
unperturbed model, so the log-ratios are not zero and a wrong sign, a weight applied to
one model only, or a misaligned shift would show.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from deploy.training.config import FocusWeights
from deploy.training.encoding import WeightScheme
from pipeline.records import PairMethod
from pipeline.shards import pairs_table
from tests.training.conftest import quickstart_pairs

torch = pytest.importorskip("torch")
F = torch.nn.functional


def _rows(method: PairMethod, n: int = 2) -> list[dict[str, Any]]:
    # Short pairs keep the forward passes cheap.
    pairs = sorted(quickstart_pairs(method), key=lambda p: len(p.prompt) + len(p.chosen))[:n]
    rows: list[dict[str, Any]] = pairs_table(pairs).to_pylist()
    return rows


def _models(base_model: Any) -> tuple[Any, Any]:
    policy, ref = copy.deepcopy(base_model), copy.deepcopy(base_model)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in policy.model.layers[-1].parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.02)
    return policy, ref


def _args(tmp_path: Path) -> Any:
    from trl.trainer.dpo_config import DPOConfig

    return DPOConfig(
        output_dir=str(tmp_path),
        per_device_train_batch_size=2,
        beta=0.1,
        max_length=512,
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
    )


def _trainer(
    base_model: Any,
    tokenizer: Any,
    tmp_path: Path,
    method: str,
    rows: list[dict[str, Any]],
    alpha: float,
) -> Any:
    from datasets import Dataset

    from deploy.training.trainer import WeightedDPOTrainer

    policy, ref = _models(base_model)
    scheme = WeightScheme(
        method=method,  # type: ignore[arg-type]
        weights=FocusWeights(),
        unfocused="weighted",
        rejected_diff_only=True,
    )
    return WeightedDPOTrainer(
        policy,
        ref,
        _args(tmp_path),
        scheme=scheme,
        alpha=alpha,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
    )


def _batch(trainer: Any) -> dict[str, Any]:
    ds = trainer.train_dataset
    batch: dict[str, Any] = trainer.data_collator([ds[i] for i in range(len(ds))])
    return batch


def _direct_token_logps(model: Any, batch: dict[str, Any]) -> Any:
    """log p(token_t | tokens_<t) from the full logits, 0 outside the completion."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    logprobs = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    picked = logprobs.gather(-1, batch["input_ids"][:, 1:].unsqueeze(-1)).squeeze(-1)
    return picked * batch["completion_mask"][:, 1:]


@pytest.mark.parametrize(("method", "alpha"), [("focused_dpo", 0.0), ("target_dpo", 1.0)])
def test_weighted_loss_equals_the_direct_computation(
    base_model: Any, tokenizer: Any, tmp_path: Path, method: str, alpha: float
) -> None:
    pair_method = PairMethod.FOCUSED_DPO if method == "focused_dpo" else PairMethod.TARGET_DPO
    trainer = _trainer(base_model, tokenizer, tmp_path, method, _rows(pair_method), alpha)
    batch = _batch(trainer)
    weights = batch["token_weights"]
    # The collator put the stored span weights after the prompt and 0 on prompt and padding.
    assert torch.all(weights[batch["completion_mask"] == 0] == 0)
    assert set(weights.unique().tolist()) == (
        {0.0, 1.0, 2.0} if method == "focused_dpo" else {0.0, 1.0}
    )

    loss = trainer.compute_loss(trainer.model, batch)
    _, chosen_rewards, rejected_rewards, nll = trainer.pair_terms(trainer.model, batch)

    with torch.no_grad():
        w = weights[:, 1:]
        policy_tokens = _direct_token_logps(trainer.model, batch)
        ref_tokens = _direct_token_logps(trainer.ref_model, batch)
        ratios = ((policy_tokens - ref_tokens) * w).sum(dim=1)
        chosen_ratio, rejected_ratio = ratios.chunk(2)
        expected_dpo = -F.logsigmoid(0.1 * (chosen_ratio - rejected_ratio)).mean()
        chosen_mask = batch["completion_mask"][:, 1:].chunk(2)[0]
        expected_nll = -(policy_tokens.chunk(2)[0] * chosen_mask).sum() / chosen_mask.sum()
        expected = expected_dpo + alpha * expected_nll

    print(
        f"{method}: loss {loss.item():.6f}, direct {expected.item():.6f}, "
        f"margins {(chosen_ratio - rejected_ratio).tolist()}"
    )
    assert torch.allclose(chosen_rewards, 0.1 * chosen_ratio, atol=1e-5)
    assert torch.allclose(rejected_rewards, 0.1 * rejected_ratio, atol=1e-5)
    assert abs(nll.item() - expected_nll.item()) < 1e-5
    assert abs(loss.item() - expected.item()) < 1e-5
    # Not a degenerate batch: the perturbed policy moved the rewards.
    assert (chosen_ratio - rejected_ratio).abs().min() > 1e-3
    loss.backward()
    assert trainer.model.model.layers[0].self_attn.q_proj.weight.grad is not None


def test_all_weights_one_reproduce_trl_dpo_loss(
    base_model: Any, tokenizer: Any, tmp_path: Path
) -> None:
    from datasets import Dataset
    from trl.trainer.dpo_trainer import DPOTrainer

    rows = _rows(PairMethod.FOCUSED_DPO)
    mine = _trainer(base_model, tokenizer, tmp_path / "mine", "dpo", rows, alpha=0.0)
    policy, ref = _models(base_model)
    trl_rows = [{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in rows]
    theirs = DPOTrainer(
        model=policy,
        ref_model=ref,
        args=_args(tmp_path / "trl"),
        train_dataset=Dataset.from_list(trl_rows),
        processing_class=tokenizer,
    )
    ours_batch, trl_batch = _batch(mine), _batch(theirs)
    # Same tokens, same completion positions: the offsets-aware tokenization is TRL's.
    assert torch.equal(ours_batch["input_ids"], trl_batch["input_ids"])
    assert torch.equal(ours_batch["completion_mask"], trl_batch["completion_mask"])
    ours = mine.compute_loss(mine.model, ours_batch)
    expected = theirs.compute_loss(theirs.model, trl_batch)  # type: ignore[no-untyped-call]
    print(f"plain DPO: ours {ours.item():.8f}, TRL {expected.item():.8f}")
    assert abs(ours.item() - expected.item()) < 1e-5
    assert abs(expected.item() - 0.6931) > 1e-3  # policy and reference differ
