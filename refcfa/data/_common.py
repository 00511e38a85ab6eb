"""Helpers shared by the format parsers: listing images, the deterministic split, the format record."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from refcfa.data.io import IMAGE_EXTENSIONS
from refcfa.data.sample import Sample
from refcfa.errors import DatasetError

TEST_FRACTION = 0.2
"""Share of the normal images sent to ``test`` by the deterministic split (formats without one)."""

SPLIT_SALT = "refcfa-split-v1"


@dataclass(frozen=True)
class DatasetFormat:
    """A registry entry: how to recognise, list and parse one on-disk layout.

    Attributes:
        name: Registry key (``"mvtec"``, ``"visa"``, ``"dagm"``, ``"folder"``).
        layout: One-line description of the expected layout, quoted in error messages.
        detect: ``detect(root) -> bool``: whether ``root`` looks like this layout.
        list_categories: ``list_categories(root) -> list[str]``, sorted.
        make_samples: ``make_samples(root, category) -> list[Sample]``.
    """

    name: str
    layout: str
    detect: Callable[[Path], bool]
    list_categories: Callable[[Path], list[str]]
    make_samples: Callable[[Path, str], list[Sample]]


def require_dir(root: str | Path, what: str = "dataset root") -> Path:
    """Return ``root`` as a ``Path``; raise if it is missing or not a directory."""
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"{what} not found: {root} (check the path in the config or command)")
    if not root.is_dir():
        raise DatasetError(f"{what} {root} is a file: expected a directory holding the dataset")
    return root


def list_images(folder: Path, exclude_suffixes: Iterable[str] = ()) -> list[Path]:
    """Image files directly in ``folder`` (sorted by name); ``[]`` if the folder is missing.

    Files whose stem ends with one of ``exclude_suffixes`` (e.g. ``"_mask"``) are left out.
    """
    if not folder.is_dir():
        return []
    excluded = tuple(s.lower() for s in exclude_suffixes)
    found = [
        p
        for p in folder.iterdir()
        if p.suffix.lower() in IMAGE_EXTENSIONS
        and p.is_file()
        and not p.name.startswith(".")
        and not (excluded and p.stem.lower().endswith(excluded))
    ]
    return sorted(found, key=lambda p: p.name)


def subdirs(folder: Path) -> list[Path]:
    """Visible sub-directories of ``folder``, sorted by name."""
    if not folder.is_dir():
        return []
    return sorted(
        (p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: p.name
    )


def find_mask(folder: Path, stem: str, patterns: Sequence[str] = ("{stem}_mask", "{stem}")) -> Path | None:
    """The first existing ``folder/<pattern>.<image extension>`` for ``stem``, or ``None``.

    Patterns are tried in order; extensions in :data:`IMAGE_EXTENSIONS` order, lower then upper case.
    """
    if not folder.is_dir():
        return None
    for pattern in patterns:
        base = pattern.format(stem=stem)
        for ext in IMAGE_EXTENSIONS:
            for candidate in (folder / f"{base}{ext}", folder / f"{base}{ext.upper()}"):
                if candidate.is_file():
                    return candidate
    return None


def split_normals(names: Sequence[str], test_fraction: float = TEST_FRACTION) -> set[str]:
    """The deterministic split used where a dataset ships none: which normal files go to ``test``.

    Every name is ranked by ``sha256("refcfa-split-v1:" + name)`` (ties by name) and the first
    ``n_test = round(test_fraction * n)`` — at least 1 and at most ``n - 1`` when ``n >= 2``, and 0
    when ``n < 2`` — go to test. The choice depends on the file names only: not on listing order,
    the machine or the root's location, and adding one file moves at most one other.

    Returns:
        The set of names sent to ``test``; the others are ``train``.
    """
    n = len(names)
    if n < 2:
        return set()
    n_test = min(n - 1, max(1, round(test_fraction * n)))
    ranked = sorted(names, key=lambda s: (hashlib.sha256(f"{SPLIT_SALT}:{s}".encode()).hexdigest(), s))
    return set(ranked[:n_test])


def unknown_category(root: Path, category: str, known: Sequence[str], fmt: str) -> DatasetError:
    """The error for a category that is not in ``known``."""
    listed = ", ".join(known) if known else "(none)"
    return DatasetError(
        f"category {category!r} not found under {root} ({fmt} layout); known categories: {listed} "
        "(fix the category name in the config)"
    )


def empty_category(root: Path, category: str, expected: str) -> DatasetError:
    """The error for a category folder that holds no image."""
    return DatasetError(
        f"category {category!r} under {root} has no images: expected {expected} (add the images or "
        "choose another category)"
    )
