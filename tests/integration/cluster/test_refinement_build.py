"""Target-DPO builds end to end: a scripted OpenAI-compatible server on loopback, the real
sandbox, real Ray.

The server answers by content, never by call count, so a resumed build gets the same
answers: a first attempt by the problem's function name (and, for sampled codes, by the
request's seed), a refinement by which scripted version the conversation's current code
is, with the next version of the script.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import yaml

from pipeline.config import JobSpec, parse_job_spec
from pipeline.line_diff import line_diff
from pipeline.manifest import Manifest
from pipeline.progress import BuildProgress
from pipeline.sampling import SampleRole, sample_seed
from tests.conftest import REPO_ROOT, SANDBOX_IMAGE, requires_sandbox_image

pytestmark = [pytest.mark.ray, pytest.mark.docker, requires_sandbox_image]

MODEL = "scripted-refiner"
JOB_ID = "refine"


def header(name: str, doc: str) -> str:
    return f'def {name}(x):\n    """{doc}"""\n'


def fixed(name: str, doc: str, body: str) -> str:
    """A refinement answer: the whole solution, header verbatim, in a python block."""
    return f"Here is the fix.\n```python\n{header(name, doc)}{body}```\n"


# name -> (doc, tests or None, [v0 continuation, v1 answer, v2 answer, ...])
SCRIPT: dict[str, tuple[str, Any, list[str]]] = {
    # fixed in round 1
    "inc": (
        "Add one.",
        ["assert inc(1) == 2", "assert inc(5) == 6"],
        ["    return x - 1\n", fixed("inc", "Add one.", "    return x + 1\n")],
    ),
    # fixed in round 2, tests as a HumanEval check program
    "double": (
        "Twice x.",
        "def check(candidate):\n    assert candidate(2) == 4\n    assert candidate(0) == 0\n",
        [
            "    return x + x + 1\n",
            fixed("double", "Twice x.", "    return x * 3\n"),
            fixed("double", "Twice x.", "    return x * 2\n"),
        ],
    ),
    # never fixed
    "never": (
        "Negate x.",
        ["assert never(3) == -3"],
        [
            "    return x\n",
            fixed("never", "Negate x.", "    return x + 0\n"),
            fixed("never", "Negate x.", "    return abs(x)\n"),
        ],
    ),
    # right at once
    "first": ("Square x.", ["assert first(3) == 9"], ["    return x * x\n"]),
    # the refinement answer holds no code
    "nocode": (
        "Cube x.",
        ["assert nocode(2) == 8"],
        ["    return x\n", "I am sorry, I cannot help with that."],
    ),
    # fixed, but the rejected version differs in 4 lines (pairs.max_diff_lines: 2)
    "big": (
        "Halve x.",
        ["assert big(4) == 2"],
        [
            "    a = x\n    b = a\n    c = b\n    return c\n",
            fixed("big", "Halve x.", "    return x // 2\n"),
        ],
    ),
}
BARE = "bare"
"""A problem without tests: its verified tests come from ranking 3 sampled codes."""
BARE_DOC = "Add two to x."


def _name(text: str) -> str:
    return re.findall(r"def (\w+)\(", text)[0]


@dataclass
class ScriptedRefiner:
    """Answers the chat requests of a Target-DPO build; records what it was asked."""

    delay_s: float = 0.0
    requests: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, body: dict[str, Any]) -> str:
        messages = body["messages"]
        first = messages[0]["content"]
        name = _name(first)
        if len(messages) == 3:  # a refinement: current code in the assistant turn
            with self.lock:
                self.requests[f"refine:{name}"] += 1
            return self.refine(name, messages[1]["content"])
        with self.lock:
            self.requests[f"first:{name}"] += 1
        if name == BARE:
            if first.rstrip().endswith("assert"):
                return "assert bare(1) == 3\nassert bare(0) == 2\n"
            return self.bare_code(body["seed"])
        return SCRIPT[name][2][0]

    @staticmethod
    def refine(name: str, current: str) -> str:
        if name == BARE:
            return fixed(BARE, BARE_DOC, "    return x + 2\n")
        versions = SCRIPT[name][2]
        for i in reversed(range(len(versions))):  # latest first: "return x" is in "return x + 0"
            code = versions[i] if i == 0 else versions[i].split("```python\n")[-1].split("```")[0]
            if code.strip() and code.strip().splitlines()[-1] in current:
                return versions[min(i + 1, len(versions) - 1)]
        raise AssertionError(f"{name}: no scripted version in {current!r}")

    @staticmethod
    def bare_code(seed: int) -> str:
        # Sample 0 and 1 are right, sample 2 is wrong, whatever the seeds are.
        wrong = sample_seed(JOB_ID, 0, BARE, SampleRole.CODE, 2)
        return "    return x + 1\n" if seed == wrong else "    return x + 2\n"


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        model: ScriptedRefiner = self.server.model  # type: ignore[attr-defined]
        time.sleep(model.delay_s)
        text = model.answer(body)
        payload = {
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ]
        }
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[ScriptedRefiner, str]]:
    model = ScriptedRefiner()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.model = model  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield model, f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    finally:
        httpd.shutdown()
        httpd.server_close()


def write_problems(path: Path, copies: int = 1) -> Path:
    rows = [
        {
            "problem_id": f"refine/{name}" + (f"/{copy}" if copy else ""),
            "prompt": header(name, doc),
            "entry_point": name,
            "tests": tests,
        }
        for copy in range(copies)
        for name, (doc, tests, _) in SCRIPT.items()
    ]
    rows.append({"problem_id": BARE, "prompt": header(BARE, BARE_DOC), "entry_point": BARE})
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def refine_spec(problems: Path, out: Path, base_url: str, **pairs: Any) -> JobSpec:
    return parse_job_spec(
        {
            "source": {"path": str(problems)},
            "sampler": {"kind": "openai", "base_url": base_url, "model": MODEL, "endpoint": "chat"},
            "sandbox": {"image": SANDBOX_IMAGE, "max_workers": 1},
            "pairs": {"method": "target_dpo", "max_rounds": 2, "max_diff_lines": 2, **pairs},
            "output": {"uri": str(out), "problems_per_unit": 2},
        }
    )


def read_rows(root: Path, table: str) -> list[dict[str, Any]]:
    files = sorted((root / table).glob("part-*.parquet"))
    return [row for f in files for row in pq.read_table(f).to_pylist()]


def test_a_target_dpo_build_refines_pairs_and_keeps_the_trajectories(
    ray_with_sandbox: Any, server: tuple[ScriptedRefiner, str], tmp_path: Path
) -> None:
    from cluster.driver import run_build

    model, base_url = server
    problems = write_problems(tmp_path / "problems.jsonl")
    # k=3 for the bare problem's ranking; a problem with tests gets 3 identical samples,
    # which parse to one distinct code, so one trajectory.
    data = refine_spec(problems, tmp_path / "out", base_url).model_dump(mode="json")
    data["sampler"]["k"] = 3
    summary = run_build(parse_job_spec(data), job_id=JOB_ID)

    rows = {row["problem_id"]: row for row in read_rows(tmp_path / "out", "problems")}
    pairs = {row["problem_id"]: row for row in read_rows(tmp_path / "out", "pairs")}
    skips = {pid: row["skip_reason"] for pid, row in rows.items()}
    assert skips == {
        "refine/inc": None,
        "refine/double": None,
        "refine/never": "not_refined",
        "refine/first": "no_incorrect",
        "refine/nocode": "not_refined",
        "refine/big": "too_many_lines",
        BARE: None,
    }
    assert summary.counts.pairs == len(pairs) == 3
    assert summary.counts.skips == {"not_refined": 2, "no_incorrect": 1, "too_many_lines": 1}

    # Trajectories: every version with its statuses and the feedback that led on.
    inc = rows["refine/inc"]
    assert inc["tests_origin"] == "problem"
    assert inc["verified_tests"] == ["assert inc(1) == 2", "assert inc(5) == 6"]
    [trajectory] = inc["trajectories"]
    v0, v1 = trajectory["versions"]
    assert (v0["round"], v1["round"]) == (0, 1)
    assert v0["statuses"] == ["failed", "failed"] and v1["statuses"] == ["passed", "passed"]
    assert "inc(1)" in v0["feedback"] and "returned 0" in v0["feedback"]
    assert v1["feedback"] == "" and v1["completion"] == "    return x + 1\n"
    assert rows["refine/double"]["verified_tests"] == [
        "assert double(2) == 4",
        "assert double(0) == 0",
    ]
    assert len(rows["refine/double"]["trajectories"][0]["versions"]) == 3
    never = rows["refine/never"]["trajectories"][0]
    assert [v["round"] for v in never["versions"]] == [0, 1, 2]  # max_rounds refinements
    assert all("failed" in v["statuses"] for v in never["versions"])
    stopped = rows["refine/nocode"]["trajectories"][0]
    assert len(stopped["versions"]) == 1 and "no python code block" in stopped["stopped"]

    # The bare problem: verified tests from ranking; the wrong sample was refined.
    bare = rows[BARE]
    assert bare["tests_origin"] == "ranking"
    assert bare["verified_tests"] == ["assert bare(1) == 3", "assert bare(0) == 2"]
    assert [len(t["versions"]) for t in bare["trajectories"]] == [1, 2]

    # Pairs: final version chosen, an earlier one rejected, D+/D- spans on both strings.
    for pid, pair in pairs.items():
        assert pair["method"] == "target_dpo" and pair["ranker"] == "refinement"
        assert pair["chosen_round"] > pair["rejected_round"] >= 0
        d_plus, d_minus = line_diff(pair["chosen"], pair["rejected"])
        assert [(s.start, s.end) for s in d_plus] == [
            (s["start"], s["end"]) for s in pair["chosen_line_spans"]
        ]
        assert [(s.start, s.end) for s in d_minus] == [
            (s["start"], s["end"]) for s in pair["rejected_line_spans"]
        ]
        versions = rows[pid]["trajectories"][pair["trajectory"]]["versions"]
        assert pair["chosen"] == versions[pair["chosen_round"]]["completion"]
        assert pair["rejected"] == versions[pair["rejected_round"]]["completion"]
        assert pair["prompt"].startswith("def ")  # completion style: prompt + continuation
    assert pairs["refine/inc"]["rejected"] == "    return x - 1\n"

    # Requests: one first attempt per sample, one refinement per failing version.
    assert model.requests["refine:never"] == 2 and model.requests["refine:first"] == 0
    assert model.requests["refine:inc"] == 1 and model.requests["refine:double"] == 2

    progress = BuildProgress.model_validate_json((tmp_path / "out" / "progress.json").read_text())
    assert progress.state == "succeeded"
    assert progress.refinement is not None
    assert progress.refinement.trajectories == 8
    assert progress.refinement.refined == 4 and progress.refinement.not_refined == 2
    assert progress.refinement.versions_per_round == {"0": 8, "1": 5, "2": 2}

    # The same build again: the same rejected draws, the same rows.
    again = run_build(
        parse_job_spec({**data, "output": {**data["output"], "uri": str(tmp_path / "again")}}),
        job_id=JOB_ID,
    )
    assert again.counts == summary.counts
    assert read_rows(tmp_path / "again", "pairs") == read_rows(tmp_path / "out", "pairs")

    # The shards load as TRL preference data.
    datasets = pytest.importorskip("datasets")
    loaded = datasets.load_dataset(
        "parquet", data_files=str(tmp_path / "out" / "pairs" / "*.parquet"), split="train"
    )
    assert {"prompt", "chosen", "rejected", "chosen_line_spans"} <= set(loaded.column_names)
    assert loaded.num_rows == 3


def _build_cli(job: Path, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("RAY_ADDRESS", None)
    return subprocess.Popen(
        [sys.executable, "-m", "services.cli", "build", str(job), "--job-id", JOB_ID, *extra],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _without_timings(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in row.items() if k != "timings"} for row in rows]


def test_a_killed_target_dpo_build_resumes_to_the_same_rows(
    server: tuple[ScriptedRefiner, str], tmp_path: Path
) -> None:
    model, base_url = server
    model.delay_s = 0.2  # slow enough to kill between units
    problems = write_problems(tmp_path / "problems.jsonl", copies=3)

    def job_file(out: Path) -> Path:
        spec = refine_spec(problems, out, base_url)
        data = spec.model_dump(mode="json")
        data["output"]["problems_per_unit"] = 1
        data["sampler"]["max_concurrency"] = 1  # small sampler batches: units finish apart
        path = tmp_path / f"{out.name}.yaml"
        path.write_text(yaml.safe_dump(data))
        return path

    whole, killed = tmp_path / "whole", tmp_path / "killed"
    proc = _build_cli(job_file(killed))
    deadline = time.time() + 240
    while time.time() < deadline and len(list((killed / "problems").glob("part-*"))) < 2:
        if proc.poll() is not None:
            pytest.fail(f"build ended before it could be killed: {proc.communicate()[1][-2000:]}")
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (killed / "manifest.json").exists()
    assert 2 <= len(list((killed / "problems").glob("part-*"))) < 19

    resumed = _build_cli(job_file(killed), "--resume")
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err[-2000:]
    model.delay_s = 0.0
    uninterrupted = _build_cli(job_file(whole))
    _, err = uninterrupted.communicate(timeout=300)
    assert uninterrupted.returncode == 0, err[-2000:]

    assert read_rows(killed, "pairs") == read_rows(whole, "pairs")
    # inc and double per copy; with k = 1 the bare problem's one code passes at once.
    assert len(read_rows(whole, "pairs")) == 3 * 2
    assert _without_timings(read_rows(killed, "problems")) == _without_timings(
        read_rows(whole, "problems")
    )
    manifest = Manifest.model_validate_json((killed / "manifest.json").read_text())
    assert manifest.counts.problems == 19
