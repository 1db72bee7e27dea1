"""The build's dataflow on Ray Data: one window of problems through every stage.

    {"state": ProblemState} rows
      ─► sample   replay / OpenAI-compatible HTTP actor / ray.data.llm vLLM (cluster.samplers)
      ─► parse    completions → distinct codes and tests          (pipeline.stages.parse_step)
      ─► execute  pass matrix in warm sandbox containers, an autoscaling actor pool on
                  `sandbox` nodes                              (cluster.executor_actor)
      ─► rank     skip rules, ranking, pair selection              (pipeline.stages.rank_step)

Every row is one ``ProblemState`` (``pipeline.problem_state``), carried as it is from stage
to stage; where each stage runs is ``cluster.placement``'s data, not written here. Stages
count what passes through them on a ``StageTally`` for live progress.
"""

from __future__ import annotations

from typing import Any

import ray.data

from cluster.executor_actor import ExecuteStage
from cluster.placement import BuildPlacement
from cluster.progress import StageTally
from cluster.samplers import add_sample_stage
from pipeline.config import JobSpec
from pipeline.problem_state import ProblemState
from pipeline.stages import parse_step, rank_step

# Ray Data names each operator after its function or class ("Map(parse)"), and the Ray
# dashboard shows those names: the stages are named as a user thinks of them.


class execute(ExecuteStage):
    """The execute stage (``ExecuteStage``), named for the dashboard: ``Map(execute)``."""


def parse(row: dict[str, Any]) -> dict[str, Any]:
    """Ray Data ``map``: the parse stage."""
    return {"state": parse_step(row["state"])}


def rank(row: dict[str, Any], *, spec: JobSpec, job_id: str) -> dict[str, Any]:
    """Ray Data ``map``: the rank stage (skip rules, ranking, pairs)."""
    return {"state": rank_step(row["state"], spec, job_id=job_id)}


def build_dataflow(
    problems: list[ProblemState],
    spec: JobSpec,
    *,
    job_id: str,
    placement: BuildPlacement,
    tally: StageTally,
) -> ray.data.Dataset:
    """A dataset that, when iterated, yields ``{"state": ProblemState}`` rows fully ranked."""
    # Rows are ProblemState objects on purpose (one contract, no re-encoding): Ray keeps
    # them as pickled Python objects, which is what this says (and stops its warning).
    ray.data.DataContext.get_current().enable_fallback_to_arrow_object_ext_type = True
    ds: ray.data.Dataset = ray.data.from_items([{"state": state} for state in problems])
    ds = add_sample_stage(ds, spec.sampler, job_id, placement.sample)
    ds = ds.map(tally.counted(parse, "sampled"), **placement.parse.ray_options())
    ds = ds.map(
        execute,  # type: ignore[arg-type]  # a callable class: Ray makes it an actor pool
        fn_constructor_kwargs={"config": spec.sandbox, "tally": tally},
        **placement.execute.ray_options(),
    )
    return ds.map(
        tally.counted(rank, "ranked"),
        fn_kwargs={"spec": spec, "job_id": job_id},
        **placement.rank.ray_options(),
    )
