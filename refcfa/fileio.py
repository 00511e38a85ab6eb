"""Small file-system helpers shared by the checkpoint, cache and segmenter writers (no torch, no h5py)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


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


def atomic_write(
    path: str | os.PathLike[str] | Path, write: Callable[[BinaryIO], None], tmp: Path | None = None
) -> Path:
    """Write a file so that a reader (or a killed writer) never leaves a half-written `path`.

    `write(fh)` fills a temporary file in the same folder (`tmp`, default a hidden unique name
    ending in `.tmp`), which is flushed, fsynced and moved onto `path` with `os.replace`; the folder
    entry is fsynced too. On any error the temporary file is removed and the error re-raised.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if tmp is None:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        tmp = Path(name)
    try:
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return path
