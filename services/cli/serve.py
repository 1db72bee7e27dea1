"""``pairforge serve``: run the HTTP job service under uvicorn.

    pairforge serve                                   local Ray head started if none runs
    pairforge serve --port 8000 --ray-address http://head:8265

Settings come from ``PAIRFORGE_*`` variables (see ``services.api.settings``); the flags
override them. Without a Ray address the command finds or starts a local Ray head (with its
dashboard on 127.0.0.1:8265) as separate processes, so restarting the service leaves
running builds alone; stop that head with ``ray stop``.
"""

from __future__ import annotations

import argparse
import logging
import sys

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="start the HTTP job service",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port to bind (8000)")
    parser.add_argument(
        "--ray-address",
        default=None,
        help="Ray dashboard address, http://HOST:8265 (default: PAIRFORGE_RAY_ADDRESS, "
        "else a local Ray head)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import uvicorn
    from pydantic import ValidationError

    from pipeline.errors import InfrastructureError
    from services.api.app import create_app
    from services.api.settings import Settings

    try:
        settings = Settings()
    except ValidationError as exc:
        print(f"pairforge serve: invalid PAIRFORGE_* settings:\n{exc}", file=sys.stderr)
        return 2
    address = args.ray_address or settings.ray_address
    if not address:
        from cluster.local_ray import ensure_local_ray

        try:
            address = ensure_local_ray()
        except InfrastructureError as exc:
            print(f"pairforge serve: {exc}", file=sys.stderr)
            return 1
    settings = settings.model_copy(update={"ray_address": address})
    logger.info(
        "serving on http://%s:%d (Ray dashboard %s, jobs in %s, outputs under %s, inputs under %s)",
        args.host,
        args.port,
        address,
        settings.database_url,
        settings.output_root,
        ", ".join(settings.input_roots),
    )
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level="info")
    return 0
