"""The replay sampler passes the first k pre-generated completions through."""

from __future__ import annotations

import numpy as np

from cluster.samplers.base import SAMPLED_COLUMNS, SampledRow, rows_of
from cluster.samplers.replay import replay_batch, replay_sample
from pipeline.records import ReplayRow

SEPARATE = ReplayRow(
    problem_id="P/1",
    prompt="def f():\n",
    entry_point="f",
    code_completions=["c0", "c1", "c2", "c3"],
    test_completions=["assert f() == 0", "assert f() == 1"],
)
JOINT = ReplayRow(problem_id="P/2", prompt="Write f.", completions=["j0", "j1", "j2"])


def test_first_k_code_and_first_k_test_completions_are_kept():
    row = replay_sample(3, SEPARATE, k=3)
    assert row.index == 3
    assert row.code_completions == ["c0", "c1", "c2"]
    # fewer than k test completions: all of them, no padding
    assert row.test_completions == ["assert f() == 0", "assert f() == 1"]
    assert row.completions is None
    assert row.sampler_errors == []
    assert row.problem == SEPARATE.problem()


def test_joint_completions_are_cut_to_k():
    row = replay_sample(0, JOINT, k=2)
    assert row.completions == ["j0", "j1"]
    assert row.code_completions is None and row.test_completions is None


def test_replay_batch_turns_a_numpy_batch_of_source_rows_into_sampled_rows():
    batch = {
        "index": np.array([0, 1]),
        "line": np.array([1, 3]),
        "problem_id": np.array(["P/1", "P/2"], dtype=object),
        "record": np.array([SEPARATE.model_dump_json(), JOINT.model_dump_json()], dtype=object),
    }
    out = replay_batch(batch, k=1)
    assert set(out) == set(SAMPLED_COLUMNS)
    first, second = (SampledRow.from_ray_row(r) for r in rows_of(out))
    assert (first.index, first.code_completions, first.test_completions) == (
        0,
        ["c0"],
        ["assert f() == 0"],
    )
    assert (second.index, second.completions) == (1, ["j0"])
