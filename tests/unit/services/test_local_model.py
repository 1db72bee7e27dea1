"""The bundled model's server helper, without the model: commands, errors, start-up checks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from services import local_model
from services.cli import main


def test_the_server_command_binds_threads_for_generation_and_prompt_processing() -> None:
    cmd = local_model.server_command(Path("/m.gguf"), host="127.0.0.1", port=9, threads=1)
    assert cmd[:3] == [sys.executable, "-m", "llama_cpp.server"]
    options = dict(zip(cmd[3::2], cmd[4::2], strict=True))
    assert options == {
        "--model": "/m.gguf",
        "--model_alias": local_model.MODEL_NAME,
        "--host": "127.0.0.1",
        "--port": "9",
        "--n_ctx": str(local_model.CONTEXT_TOKENS),
        "--n_threads": "1",
        "--n_threads_batch": "1",
    }


def test_a_missing_distribution_says_how_to_install_it(monkeypatch) -> None:
    monkeypatch.setattr(local_model, "DISTRIBUTION", "pairforge-no-such-distribution")
    with pytest.raises(local_model.LocalModelUnavailable, match=r"pairforge\[local-llm\]"):
        local_model.bundled_model_file()
    assert "pairforge-no-such-distribution" in local_model.missing_requirements()


def test_start_without_the_extra_names_what_is_missing(monkeypatch) -> None:
    monkeypatch.setattr(local_model, "_SERVER_MODULES", ("pairforge_no_such_module",))
    with pytest.raises(local_model.LocalModelUnavailable, match="pairforge_no_such_module"):
        local_model.start()


def test_a_server_that_exits_early_is_reported_with_its_log(tmp_path) -> None:
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", "import sys; print('no such model file'); sys.exit(3)"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = local_model.LocalModelServer(
        base_url=f"http://127.0.0.1:{local_model.free_port()}/v1",
        model=local_model.MODEL_NAME,
        process=process,
        log_path=log,
        threads=1,
    )
    with pytest.raises(local_model.LocalModelUnavailable, match=r"code 3[\s\S]*no such model"):
        local_model.wait_until_ready(server, timeout_s=30)


def test_a_server_that_never_answers_times_out_and_is_stopped_by_stop(tmp_path) -> None:
    log = tmp_path / "server.log"
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    server = local_model.LocalModelServer(
        base_url=f"http://127.0.0.1:{local_model.free_port()}/v1",
        model=local_model.MODEL_NAME,
        process=process,
        log_path=log,
        threads=1,
    )
    try:
        with pytest.raises(local_model.LocalModelUnavailable, match="did not answer"):
            local_model.wait_until_ready(server, timeout_s=0.5)
    finally:
        local_model.stop(server, grace_s=5)
    assert process.poll() is not None


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--threads", "0"], "--threads must be at least 1, got 0"),
        (["--port", "70000"], "--port must be 0..65535, got 70000"),
    ],
)
def test_model_serve_refuses_bad_options(argv, message, capsys) -> None:
    assert main(["model", "serve", *argv]) == 2
    assert message in capsys.readouterr().err
