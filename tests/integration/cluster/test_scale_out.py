"""Executors go where the `sandbox` resource is: adding such a node adds executors.

A two-node Ray cluster on this machine (``ray.cluster_utils.Cluster``): a head without
the resource, then a worker node that advertises it, as a Docker host joining a cluster
with ``ray start --address ... --resources '{"sandbox": 2}'`` would.
"""

from __future__ import annotations

import pytest
import yaml

from pipeline.config import parse_job_spec
from pipeline.errors import SandboxUnavailable
from tests.conftest import REPO_ROOT, SANDBOX_IMAGE, requires_sandbox_image

pytestmark = [requires_sandbox_image, pytest.mark.ray, pytest.mark.docker]


@pytest.fixture(scope="module")
def cluster():
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    local = Cluster(initialize_head=True, head_node_args={"num_cpus": 2})
    ray.init(address=local.address, log_to_driver=False)
    try:
        yield local
    finally:
        ray.shutdown()
        local.shutdown()


def spec_for(tmp_path, name: str):
    data = yaml.safe_load((REPO_ROOT / "examples" / "quickstart" / "job.yaml").read_text())
    data["source"] = {"path": str(REPO_ROOT / "examples/quickstart/problems.jsonl"), "limit": 6}
    data["sandbox"] = {**data["sandbox"], "image": SANDBOX_IMAGE, "min_workers": 2}
    data["output"] = {"uri": str(tmp_path / name), "problems_per_unit": 3}
    return parse_job_spec(data)


def test_without_sandbox_nodes_the_build_says_how_to_add_one(cluster, tmp_path) -> None:
    from cluster.driver import run_build

    with pytest.raises(SandboxUnavailable, match="--resources"):
        run_build(spec_for(tmp_path, "none"), job_id="none")
    assert not (tmp_path / "none" / "manifest.json").exists()


def test_a_node_with_the_sandbox_resource_hosts_the_executors(cluster, tmp_path) -> None:
    import ray
    from ray.util.state import list_actors

    from cluster.driver import run_build

    node = cluster.add_node(num_cpus=1, resources={"sandbox": 2})
    cluster.wait_for_nodes()
    summary = run_build(spec_for(tmp_path, "scaled"), job_id="scaled")
    assert summary.counts.problems == 6

    executors = [
        a for a in list_actors(detail=True, limit=1000) if "Map(execute)" in (a.class_name or "")
    ]
    assert len(executors) >= 2
    assert {a.node_id for a in executors} == {node.node_id}
    assert ray.cluster_resources()["sandbox"] == 2.0
