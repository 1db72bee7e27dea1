"""The build driver's memory against its input size: validate, then split into windows.

For synthetic replay files of 10k, 100k and 1M problems, a fresh process runs exactly what
``run_build`` does with its input before Ray sees any of it:

- ``streaming`` (today's driver): ``scan_source`` validates the whole file, then
  ``iter_records`` and ``pending_windows`` cut it into work units and windows of
  ``WINDOW_PROBLEMS`` problems, one window in memory at a time;
- ``in-memory`` (the baseline, what the driver did before): every validated record is
  read into one list first, then cut into the same windows.

Each run reports the process's peak RSS (``VmHWM``) next to the file's size; the baseline's
peak divided by the streaming peak is the ratio printed last. The target: streaming peak
RSS under 1 GiB at 1M problems, growing sub-linearly with the input.

    .venv/bin/python benchmarks/driver_memory.py                  # 10k, 100k, 1M
    .venv/bin/python benchmarks/driver_memory.py --sizes 10000 --baseline-max 100000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

_CODE = (
    "    result = []\n    for x in numbers:\n        result.append(x * {i})\n    return result\n"
)
_TEST = "assert scale([1, 2]) == [{i}, {j}]\n"


def write_replay_file(path: Path, problems: int) -> int:
    """A replay JSONL of ``problems`` rows shaped like real ones (2 code + 2 test samples)."""
    with path.open("w", encoding="utf-8") as out:
        for n in range(problems):
            row = {
                "problem_id": f"synthetic/{n}",
                "prompt": f'def scale(numbers):\n    """Multiply every number by {n}."""\n',
                "entry_point": "scale",
                "metadata": {"n": n},
                "code_completions": [_CODE.format(i=n), _CODE.format(i=n + 1)],
                "test_completions": [_TEST.format(i=n, j=2 * n), _TEST.format(i=n, j=n)],
            }
            out.write(json.dumps(row) + "\n")
    return path.stat().st_size


def measure(path: str, mode: str) -> None:
    """In a child process: run one mode over the file, print a JSON line of what it took."""
    from cluster.sources import SourceRecord, iter_records, scan_source
    from cluster.work_units import pending_windows
    from pipeline.config import SamplerKind, SourceConfig

    config = SourceConfig(path=path)
    started = time.perf_counter()
    problems = scan_source(config, SamplerKind.REPLAY)
    records: object = iter_records(config, SamplerKind.REPLAY)
    if mode == "in-memory":
        held: list[SourceRecord] = list(iter_records(config, SamplerKind.REPLAY))
        records = iter(held)
    windows = seen = 0
    for window in pending_windows(records, per_unit=64, done=set()):  # type: ignore[arg-type]
        windows += 1
        seen += len(window)
    if seen != problems:
        raise SystemExit(f"split lost problems: {seen} of {problems}")
    status = Path("/proc/self/status").read_text()
    peak_kib = int(
        next(line for line in status.splitlines() if line.startswith("VmHWM")).split()[1]
    )
    print(
        json.dumps(
            {
                "problems": problems,
                "windows": windows,
                "peak_rss_mib": peak_kib / 1024,
                "seconds": time.perf_counter() - started,
            }
        )
    )


def run_child(path: Path, mode: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(path), mode],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument(
        "--baseline-max",
        type=int,
        default=1_000_000,
        help="largest input the in-memory baseline is run on (it needs GBs at 1M)",
    )
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        measure(*args.child)
        return 0

    print(
        f"{'problems':>9} {'file MiB':>9} {'streaming RSS':>14} {'in-memory RSS':>14} "
        f"{'ratio':>6} {'stream s':>9}"
    )
    previous: tuple[int, float] | None = None
    with tempfile.TemporaryDirectory(prefix="pf-driver-mem-") as scratch:
        for size in args.sizes:
            path = Path(scratch) / f"replay-{size}.jsonl"
            file_mib = write_replay_file(path, size) / 2**20
            streaming = run_child(path, "streaming")
            baseline = run_child(path, "in-memory") if size <= args.baseline_max else None
            base = f"{baseline['peak_rss_mib']:>10.0f} MiB" if baseline else f"{'-':>14}"
            ratio = (
                f"{baseline['peak_rss_mib'] / streaming['peak_rss_mib']:>5.1f}x"
                if baseline
                else f"{'-':>6}"
            )
            print(
                f"{size:>9} {file_mib:>9.0f} {streaming['peak_rss_mib']:>10.0f} MiB {base} "
                f"{ratio} {streaming['seconds']:>9.1f}"
            )
            if previous is not None:
                growth = streaming["peak_rss_mib"] / previous[1]
                print(
                    f"{'':>9} streaming RSS grew {growth:.2f}x for {size / previous[0]:.0f}x input"
                )
            previous = (size, streaming["peak_rss_mib"])
            path.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
