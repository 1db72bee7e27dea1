"""What the training job refuses, as exceptions; the entry point maps them to exit codes.

``BadInput`` (exit 2) covers everything the caller can fix: a manifest or shard that does
not check out, a config that does not validate, pairs the chosen method cannot train on.
Anything else is a failure of the job itself (exit 1).
"""

from __future__ import annotations


class BadInput(Exception):
    """The manifest, a shard, the config or the pairs are unusable (exit code 2)."""


class ManifestError(BadInput):
    """The manifest is incomplete, from a newer schema, or a shard does not match it."""


class ConfigError(BadInput):
    """The training config does not validate, or asks for something the data cannot give."""
