"""Sandboxed execution of untrusted code: warm Docker containers that build pass matrices.

Knows nothing about preference pairs. Only ``sandbox.docker_backend`` imports ``docker``.
The modules that run inside the container are stdlib-only (``sandbox.image.RUNNER_MODULES``:
``runner``, ``cell``, ``judge``, ``split``, ``wire``, ``verdicts`` and this file).
"""
