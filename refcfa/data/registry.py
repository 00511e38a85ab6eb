"""The format registry: pick a layout by name or by looking at the folder, and parse a category.

Automatic detection tries the formats in :data:`DETECTION_ORDER` (most specific layout first)
and takes the first whose ``detect`` accepts the root. VisA's converted layout is the MVTec layout
and is reported as ``mvtec``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from refcfa.data import dagm, folder, mvtec, visa
from refcfa.data._common import DatasetFormat, require_dir, unknown_category
from refcfa.data.io import read_image
from refcfa.data.sample import Sample
from refcfa.errors import DatasetError

FORMATS: dict[str, DatasetFormat] = {
    f.name: f for f in (mvtec.FORMAT, visa.FORMAT, dagm.FORMAT, folder.FORMAT)
}
"""Registered formats by name."""

DETECTION_ORDER: tuple[str, ...] = ("visa", "dagm", "mvtec", "folder")


def get_format(name: str) -> DatasetFormat:
    """The registered format called ``name``.

    Raises:
        DatasetError: unknown name; the message lists the known ones.
    """
    try:
        return FORMATS[name]
    except KeyError:
        known = ", ".join(FORMATS)
        raise DatasetError(
            f"unknown dataset format {name!r}: known formats are {known} and 'auto' (fix the 'format' key)"
        ) from None


def detect_format(root: str | Path) -> str:
    """Name of the first format (in :data:`DETECTION_ORDER`) whose layout ``root`` matches.

    Raises:
        FileNotFoundError: ``root`` is missing.
        DatasetError: ``root`` matches no layout; the message lists the layouts looked for.
    """
    root = require_dir(root)
    for name in DETECTION_ORDER:
        if FORMATS[name].detect(root):
            return name
    layouts = "; ".join(f"{name}: {FORMATS[name].layout}" for name in DETECTION_ORDER)
    raise DatasetError(
        f"{root} holds no dataset layout refcfa knows. Expected one of — {layouts}. "
        "Point the root at the dataset folder or set the format explicitly."
    )


def _resolve(root: str | Path, fmt: str) -> tuple[Path, DatasetFormat]:
    root = require_dir(root)
    name = detect_format(root) if fmt == "auto" else fmt
    return root, get_format(name)


def list_categories(root: str | Path, fmt: str = "auto") -> list[str]:
    """Category names under ``root`` for format ``fmt`` (``"auto"`` detects it)."""
    root, format_ = _resolve(root, fmt)
    return format_.list_categories(root)


def check_disjoint(samples: Iterable[Sample]) -> None:
    """Refuse samples where one file is both in ``train`` and in ``test`` of a category.

    Raises:
        DatasetError: naming the file and the category.
    """
    splits: dict[tuple[str, Path], set[str]] = defaultdict(set)
    for s in samples:
        splits[(s.category, s.path.resolve())].add(s.split)
    for (category, path), seen in splits.items():
        if len(seen) > 1:
            raise DatasetError(
                f"image {path} is in both the train and the test split of category {category!r}: "
                "no image may be used for training and evaluation (fix the split file or the folders)"
            )


def check_unique_ids(samples: Iterable[Sample]) -> None:
    """Refuse two samples of one category with the same ``image_id`` (e.g. ``a.png`` and ``a.jpg``).

    Raises:
        DatasetError: naming both files.
    """
    seen: dict[tuple[str, str], Path] = {}
    for s in samples:
        key = (s.category, s.image_id)
        if key in seen and seen[key] != s.path:
            raise DatasetError(
                f"images {seen[key]} and {s.path} both get the id {s.image_id!r} in category "
                f"{s.category!r}: image ids must be unique (rename or remove one of them)"
            )
        seen[key] = s.path


def make_samples(root: str | Path, fmt: str = "auto", category: str | None = None) -> list[Sample]:
    """Parse one category of the dataset at ``root``; checks ids and the train/test disjointness.

    Args:
        root: Dataset root (or, where the format allows it, the category folder itself).
        fmt: A name in :data:`FORMATS`, or ``"auto"``.
        category: Category name; may be ``None`` when the root has exactly one.

    Raises:
        FileNotFoundError: ``root`` is missing.
        DatasetError: no layout, unknown format or category (the message lists the known ones),
            an empty category, duplicate ids, or a file in both splits.
    """
    root, format_ = _resolve(root, fmt)
    known = format_.list_categories(root)
    if category is None:
        if len(known) != 1:
            raise DatasetError(
                f"{root} holds {len(known)} categories ({', '.join(known) or 'none'}): name one "
                "with the 'category' key"
            )
        category = known[0]
    elif category not in known:
        raise unknown_category(root, category, known, format_.name)
    samples = format_.make_samples(root, category)
    check_unique_ids(samples)
    check_disjoint(samples)
    return samples


def count_samples(samples: Iterable[Sample]) -> dict[str, int]:
    """``train_normal``, ``train_anomalous``, ``test_normal``, ``test_anomalous`` and ``masks`` counts."""
    counts = dict.fromkeys(("train_normal", "train_anomalous", "test_normal", "test_anomalous", "masks"), 0)
    for s in samples:
        counts[f"{s.split}_{'anomalous' if s.label else 'normal'}"] += 1
        counts["masks"] += s.mask_path is not None
    return counts


def inspect_root(root: str | Path, fmt: str = "auto") -> dict[str, Any]:
    """Summarise a dataset root: the ``data inspect --json`` object.

    Returns:
        ``{"format": name, "categories": {category: {"train_normal", "train_anomalous",
        "test_normal", "test_anomalous", "masks", "channels"}}}`` — counts of samples, of mask
        files, and the channel count of the category's first image (1 or 3).
    """
    root, format_ = _resolve(root, fmt)
    categories: dict[str, dict[str, int]] = {}
    for category in format_.list_categories(root):
        samples = make_samples(root, format_.name, category)
        summary = count_samples(samples)
        summary["channels"] = int(read_image(samples[0].path).shape[2])
        categories[category] = summary
    return {"format": format_.name, "categories": categories}
