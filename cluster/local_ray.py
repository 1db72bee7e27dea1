"""The local Ray head that ``pairforge serve`` runs builds on: found, started, stopped.

The head outlives the service. It runs as ``ray start --head --block`` detached into a
session of its own, so neither Ctrl-C in the terminal of ``pairforge serve`` (a SIGINT to
the terminal's foreground process group) nor a crash of the service reaches it: running
builds go on, and the next ``pairforge serve`` finds the head by its dashboard and reuses
it instead of failing on its port. ``pairforge serve --stop-ray`` ends it (``stop_local_ray``);
so does ``ray stop``, which ends every Ray instance of this user on the machine.

    head = ensure_local_ray(LocalHeadConfig())   # LocalHead(dashboard_url=..., started=True)
    stop_local_ray(LocalHeadConfig())            # "stopped the Ray head ..."

What the head needs to be found and stopped again (its pid and process group, ports, log)
is recorded in ``pairforge-head-<port>.json`` under Ray's temp dir (``RAY_TMPDIR``, else
``/tmp``, then ``ray/``).

Token authentication. The head's GCS listens on every interface, so the head always runs
with ``RAY_AUTH_MODE=token``, never without authentication: Ray 2.60's ``ray start`` turns
authentication on only when a token already exists, so one is created first when there is
none (``~/.ray/auth_token``, or ``RAY_AUTH_TOKEN_PATH``; mode 0600). The dashboard asks for
that token once per browser; ``ray get-auth-token`` prints it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field

from pipeline.errors import ClusterUnavailable

logger = logging.getLogger(__name__)

DEFAULT_PORT = 6379
DEFAULT_DASHBOARD_PORT = 8265
DEFAULT_RESOURCES: Mapping[str, float] = {"sandbox": 2}

TOKEN_ENV = "RAY_AUTH_TOKEN"
TOKEN_PATH_ENV = "RAY_AUTH_TOKEN_PATH"

STOP_WAIT_S = 45.0
"""How long ``stop_local_ray`` waits for the head to stop its node before it kills the rest:
on SIGTERM Ray drains running work for up to 30 s, then stops its processes."""


class LocalHeadConfig(BaseModel):
    """Where the local head listens and what it offers."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    port: int = Field(default=DEFAULT_PORT, ge=1, le=65535, description="GCS port of the head.")
    dashboard_port: int = Field(
        default=DEFAULT_DASHBOARD_PORT,
        ge=1,
        le=65535,
        description="Port of the dashboard and job API, bound to 127.0.0.1.",
    )
    resources: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_RESOURCES),
        description="Custom resources the head offers (`sandbox`: warm sandbox containers).",
    )
    extra_args: tuple[str, ...] = Field(
        default=(), description="More `ray start --head` arguments (`--num-cpus 8`, ports)."
    )
    wait_s: float = Field(
        default=90.0, gt=0, description="How long to wait for the dashboard to answer."
    )

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"


class LocalHead(BaseModel):
    """A local head that answers: its dashboard, and whether this call started it."""

    model_config = ConfigDict(frozen=True)

    dashboard_url: str = Field(description="Dashboard and job API, `http://127.0.0.1:8265`.")
    started: bool = Field(description="True when this call started the head.")
    recorded: bool = Field(
        description="True when pairforge started it (and `--stop-ray` can end it)."
    )
    pid: int | None = Field(default=None, description="Its `ray start --block` process.")
    log: str | None = Field(default=None, description="Where its `ray start` output goes.")


# ---------------------------------------------------------------------------- the token


def auth_token_path() -> Path:
    """Where Ray looks for its token file: ``RAY_AUTH_TOKEN_PATH``, else ``~/.ray/auth_token``."""
    configured = os.environ.get(TOKEN_PATH_ENV, "").strip()
    return Path(configured).expanduser() if configured else Path.home() / ".ray" / "auth_token"


def read_auth_token() -> str | None:
    """This machine's Ray token, found where the Ray CLI finds it, or None."""
    token = os.environ.get(TOKEN_ENV, "").strip()
    if token:
        return token
    try:
        return auth_token_path().read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def auth_token_hint() -> str:
    """One line telling a person how to get past the dashboard's token dialog."""
    if os.environ.get(TOKEN_ENV, "").strip():
        where = f"the {TOKEN_ENV} environment variable"
    elif read_auth_token() is not None:
        where = str(auth_token_path())
    else:
        return (
            "if the dashboard asks for a token, print it with `ray get-auth-token` on the Ray "
            "head's machine"
        )
    return (
        f"the dashboard asks for Ray's token once per browser: it is in {where} "
        "(print it with `ray get-auth-token`)"
    )


def ensure_auth_token() -> Path | None:
    """Make sure a Ray token exists; returns the file created, or None if one existed.

    Raises:
        ClusterUnavailable: no token exists and none could be written.
    """
    if read_auth_token() is not None:
        return None
    path = auth_token_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Created readable by this user only; O_EXCL: never overwrite a token being written.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as sink:
            sink.write(secrets.token_hex(32))
    except FileExistsError:
        return None
    except OSError as exc:
        raise ClusterUnavailable(
            f"cannot create a Ray token at {path} ({exc.strerror}); the local Ray head never "
            f"runs without one. Create it with `ray get-auth-token --generate`, or set "
            f"{TOKEN_PATH_ENV} to a writable file"
        ) from exc
    logger.info("created a Ray token at %s", path)
    return path


# ---------------------------------------------------------------------------- the record


def ray_temp_dir() -> Path:
    """Ray's temp dir on this machine, chosen as Ray chooses it: ``$RAY_TMPDIR/ray``, else
    ``$TMPDIR/ray`` (Linux), else ``/tmp/ray``."""
    base = os.environ.get("RAY_TMPDIR") or (
        os.environ.get("TMPDIR") if sys.platform.startswith("linux") else None
    )
    return Path(base or "/tmp") / "ray"


def record_path(port: int) -> Path:
    return ray_temp_dir() / f"pairforge-head-{port}.json"


def _read_record(port: int) -> dict[str, Any] | None:
    try:
        loaded = json.loads(record_path(port).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return loaded if isinstance(loaded, dict) and isinstance(loaded.get("pid"), int) else None


def _write_record(port: int, record: Mapping[str, Any]) -> None:
    path = record_path(port)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}")
    temp.write_text(json.dumps(record, indent=2), encoding="utf-8")
    temp.replace(path)


def _forget_record(port: int) -> None:
    with contextlib.suppress(FileNotFoundError):
        record_path(port).unlink()


def _is_our_head(pid: int, port: int) -> bool:
    """True if ``pid`` is a live ``ray start --head --port PORT`` (not a reused pid)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    # The state follows the parenthesised command name; a zombie has stopped already.
    if stat.rpartition(")")[2].split()[:1] in (["Z"], ["X"]):
        return False
    return b"start" in argv and b"--head" in argv and str(port).encode() in argv


# ---------------------------------------------------------------------------- find / start

_DETACH = """\
import subprocess, sys
with open(sys.argv[1], "ab") as log:
    head = subprocess.Popen(sys.argv[2:], stdin=subprocess.DEVNULL, stdout=log, stderr=log)
print(head.pid)
"""
"""Run by a throw-away interpreter: starts ``argv[2:]`` logging to ``argv[1]``, prints its pid."""


def dashboard_answers(url: str, timeout_s: float = 2.0) -> bool:
    """True when something answers HTTP at the dashboard's version endpoint.

    Any answer counts, 401 included: a token-protected dashboard is still up.
    """
    try:
        httpx.get(f"{url}/api/version", timeout=timeout_s)
    except httpx.HTTPError:
        return False
    return True


def _wait_for_dashboard(url: str, pid: int, port: int, wait_s: float) -> bool:
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if dashboard_answers(url):
            return True
        if not _is_our_head(pid, port):
            return False
        time.sleep(0.5)
    return False


def _log_tail(log: Path) -> str:
    try:
        return log.read_text(encoding="utf-8", errors="replace")[-2000:].strip()
    except OSError:
        return "(no log)"


def ensure_local_ray(config: LocalHeadConfig | None = None) -> LocalHead:
    """The local head whose dashboard answers at ``config.dashboard_url``, started if none.

    Raises:
        ClusterUnavailable: the head could not be started, or something else holds its port,
            or a head pairforge started earlier runs but its dashboard never answered.
    """
    config = config or LocalHeadConfig()
    url = config.dashboard_url
    record = _read_record(config.port)
    ours = record is not None and _is_our_head(record["pid"], config.port)
    if record is not None and not ours:
        _forget_record(config.port)  # the head it describes is gone
    if dashboard_answers(url):
        logger.info("using the Ray head already running at %s", url)
        return LocalHead(
            dashboard_url=url,
            started=False,
            recorded=ours,
            pid=record["pid"] if ours and record else None,
            log=record.get("log") if ours and record else None,
        )
    if record is not None and ours:
        # Ours and alive, but its dashboard does not answer yet (it may be starting).
        if _wait_for_dashboard(url, record["pid"], config.port, config.wait_s):
            return LocalHead(
                dashboard_url=url,
                started=False,
                recorded=True,
                pid=record["pid"],
                log=record.get("log"),
            )
        raise ClusterUnavailable(
            f"the Ray head pairforge serve started earlier (pid {record['pid']}) is running but "
            f"its dashboard does not answer at {url}; see {record.get('log')} and "
            f"{ray_temp_dir()}/session_latest/logs/dashboard.log, then end it with "
            "`pairforge serve --stop-ray` and start again"
        )
    return _start(config)


def _port_held(config: LocalHeadConfig) -> ClusterUnavailable:
    return ClusterUnavailable(
        f"another Ray instance already holds port {config.port} on this machine, without "
        f"a dashboard at {config.dashboard_url}, so pairforge cannot use it. Pass its "
        "dashboard address with --ray-address http://HOST:PORT, stop it with `ray stop` "
        "(this ends every Ray instance of this user on the machine), or give the local head "
        "other ports (PAIRFORGE_LOCAL_RAY_PORT, PAIRFORGE_LOCAL_RAY_DASHBOARD_PORT)"
    )


def _port_answers(port: int) -> bool:
    """Whether something already listens on ``port`` (Ray's GCS listens on every interface)."""
    with socket.socket() as probe:
        probe.settimeout(1.0)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _start(config: LocalHeadConfig) -> LocalHead:
    # Refused up front: `ray start` on a held port fails in ways that depend on what holds
    # it (its token, its session), not always with its "already running" message.
    if _port_answers(config.port):
        raise _port_held(config)
    created = ensure_auth_token()
    url = config.dashboard_url
    argv = [
        sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block",
        "--port", str(config.port),
        "--dashboard-host", "127.0.0.1",
        "--dashboard-port", str(config.dashboard_port),
        "--include-dashboard", "true",
        "--resources", json.dumps(config.resources),
        "--disable-usage-stats",
        *config.extra_args,
    ]  # fmt: skip
    if os.environ.get("RAY_AUTH_MODE", "token").lower() != "token":
        logger.warning(
            "RAY_AUTH_MODE=%s is ignored for the local Ray head: its GCS listens on every "
            "interface, so it always runs with token authentication",
            os.environ["RAY_AUTH_MODE"],
        )
    env = {**os.environ, "RAY_AUTH_MODE": "token"}
    env.pop("RAY_ADDRESS", None)  # a head joins nothing
    log = ray_temp_dir() / f"pairforge-head-{config.port}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    # Detached twice over: a short-lived Python process starts the head and exits, so the
    # head is no child of the service (nothing waits on it, no zombie when it stops), and
    # start_new_session puts both in a session of their own, out of reach of the signals a
    # terminal sends to the service's process group (Ctrl-C).
    try:
        detached = subprocess.run(
            [sys.executable, "-c", _DETACH, str(log), *argv],
            env=env,
            capture_output=True,
            start_new_session=True,
            check=False,
            timeout=60,
        )
        pid = int(detached.stdout.decode().strip())
        pgid = os.getpgid(pid)
    except (ValueError, ProcessLookupError, subprocess.TimeoutExpired) as exc:
        raise ClusterUnavailable(f"`ray start --head` did not start: {_log_tail(log)}") from exc
    _write_record(
        config.port,
        {
            "pid": pid,
            "pgid": pgid,
            "port": config.port,
            "dashboard_url": url,
            "log": str(log),
            "argv": argv,
            "started_at": time.time(),
        },
    )
    logger.info("starting a local Ray head (pid %d, log %s): %s", pid, log, " ".join(argv))
    if created is not None:
        logger.info("the head authenticates with a new token in %s", created)
    if _wait_for_dashboard(url, pid, config.port, config.wait_s):
        return LocalHead(dashboard_url=url, started=True, recorded=True, pid=pid, log=str(log))
    tail = _log_tail(log)
    _stop_recorded(config.port, pid, pgid)
    if "already running" in tail:
        raise _port_held(config)
    raise ClusterUnavailable(
        f"the local Ray head did not answer at {url} within {config.wait_s:.0f} s: {tail}"
    )


# ---------------------------------------------------------------------------- stop


def _stop_recorded(port: int, pid: int, pgid: int | None, wait_s: float = STOP_WAIT_S) -> None:
    # SIGTERM to `ray start --block` makes it stop its node's processes itself (a few
    # seconds); what is left of its process group afterwards (forkserver children of the
    # dashboard) is killed. Builds run as Ray Jobs are in sessions of their own: they end
    # when they lose the cluster.
    if _is_our_head(pid, port):
        logger.info("stopping the local Ray head (pid %d); Ray drains running work first", pid)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + wait_s
        while _is_our_head(pid, port) and time.monotonic() < deadline:
            time.sleep(0.2)
    if pgid is not None and pgid > 1:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
    _forget_record(port)


def stop_local_ray(config: LocalHeadConfig | None = None) -> str:
    """Stop the head ``pairforge serve`` started on ``config.port``; says what it did.

    Raises:
        ClusterUnavailable: a Ray head answers there that pairforge did not start.
    """
    config = config or LocalHeadConfig()
    record = _read_record(config.port)
    if record is not None and _is_our_head(record["pid"], config.port):
        _stop_recorded(config.port, record["pid"], record.get("pgid"))
        return f"stopped the local Ray head on port {config.port} (pid {record['pid']})"
    _forget_record(config.port)
    if dashboard_answers(config.dashboard_url):
        raise ClusterUnavailable(
            f"the Ray head at {config.dashboard_url} was not started by pairforge serve; stop "
            "it with `ray stop` (this ends every Ray instance of this user on the machine)"
        )
    return f"no local Ray head started by pairforge serve runs on port {config.port}"


def describe_head(head: LocalHead) -> Sequence[str]:
    """Lines for a person: whose head this is, how it outlives the service, how it ends."""
    if head.started:
        first = "started by pairforge serve"
    elif head.recorded:
        first = "started earlier by pairforge serve, reused"
    else:
        first = "already running, reused"
    lines = [f"{first}; it runs on its own, so builds go on when the service stops"]
    if head.recorded:
        lines.append("end it with `pairforge serve --stop-ray` (or `ray stop`)")
    return lines
