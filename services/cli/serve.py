"""``pairforge serve``: run the HTTP job service under uvicorn.

    pairforge serve                                   local Ray head started if none runs
    pairforge serve --port 8000 --ray-address http://head:8265
    pairforge serve --stop-ray                        end the local head, then exit

Settings come from ``PAIRFORGE_*`` variables (see ``services.api.settings``); the flags
override them. Without a Ray address the command finds or starts a local Ray head (its
dashboard on 127.0.0.1:8265, token authentication on) that runs on its own: stopping or
restarting the service, Ctrl-C included, leaves it and its running builds alone, and the
next ``pairforge serve`` reuses it. ``pairforge serve --stop-ray`` ends it (``ray stop``
ends every Ray instance of this user on the machine).

On start it prints where the service and the Ray dashboard are and how to sign in to the
dashboard (Ray's token, ``ray get-auth-token``).
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

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
    parser.add_argument(
        "--stop-ray",
        action="store_true",
        help="stop the local Ray head an earlier `pairforge serve` started (on "
        "PAIRFORGE_LOCAL_RAY_PORT), then exit; running builds on it end too",
    )
    parser.set_defaults(run=run)


def banner(
    *,
    service_url: str,
    dashboard_url: str,
    head_lines: Sequence[str],
    token_hint: str,
    where: str,
) -> str:
    """What ``pairforge serve`` tells a person on start."""
    lines = [f"pairforge serve: the job service is on {service_url}", f"  {where}"]
    lines.append(f"Ray dashboard: {dashboard_url}")
    lines += [f"  {line}" for line in (*head_lines, token_hint)]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    import uvicorn
    from pydantic import ValidationError

    from cluster.local_ray import (
        LocalHeadConfig,
        auth_token_hint,
        describe_head,
        ensure_local_ray,
        stop_local_ray,
    )
    from pipeline.errors import InfrastructureError
    from services.api.app import create_app
    from services.api.settings import Settings
    from services.input_roots import resolve_input_roots
    from services.output_root import resolve_root

    try:
        settings = Settings()
        head_config = LocalHeadConfig(
            port=settings.local_ray_port,
            dashboard_port=settings.local_ray_dashboard_port,
            extra_args=tuple(shlex.split(settings.local_ray_args)),
        )
    except (ValidationError, ValueError) as exc:  # ValueError: unbalanced quotes
        print(f"pairforge serve: invalid PAIRFORGE_* settings:\n{exc}", file=sys.stderr)
        return 2
    if args.stop_ray:
        try:
            print(stop_local_ray(head_config), flush=True)
        except InfrastructureError as exc:
            print(f"pairforge serve --stop-ray: {exc}", file=sys.stderr)
            return 1
        return 0
    address = args.ray_address or settings.ray_address
    head_lines: Sequence[str] = (
        "the cluster at --ray-address / PAIRFORGE_RAY_ADDRESS; pairforge does not stop it",
    )
    if not address:
        try:
            head = ensure_local_ray(head_config)
        except InfrastructureError as exc:
            print(f"pairforge serve: {exc}", file=sys.stderr)
            return 1
        address = head.dashboard_url
        head_lines = describe_head(head)
    settings = settings.model_copy(update={"ray_address": address})
    print(
        banner(
            service_url=f"http://{args.host}:{args.port}",
            dashboard_url=settings.ray_dashboard_url or address,
            head_lines=head_lines,
            token_hint=auth_token_hint(),
            where=f"jobs in {settings.database_url}; outputs under "
            f"{resolve_root(settings.output_root)}; inputs under "
            + ", ".join(str(r) for r in resolve_input_roots(settings.input_roots, cwd=Path.cwd())),
        ),
        flush=True,
    )
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level="info")
    return 0
