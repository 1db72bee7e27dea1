"""What ``pairforge serve`` does around its local Ray head, without starting Ray.

The Ray token (created when missing, never overwritten, readable by its owner only), the
hint the service prints for the dashboard's token dialog, reuse of a dashboard that already
answers, and ``--stop-ray`` refusing to signal anything that is not the head it recorded.
Starting and stopping a real head is in tests/integration/services/test_local_head.py.
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from cluster.launcher import ray_auth_token
from cluster.local_ray import (
    LocalHead,
    LocalHeadConfig,
    auth_token_hint,
    describe_head,
    ensure_auth_token,
    ensure_local_ray,
    record_path,
    stop_local_ray,
)
from pipeline.errors import ClusterUnavailable
from services.cli import main
from services.cli.serve import banner


@pytest.fixture(autouse=True)
def private_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A HOME without a Ray token, and a Ray temp dir of this test's own."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path / "raytmp"))
    for name in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS"):
        monkeypatch.delenv(name, raising=False)
    return home


def test_a_token_is_created_once_and_only_for_its_owner(private_home: Path) -> None:
    created = ensure_auth_token()
    assert created == private_home / ".ray" / "auth_token"
    token = created.read_text(encoding="utf-8")
    assert len(token) == 64 and int(token, 16) >= 0
    assert created.stat().st_mode & 0o777 == 0o600
    assert ensure_auth_token() is None
    assert created.read_text(encoding="utf-8") == token
    assert ray_auth_token() == token  # what the job launcher sends


def test_an_existing_token_is_used_where_ray_looks(
    private_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "cluster-token"
    elsewhere.write_text("abc123\n", encoding="utf-8")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(elsewhere))
    assert ensure_auth_token() is None
    assert not (private_home / ".ray").exists()
    assert ray_auth_token() == "abc123"
    assert str(elsewhere) in auth_token_hint()
    monkeypatch.setenv("RAY_AUTH_TOKEN", "from-env")
    assert ray_auth_token() == "from-env"
    assert "RAY_AUTH_TOKEN environment variable" in auth_token_hint()


def test_the_hint_says_where_the_token_is(private_home: Path) -> None:
    assert "ray get-auth-token" in auth_token_hint()
    assert "on the Ray head's machine" in auth_token_hint()  # no token here
    ensure_auth_token()
    hint = auth_token_hint()
    assert str(private_home / ".ray" / "auth_token") in hint and "ray get-auth-token" in hint


def test_the_banner_tells_where_everything_is() -> None:
    head = LocalHead(dashboard_url="http://127.0.0.1:8265", started=True, recorded=True, pid=7)
    text = banner(
        service_url="http://127.0.0.1:8000",
        dashboard_url=head.dashboard_url,
        head_lines=describe_head(head),
        token_hint="the dashboard asks for Ray's token once per browser: it is in /h/.ray/x",
        where="jobs in sqlite:///j.db",
    )
    lines = text.splitlines()
    assert lines[0] == "pairforge serve: the job service is on http://127.0.0.1:8000"
    assert "Ray dashboard: http://127.0.0.1:8265" in lines
    assert any("builds go on when the service stops" in line for line in lines)
    assert any("pairforge serve --stop-ray" in line for line in lines)
    assert lines[-1].endswith("it is in /h/.ray/x")
    reused = LocalHead(dashboard_url="x", started=False, recorded=False)
    assert not any("--stop-ray" in line for line in describe_head(reused))


class _Dashboard(BaseHTTPRequestHandler):
    """Answers like a token-protected Ray dashboard: 401 to everything."""

    def do_GET(self) -> None:
        self.send_response(401)
        self.end_headers()

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def dashboard() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Dashboard)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    thread.join()


def test_a_dashboard_that_answers_is_reused_not_started_again(dashboard: int) -> None:
    config = LocalHeadConfig(port=1, dashboard_port=dashboard)
    head = ensure_local_ray(config)
    assert head == LocalHead(
        dashboard_url=f"http://127.0.0.1:{dashboard}", started=False, recorded=False
    )
    assert not record_path(1).exists()
    # Not pairforge's: --stop-ray leaves it alone and says how it stops.
    with pytest.raises(ClusterUnavailable, match=r"not started by pairforge serve.*ray stop"):
        stop_local_ray(config)


def test_stop_signals_only_the_head_it_recorded(tmp_path: Path) -> None:
    # A record whose pid now belongs to some other process (pids are reused).
    bystander = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        config = LocalHeadConfig(port=2, dashboard_port=1)
        path = record_path(2)
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({"pid": bystander.pid, "pgid": bystander.pid}), "utf-8")
        said = stop_local_ray(config)
        assert said == "no local Ray head started by pairforge serve runs on port 2"
        assert bystander.poll() is None, "--stop-ray signalled a process that is not the head"
        assert not path.exists()  # the stale record is forgotten
    finally:
        bystander.kill()
        bystander.wait()


def test_serve_stop_ray_without_a_head(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PAIRFORGE_LOCAL_RAY_PORT", "3")
    monkeypatch.setenv("PAIRFORGE_LOCAL_RAY_DASHBOARD_PORT", "1")
    assert main(["serve", "--stop-ray"]) == 0
    assert "no local Ray head started by pairforge serve runs on port 3" in capsys.readouterr().out


def test_serve_refuses_unreadable_local_ray_args(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PAIRFORGE_LOCAL_RAY_ARGS", "--num-cpus '4")
    assert main(["serve", "--stop-ray"]) == 2
    assert "PAIRFORGE_" in capsys.readouterr().err
