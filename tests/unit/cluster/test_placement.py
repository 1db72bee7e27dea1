"""Placement as data: what each stage of a build asks Ray for, and how it is passed on."""

from __future__ import annotations

from typing import Any

import pytest

from cluster.placement import (
    OPENAI_ACTOR_CPUS,
    SANDBOX_RESOURCE,
    StagePlacement,
    build_placement,
    openai_batch_size,
)
from pipeline.config import JobSpec, SamplerConfig


@pytest.mark.parametrize(
    ("k", "mode", "max_concurrency", "expected"),
    [
        (10, "separate", 8, 2),  # 20 requests per problem, 32 wanted in a batch: 2 problems
        (10, "joint", 8, 4),  # 10 requests per problem: 4 problems
        (100, "separate", 8, 1),  # one problem already fills every slot
        (1, "separate", 1, 2),  # 2 requests per problem, 4 wanted
        (3, "separate", 8, 6),  # 6 per problem, 32 wanted: rounded up so no slot idles
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


def spec(sampler: dict[str, Any], **sandbox: Any) -> JobSpec:
    return JobSpec.model_validate(
        {
            "source": {"path": "in.jsonl"},
            "sampler": sampler,
            "sandbox": sandbox,
            "output": {"uri": "/tmp/out"},
        }
    )


REPLAY = {"kind": "replay"}
OPENAI = {"kind": "openai", "model": "m", "base_url": "http://x/v1", "k": 10}
VLLM = {"kind": "vllm", "model": "m", "tensor_parallel_size": 2, "concurrency": 3, "batch_size": 32}


def plain(options: dict) -> dict:
    """Ray options with the compute strategy as (min actors, max actors), comparable."""
    compute = options.pop("compute", None)
    if compute is not None:
        options["actors"] = (compute.min_size, compute.max_size)
    return options


def test_executors_ask_for_the_sandbox_resource_not_cpus_in_an_autoscaling_pool():
    execute = build_placement(spec(REPLAY, min_workers=2, max_workers=6)).execute
    assert plain(execute.ray_options()) == {
        "num_cpus": 0,
        "resources": {SANDBOX_RESOURCE: 1.0},
        "actors": (2, 6),
    }


def test_the_http_sampler_is_one_light_actor_with_batches_sized_for_its_slots():
    placement = build_placement(spec(OPENAI))
    assert plain(placement.sample.ray_options()) == {
        "num_cpus": OPENAI_ACTOR_CPUS,
        "actors": (1, 1),
        "batch_size": 2,  # k = 10 separate: 20 requests a problem, 4 x 8 slots wanted
    }
    assert OPENAI_ACTOR_CPUS < 1


def test_target_dpo_rounds_share_one_sampler_cpu_and_the_sandbox_resource():
    # Six passes (max_rounds 5): six HTTP actors and six executor pools. Were each to
    # take what one Focused-DPO stage takes, the actors would hold 1.5 of 2 CPUs and the
    # parse tasks (1 CPU each) would never be scheduled.
    data = spec(OPENAI, max_workers=2).model_dump(mode="json")
    data["pairs"] = {"method": "target_dpo", "max_rounds": 5}
    placement = build_placement(JobSpec.model_validate(data))
    assert placement.sample.num_cpus == pytest.approx(OPENAI_ACTOR_CPUS / 6)
    assert placement.execute.resources == {SANDBOX_RESOURCE: pytest.approx(1 / 6)}
    assert placement.execute.concurrency == (1, 2)


def test_the_vllm_sampler_asks_for_the_gpus_of_one_engine_replica():
    options = build_placement(spec(VLLM)).sample.ray_options()
    assert plain(options) == {"num_cpus": 0, "num_gpus": 2, "actors": (3, 3), "batch_size": 32}


def test_replay_parse_and_rank_are_plain_one_cpu_tasks():
    placement = build_placement(spec(REPLAY))
    for stage in (placement.sample, placement.parse, placement.rank):
        assert stage.ray_options() == {"num_cpus": 1.0}


def test_ray_options_leave_out_what_is_not_set_so_ray_keeps_its_defaults():
    assert StagePlacement().ray_options() == {"num_cpus": 1.0}
    full = StagePlacement(
        num_cpus=0.5, num_gpus=1, resources={"x": 2.0}, concurrency=4, batch_size=8
    )
    assert plain(full.ray_options()) == {
        "num_cpus": 0.5,
        "num_gpus": 1,
        "resources": {"x": 2.0},
        "actors": (4, 4),
        "batch_size": 8,
    }


def test_ray_options_hand_out_a_copy_of_the_resources():
    placement = StagePlacement(resources={SANDBOX_RESOURCE: 1.0})
    placement.ray_options()["resources"][SANDBOX_RESOURCE] = 99.0
    assert placement.resources == {SANDBOX_RESOURCE: 1.0}


def test_a_placement_that_asks_for_negative_resources_is_refused():
    with pytest.raises(ValueError, match="num_cpus"):
        StagePlacement(num_cpus=-1)
