"""Client commands for the job service: ``submit``, ``status``, ``cancel``, ``jobs``.

    pairforge submit examples/quickstart/job.yaml     prints the job id
    pairforge status pf-3f2a9c1d0b7e                  the job as JSON
    pairforge cancel pf-3f2a9c1d0b7e
    pairforge jobs --state running

The server is ``--server``, else ``PAIRFORGE_SERVER``, else http://127.0.0.1:8000; the token
is ``PAIRFORGE_API_TOKEN`` when set. Relative paths in a job file resolve on the server,
against its working directory (run both from the repository root for the quickstart).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

DEFAULT_SERVER = "http://127.0.0.1:8000"


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

    status = subparsers.add_parser("status", parents=[common], help="show a job as JSON")
    status.add_argument("job_id")
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
    print(json.dumps(_request(args, "GET", f"/jobs/{args.job_id}"), indent=2))
    return 0


def run_cancel(args: argparse.Namespace) -> int:
    job = _request(args, "DELETE", f"/jobs/{args.job_id}")
    print(f"{job['id']} {job['state']}")
    return 0


def run_jobs(args: argparse.Namespace) -> int:
    params: dict[str, Any] = {"limit": args.limit}
    if args.state:
        params["state"] = args.state
    page = _request(args, "GET", "/jobs", params=params)
    for job in page["data"]:
        print(f"{job['id']}  {job['state']:<9}  {job['created_at']}  {job['name']}")
    if page["count"] > len(page["data"]):
        print(f"({len(page['data'])} of {page['count']} shown)", file=sys.stderr)
    return 0
