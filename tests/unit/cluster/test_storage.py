"""Opening paths and URIs, and files that appear whole or not at all (on the local disk)."""

from __future__ import annotations

from pathlib import Path

import pyarrow.fs as pafs
import pytest

from cluster.storage import TEMP_PREFIX, read_text, resolve_uri, write_atomically, write_text
from pipeline.errors import StorageError


def test_a_local_path_is_made_absolute_on_the_local_disk(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fs, path = resolve_uri("out/run-1")
    assert isinstance(fs, pafs.LocalFileSystem)
    assert path == str(tmp_path.resolve() / "out" / "run-1")


def test_a_home_relative_path_is_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    _, path = resolve_uri("~/data/p.jsonl")
    assert path == str(tmp_path.resolve() / "data" / "p.jsonl")


def test_a_file_uri_opens_the_local_disk(tmp_path):
    fs, path = resolve_uri(f"file://{tmp_path}/out/")
    assert isinstance(fs, pafs.LocalFileSystem)
    assert path == f"{tmp_path}/out"  # no trailing slash: callers append "/name"


def test_a_file_uri_naming_localhost_is_this_machine(tmp_path):
    fs, path = resolve_uri(f"file://localhost{tmp_path}/out")
    assert isinstance(fs, pafs.LocalFileSystem)
    assert path == f"{tmp_path}/out"


@pytest.mark.parametrize("uri", ["file://otherhost/data/out", "file://10.0.0.7/data/out"])
def test_a_file_uri_naming_another_host_is_refused(uri):
    # pyarrow would drop the host and write to this machine's /data/out.
    with pytest.raises(StorageError, match="must not name a host") as info:
        resolve_uri(uri)
    assert "file:///absolute/path" in str(info.value)


def test_an_unknown_scheme_is_a_storage_error_with_the_forms_expected():
    with pytest.raises(StorageError, match=r"cannot open 'nosuchscheme://bucket/x'") as info:
        resolve_uri("nosuchscheme://bucket/x")
    assert "s3://bucket/x" in str(info.value)


def test_write_atomically_creates_the_directory_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "deep" / "er" / "f.bin"
    seen: list[str] = []

    def write(temp: str) -> None:
        seen.append(temp)
        Path(temp).write_bytes(b"whole")

    fs, root = resolve_uri(str(tmp_path))
    write_atomically(fs, f"{root}/deep/er/f.bin", write)
    assert target.read_bytes() == b"whole"
    assert list(target.parent.iterdir()) == [target]
    # The data went to a temporary beside the target, under the prefix a resume removes.
    (temp,) = seen
    assert Path(temp).parent == target.parent and Path(temp).name.startswith(TEMP_PREFIX)


def test_a_file_is_never_seen_half_written(tmp_path):
    fs, root = resolve_uri(str(tmp_path))
    target = tmp_path / "manifest.json"
    write_text(fs, f"{root}/manifest.json", "old")

    def write(temp: str) -> None:
        Path(temp).write_text("new, but only ha")
        # While the new content is being written, readers still see the old file whole.
        assert target.read_text() == "old"
        raise OSError("disk full")

    with pytest.raises(StorageError, match=r"could not write .*manifest.json: disk full"):
        write_atomically(fs, f"{root}/manifest.json", write)
    assert target.read_text() == "old"


def test_a_write_below_a_file_is_a_storage_error(tmp_path):
    (tmp_path / "blocker").write_text("a file, not a directory")
    fs, root = resolve_uri(str(tmp_path))
    with pytest.raises(StorageError, match="could not write"):
        write_text(fs, f"{root}/blocker/out.json", "{}")


def test_text_round_trips_as_utf8_and_replaces_the_old_content(tmp_path):
    fs, root = resolve_uri(str(tmp_path))
    write_text(fs, f"{root}/t.txt", "first version, longer than the second")
    write_text(fs, f"{root}/t.txt", "héllo ✓\n")
    assert read_text(fs, f"{root}/t.txt") == "héllo ✓\n"
    assert (tmp_path / "t.txt").read_bytes() == "héllo ✓\n".encode()
    assert [p.name for p in tmp_path.iterdir()] == ["t.txt"]


def test_read_text_of_a_missing_file_or_a_directory_is_none(tmp_path):
    fs, root = resolve_uri(str(tmp_path))
    (tmp_path / "sub").mkdir()
    assert read_text(fs, f"{root}/missing.json") is None
    assert read_text(fs, f"{root}/no/such/dir/missing.json") is None
    assert read_text(fs, f"{root}/sub") is None


def test_read_text_of_a_file_that_is_not_utf8_is_a_storage_error(tmp_path):
    (tmp_path / "bad.json").write_bytes(b'{"a": "\xff"}')
    fs, root = resolve_uri(str(tmp_path))
    with pytest.raises(StorageError, match=r"could not read .*bad.json"):
        read_text(fs, f"{root}/bad.json")
