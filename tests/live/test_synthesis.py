"""Problem synthesis from standard-library source with the bundled model (llama.cpp).

Mechanics only: every picked function ends as a kept problem or a counted drop reason,
every kept row is a valid completion-style ``Problem`` whose prompt parses and defines its
entry point with a docstring, and the build reads the written file. Never the quality: a
135M model often answers with something that is dropped, and that is a valid outcome.
"""

from __future__ import annotations

import ast
import shutil
import sysconfig
import time
from pathlib import Path

from cluster.sources import scan_source
from cluster.synthesis import run_synthesis, write_problems
from pipeline.config import SamplerKind, SourceConfig, SynthesizeConfig
from pipeline.records import Problem, PromptStyle
from pipeline.synthesis import DropReason
from tests.conftest import HUMANEVAL_DIR

STDLIB = Path(sysconfig.get_paths()["stdlib"])
FILES = ["textwrap.py", "shlex.py", "fnmatch.py"]
LIMIT = 6
"""Six requests of at most 256 tokens: about a minute on one llama.cpp thread."""


def test_synthesis_from_stdlib_files_with_the_live_model(live_model, tmp_path: Path) -> None:
    corpus = tmp_path / "stdlib"
    corpus.mkdir()
    for name in FILES:
        shutil.copy(STDLIB / name, corpus / name)
    decontaminate = HUMANEVAL_DIR / "dev-k10.jsonl"
    config = SynthesizeConfig(
        source=str(corpus),
        base_url=live_model.base_url,
        model=live_model.model,
        limit=LIMIT,
        max_tokens=256,
        max_concurrency=2,
        decontaminate=str(decontaminate) if decontaminate.is_file() else None,
        request_timeout_s=300,
    )

    started = time.monotonic()
    synthesis = run_synthesis(config)
    wall = time.monotonic() - started

    report = synthesis.report
    print(f"\nlive synthesis over {FILES} in {wall:.1f} s:\n{report.summary()}")
    assert report.functions_picked == LIMIT
    assert report.accounted
    assert set(report.dropped) <= {reason.value for reason in DropReason}
    # The server answered every request (a refusal or timeout would be request_failed).
    assert report.dropped.get(DropReason.REQUEST_FAILED.value, 0) == 0
    assert len({p.problem_id for p in synthesis.problems}) == report.problems_kept
    for problem in synthesis.problems:
        assert problem.style is PromptStyle.COMPLETION
        assert problem.metadata["synthesized_by"] == live_model.model
        assert problem.metadata["source_file"].removeprefix("stdlib/") in FILES
        function = next(
            node
            for node in ast.parse(problem.prompt).body
            if isinstance(node, ast.FunctionDef) and node.name == problem.entry_point
        )
        assert ast.get_docstring(function) is not None and len(function.body) == 1

    out = tmp_path / "problems.jsonl"
    write_problems(synthesis.problems, str(out))
    rows = [Problem.model_validate_json(line) for line in out.read_text().splitlines()]
    assert rows == synthesis.problems
    if rows:
        assert scan_source(SourceConfig(path=str(out)), SamplerKind.OPENAI) == len(rows)
