"""``pairforge train``: train on a dataset pairforge built, here or as a Ray Job.

    pairforge train runs/quickstart/manifest.json deploy/training/cpu-smoke.yaml
    pairforge train MANIFEST CONFIG.yaml --address http://127.0.0.1:8265          # Ray Job
    pairforge train MANIFEST CONFIG.yaml --address http://127.0.0.1:8265 --wait   # and follow

Runs the training job (``python deploy/training/train.py MANIFEST CONFIG``, from the
pairforge checkout, on this interpreter) and exits with its code: 0 trained, 2 bad
manifest, shard or config, 1 anything else. With ``--address`` the same command is
submitted as a Ray Job with the GPUs the config's ``num_gpus`` asks for; the submission id
and its dashboard link are printed, and ``--wait`` follows its output to the end.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.errors import ConfigError, InfrastructureError
from services.training_job import (
    DEFAULT_ENTRYPOINT,
    PROJECT_ROOT,
    read_training_gpus,
    training_argv,
    training_shell_line,
)

if TYPE_CHECKING:
    from cluster.launcher import RayJobLauncher

WAIT_POLL_S = 2.0
"""Seconds between looks at a Ray Job followed with ``--wait``."""

_PROG = "pairforge train"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a model on a built dataset (here, or as a Ray Job with --address)",
        description="Run the training job on a dataset's manifest with a training config.",
    )
    parser.add_argument("manifest", help="the dataset's manifest.json (local path or URI)")
    parser.add_argument("config", type=Path, help="training config (YAML)")
    parser.add_argument(
        "--address",
        default=None,
        help="Ray dashboard address (http://HOST:8265): submit as a Ray Job instead",
    )
    parser.add_argument(
        "--wait",
        action="store_true",
        help="with --address: follow the Ray Job's output and exit with its exit code",
    )
    parser.add_argument(
        "--name", default="", help="with --address: the Ray Job's name in the dashboard"
    )
    parser.add_argument(
        "--entrypoint",
        default=DEFAULT_ENTRYPOINT,
        help=f"training command; the manifest and config are appended and it runs from "
        f"{PROJECT_ROOT} (default: {DEFAULT_ENTRYPOINT!r}; a leading `python` is this "
        "interpreter)",
    )
    parser.set_defaults(run=run_train)


def _is_uri(text: str) -> bool:
    return "://" in text and not text.startswith("file://")


def _local(text: str) -> Path:
    return Path(text.removeprefix("file://")).expanduser().absolute()


def _fail(code: int, message: str) -> int:
    print(f"{_PROG}: {message}", file=sys.stderr)
    return code


def run_train(args: argparse.Namespace) -> int:
    # The command runs from the project root: relative paths must not change meaning.
    manifest = args.manifest if _is_uri(args.manifest) else str(_local(args.manifest))
    config = args.config.expanduser().absolute()
    missing = [
        f"{what} {path} does not exist"
        for what, path, local in (
            ("manifest", manifest, not _is_uri(manifest)),
            ("training config", str(config), True),
        )
        if local and not Path(path).is_file()
    ]
    if missing:
        return _fail(2, "; ".join(missing))
    try:
        argv = training_argv(args.entrypoint, manifest, str(config))
    except ValueError as exc:
        return _fail(2, f"--entrypoint {args.entrypoint!r}: {exc}")
    script = _missing_script(argv)
    if script is not None:
        return _fail(
            1,
            f"the training job is not here: {script} does not exist (pairforge train runs "
            "the training job of a pairforge checkout; give its command with --entrypoint)",
        )
    if args.address:
        return _submit(args, argv, manifest, config)
    return _run_here(argv)


def _missing_script(argv: list[str]) -> Path | None:
    """The Python script the command runs, when it names one that is not there."""
    if argv[0] != sys.executable or len(argv) < 4 or argv[1].startswith("-"):
        return None
    script = Path(argv[1]) if Path(argv[1]).is_absolute() else PROJECT_ROOT / argv[1]
    return None if script.is_file() else script


def _run_here(argv: list[str]) -> int:
    """Run the training job in a child process; its output goes straight to ours."""
    try:
        child = subprocess.Popen(argv, cwd=PROJECT_ROOT)
    except OSError as exc:
        return _fail(1, f"cannot start {argv[0]}: {exc}")
    try:
        code = child.wait()
    except KeyboardInterrupt:
        # The child got the same Ctrl-C; give it the time to write what it must.
        code = child.wait()
    # A child ended by a signal is reported as a shell reports it.
    return code if code >= 0 else 128 - code


def _training_of(manifest: str) -> str:
    """The dataset's job id, from a local manifest (the training job validates it)."""
    import json

    if _is_uri(manifest):
        return ""
    try:
        loaded = json.loads(Path(manifest).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    job_id = loaded.get("job_id") if isinstance(loaded, dict) else None
    return job_id if isinstance(job_id, str) else ""


def _submit(args: argparse.Namespace, argv: list[str], manifest: str, config: Path) -> int:
    from cluster.launcher import RayJobLauncher

    try:
        gpus = read_training_gpus(config, field="training config")
    except ConfigError as exc:
        return _fail(2, str(exc))
    training_of = _training_of(manifest)
    submission_id = f"{training_of or 'pf'}-train-{uuid.uuid4().hex[:6]}"
    launcher = RayJobLauncher(args.address)
    try:
        launcher.submit_training(
            submission_id=submission_id,
            training_of=training_of,
            command=training_shell_line(argv, PROJECT_ROOT),
            num_gpus=gpus,
            name=args.name or f"{training_of or Path(manifest).parent.name} (training)",
        )
    except InfrastructureError as exc:
        return _fail(1, str(exc))
    print(submission_id)
    print(f"dashboard  {launcher.dashboard_url(submission_id)}", file=sys.stderr)
    if not args.wait:
        return 0
    return _follow(launcher, submission_id)


def _follow(launcher: RayJobLauncher, submission_id: str) -> int:
    """Print the Ray Job's output as it grows; its exit code once it ends (1 if unknown)."""
    shown = 0
    try:
        while True:
            status = launcher.status(submission_id)
            logs = launcher.logs(submission_id)
            sys.stdout.write(logs[shown:])
            sys.stdout.flush()
            shown = len(logs)
            if status is None:
                return _fail(1, f"Ray Job {submission_id} no longer exists on the cluster")
            if status.state.final:
                break
            time.sleep(WAIT_POLL_S)
    except InfrastructureError as exc:
        return _fail(1, str(exc))
    except KeyboardInterrupt:
        print(f"stopped following; Ray Job {submission_id} goes on", file=sys.stderr)
        return 130
    code = launcher.exit_code(submission_id)
    print(f"Ray Job {submission_id} {status.state.value}", file=sys.stderr)
    if code is not None:
        return code
    return 0 if status.state.value == "succeeded" else 1
