"""Output locations resolve under the root or are refused, symlinks followed."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import OutputLocationError
from services.output_root import resolve_output_dir, resolve_root


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "runs").mkdir()
    return resolve_root("runs", cwd=tmp_path)


def test_relative_paths_resolve_against_cwd(tmp_path: Path, root: Path) -> None:
    assert root == tmp_path.resolve() / "runs"
    assert resolve_output_dir("runs/a/b", root, cwd=tmp_path) == root / "a" / "b"
    assert resolve_output_dir("./runs/a", root, cwd=tmp_path) == root / "a"
    assert resolve_output_dir(f"file://{root}/c", root, cwd=tmp_path) == root / "c"


@pytest.mark.parametrize(
    "uri",
    ["runs/../x", "runs/a/../b", "..", "/etc", "elsewhere/x", "runs", "s3://b/k", "gs://b", " "],
)
def test_escapes_are_refused(tmp_path: Path, root: Path, uri: str) -> None:
    with pytest.raises(OutputLocationError):
        resolve_output_dir(uri, root, cwd=tmp_path)


def test_symlink_out_of_root_is_refused_and_inside_is_allowed(tmp_path: Path, root: Path) -> None:
    (tmp_path / "outside").mkdir()
    (root / "out").symlink_to(tmp_path / "outside")
    (root / "real").mkdir()
    (root / "in").symlink_to(root / "real")
    with pytest.raises(OutputLocationError) as info:
        resolve_output_dir("runs/out/job", root, cwd=tmp_path)
    assert str(tmp_path.resolve() / "outside" / "job") in str(info.value)
    assert resolve_output_dir("runs/in/job", root, cwd=tmp_path) == root / "real" / "job"


def test_symlink_loop_is_refused(tmp_path: Path, root: Path) -> None:
    (root / "loop").symlink_to(root / "loop")
    with pytest.raises(OutputLocationError):
        resolve_output_dir("runs/loop/x", root, cwd=tmp_path)
