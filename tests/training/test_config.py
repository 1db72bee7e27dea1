"""The training config: §2.5 defaults, the shipped smoke config, clear refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploy.training.config import TrainingConfig, load_config
from deploy.training.errors import ConfigError
from tests.training.conftest import SMOKE_CONFIG


def test_defaults_follow_the_published_recipes() -> None:
    config = TrainingConfig(output_dir="out")
    w = config.weights
    assert (w.w_prefix, w.w_mid, w.w_suffix_chosen, w.w_suffix_rejected) == (1, 2, 1, 0)
    assert (config.beta, config.learning_rate, config.epochs) == (0.1, 1e-5, 2.0)
    assert (config.max_length, config.max_prompt_length) == (2048, 1024)
    assert (config.lr_scheduler, config.warmup_ratio, config.validation_fraction) == (
        "cosine",
        0.03,
        0.05,
    )
    assert config.per_device_batch_size * config.gradient_accumulation_steps * 8 == 128
    assert config.bf16 and config.gradient_checkpointing and config.rejected_diff_only
    assert config.nll_weight("target_dpo") == 1.0 and config.nll_weight("focused_dpo") == 0.0
    assert TrainingConfig(output_dir="o", alpha=0.5).nll_weight("focused_dpo") == 0.5


def test_every_field_is_documented() -> None:
    from deploy.training.config import FocusWeights

    for model in (TrainingConfig, FocusWeights):
        undocumented = [n for n, f in model.model_fields.items() if not f.description]
        assert undocumented == [], f"{model.__name__}: {undocumented}"


def test_the_smoke_config_is_small_cpu_fp32() -> None:
    config = load_config(SMOKE_CONFIG)
    assert config.model == "bundled" and not config.bf16
    assert (
        config.max_length <= 128 and 0 < config.max_steps <= 6 and config.per_device_batch_size == 2
    )


def test_unknown_and_bad_fields_are_named(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("output_dir: o\nbeta: -1\nlearning_rat: 0.1\nweights: {w_mid: -2}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert str(path) in message
    assert "beta: Input should be greater than 0 (got -1)" in message
    assert "learning_rat: Extra inputs are not permitted" in message
    assert "weights.w_mid" in message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("beta: [1", "not valid YAML"),
        ("- a\n- b\n", "must be a YAML mapping"),
        ("beta: 0.1\n", "output_dir: Field required"),
        ("output_dir: o\nmax_length: 64\nmax_prompt_length: 64\n", "must leave room"),
        ("output_dir: o\ngguf_file: x.gguf\n", "`bundled` needs none"),
    ],
)
def test_unusable_configs_are_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_a_missing_config_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the training config"):
        load_config(tmp_path / "absent.yaml")


def test_the_method_comes_from_the_pairs_or_the_config() -> None:
    from deploy.training.encoding import resolve_method

    assert resolve_method("auto", ["target_dpo", "target_dpo"]) == "target_dpo"
    assert resolve_method("auto", ["focused_dpo"]) == "focused_dpo"
    assert resolve_method("dpo", ["target_dpo", "focused_dpo"]) == "dpo"
    with pytest.raises(ConfigError, match=r"auto needs pairs of one method.*set `method`"):
        resolve_method("auto", ["target_dpo", "focused_dpo"])
    with pytest.raises(ConfigError, match=r"method\(s\) \['rlhf'\]"):
        resolve_method("focused_dpo", ["rlhf"])
