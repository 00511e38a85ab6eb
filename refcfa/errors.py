"""Error types for user-facing failures.

Every error raised for bad input names the input (a path or a config key), says what was
expected, and how to fix it. The CLI and the GUI show the message without a traceback.
"""

from __future__ import annotations


class RefcfaError(Exception):
    """Base class of refcfa's user-facing errors."""


class ConfigError(RefcfaError, ValueError):
    """A configuration file or override is invalid."""


class DatasetError(RefcfaError, ValueError):
    """A dataset root, category, image or mask is missing or malformed."""


class CheckpointError(RefcfaError, ValueError):
    """A checkpoint is missing, not ours, or from another architecture."""


class CacheError(RefcfaError, ValueError):
    """A trajectory cache entry or directory is unusable."""
