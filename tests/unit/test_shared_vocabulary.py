"""One vocabulary across the layers that may not import each other.

The runner (stdlib only, inside the container) owns the cell statuses, the cell modes
and the protocol version; ``sandbox.types`` builds its enums from them; ``pipeline``
(which may not import ``sandbox``) keeps its own ``CellStatus`` and image default, which
must say exactly the same.
"""

from __future__ import annotations

import ast
from pathlib import Path

from pipeline import config, records
from sandbox import limits, protocol, runner, types, verdicts

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("pipeline", "sandbox", "cluster", "services")


def module_level_assignments(name: str) -> list[str]:
    """Files of the four packages that assign ``name`` at module level."""
    found = []
    for package in PACKAGES:
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in tree.body:
                targets = (
                    node.targets
                    if isinstance(node, ast.Assign)
                    else [getattr(node, "target", None)]
                )
                if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                    found.append(str(path.relative_to(REPO_ROOT)))
    return found


def test_cell_statuses_agree_exactly_in_order() -> None:
    runner_side = list(verdicts.STATUSES)
    assert [status.value for status in types.CellStatus] == runner_side
    assert [status.value for status in records.CellStatus] == runner_side
    assert {status.name.lower() for status in records.CellStatus} == set(runner_side)


def test_cell_modes_come_from_the_runner() -> None:
    assert [mode.value for mode in types.CellMode] == list(verdicts.MODES)


def test_the_protocol_version_is_defined_once() -> None:
    assert protocol.PROTOCOL is runner.PROTOCOL
    assert module_level_assignments("PROTOCOL") == ["sandbox/runner.py"]


def test_the_default_image_is_defined_once_and_the_pipeline_agrees() -> None:
    assert config.SandboxConfig().image == limits.DEFAULT_IMAGE
    assert limits.PoolConfig().image == limits.DEFAULT_IMAGE
    literal = limits.DEFAULT_IMAGE
    holders = [
        str(path.relative_to(REPO_ROOT))
        for package in ("sandbox", "cluster", "services")
        for path in sorted((REPO_ROOT / package).rglob("*.py"))
        if literal in path.read_text(encoding="utf-8")
    ]
    assert holders == ["sandbox/limits.py"]
