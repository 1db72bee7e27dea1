"""GPU tier fixtures: a small real model for vLLM, and guards that skip with a reason.

Set ``PAIRFORGE_GPU_TEST_MODEL`` to a local path or Hugging Face id to use another model
(for example a mirror on a machine without network access).
"""

from __future__ import annotations

import importlib.util
import os

import pytest

DEFAULT_GPU_TEST_MODEL = "facebook/opt-125m"
"""Small enough to load in seconds on any GPU; Ray's own vLLM tests use it too."""


@pytest.fixture(scope="session")
def gpu_available() -> None:
    """Skip unless vLLM is installed and a CUDA device is visible."""
    if importlib.util.find_spec("vllm") is None:
        pytest.skip("needs vLLM: install the GPU extra with `pip install 'pairforge[gpu]'`")
    torch = pytest.importorskip("torch", reason="needs torch (installed with vLLM)")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU (torch.cuda.is_available() is False)")


@pytest.fixture(scope="session")
def gpu_test_model(gpu_available: None) -> str:
    """Model id or path used by GPU tests."""
    return os.environ.get("PAIRFORGE_GPU_TEST_MODEL", DEFAULT_GPU_TEST_MODEL)
