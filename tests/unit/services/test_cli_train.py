"""``pairforge train`` run here: the training job's command, exit code and output, passed
through from a stand-in that keeps ``deploy/training/train.py``'s contract."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from services.cli import main
from services.training_job import PROJECT_ROOT
from tests.unit.services.training_stand_in import write_stand_in


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    manifest = tmp_path / "runs" / "manifest.json"
    manifest.parent.mkdir()
    manifest.write_text(json.dumps({"job_id": "pf-abc"}), encoding="utf-8")
    return manifest


def _config(tmp_path: Path, **values: object) -> Path:
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump({"output_dir": str(tmp_path / "model"), **values}))
    return path


@pytest.mark.parametrize("exit_code", [0, 1, 2, 3])
def test_the_training_job_runs_here_and_its_exit_code_passes_through(
    tmp_path: Path,
    dataset: Path,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    exit_code: int,
) -> None:
    stand_in = write_stand_in(tmp_path)
    _config(tmp_path, exit_code=exit_code)
    monkeypatch.chdir(tmp_path)  # relative paths are the caller's, not the project root's
    code = main(["train", "runs/manifest.json", "train.yaml", "--entrypoint", f"python {stand_in}"])
    assert code == exit_code
    assert capfd.readouterr().out == f"stand-in trained on {dataset}\n"  # streamed, as is
    summary = json.loads((tmp_path / "model" / "training_summary.json").read_text())
    assert summary == {
        "argv": [str(dataset), str(tmp_path / "train.yaml")],
        "cwd": str(PROJECT_ROOT),
        "job_id": "pf-abc",
    }


def test_missing_files_exit_2_naming_each(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stand_in = write_stand_in(tmp_path)
    manifest, config = tmp_path / "nope" / "manifest.json", tmp_path / "nope.yaml"
    code = main(["train", str(manifest), str(config), "--entrypoint", f"python {stand_in}"])
    assert code == 2
    assert capsys.readouterr().err == (
        f"pairforge train: manifest {manifest} does not exist; training config {config} "
        "does not exist\n"
    )
    assert not (tmp_path / "model").exists()


def test_a_missing_manifest_alone_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["train", str(tmp_path / "m.json"), str(_config(tmp_path))])
    assert code == 2
    err = capsys.readouterr().err
    assert f"manifest {tmp_path / 'm.json'} does not exist" in err
    assert "training config" not in err


def test_a_training_job_that_is_not_there_is_named(
    tmp_path: Path, dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["train", str(dataset), str(_config(tmp_path)), "--entrypoint", "python no/train.py"]
    )
    assert code == 1
    assert f"{PROJECT_ROOT / 'no' / 'train.py'} does not exist" in capsys.readouterr().err
