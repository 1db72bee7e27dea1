"""The ``pairforge`` command: one entry point, one module per subcommand.

    pairforge build examples/quickstart/job.yaml     run a dataset build
    pairforge matrix in.jsonl out.jsonl              build pass matrices in the sandbox
    pairforge image                                  build the sandbox image
    pairforge serve                                  start the HTTP job service
    pairforge submit job.yaml                        submit a job to the service
    pairforge model serve                            serve the bundled model (live sampling)
    pairforge synthesize SRC --out problems.jsonl    write problems from Python source
    pairforge train MANIFEST CONFIG.yaml             train on a built dataset (--address: Ray)

Each subcommand module has ``register(subparsers)`` and keeps heavy imports (Ray, Docker,
uvicorn) inside the function that runs it, so ``pairforge --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

# Modules under services.cli, each exposing register(subparsers) -> None.
_SUBCOMMAND_MODULES: tuple[str, ...] = (
    "build",
    "serve",
    "client",
    "matrix",
    "image",
    "model",
    "synthesize",
    "train",
)


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pairforge", description="Build code preference datasets on Ray."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="Log debug messages.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in _SUBCOMMAND_MODULES:
        importlib.import_module(f"services.cli.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not args.verbose:
        # One INFO line per HTTP request would bury the client commands' own output.
        logging.getLogger("httpx").setLevel(logging.WARNING)
    code: int = args.run(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
