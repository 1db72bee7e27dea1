"""``pairforge build`` refuses, with exit 2 and before any Ray start, what it cannot run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from services.cli import main
from tests.conftest import REPO_ROOT


def _job_file(tmp_path: Path, **sections: Any) -> Path:
    body: dict[str, Any] = {
        "source": {"path": str(tmp_path / "problems.jsonl")},
        "sampler": {"kind": "replay"},
        "output": {"uri": str(tmp_path / "out")},
    }
    for name, values in sections.items():
        body[name] = {**body.get(name, {}), **values}
    path = tmp_path / "job.json"
    path.write_text(json.dumps(body), encoding="utf-8")
    return path


def _build(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["build", *argv])
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    ("section", "field"),
    [
        ({"pairs": {"method": "target_dpo"}}, "pairs.method"),
        ({"handoff": {"submit": True}}, "handoff.training_config"),
    ],
)
def test_a_spec_this_version_cannot_run_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], section: dict[str, Any], field: str
) -> None:
    code, err = _build([str(_job_file(tmp_path, **section))], capsys)
    assert code == 2
    assert f"\n  {field}:" in err
    assert not (tmp_path / "out").exists()


def test_limits_from_the_environment_apply(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PAIRFORGE_MAX_MEMORY_MB", "256")
    code, err = _build([str(_job_file(tmp_path, sandbox={"memory_mb": 512}))], capsys)
    assert code == 2
    assert "sandbox.memory_mb: 512 is over the limit of 256" in err


def test_limits_from_a_file_apply_over_the_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PAIRFORGE_MAX_PIDS", "100000")
    limits = tmp_path / "limits.yaml"
    limits.write_text("max_pids: 64\n", encoding="utf-8")
    job = _job_file(tmp_path, sandbox={"pids": 128})
    code, err = _build([str(job), "--limits", str(limits)], capsys)
    assert code == 2
    assert "sandbox.pids: 128 is over the limit of 64" in err


@pytest.mark.parametrize(
    ("text", "expected"), [("max_pidz: 3\n", "max_pidz"), ("max_pids: [\n", "YAML")]
)
def test_a_bad_limits_file_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, expected: str
) -> None:
    limits = tmp_path / "limits.yaml"
    limits.write_text(text, encoding="utf-8")
    code, err = _build([str(_job_file(tmp_path)), "--limits", str(limits)], capsys)
    assert code == 2
    assert expected in err


def test_refusals_start_no_ray(tmp_path: Path) -> None:
    job = _job_file(tmp_path, pairs={"method": "target_dpo"})
    code = (
        "import sys; from services.cli import main; code = main(['build', sys.argv[1]]); "
        "print('ray' in sys.modules); sys.exit(code)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(job)], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert out.returncode == 2, out.stderr
    assert out.stdout.strip() == "False"
