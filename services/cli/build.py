"""``pairforge build JOB [--address RAY_ADDRESS] [--resume] [--job-id ID] [--limits FILE]``.

    pairforge build examples/quickstart/job.yaml             # local Ray on this machine
    pairforge build job.yaml --address ray://head:10001      # an existing cluster
    pairforge build job.yaml --resume                        # continue a killed build
    pairforge build job.yaml --limits limits.yaml            # the operator's job limits

JOB is a YAML or JSON JobSpec: a local path or a pyarrow filesystem URI. Before Ray starts,
the spec is checked against what this version can run and against the job limits
(``PAIRFORGE_MAX_*`` variables, or a YAML file of them that wins over the variables), the
same rules the job service applies. Progress goes to stderr (bars on a terminal, plain
lines otherwise); the summary goes to stdout.
Exit codes: 0 done, 2 bad spec, limits or input, 3 infrastructure unavailable, 1 anything else.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from pipeline.errors import ConfigError, InfrastructureError

if TYPE_CHECKING:
    from cluster.driver import BuildSummary
    from pipeline.config import JobSpec
    from pipeline.job_limits import JobLimits
    from pipeline.progress import BuildProgress

_STAGES = (
    ("sampled", "problems_sampled"),
    ("executed", "problems_executed"),
    ("ranked", "problems_ranked"),
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "build", help="Run a dataset build.", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("job", metavar="JOB", help="JobSpec file (YAML or JSON), path or URI.")
    parser.add_argument(
        "--address", default=None, help="Ray cluster address (default: start a local Ray)."
    )
    parser.add_argument(
        "--resume", action="store_true", help="Skip work units whose shards already exist."
    )
    parser.add_argument(
        "--job-id", default=None, help="Job id written into every row (default: from the spec)."
    )
    parser.add_argument(
        "--limits",
        type=Path,
        default=None,
        metavar="FILE",
        help="YAML file of job limits (max_memory_mb: 1024 ...); default: the PAIRFORGE_MAX_* "
        "variables, else the built-in limits.",
    )
    parser.set_defaults(run=run)


class ProgressPrinter:
    """Bars per stage on a terminal; a plain line per finished unit (or 10 s) otherwise."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self._drawn = 0
        self._last_line = 0.0
        self._last_units = -1

    def __call__(self, progress: BuildProgress) -> None:
        if self.tty:
            self._draw(progress)
        elif progress.units_done != self._last_units or time.time() - self._last_line > 10:
            self._last_units = progress.units_done
            self._last_line = time.time()
            stages = " ".join(f"{name}={getattr(progress, key)}" for name, key in _STAGES)
            self.stream.write(
                f"[build] units {progress.units_done}/{progress.units_total} "
                f"problems {progress.problems_total}: {stages} cells={progress.cells} "
                f"pairs={progress.pairs} ({progress.cells_per_s:.0f} cells/s)\n"
            )
            self.stream.flush()

    def _draw(self, progress: BuildProgress) -> None:
        total = max(progress.problems_total, 1)
        lines = []
        for name, key in _STAGES:
            done = getattr(progress, key)
            filled = int(30 * done / total)
            lines.append(f"{name:>9} [{'#' * filled}{'.' * (30 - filled)}] {done}/{total}")
        lines.append(
            f"{'shards':>9} {progress.units_done}/{progress.units_total} units, "
            f"{progress.pairs} pairs, {progress.cells} cells ({progress.cells_per_s:.0f}/s)"
        )
        up = f"\x1b[{self._drawn}F" if self._drawn else ""
        self.stream.write(up + "".join(f"\x1b[2K{line}\n" for line in lines))
        self.stream.flush()
        self._drawn = len(lines)


def format_summary(summary: BuildSummary) -> str:
    counts = summary.counts
    skips = ", ".join(f"{k}={v}" for k, v in sorted(counts.skips.items())) or "none"
    return "\n".join(
        [
            f"job {summary.job_id}: dataset complete at {summary.output_uri}",
            f"  problems   {counts.problems}",
            f"  candidates {counts.candidates}",
            f"  cells      {counts.cells}",
            f"  pairs      {counts.pairs}",
            f"  fallback   {counts.fallback_cells} cells judged in the program's own process "
            f"({counts.fallback_cells / max(counts.cells, 1):.1%})",
            f"  skips      {skips}",
            f"  units      {summary.units_total} ({summary.units_skipped} already written)",
            f"  wall time  {summary.wall_s:.1f} s, {summary.cells_per_s:.0f} cells/s",
        ]
    )


def load_spec_text(location: str) -> str:
    """Read a JobSpec file from a local path or a pyarrow filesystem URI."""
    from cluster.storage import read_text, resolve_uri

    if "://" not in location:
        return Path(location).read_text(encoding="utf-8")
    text = read_text(*resolve_uri(location))
    if text is None:
        raise FileNotFoundError(2, "no such JobSpec file", location)
    return text


def _checked_spec(args: argparse.Namespace) -> tuple[JobSpec, JobLimits]:
    """The JobSpec and the limits it was checked against (before anything loads Ray)."""
    from pipeline.config import job_spec_from_yaml
    from pipeline.job_limits import require_runnable
    from services.limits import load_limits

    limits = load_limits(args.limits)
    spec = job_spec_from_yaml(load_spec_text(args.job))
    require_runnable(spec, limits)
    return spec, limits


def run(args: argparse.Namespace) -> int:
    try:
        return _build(args)
    except FileNotFoundError as exc:
        what = "JobSpec file" if exc.filename in (None, args.job) else "file"
        sys.stderr.write(f"pairforge build: no such {what}: {exc.filename or args.job}\n")
        return 2
    except ConfigError as exc:
        sys.stderr.write(f"pairforge build: {exc}\n")
        return 2
    except InfrastructureError as exc:
        sys.stderr.write(f"pairforge build: {exc}\n")
        return 3


def _build(args: argparse.Namespace) -> int:
    spec, limits = _checked_spec(args)
    # Ray loads only for a spec that can run: a refusal stays instant and starts nothing.
    from cluster.driver import run_build
    from cluster.runtime import quiet_ray_data

    quiet_ray_data(progress_bars=sys.stderr.isatty() and not args.verbose)
    summary = run_build(
        spec,
        job_id=args.job_id,
        resume=args.resume,
        address=args.address,
        on_progress=ProgressPrinter(sys.stderr),
        limits=limits,
    )
    sys.stdout.write(format_summary(summary) + "\n")
    return 0
