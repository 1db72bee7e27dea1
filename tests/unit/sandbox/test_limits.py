"""Sandbox configuration: defaults, derived limits and what is rejected."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from sandbox.limits import PoolConfig, SandboxLimits


def test_cell_address_space_defaults_to_memory_minus_headroom() -> None:
    assert SandboxLimits(memory_mb=512).address_space_mb == 448
    assert SandboxLimits(memory_mb=100).address_space_mb == 64
    assert SandboxLimits(memory_mb=512, cell_address_space_mb=200).address_space_mb == 200


def test_cell_address_space_may_not_exceed_the_container() -> None:
    with pytest.raises(ValidationError, match="must not exceed memory_mb"):
        SandboxLimits(memory_mb=256, cell_address_space_mb=300)


def test_cells_must_leave_pids_for_the_runner() -> None:
    with pytest.raises(ValidationError, match="must be below pids"):
        SandboxLimits(pids=16, cell_processes=16)


@pytest.mark.parametrize(
    "bad", [{"workers": 0}, {"timeout_s": 0}, {"retries": -1}, {"surprise": 1}]
)
def test_pool_config_rejects_bad_values(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        PoolConfig.model_validate(bad)
