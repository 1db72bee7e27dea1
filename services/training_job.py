"""The training job as pairforge starts it: its command line and the GPUs its config asks for.

The training job is ``deploy/training/train.py MANIFEST CONFIG.yaml``, run from the
project root (exit 0 done, 2 bad manifest, shard or config, 1 anything else). Both
``pairforge train`` and the service's hand-off start it from the same command line:

    argv = training_argv("python deploy/training/train.py", "/runs/x/manifest.json", "t.yaml")
    # [sys.executable, "deploy/training/train.py", "/runs/x/manifest.json", "t.yaml"]
    training_shell_line(argv, PROJECT_ROOT)     # what a Ray Job runs: cd ROOT && exec ...
    read_training_gpus(Path("t.yaml"))          # its top-level `num_gpus` (0 when absent)
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

import yaml

from pipeline.config import HandoffConfig
from pipeline.errors import JobSpecError

PROJECT_ROOT = Path(__file__).resolve().parents[1]
"""The checkout pairforge runs from: ``deploy/training/`` lives here, and the training
job's contract is to run from here."""

DEFAULT_ENTRYPOINT: str = HandoffConfig.model_fields["entrypoint"].default
"""``python deploy/training/train.py``: the JobSpec's default ``handoff.entrypoint``."""

PYTHON_WORDS = frozenset({"python", "python3"})
"""An entrypoint starting with one of these runs on this interpreter: its environment has
pairforge's `train` extra, and a Ray Job's PATH need not hold the virtual environment."""

MAX_CONFIG_BYTES = 1024 * 1024
"""Largest training config read to learn its GPUs; a real one is a few KiB."""

CONFIG_FIELD = "handoff.training_config"


def training_argv(entrypoint: str, manifest: str, config: str) -> list[str]:
    """The training job's argv: the entrypoint's words, then the manifest and the config.

    Raises:
        ValueError: ``entrypoint`` is empty or not a valid shell-like line.
    """
    words = shlex.split(entrypoint)
    if not words:
        raise ValueError("the training entrypoint is empty")
    if words[0] in PYTHON_WORDS:
        words[0] = sys.executable
    return [*words, manifest, config]


def training_shell_line(argv: list[str], workdir: Path) -> str:
    """The shell line a Ray Job runs: ``argv`` from ``workdir``, each word quoted."""
    return f"cd {shlex.quote(str(workdir))} && exec {shlex.join(argv)}"


def read_training_gpus(path: Path, field: str = CONFIG_FIELD) -> int:
    """The ``num_gpus`` a training config asks for (a top-level integer, 0 when absent).

    Only that field is read here: the training job validates the rest of its config.

    Raises:
        JobSpecError: the file cannot be read, is not a YAML mapping, or its ``num_gpus``
            is not a whole number >= 0 (the message names ``field`` and the file).
    """

    def refuse(why: str) -> JobSpecError:
        message = f"{field}: {path} {why}"
        return JobSpecError(message, [message])

    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise refuse(f"cannot be read ({exc.strerror or exc})") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise refuse(f"is over {MAX_CONFIG_BYTES} bytes; a training config is a small YAML file")
    try:
        loaded: Any = yaml.safe_load(raw.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise refuse(f"is not UTF-8 YAML: {first}") from None
    if not isinstance(loaded, dict):
        raise refuse(f"must be a YAML mapping of training settings, got {type(loaded).__name__}")
    gpus = loaded.get("num_gpus", 0)
    if isinstance(gpus, bool) or not isinstance(gpus, int) or gpus < 0:
        raise refuse(f"num_gpus must be a whole number >= 0, got {gpus!r}")
    return gpus
