"""Building the sandbox image: reuse by digest, which path is taken, and failures.

Commands go to a scripted ``Commands`` (the module's own interface); the real engine
builds in tests/integration/sandbox/test_image_build.py.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from sandbox import image
from sandbox.errors import DockerUnavailable, ImageBuildError


class ScriptedCommands:
    """Answers commands by their leading words; records every command line."""

    def __init__(self, answers: dict[tuple[str, ...], tuple[int, str]]) -> None:
        self.answers = answers
        self.ran: list[list[str]] = []
        self.contexts: list[list[str]] = []

    def run(self, command: list[str]) -> subprocess.CompletedProcess[bytes]:
        self.ran.append(command)
        if command[:2] == ["docker", "build"]:
            context = Path(command[-1])
            self.contexts.append(sorted(str(p.relative_to(context)) for p in context.rglob("*")))
        for prefix, (code, output) in sorted(self.answers.items(), key=lambda kv: -len(kv[0])):
            if tuple(command[: len(prefix)]) == prefix:
                return subprocess.CompletedProcess(command, code, output.encode(), b"")
        raise AssertionError(f"unexpected command {command}")

    def builds(self) -> list[list[str]]:
        return [command for command in self.ran if command[:2] == ["docker", "build"]]


LABEL = ("docker", "image", "inspect", "--format")
BASE = ("docker", "image", "inspect", image.OFFLINE_BASE_TAG)
BUILD = ("docker", "build")


def test_an_image_labelled_with_the_current_digest_is_reused() -> None:
    commands = ScriptedCommands({LABEL: (0, image.source_digest() + "\n")})
    said = image.build_image("sbx:test", commands=commands)
    assert said == f"sbx:test is up to date (runner {image.source_digest()}); nothing to build"
    assert commands.builds() == []


def test_a_stale_label_rebuilds_with_the_digest_and_the_runner_modules() -> None:
    commands = ScriptedCommands({LABEL: (0, "0123456789abcdef\n"), BUILD: (0, "sha256:x")})
    assert image.build_image("sbx:test", commands=commands).startswith("built sbx:test from")
    (build,) = commands.builds()
    assert ["--build-arg", f"RUNNER_SHA={image.source_digest()}"] == build[5:7]
    assert "BASE_IMAGE" not in " ".join(build)
    # The context holds the Dockerfile and exactly the stdlib-only runner modules.
    assert commands.contexts == [
        ["Dockerfile", "sandbox", *sorted(f"sandbox/{name}" for name in image.RUNNER_MODULES)]
    ]


def test_auto_falls_back_to_the_offline_base_when_the_registry_fails() -> None:
    commands = ScriptedCommands({LABEL: (1, ""), BUILD: (1, "no such host"), BASE: (0, "[]")})
    # Only the build on the offline base (one more --build-arg) succeeds.
    digest_arg = f"RUNNER_SHA={image.source_digest()}"
    on_base = (*BUILD, "--quiet", "--tag", "sbx:test", "--build-arg", digest_arg, "--build-arg")
    commands.answers[on_base] = (0, "ok")
    said = image.build_image("sbx:test", commands=commands)
    assert said == f"built sbx:test offline on {image.OFFLINE_BASE_TAG} (reused)"
    first, second = commands.builds()
    assert "BASE_IMAGE" not in " ".join(first)
    assert f"BASE_IMAGE={image.OFFLINE_BASE_TAG}" in second


def test_the_dockerfile_method_never_tries_offline() -> None:
    commands = ScriptedCommands({BUILD: (1, "step 2/9\nno such host")})
    with pytest.raises(ImageBuildError, match=r"docker build of sbx:test failed \(exit 1\)"):
        image.build_image("sbx:test", image.BuildMethod.DOCKERFILE, commands=commands)
    assert len(commands.builds()) == 1
    assert not any(command[:3] == list(BASE[:3]) for command in commands.ran)


def test_the_offline_method_skips_the_registry_and_reports_the_last_lines() -> None:
    commands = ScriptedCommands({BASE: (0, "[]"), BUILD: (2, "\n".join(f"l{i}" for i in range(9)))})
    with pytest.raises(ImageBuildError, match=r"exit 2\): l4 \| l5 \| l6 \| l7 \| l8$"):
        image.build_image("sbx:test", image.BuildMethod.OFFLINE, commands=commands)
    (build,) = commands.builds()
    assert f"BASE_IMAGE={image.OFFLINE_BASE_TAG}" in build


def test_a_missing_docker_command_says_what_to_install() -> None:
    class NoDocker:
        def run(self, command: list[str]) -> subprocess.CompletedProcess[bytes]:
            raise FileNotFoundError(command[0])

    with pytest.raises(DockerUnavailable, match="install Docker"):
        image.build_image("sbx:test", commands=NoDocker())


def test_the_digest_covers_every_module_and_the_dockerfile(tmp_path: Path) -> None:
    sources = []
    for name in ("runner.py", "cell.py", "Dockerfile"):
        (tmp_path / name).write_text(f"# {name}\n")
        sources.append(tmp_path / name)
    before = image.source_digest(sources)
    (tmp_path / "cell.py").write_text("# changed\n")
    assert image.source_digest(sources) != before
    # A renamed file is a different image too, even with the same contents.
    (tmp_path / "judge.py").write_text("# changed\n")
    assert image.source_digest([tmp_path / "judge.py"]) != image.source_digest([sources[1]])
    assert {path.name for path in image.source_paths()} == {*image.RUNNER_MODULES, "Dockerfile"}


def test_every_sandbox_module_the_runner_imports_goes_into_the_image() -> None:
    """The closure of the runner's ``sandbox`` imports is in RUNNER_MODULES (and so in the
    digest): a module left out would make every container fail at start."""
    import ast

    pending, seen = ["runner"], set()
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        tree = ast.parse((image.PACKAGE_DIR / f"{name}.py").read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "sandbox":
                pending += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sandbox."):
                pending.append(str(node.module).split(".")[1])
    assert {f"{name}.py" for name in seen} <= set(image.RUNNER_MODULES)
    assert "feedback.py" in image.RUNNER_MODULES
