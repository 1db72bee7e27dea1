"""Sandboxed execution of untrusted code: warm Docker containers that build pass matrices.

Knows nothing about preference pairs. Only ``sandbox.docker_backend`` imports ``docker``;
``sandbox.runner`` is stdlib-only and runs inside the container.
"""
