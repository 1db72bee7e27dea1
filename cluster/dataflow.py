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
from pipeline import refinement
from pipeline.config import JobSpec
from pipeline.problem_state import ProblemState
from pipeline.records import PairMethod
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


def parse_round(row: dict[str, Any], *, round_: int) -> dict[str, Any]:
    """Ray Data ``map``, Target-DPO: round 0's candidates, or round r's new versions."""
    return {"state": refinement.parse_round(row["state"], round_)}


def begin(row: dict[str, Any], *, spec: JobSpec, tally: StageTally) -> dict[str, Any]:
    """Ray Data ``map``, Target-DPO: verified tests and trajectories from round 0."""
    state = refinement.begin(row["state"], spec)
    tally.add("trajectories", len(state.trajectories))
    tally.add("versions_round_0", len(state.trajectories))
    return {"state": state}


def finish(row: dict[str, Any], *, spec: JobSpec, job_id: str, tally: StageTally) -> dict[str, Any]:
    """Ray Data ``map``, Target-DPO: pairs and the `problems` row of a refined problem."""
    state = refinement.finish(row["state"], spec, job_id=job_id)
    for trajectory in state.trajectories:
        tally.add(refinement.trajectory_outcome(trajectory))
    tally.add("ranked")
    return {"state": state}


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
    if spec.pairs.method is PairMethod.TARGET_DPO:
        return _refinement_rounds(ds, spec, job_id=job_id, placement=placement, tally=tally)
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


def _refinement_rounds(
    ds: ray.data.Dataset,
    spec: JobSpec,
    *,
    job_id: str,
    placement: BuildPlacement,
    tally: StageTally,
) -> ray.data.Dataset:
    """Target-DPO: the same sample ─► parse ─► execute stages once per round, streaming.

    Ray Data pipelines have no cycles, so the loop is unrolled into ``max_rounds + 1``
    passes; a row whose trajectories all passed (or stopped) goes through the later
    passes untouched: no request, no container. Rows never wait for their window.
    """
    for round_ in range(spec.pairs.max_rounds + 1):
        ds = add_sample_stage(ds, spec.sampler, job_id, placement.sample, round_)
        parse_fn = tally.counted(parse_round, "sampled") if round_ == 0 else parse_round
        ds = ds.map(
            parse_fn,  # type: ignore[arg-type]  # Ray passes fn_kwargs; its stub does not say so
            fn_kwargs={"round_": round_},
            **placement.parse.ray_options(),
        )
        ds = ds.map(
            execute,  # type: ignore[arg-type]  # a callable class: Ray makes it an actor pool
            fn_constructor_kwargs={
                "config": spec.sandbox,
                "tally": tally,
                "refine": spec.pairs,
                "round_": round_,
            },
            **placement.execute.ray_options(),
        )
        if round_ == 0:
            ds = ds.map(
                begin,  # type: ignore[arg-type]  # Ray passes fn_kwargs
                fn_kwargs={"spec": spec, "tally": tally},
                **placement.rank.ray_options(),
            )
    return ds.map(
        finish,  # type: ignore[arg-type]  # Ray passes fn_kwargs
        fn_kwargs={"spec": spec, "job_id": job_id, "tally": tally},
        **placement.rank.ray_options(),
    )
