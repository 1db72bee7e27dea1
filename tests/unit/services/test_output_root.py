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


def test_relative_paths_resolve_under_the_root_not_the_cwd(
    tmp_path: Path, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The service's working directory is not the caller's business: a relative location
    # means the same directory wherever the service was started.
    monkeypatch.chdir(tmp_path / "runs")
    assert root == tmp_path.resolve() / "runs"
    assert resolve_output_dir("a/b", root) == root / "a" / "b"
    assert resolve_output_dir("./a", root) == root / "a"
    assert resolve_output_dir("runs/a", root) == root / "runs" / "a"
    assert resolve_output_dir(f"file://{root}/c", root) == root / "c"
    assert resolve_output_dir(str(root / "d"), root) == root / "d"


@pytest.mark.parametrize(
    "uri",
    ["../x", "a/../b", "..", "/etc", "/elsewhere/x", ".", "s3://b/k", "gs://b", " "],
)
def test_escapes_are_refused(tmp_path: Path, root: Path, uri: str) -> None:
    with pytest.raises(OutputLocationError):
        resolve_output_dir(uri, root)


def test_symlink_out_of_root_is_refused_and_inside_is_allowed(tmp_path: Path, root: Path) -> None:
    (tmp_path / "outside").mkdir()
    (root / "out").symlink_to(tmp_path / "outside")
    (root / "real").mkdir()
    (root / "in").symlink_to(root / "real")
    with pytest.raises(OutputLocationError) as info:
        resolve_output_dir("out/job", root)
    assert str(tmp_path.resolve() / "outside" / "job") in str(info.value)
    assert resolve_output_dir("in/job", root) == root / "real" / "job"


def test_symlink_loop_is_refused(tmp_path: Path, root: Path) -> None:
    (root / "loop").symlink_to(root / "loop")
    with pytest.raises(OutputLocationError):
        resolve_output_dir("loop/x", root)
