"""Target-DPO through the job service: real uvicorn, a real Ray head, real Docker, real SQLite.

The model is the scripted OpenAI-compatible server of the cluster tier
(``tests.integration.cluster.test_refinement_build``): it answers by content, so what each
problem ends as is known from the script, whatever job id the service picks.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from pipeline.line_diff import line_diff
from tests.conftest import requires_sandbox_image
from tests.integration.cluster.test_refinement_build import (
    BARE,
    ScriptedRefiner,
    _Handler,
    read_rows,
    refine_spec,
    write_problems,
)
from tests.integration.services.conftest import Service, wait_for

pytestmark = [pytest.mark.ray, pytest.mark.slow]

FINAL = {"succeeded", "failed", "cancelled"}


@pytest.fixture
def refiner() -> Iterator[tuple[ScriptedRefiner, str]]:
    """The scripted model on a loopback port, reachable from the Ray head's workers."""
    model = ScriptedRefiner()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.model = model  # type: ignore[attr-defined]
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield model, f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    finally:
        httpd.shutdown()
        httpd.server_close()


def _body(service: Service, base_url: str, uri: str) -> dict[str, Any]:
    """The cluster tier's target_dpo spec as a caller posts it: without `sampler.k` (one
    trajectory per problem), `output.uri` relative (under the service's output root)."""
    problems = write_problems(service.workdir / "problems.jsonl")
    spec = refine_spec(problems, service.workdir / uri, base_url).model_dump(mode="json")
    return {
        "name": "target-dpo",
        "source": {"path": spec["source"]["path"]},
        "sampler": {k: spec["sampler"][k] for k in ("kind", "base_url", "model", "endpoint")},
        "sandbox": spec["sandbox"],
        "pairs": {k: spec["pairs"][k] for k in ("method", "max_rounds", "max_diff_lines")},
        "output": {"uri": uri, "problems_per_unit": spec["output"]["problems_per_unit"]},
    }


@requires_sandbox_image
@pytest.mark.docker
def test_a_target_dpo_job_runs_through_the_service(
    service: Service, refiner: tuple[ScriptedRefiner, str]
) -> None:
    model, base_url = refiner
    with service.client() as client:
        created = client.post("/jobs", json=_body(service, base_url, "target"))
        assert created.status_code == 201, created.text
        job_id = created.json()["id"]
        job = wait_for(client, job_id, FINAL, timeout_s=480)
    assert job["state"] == "succeeded", (job, service.log_tail())

    # What each scripted problem ends as, with max_rounds 2 and max_diff_lines 2: inc is
    # fixed in round 1, double in round 2, never and nocode never pass, first and the bare
    # problem (k = 1: its one sampled code is right) pass at once, big's fix differs in
    # 4 lines. 7 trajectories; executed per round: all 7, then the 4 with a code to run
    # (nocode's answer holds none), then the 2 still failing after round 1.
    progress = job["progress"]
    assert progress["state"] == "succeeded"
    assert progress["refinement"] == {
        "trajectories": 7,
        "versions_per_round": {"0": 7, "1": 4, "2": 2},
        "refined": 3,
        "passed_first": 2,
        "not_refined": 2,
    }
    skips = {"not_refined": 2, "no_incorrect": 2, "too_many_lines": 1}
    assert job["counts"]["pairs"] == 2 and job["counts"]["skips"] == skips
    assert job["counts"]["problems"] == 7 and job["manifest_ready"] is True
    assert job["stages"][-1] == {"stage": "rank", "done": 7, "total": 7}
    # The Ray Job's samplers reached the loopback model: one fix asked per failing version.
    assert +model.requests == Counter(
        {
            **{f"first:{name}": 1 for name in ("inc", "double", "never", "first", "nocode", "big")},
            f"first:{BARE}": 2,  # one code and one test sample: it has no tests of its own
            "refine:inc": 1,
            "refine:double": 2,
            "refine:never": 2,
            "refine:nocode": 1,
            "refine:big": 1,
        }
    )

    output = Path(job["output_uri"])
    assert output == service.workdir / "runs" / "target"
    pairs = {row["problem_id"]: row for row in read_rows(output, "pairs")}
    problems = {row["problem_id"]: row for row in read_rows(output, "problems")}
    assert sorted(pairs) == ["refine/double", "refine/inc"]
    for pid, pair in pairs.items():
        assert pair["method"] == "target_dpo" and pair["ranker"] == "refinement"
        assert pair["chosen_round"] > pair["rejected_round"] >= 0
        versions = problems[pid]["trajectories"][pair["trajectory"]]["versions"]
        assert pair["chosen_round"] == len(versions) - 1  # the final, passing version
        assert pair["chosen"] == versions[pair["chosen_round"]]["completion"]
        assert pair["rejected"] == versions[pair["rejected_round"]]["completion"]
        d_plus, d_minus = line_diff(pair["chosen"], pair["rejected"])
        assert [(s["start"], s["end"]) for s in pair["chosen_line_spans"]] == [
            (s.start, s.end) for s in d_plus
        ]
        assert [(s["start"], s["end"]) for s in pair["rejected_line_spans"]] == [
            (s.start, s.end) for s in d_minus
        ]
    assert pairs["refine/inc"]["chosen"] == "    return x + 1\n"
    assert problems["refine/double"]["tests_origin"] == "problem"
    assert problems[BARE]["tests_origin"] == "ranking"


def test_a_target_dpo_job_with_the_replay_sampler_is_refused(service: Service) -> None:
    (service.workdir / "replay.jsonl").write_text(
        '{"problem_id": "p", "prompt": "def f(x):\\n", "entry_point": "f", '
        '"code_completions": ["    return x\\n"], "test_completions": ["assert f(1) == 1"]}\n',
        encoding="utf-8",
    )
    body = {
        "source": {"path": "replay.jsonl"},
        "sampler": {"kind": "replay"},
        "pairs": {"method": "target_dpo"},
        "output": {"uri": "replayed"},
    }
    with service.client() as client:
        refused = client.post("/jobs", json=body)
        assert refused.status_code == 422, refused.text
        # One problem, the pairing: the input itself is a valid replay file.
        [problem] = refused.json()["problems"]
        assert "target_dpo" in problem and "replay" in problem
        assert "`openai`" in problem and "`vllm`" in problem
        assert problem in refused.json()["detail"]
        assert client.get("/jobs").json()["count"] == 0
    assert not (service.workdir / "runs" / "replayed").exists()
