"""``pairforge model serve`` as a user runs it: a real process, a real server, SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import httpx
import pytest

from services import local_model
from tests.conftest import REPO_ROOT


def test_model_serve_prints_the_spec_values_answers_and_stops_on_sigterm(tmp_path) -> None:
    if missing := local_model.missing_requirements():
        pytest.skip(f"needs the local-llm extra (missing {', '.join(missing)})")
    log = tmp_path / "server.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "model", "serve", "--port", "0", "--log", str(log)],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        text = ""
        while "Ctrl-C stops it." not in text and len(text) < 10_000:
            line = proc.stdout.readline()
            assert line, f"pairforge model serve ended early: {text}{proc.stderr.read()}"
            text += line
        match = re.search(r"base_url: (http://127\.0\.0\.1:\d+/v1)\n", text)
        assert match, text
        base_url = match.group(1)
        assert f"model: {local_model.MODEL_NAME}\n" in text
        models = httpx.get(f"{base_url}/models", timeout=10).json()
        assert [m["id"] for m in models["data"]] == [local_model.MODEL_NAME]

        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert "model server stopped" in out
        # The llama.cpp child went with it: nothing answers on the port any more.
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{base_url}/models", timeout=2)
        assert log.stat().st_size > 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
