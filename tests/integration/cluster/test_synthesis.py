"""Problem synthesis against a scripted OpenAI-compatible server on loopback.

The server speaks the OpenAI wire format over real HTTP. It answers a synthesis request by
the function name the prompt asks for: from a script (good problems, each kind of garbage,
a 1 MB answer, a HumanEval prompt fed back, HTTP 500s) or, for names not scripted, with a
valid problem of its own. So the real client, retries, checks, decontamination, dedup,
writing and the ``pairforge synthesize`` command all run.
"""

from __future__ import annotations

import json
import re
import sysconfig
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

from cluster.sources import scan_source
from cluster.synthesis import (
    PROBLEMS_FILE,
    REPORT_FILE,
    list_source_files,
    materialize_source,
    run_synthesis,
)
from pipeline.config import JobSpec, SamplerKind, SynthesizeConfig, parse_job_spec
from pipeline.errors import ConfigError, JobSpecError, SamplerUnavailable
from pipeline.manifest import Manifest
from pipeline.records import Problem
from services.cli import main
from tests.conftest import (
    HUMANEVAL_DIR,
    SANDBOX_IMAGE,
    requires_sandbox_image,
    requires_shared_data,
)

MODEL = "scripted-model"
_NAME = re.compile(r"Name the function `(\w+)`")
_TOPICS = [
    "the number of vowels in a word",
    "the longest run of equal items in a list",
    "the sum of the digits of an integer",
    "whether a string is a palindrome when punctuation is ignored",
    "the median of a list of numbers",
    "the words of a sentence in reverse order",
    "the greatest common divisor of two integers",
    "the positions of every capital letter in a string",
    "the running maximum of a list of integers",
    "the number of days between two ISO dates",
    "the keys of a dictionary sorted by their values",
    "the first character that occurs only once in a string",
]


def valid_answer(name: str) -> str:
    """A good chat answer for ``name``: prose around a block with signature and docstring."""
    topic = _TOPICS[sum(map(ord, name)) % len(_TOPICS)]
    return (
        "Here is a new problem.\n\n```python\nfrom typing import List\n\n\n"
        f"def {name}(items: List[int], limit: int = 10) -> int:\n"
        f'    """Compute {topic} ({name}), looking at no more than `limit` items.\n\n'
        f"    >>> {name}([1, 2, 3])\n    6\n"
        '    """\n```\nGood luck!'
    )


@dataclass
class ScriptedModel:
    """Answers by requested function name; records every request."""

    script: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    delay_s: float = 0.0
    requests: Counter[str] = field(default_factory=Counter)
    bodies: list[dict[str, Any]] = field(default_factory=list)
    code_samples: Counter[str] = field(default_factory=Counter)
    in_flight: int = 0
    max_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, body: dict[str, Any]) -> tuple[int, str]:
        prompt = body["messages"][0]["content"] if "messages" in body else body["prompt"]
        match = _NAME.search(prompt)
        if match is None:  # a build's sampling request: code or a test of a synthesised problem
            return 200, self.sample(prompt)
        name = match.group(1)
        with self.lock:
            self.requests[name] += 1
            self.bodies.append(body)
            steps = self.script.get(name)
            step = (steps.pop(0) if len(steps) > 1 else steps[0]) if steps else None
        return step if step is not None else (200, valid_answer(name))

    def sample(self, prompt: str) -> str:
        if prompt.endswith("assert "):
            name = re.findall(r"def (\w+)\(", prompt)[-1]
            return f"{name}([1, 2, 3]) == 6\nassert {name}([]) == 0\n"
        # Alternate per prompt, not by seed: seeds derive from the job id (which includes
        # the temporary output path), so seed parity would make "one passes, one fails" luck.
        with self.lock:
            self.code_samples[prompt] += 1
            turn = self.code_samples[prompt]
        return "    return sum(items)\n" if turn % 2 else "    return len(items)\n"


class _Handler(BaseHTTPRequestHandler):
    model: ScriptedModel

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        model = self.server.model  # type: ignore[attr-defined]
        with model.lock:
            model.in_flight += 1
            model.max_in_flight = max(model.max_in_flight, model.in_flight)
        try:
            time.sleep(model.delay_s)
            status, text = model.answer(body)
        finally:
            with model.lock:
                model.in_flight -= 1
        if status == 200:
            chat = self.path.endswith("/chat/completions")
            choice = {"message": {"role": "assistant", "content": text}} if chat else {"text": text}
            payload = {"choices": [{"index": 0, **choice, "finish_reason": "stop"}]}
        else:
            payload = {"error": {"message": text}}
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class Server:
    model: ScriptedModel
    base_url: str


@pytest.fixture
def server() -> Iterator[Server]:
    model = ScriptedModel()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.model = model  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield Server(model, f"http://127.0.0.1:{httpd.server_port}/v1")
    finally:
        httpd.shutdown()
        httpd.server_close()


def _function(name: str) -> str:
    return f'def {name}(x):\n    """Seed {name}."""\n    return x\n\n\n'


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """A small corpus: seeds in two modules, a test module, a Python 2 file, helpers."""
    root = tmp_path / "corpus"
    (root / "pkg" / "tests").mkdir(parents=True)
    (root / "pkg" / "alpha.py").write_text(
        "import os\n\n\n"
        + "".join(
            _function(n)
            for n in ["good", "prose", "renamed", "broken", "huge", "copied", "flaky", "dead"]
        )
        + "def _private(x):\n    '''Helper.'''\n\n\nasync def fetch(x):\n    '''Coroutine.'''\n"
    )
    (root / "pkg" / "beta.py").write_text(
        "".join(_function(n) for n in ["twin_a", "twin_b", "plain"])
        + "def short(x):\n    return x\n"
    )
    (root / "pkg" / "tests" / "test_alpha.py").write_text(_function("check_good"))
    (root / "pkg" / "legacy.py").write_text("print 'python 2'\n")
    (root / "README.txt").write_text("not python")
    return root


def _config(server: Server, source: Path | str, **options: Any) -> SynthesizeConfig:
    return SynthesizeConfig(source=str(source), base_url=server.base_url, model=MODEL, **options)


TWIN = (
    "```python\ndef {name}(text: str, width: int = 70) -> list:\n"
    '    """Split the text into lines of at most width characters, breaking only at spaces,\n'
    "    keeping words whole, dropping the spaces at the ends of every line, and returning\n"
    "    the lines in order; a word longer than width gets a line of its own, and an\n"
    '    empty text gives an empty list of lines, never a list holding one empty line."""\n'
    "```"
)
"""One problem twice: only the function's name differs, so the two are near-duplicates."""


def _script_garbage(model: ScriptedModel, copied_prompt: str) -> None:
    model.script.update(
        {
            "prose": [(200, "Sure! This function adds numbers. Hope it helps.")],
            "renamed": [(200, valid_answer("something_else"))],
            "broken": [(200, "```python\ndef broken(x:\n    '''Oops.'''\n```")],
            "huge": [(200, valid_answer("huge") + "\n#" + "x" * (1 << 20))],
            "copied": [(200, f"```python\n{copied_prompt}```")],
            "flaky": [(500, "overloaded"), (200, valid_answer("flaky"))],
            "dead": [(500, "overloaded")],
            "twin_a": [(200, TWIN.replace("{name}", "twin_a"))],
            "twin_b": [(200, TWIN.replace("{name}", "twin_b"))],
        }
    )


@requires_shared_data
def test_every_answer_is_kept_or_dropped_by_reason(server: Server, corpus: Path) -> None:
    humaneval = json.loads((HUMANEVAL_DIR / "dev-k10.jsonl").read_text().splitlines()[3])
    copied = humaneval["prompt"].replace(f"def {humaneval['entry_point']}(", "def copied(")
    _script_garbage(server.model, copied)
    config = _config(
        server, corpus, decontaminate=str(HUMANEVAL_DIR / "dev-k10.jsonl"), max_retries=3
    )

    synthesis = run_synthesis(config)

    report = synthesis.report
    assert report.files_read == 2
    assert report.files_skipped == {"test_file": 1, "not_python": 1}
    assert report.functions_picked == 11
    assert report.functions_skipped == {"private": 1, "async": 1, "short": 1}
    assert report.dropped == {
        "no_signature": 1,
        "wrong_entry_point": 1,
        "syntax_error": 1,
        "too_long": 1,
        "contaminated": 1,
        "request_failed": 1,
        "near_duplicate": 1,
    }
    assert [p.entry_point for p in synthesis.problems] == ["good", "flaky", "twin_a", "plain"]
    assert report.problems_kept == 4 and report.accounted
    # The 500 was retried until it succeeded; the dead function used every attempt.
    assert server.model.requests["flaky"] == 2
    assert server.model.requests["dead"] == 4
    files = {"good": "alpha", "flaky": "alpha", "twin_a": "beta", "plain": "beta"}
    for problem in synthesis.problems:
        source_file = f"corpus/pkg/{files[problem.entry_point]}.py"
        assert problem.problem_id == f"synth:{source_file}:{problem.entry_point}"
        assert problem.metadata["source_file"] == source_file
        assert problem.metadata["synthesized_by"] == MODEL
        assert "Good luck" not in problem.prompt and "```" not in problem.prompt
    # Chat requests carry the model, a per-function seed and the seed function's text.
    body = next(b for b in server.model.bodies if "`good`" in b["messages"][0]["content"])
    assert body["model"] == MODEL and body["n"] == 1
    assert 'def good(x):\n    """Seed good."""' in body["messages"][0]["content"]


def test_requests_in_flight_are_bounded(server: Server, corpus: Path) -> None:
    server.model.delay_s = 0.2
    synthesis = run_synthesis(_config(server, corpus / "pkg" / "alpha.py", max_concurrency=2))
    assert synthesis.report.functions_picked == 8
    assert server.model.max_in_flight == 2


def test_limit_bounds_the_requests(server: Server, corpus: Path) -> None:
    synthesis = run_synthesis(_config(server, corpus, limit=3))
    assert synthesis.report.functions_picked == 3
    assert sum(server.model.requests.values()) == 3
    assert synthesis.report.files_read == 1


def test_an_endpoint_that_fails_every_request_is_unavailable(server: Server, corpus: Path) -> None:
    server.model.script.update({n: [(503, "down")] for n in ["twin_a", "twin_b", "plain"]})
    config = _config(server, corpus / "pkg" / "beta.py", max_retries=0)
    with pytest.raises(SamplerUnavailable, match=r"all 3 requests .* failed; first: .*HTTP 503"):
        run_synthesis(config)


def test_sources_name_files_by_directory_glob_or_file(corpus: Path) -> None:
    by_dir = [f.label for f in list_source_files(str(corpus / "pkg"))]
    assert by_dir == ["pkg/alpha.py", "pkg/beta.py", "pkg/legacy.py", "pkg/tests/test_alpha.py"]
    by_glob = [f.label for f in list_source_files(str(corpus / "pkg" / "*.py"))]
    assert by_glob == ["pkg/alpha.py", "pkg/beta.py", "pkg/legacy.py"]
    by_deep_glob = [f.label for f in list_source_files(f"{corpus}/**/test_*.py")]
    assert by_deep_glob == ["corpus/pkg/tests/test_alpha.py"]
    assert [f.label for f in list_source_files(str(corpus / "pkg" / "beta.py"))] == ["pkg/beta.py"]
    # Files that resolve outside the tree the source names are not part of the corpus.
    outside = corpus.parent / "outside.py"
    outside.write_text(_function("secret"))
    (corpus / "pkg" / "link.py").symlink_to(outside)
    assert "pkg/link.py" not in [f.label for f in list_source_files(str(corpus / "pkg"))]
    with pytest.raises(ConfigError, match=r"no \.py files"):
        list_source_files(f"{corpus}/pkg/*/../../../*.py")
    assert [f.label for f in list_source_files(f"{corpus}/pkg/../../*.py")] == [
        f"{corpus.parent.name}/outside.py"
    ]
    assert [f.label for f in list_source_files(str(corpus / "pkg" / "link.py"))] == ["pkg/link.py"]
    with pytest.raises(ConfigError, match="no such file or directory"):
        list_source_files(str(corpus / "missing"))
    with pytest.raises(ConfigError, match=r"no \.py files"):
        list_source_files(str(corpus / "*.txt"))


# ---------------------------------------------------------------- pairforge synthesize


def test_cli_writes_problem_rows_from_stdlib_source_and_prints_the_counts(
    server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    out = tmp_path / "problems.jsonl"
    server.model.script["dedent"] = [(200, "no idea")]
    code = main(
        [
            "synthesize",
            str(stdlib / "textwrap.py"),
            "--out",
            str(out),
            "--base-url",
            server.base_url,
            "--model",
            MODEL,
            "--limit",
            "4",
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0
    rows = [Problem.model_validate_json(line) for line in out.read_text().splitlines()]
    names = [row.entry_point for row in rows]
    assert len(rows) + 1 == sum(server.model.requests.values()) == 4
    assert "dedent" not in names and "dedent" in server.model.requests
    for row in rows:
        assert row.metadata["source_file"] == f"{stdlib.name}/textwrap.py"
        assert row.problem_id == f"synth:{stdlib.name}/textwrap.py:{row.entry_point}"
        assert row.prompt.startswith("from typing import List\n\ndef ")
    assert re.search(r"^files read\s+1$", printed, re.MULTILINE)
    assert re.search(r"^functions picked\s+4\b", printed, re.MULTILINE)
    assert re.search(r"^problems kept\s+3$", printed, re.MULTILINE)
    assert re.search(r"^dropped\s+1 \(no_signature 1\)$", printed, re.MULTILINE)
    assert f"wrote 3 problems to {out}" in printed


def test_cli_refuses_bad_arguments_and_reports_a_dead_endpoint(
    server: Server, corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = str(tmp_path / "p.jsonl")
    base = ["synthesize", "--out", out, "--base-url", server.base_url, "--model", MODEL]
    assert main([*base, str(corpus / "nowhere")]) == 2
    assert "no such file or directory" in capsys.readouterr().err
    assert main([*base, str(corpus), "--dedup-threshold", "0.2"]) == 2
    assert "--dedup-threshold: " in capsys.readouterr().err
    assert main([*base, str(corpus), "--decontaminate", str(corpus / "README.txt")]) == 2
    assert "README.txt:1: expected one JSON object per line" in capsys.readouterr().err
    server.model.script.update({n: [(500, "down")] for n in ["twin_a", "twin_b", "plain"]})
    dead = ["synthesize", str(corpus / "pkg" / "beta.py"), "--out", out, "--model", MODEL]
    # Nothing listens on port 9 of loopback (discard): every request fails to connect.
    assert main([*dead, "--base-url", "http://127.0.0.1:9/v1"]) == 3
    assert "requests to http://127.0.0.1:9/v1 failed" in capsys.readouterr().err
    assert not Path(out).exists()


# ---------------------------------------------------------------- builds from a synthesis


def _synth_spec(server: Server, source: Path, output: Path, **synth: Any) -> JobSpec:
    return parse_job_spec(
        {
            "source": {
                "synthesize": {
                    "source": str(source),
                    "base_url": server.base_url,
                    "model": MODEL,
                    **synth,
                }
            },
            "sampler": {"kind": "openai", "base_url": server.base_url, "model": MODEL, "k": 2},
            "output": {"uri": str(output)},
        }
    )


def test_materialize_source_writes_the_problems_and_points_the_spec_at_them(
    server: Server, corpus: Path, tmp_path: Path
) -> None:
    spec = _synth_spec(server, corpus / "pkg" / "beta.py", tmp_path / "run")
    built = materialize_source(spec)
    target = tmp_path / "run" / PROBLEMS_FILE
    assert built.source.path == str(target)
    assert built.source.synthesize == spec.source.synthesize
    assert scan_source(built.source, SamplerKind.OPENAI) == 3
    report = json.loads((tmp_path / "run" / REPORT_FILE).read_text())
    assert report["report"]["problems_kept"] == 3
    assert report["config"] == spec.source.synthesize.model_dump(mode="json")
    # The same section again (a resumed build): the problems are reused, no request sent.
    asked = sum(server.model.requests.values())
    assert materialize_source(spec) == built
    assert materialize_source(built) == built
    assert sum(server.model.requests.values()) == asked
    # Another section: synthesised again.
    materialize_source(_synth_spec(server, corpus / "pkg" / "beta.py", tmp_path / "run", limit=1))
    assert sum(server.model.requests.values()) == asked + 1


def test_materialize_source_leaves_a_plain_source_alone_and_refuses_conflicts(
    server: Server, corpus: Path, tmp_path: Path
) -> None:
    plain = parse_job_spec(
        {"source": {"path": "p.jsonl"}, "sampler": {"kind": "replay"}, "output": {"uri": "o"}}
    )
    assert materialize_source(plain) is plain
    spec = _synth_spec(server, corpus / "pkg" / "beta.py", tmp_path / "run")
    data = spec.model_dump(mode="json")
    data["source"]["path"] = str(tmp_path / "elsewhere.jsonl")
    with pytest.raises(JobSpecError, match=r"remove source\.path"):
        materialize_source(parse_job_spec(data))
    server.model.script.update({n: [(200, "no code")] for n in ["twin_a", "twin_b", "plain"]})
    with pytest.raises(ConfigError, match=r"kept no problem from 3 functions .*no_signature"):
        materialize_source(spec)


@requires_sandbox_image
@pytest.mark.ray
@pytest.mark.docker
def test_a_build_starts_from_a_synthesize_source(
    server: Server, corpus: Path, tmp_path: Path
) -> None:
    """``run_build`` synthesises first, then samples, executes and pairs those problems."""
    ray = pytest.importorskip("ray")
    from cluster.driver import run_build

    data = _synth_spec(server, corpus / "pkg" / "beta.py", tmp_path / "run").model_dump(mode="json")
    data["sandbox"] = {"image": SANDBOX_IMAGE, "max_workers": 1}
    spec = parse_job_spec(data)
    ray.init(num_cpus=2, resources={"sandbox": 2}, include_dashboard=False, log_to_driver=False)
    try:
        summary = run_build(spec)
    finally:
        ray.shutdown()

    manifest = Manifest.model_validate_json((tmp_path / "run" / "manifest.json").read_text())
    recorded = parse_job_spec(manifest.spec)
    assert recorded.source.path == str(tmp_path / "run" / PROBLEMS_FILE)
    assert recorded.source.synthesize == spec.source.synthesize
    assert summary.counts.problems == 3
    rows = pq.read_table(tmp_path / "run" / "problems").to_pylist()
    assert sorted(row["problem_id"] for row in rows) == [
        "synth:pkg/beta.py:plain",
        "synth:pkg/beta.py:twin_a",
        "synth:pkg/beta.py:twin_b",
    ]
    # The scripted samples: `sum` passes both tests, `len` fails one, so pairs exist.
    assert summary.counts.pairs >= 1
