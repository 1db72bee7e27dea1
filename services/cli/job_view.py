"""How the client commands show jobs to a person: a job's summary and the jobs table.

Both take the service's JSON (``JobPublic`` as a dict) and return text; nothing here talks
to the service, so the formatting is tested on its own::

    print(job_summary(job))
    # pf-3f2a9c1d0b7e  quickstart
    # state      running, 1m 12s since it started
    # sampled    [##############------]  21/30 problems
    # executed   [##########----------]  15/30
    # ranked     [######--------------]   9/30
    # units      1/4 written
    # cells      2,345 executed, 56.2 cells/s
    # pairs      7
    # skips      all_pass 1, no_passing_code 1
    # refined    5 of 12 trajectories (3 passed at once, 2 not refined)   (Target-DPO only)
    # versions   r0 12, r1 7, r2 4
    # training   running  pf-3f2a9c1d0b7e-train                      (with a handoff)
    # output     /srv/runs/quickstart
    # dashboard  http://127.0.0.1:8265/#/jobs/pf-3f2a9c1d0b7e
    #            (it asks for Ray's token: `ray get-auth-token` on the Ray head)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

BAR_WIDTH = 20

# The service's stage names, as a person reads the counts after them.
_STAGE_WORDS = {"sample": "sampled", "execute": "executed", "rank": "ranked"}

_LABEL_WIDTH = 11

FINAL_STATES = frozenset({"succeeded", "failed", "cancelled"})


def bar(done: int, total: int, width: int = BAR_WIDTH) -> str:
    """``[#####-----]`` filled in proportion; full only when ``done`` reaches ``total``."""
    if total <= 0:
        return "[" + "?" * width + "]"
    filled = min(width, done * width // total)
    return "[" + "#" * filled + "-" * (width - filled) + "]"


def _when(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def duration(seconds: float) -> str:
    """``42s``, ``3m 05s``, ``2h 07m``."""
    total = max(0, int(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def _state_line(job: Mapping[str, Any], now: datetime) -> str:
    state = str(job.get("state", "?"))
    attempts = int(job.get("attempts") or 0)
    text = f"{state} (attempt {attempts})" if attempts > 1 else state
    started, finished = _when(job.get("started_at")), _when(job.get("finished_at"))
    if started is not None and finished is not None:
        text += f", ran {duration((finished - started).total_seconds())}"
    elif started is not None and state not in FINAL_STATES:
        text += f", {duration((now - started).total_seconds())} since it started"
    return text


def _row(label: str, value: str) -> str:
    return f"{label:<{_LABEL_WIDTH}}{value}"


def _stage_lines(stages: Sequence[Mapping[str, Any]]) -> list[str]:
    lines = []
    for index, stage in enumerate(stages):
        word = _STAGE_WORDS.get(str(stage.get("stage")), str(stage.get("stage")))
        done, total = int(stage.get("done") or 0), int(stage.get("total") or 0)
        unit = " problems" if index == 0 else ""
        if total > 0:
            counts = f"{done:>{len(str(total))}}/{total}{unit}"
        else:
            counts = f"{done}{unit} (total not counted yet)"
        lines.append(_row(word, f"{bar(done, total)}  {counts}"))
    return lines


def _refinement_lines(refinement: Mapping[str, Any] | None) -> list[str]:
    """A Target-DPO build's loop: what became of its trajectories, versions per round."""
    if not refinement:
        return []
    rounds = refinement.get("versions_per_round") or {}
    per_round = ", ".join(f"r{r} {n:,}" for r, n in rounds.items()) or "none yet"
    return [
        _row(
            "refined",
            f"{int(refinement.get('refined', 0)):,} of {int(refinement.get('trajectories', 0)):,}"
            f" trajectories ({int(refinement.get('passed_first', 0)):,} passed at once, "
            f"{int(refinement.get('not_refined', 0)):,} not refined)",
        ),
        _row("versions", per_round),
    ]


def job_summary(job: Mapping[str, Any], *, now: datetime | None = None) -> str:
    """A job as a few lines a person reads at a glance (state, stages, counts, links)."""
    now = now or datetime.now(UTC)
    lines = [f"{job.get('id', '?')}  {job.get('name', '')}".rstrip()]
    lines.append(_row("state", _state_line(job, now)))
    counts: Mapping[str, Any] | None = job.get("counts")
    progress: Mapping[str, Any] | None = job.get("progress")
    if progress is None or counts is None:
        lines.append(_row("progress", "none reported yet"))
    else:
        lines += _stage_lines(job.get("stages") or [])
        lines.append(
            _row("units", f"{counts.get('units_done', 0)}/{counts.get('units_total', 0)} written")
        )
        cells_per_s = float(progress.get("cells_per_s") or 0.0)
        lines.append(
            _row("cells", f"{int(counts.get('cells', 0)):,} executed, {cells_per_s:,.1f} cells/s")
        )
        lines.append(_row("pairs", f"{int(counts.get('pairs', 0)):,}"))
        skips: Mapping[str, int] = counts.get("skips") or {}
        shown = ", ".join(
            f"{reason} {n:,}" for reason, n in sorted(skips.items(), key=lambda kv: (-kv[1], kv[0]))
        )
        lines.append(_row("skips", shown or "none"))
        lines += _refinement_lines(progress.get("refinement"))
    output = str(job.get("output_uri", ""))
    if job.get("manifest_ready"):
        output += " (complete: manifest.json written)"
    lines.append(_row("output", output))
    if job.get("dashboard_url"):
        lines.append(_row("dashboard", str(job["dashboard_url"])))
        lines.append(_row("", "(it asks for Ray's token: `ray get-auth-token` on the Ray head)"))
    if job.get("error"):
        lines.append(_row("error", str(job["error"])))
    training: Mapping[str, Any] | None = job.get("training")
    if training:
        text = str(training.get("state", "?"))
        if training.get("id"):
            text += f"  {training['id']}"
        lines.append(_row("training", text))
        if training.get("dashboard_url"):
            lines.append(_row("", str(training["dashboard_url"])))
        if training.get("error"):
            lines.append(_row("", str(training["error"])))
    return "\n".join(lines)


def jobs_table(jobs: Sequence[Mapping[str, Any]]) -> str:
    """Jobs one per line under a header row, columns aligned."""
    header = ("ID", "STATE", "RANKED", "CREATED", "NAME")
    rows = [header]
    for job in jobs:
        stages: Sequence[Mapping[str, Any]] = job.get("stages") or []
        last = stages[-1] if stages else {}
        total = int(last.get("total") or 0)
        progress = f"{int(last.get('done') or 0)}/{total}" if total else "-"
        rows.append(
            (
                str(job.get("id", "")),
                str(job.get("state", "")),
                progress,
                str(job.get("created_at", "")),
                str(job.get("name", "")),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    return "\n".join(
        "  ".join(
            [*(cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)), row[-1]]
        ).rstrip()
        for row in rows
    )
