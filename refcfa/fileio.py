"""Small file-system helpers shared by the checkpoint, cache and segmenter writers (no torch, no h5py)."""

from __future__ import annotations

import os
from pathlib import Path


def fsync_dir(directory: str | os.PathLike[str] | Path) -> None:
    """Flush a directory entry (after an `os.replace` into it), where the platform allows it."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory file descriptors
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)
