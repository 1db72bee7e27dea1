"""``pairforge matrix`` end to end, as a real subprocess against the real sandbox."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, SANDBOX_IMAGE, requires_sandbox_image

pytestmark = [pytest.mark.docker]

ROWS = [
    {
        "problem_id": "inc",
        "programs": ["def inc(x):\n    return x + 1\n", "def inc(x):\n    return x\n"],
        "tests": ["assert inc(1) == 2", "assert inc(0) == 1", "assert inc(-1) != 5"],
    },
    "{not json",
    {"problem_id": "no tests key", "programs": ["x = 1"]},
    {
        "problem_id": "loop",
        "programs": ["def spin():\n    while True:\n        pass\n"],
        "tests": ["spin()", "assert spin is not None"],
    },
]


def pairforge(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


def write_input(path: Path) -> None:
    lines = [row if isinstance(row, str) else json.dumps(row) for row in ROWS]
    path.write_text("\n".join(lines) + "\n")


@requires_sandbox_image
def test_matrix_streams_rows_and_skips_malformed_ones(tmp_path: Path) -> None:
    source, target = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_input(source)
    done = pairforge(
        "matrix", str(source), str(target), "--workers", "2", "--timeout", "0.5",
        "--memory", "256", "--image", SANDBOX_IMAGE,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = {row["problem_id"]: row for row in map(json.loads, target.read_text().splitlines())}
    assert set(rows) == {"inc", "loop"}
    assert rows["inc"]["status"] == [["passed", "passed", "passed"], ["failed", "failed", "passed"]]
    assert rows["loop"]["status"] == [["timeout", "passed"]]
    assert rows["inc"]["timings"]["cells"] == 6
    assert rows["loop"]["timings"]["wall_s"] >= 0.5
    assert rows["inc"]["budget_exceeded"] is False
    assert f"{source}:2:" in done.stderr
    assert f"{source}:3:" in done.stderr
    assert f"{source}:1:" not in done.stderr and f"{source}:4:" not in done.stderr


def test_matrix_without_an_engine_says_how_to_start_one(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    write_input(source)
    done = pairforge(
        "matrix", str(source), str(tmp_path / "out.jsonl"),
        env={"DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"},
    )  # fmt: skip
    assert done.returncode == 1
    assert "start the Docker engine" in done.stderr
