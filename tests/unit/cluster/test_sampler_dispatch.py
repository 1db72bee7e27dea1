"""Sizing of the HTTP sampler's batches (the dispatch itself runs in the integration tests)."""

from __future__ import annotations

import pytest

from cluster.samplers import openai_batch_size
from pipeline.config import SamplerConfig


@pytest.mark.parametrize(
    ("k", "mode", "max_concurrency", "expected"),
    [
        (10, "separate", 8, 2),  # 20 requests per problem, 32 wanted in a batch: 2 problems
        (10, "joint", 8, 4),  # 10 requests per problem: 4 problems
        (100, "separate", 8, 1),  # one problem already fills every slot
        (1, "separate", 1, 2),  # 2 requests per problem, 4 wanted
    ],
)
def test_a_batch_holds_enough_requests_to_keep_every_slot_busy(k, mode, max_concurrency, expected):
    config = SamplerConfig(
        kind="openai",
        model="m",
        base_url="http://x/v1",
        k=k,
        prompt_mode=mode,
        max_concurrency=max_concurrency,
    )
    assert openai_batch_size(config) == expected
