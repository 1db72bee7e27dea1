"""``pairforge matrix``: pass matrices for a JSONL file of problems, in the Docker sandbox.

    pairforge matrix problems.jsonl matrices.jsonl
    pairforge matrix problems.jsonl matrices.jsonl --workers 4 --timeout 2 --memory 256

Input rows: ``{"problem_id": str, "programs": [str], "tests": [str]}``; a cell runs
``program + "\\n" + test``. Output rows, written as each problem finishes:
``{"problem_id": str, "status": [[str]], "timings": {...}, "budget_exceeded": bool}`` with
``status[i][j]`` for program i against test j. A malformed input row is reported on stderr
with its line number and skipped. Exit status 1 only when the run cannot proceed (no Docker
engine, no image, unreadable input).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sandbox.limits import DEFAULT_IMAGE

if TYPE_CHECKING:
    from sandbox.matrix import MatrixProblem


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "matrix",
        help="build pass matrices in the sandbox",
        description="Run every program of each input problem against every test in warm "
        "Docker sandbox containers; write one status matrix per problem as it finishes.",
    )
    parser.add_argument("input", type=Path, help="JSONL: problem_id, programs, tests")
    parser.add_argument("output", type=Path, help="JSONL written as problems finish")
    parser.add_argument("--workers", type=int, default=2, help="warm containers (default 2)")
    parser.add_argument(
        "--timeout", type=float, default=1.0, help="wall-clock seconds per test (default 1)"
    )
    parser.add_argument(
        "--memory", type=int, default=512, help="MiB of memory per container (default 512)"
    )
    parser.add_argument("--image", default=DEFAULT_IMAGE, help=f"default {DEFAULT_IMAGE}")
    parser.add_argument(
        "--budget", type=float, default=120.0, help="seconds per problem (default 120)"
    )
    parser.add_argument(
        "--isolation",
        choices=["process", "shared"],
        default="process",
        help="process (default): a fresh process per test; shared: one per program",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from sandbox.errors import SandboxError
    from sandbox.limits import PoolConfig, SandboxLimits
    from sandbox.matrix import MatrixBuilder
    from sandbox.pool import ContainerPool
    from sandbox.types import Isolation

    try:
        config = PoolConfig(
            image=args.image,
            workers=args.workers,
            timeout_s=args.timeout,
            isolation=Isolation(args.isolation),
            limits=SandboxLimits(memory_mb=args.memory),
        )
    except ValidationError as exc:
        sys.stderr.write(f"pairforge matrix: invalid option: {exc}\n")
        return 2
    if not args.input.is_file():
        sys.stderr.write(f"pairforge matrix: expected an input file, {args.input} is not one\n")
        return 1
    started = time.monotonic()
    problems = cells = 0
    try:
        with (
            ContainerPool(config) as pool,
            args.output.open("w", encoding="utf-8") as out,
        ):
            builder = MatrixBuilder(pool, budget_s=args.budget)
            for result in builder.build_many(_read_problems(args.input)):
                row = {
                    "problem_id": result.problem_id,
                    "status": [[status.value for status in row] for row in result.status],
                    "timings": result.timings.model_dump(),
                    "budget_exceeded": result.budget_exceeded,
                }
                out.write(json.dumps(row) + "\n")
                out.flush()
                problems += 1
                cells += result.timings.cells
    except SandboxError as exc:
        sys.stderr.write(f"pairforge matrix: {exc}\n")
        return 1
    except OSError as exc:
        sys.stderr.write(f"pairforge matrix: cannot write {args.output}: {exc}\n")
        return 1
    elapsed = time.monotonic() - started
    rate = cells / elapsed if elapsed else 0.0
    sys.stderr.write(
        f"{problems} problems, {cells} cells in {elapsed:.1f} s ({rate:.0f} cells/s) "
        f"-> {args.output}\n"
    )
    return 0


def _read_problems(path: Path) -> Iterator[MatrixProblem]:
    """Problems from ``path``, one per line; malformed lines go to stderr and are skipped."""
    from pydantic import ValidationError

    from sandbox.matrix import MatrixProblem

    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                yield MatrixProblem.model_validate(json.loads(line))
            except (ValueError, ValidationError) as exc:
                reason = str(exc).replace("\n", "; ")[:300]
                sys.stderr.write(f"{path}:{number}: skipped malformed row: {reason}\n")
