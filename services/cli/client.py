"""Client commands for the job service: ``submit``, ``status``, ``cancel``, ``jobs``.

    pairforge submit examples/quickstart/job.yaml     prints the job id
    pairforge status pf-3f2a9c1d0b7e                  state, stages, counts, dashboard link
    pairforge status pf-3f2a9c1d0b7e --watch          refreshed until the job ends
    pairforge status pf-3f2a9c1d0b7e --json           the job as the API returns it
    pairforge cancel pf-3f2a9c1d0b7e
    pairforge jobs --state running

The server is ``--server``, else ``PAIRFORGE_SERVER``, else http://127.0.0.1:8000; the token
is ``PAIRFORGE_API_TOKEN`` when set. Relative paths in a job file are resolved by the
server: ``output.uri`` under its output root, ``source.path`` under its first input root.

``status --watch`` exits 0 when the job succeeded and 1 when it failed or was cancelled.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TextIO

DEFAULT_SERVER = "http://127.0.0.1:8000"

MIN_INTERVAL_S = 0.1
MAX_INTERVAL_S = 60.0
"""Bounds of ``status --watch --interval``: no tighter loop on the service, no stale screen."""

_CLEAR_SCREEN = "\x1b[H\x1b[2J"


def _interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not MIN_INTERVAL_S <= value <= MAX_INTERVAL_S:
        raise argparse.ArgumentTypeError(
            f"expected {MIN_INTERVAL_S:g} to {MAX_INTERVAL_S:g} seconds, got {text}"
        )
    return value


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--server",
        default=None,
        help=f"job service URL (default: PAIRFORGE_SERVER or {DEFAULT_SERVER})",
    )
    submit = subparsers.add_parser(
        "submit", parents=[common], help="submit a job file to the service; prints its id"
    )
    submit.add_argument("job", type=Path, help="JobSpec file (YAML or JSON)")
    submit.add_argument("--name", default="", help="job name (default: the spec's name)")
    submit.set_defaults(run=run_submit)

    status = subparsers.add_parser(
        "status", parents=[common], help="show a job: state, progress by stage, counts, links"
    )
    status.add_argument("job_id")
    status.add_argument(
        "--json", action="store_true", help="print the job as the API returns it (for scripts)"
    )
    status.add_argument(
        "--watch",
        action="store_true",
        help="refresh until the job ends; exit 0 if it succeeded, 1 if it failed or was cancelled",
    )
    status.add_argument(
        "--interval",
        type=_interval,
        default=2.0,
        help=f"seconds between refreshes with --watch ({MIN_INTERVAL_S:g}..{MAX_INTERVAL_S:g}, "
        "default 2)",
    )
    status.set_defaults(run=run_status)

    cancel = subparsers.add_parser("cancel", parents=[common], help="cancel a job")
    cancel.add_argument("job_id")
    cancel.set_defaults(run=run_cancel)

    jobs = subparsers.add_parser("jobs", parents=[common], help="list jobs, newest first")
    jobs.add_argument("--state", default=None, help="only jobs in this state")
    jobs.add_argument("--limit", type=int, default=50, help="jobs to show (50)")
    jobs.set_defaults(run=run_jobs)


def _request(args: argparse.Namespace, method: str, path: str, **kwargs: Any) -> Any:
    """Send one request; returns the decoded JSON or raises ``SystemExit`` with a message."""
    import httpx

    server = (args.server or os.environ.get("PAIRFORGE_SERVER") or DEFAULT_SERVER).rstrip("/")
    headers = {}
    token = os.environ.get("PAIRFORGE_API_TOKEN")
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        answer = httpx.request(method, server + path, headers=headers, timeout=60, **kwargs)
    except httpx.HTTPError as exc:
        raise SystemExit(f"pairforge: cannot reach the job service at {server}: {exc}") from exc
    if answer.is_error:
        try:
            body = answer.json()
            message = str(body.get("detail", answer.text))
            problems = body.get("problems") or []
        except ValueError:
            message, problems = answer.text, []
        lines = [f"pairforge: {method} {path} failed with {answer.status_code}: {message}"]
        lines += [f"  {p}" for p in problems if p not in message]
        raise SystemExit("\n".join(lines))
    return answer.json()


def run_submit(args: argparse.Namespace) -> int:
    import yaml

    try:
        spec = yaml.safe_load(args.job.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        print(f"pairforge submit: cannot read {args.job}: {exc}", file=sys.stderr)
        return 2
    body = {"spec": spec, "name": args.name} if args.name else spec
    job = _request(args, "POST", "/jobs", json=body)
    print(job["id"])
    return 0


def run_status(args: argparse.Namespace) -> int:
    from services.cli.job_view import job_summary

    def fetch() -> Mapping[str, Any]:
        job: Mapping[str, Any] = _request(args, "GET", f"/jobs/{args.job_id}")
        return job

    if not args.watch:
        job = fetch()
        print(json.dumps(job, indent=2) if args.json else job_summary(job))
        return 0
    if args.json:
        # One JSON document per line and refresh: what a script reading a pipe wants.
        return watch(fetch, lambda job: json.dumps(job), interval_s=args.interval)
    return watch(fetch, job_summary, interval_s=args.interval)


def watch(
    fetch: Callable[[], Mapping[str, Any]],
    render: Callable[[Mapping[str, Any]], str],
    *,
    interval_s: float,
    out: TextIO | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Show a job until it ends: 0 when it succeeded, 1 when it failed or was cancelled.

    On a terminal the screen is redrawn at every refresh; elsewhere (a pipe, a log) a view
    is printed only when it differs from the one before. Ctrl-C stops watching (exit 130)
    and leaves the job alone.
    """
    from services.cli.job_view import FINAL_STATES

    stream = out or sys.stdout
    redraw = stream.isatty()
    shown = None
    try:
        while True:
            job = fetch()
            view = render(job)
            if redraw:
                stream.write(_CLEAR_SCREEN + view + "\n")
            elif view != shown:
                # A blank line between multi-line views; JSON lines follow each other.
                gap = "\n" if shown is not None and "\n" in view else ""
                stream.write(gap + view + "\n")
            stream.flush()
            shown = view
            state = job.get("state")
            if state in FINAL_STATES:
                return 0 if state == "succeeded" else 1
            sleep(interval_s)
    except KeyboardInterrupt:
        stream.write("stopped watching; the job goes on\n")
        return 130


def run_cancel(args: argparse.Namespace) -> int:
    job = _request(args, "DELETE", f"/jobs/{args.job_id}")
    print(f"{job['id']} {job['state']}")
    return 0


def run_jobs(args: argparse.Namespace) -> int:
    params: dict[str, Any] = {"limit": args.limit}
    if args.state:
        params["state"] = args.state
    from services.cli.job_view import jobs_table

    page = _request(args, "GET", "/jobs", params=params)
    print(jobs_table(page["data"]))
    if page["count"] > len(page["data"]):
        print(f"({len(page['data'])} of {page['count']} shown)", file=sys.stderr)
    return 0
