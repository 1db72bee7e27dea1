"""``pairforge image``: build (or confirm) the sandbox image.

pairforge image                                   reuse an up-to-date image, else build it
pairforge image --method offline                  build on a local debootstrap base
pairforge image --tag my-sandbox:dev --method dockerfile
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from sandbox.limits import DEFAULT_IMAGE


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "image",
        help="build the sandbox image",
        description="Build the sandbox image from deploy/sandbox/Dockerfile; without a "
        "registry, on a local Debian base made with debootstrap.",
    )
    parser.add_argument("--tag", default=DEFAULT_IMAGE, help=f"image tag (default {DEFAULT_IMAGE})")
    parser.add_argument(
        "--method",
        choices=["auto", "dockerfile", "offline"],
        default="auto",
        help="auto (default): reuse an image holding this runner, else try the Dockerfile "
        "and fall back to offline when its base cannot be pulled",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from sandbox.errors import SandboxError
    from sandbox.image import BuildMethod, build_image

    try:
        sys.stdout.write(build_image(args.tag, BuildMethod(args.method)) + "\n")
    except SandboxError as exc:
        sys.stderr.write(f"pairforge image: {exc}\n")
        return 1
    return 0
