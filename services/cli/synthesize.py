"""``pairforge synthesize SRC --out problems.jsonl``: problems written by a model from Python code.

    pairforge model serve &                                   # the bundled model, port 8080
    pairforge synthesize /usr/lib/python3.11/json --out problems.jsonl
    pairforge synthesize 'src/**/*.py' --out p.jsonl --base-url http://gpu:8000/v1 \\
        --model Qwen/Qwen2.5-Coder-7B-Instruct --limit 200 \\
        --decontaminate humaneval.jsonl --dedup-threshold 0.8

SRC is a directory (searched recursively), a glob or one .py file. Each public top-level
function seeds one request for a self-contained problem with the function's name as entry
point; answers are checked with ``ast`` (never run), decontaminated against the benchmark
prompts of ``--decontaminate`` (JSONL with a ``prompt`` field) and deduplicated. The kept
problems are written as JSONL ``Problem`` rows (completion style) that ``pairforge build``
reads as ``source.path``; a summary with the counts by reason goes to stdout.
Exit codes: 0 done (even if no problem was kept), 2 bad arguments or input, 3 the endpoint
failed every request.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from pipeline.errors import ConfigError, InfrastructureError

_BUNDLED_PORT = 8080
"""``pairforge model serve``'s default port (services.cli.model.DEFAULT_PORT)."""

_OPTIONS = {
    "source": "SRC",
    "base_url": "--base-url",
    "model": "--model",
    "limit": "--limit",
    "decontaminate": "--decontaminate",
    "dedup_threshold": "--dedup-threshold",
    "max_concurrency": "--concurrency",
    "max_tokens": "--max-tokens",
    "temperature": "--temperature",
}
"""SynthesizeConfig fields as this command's options, for validation messages."""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "synthesize",
        help="write problems from Python source with a model",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("source", metavar="SRC", help="directory, glob or .py file")
    parser.add_argument(
        "--out", required=True, metavar="FILE", help="JSONL file of problems (path or URI)"
    )
    parser.add_argument(
        "--base-url",
        default=None,
        metavar="URL",
        help=f"OpenAI-compatible API (default: the bundled model served by `pairforge model "
        f"serve`, http://127.0.0.1:{_BUNDLED_PORT}/v1)",
    )
    parser.add_argument(
        "--model", default=None, metavar="NAME", help="model name (default: the bundled model)"
    )
    parser.add_argument(
        "--endpoint", choices=["chat", "completions"], default="chat", help="default chat"
    )
    parser.add_argument(
        "--limit", type=int, default=None, metavar="N", help="ask about at most N functions"
    )
    parser.add_argument(
        "--decontaminate",
        default=None,
        metavar="FILE",
        help="JSONL benchmark prompts (`prompt` field); overlapping problems are dropped",
    )
    parser.add_argument(
        "--dedup-threshold",
        type=float,
        default=0.8,
        metavar="X",
        help="Jaccard similarity of word 5-grams that makes two problems near-duplicates "
        "(0.5..1, default 0.8)",
    )
    parser.add_argument(
        "--concurrency", type=int, default=4, metavar="N", help="requests in flight (4)"
    )
    parser.add_argument(
        "--max-tokens", type=int, default=512, metavar="N", help="tokens per answer (512)"
    )
    parser.add_argument("--temperature", type=float, default=0.7, help="default 0.7")
    parser.add_argument("--seed", type=int, default=0, help="base seed (0)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from cluster.synthesis import run_synthesis, write_problems
    from pipeline.config import SynthesizeConfig
    from pipeline.validation_errors import describe_validation_errors

    if args.model is None:
        from services.local_model import MODEL_NAME

        args.model = MODEL_NAME
    try:
        config = SynthesizeConfig(
            source=args.source,
            base_url=args.base_url or f"http://127.0.0.1:{_BUNDLED_PORT}/v1",
            model=args.model,
            endpoint=args.endpoint,
            limit=args.limit,
            decontaminate=args.decontaminate,
            dedup_threshold=args.dedup_threshold,
            max_concurrency=args.concurrency,
            max_tokens=args.max_tokens,
            temperature=args.temperature,
            seed=args.seed,
        )
    except ValidationError as exc:
        for line in describe_validation_errors(exc):
            field, _, message = line.partition(": ")
            option = _OPTIONS.get(field, field)
            sys.stderr.write(f"pairforge synthesize: {option}: {message}\n")
        return 2
    try:
        synthesis = run_synthesis(config)
        write_problems(synthesis.problems, args.out)
    except ConfigError as exc:
        sys.stderr.write(f"pairforge synthesize: {exc}\n")
        return 2
    except InfrastructureError as exc:
        sys.stderr.write(f"pairforge synthesize: {exc}\n")
        return 3
    print(synthesis.report.summary())
    print(f"wrote {synthesis.report.problems_kept} problems to {args.out}")
    return 0
