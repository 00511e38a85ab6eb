"""A plain folder layout for one's own data::

    <root>/<category>/normal/*.png
    <root>/<category>/anomalous/*.png          (optional)
    <root>/<category>/masks/<stem>.png         (optional; or <stem>_mask.png)

``root`` may also be the category folder itself (it then holds ``normal/``); the category is the
folder's name.

Split policy: every anomalous image goes to ``test``; the normal images are split by
:func:`refcfa.data._common.split_normals` (20 % to ``test``, chosen by a salted SHA-256 of the file
name, independent of listing order and machine). Anomalous images get ``defect="anomalous"``;
one without a mask gets ``mask_path=None``.
"""

from __future__ import annotations

from pathlib import Path

from refcfa.data._common import (
    DatasetFormat,
    empty_category,
    find_mask,
    list_images,
    require_dir,
    split_normals,
    subdirs,
    unknown_category,
)
from refcfa.data.sample import GOOD, Sample

NORMAL_DIR = "normal"
ANOMALOUS_DIR = "anomalous"
MASKS_DIR = "masks"
ANOMALOUS = "anomalous"
LAYOUT = "<root>/<category>/normal/*.png with optional <root>/<category>/anomalous/*.png and masks/<stem>.png"


def _is_category_dir(folder: Path) -> bool:
    return (folder / NORMAL_DIR).is_dir()


def detect_folder(root: str | Path) -> bool:
    """Whether ``root`` (or one of its sub-folders) holds a ``normal/`` folder."""
    root = Path(root)
    if not root.is_dir():
        return False
    return _is_category_dir(root) or any(_is_category_dir(d) for d in subdirs(root))


def list_folder_categories(root: str | Path) -> list[str]:
    """Sorted category names: sub-folders holding ``normal/``, or ``root``'s own name."""
    root = require_dir(root)
    if _is_category_dir(root):
        return [root.name]
    return [d.name for d in subdirs(root) if _is_category_dir(d)]


def make_folder_samples(root: str | Path, category: str) -> list[Sample]:
    """Parse one folder-layout category (see the module docstring for the split).

    Raises:
        FileNotFoundError: ``root`` is missing.
        DatasetError: unknown category, or a category without any image.
    """
    root = require_dir(root)
    if _is_category_dir(root) and category == root.name:
        folder = root
    elif _is_category_dir(root / category):
        folder = root / category
    else:
        raise unknown_category(root, category, list_folder_categories(root), "folder")
    normals = list_images(folder / NORMAL_DIR)
    to_test = split_normals([p.name for p in normals])
    samples = [
        Sample(f"train/{GOOD}/{p.stem}", p, "train", 0, GOOD, None, category)
        for p in normals
        if p.name not in to_test
    ]
    samples += [
        Sample(f"test/{GOOD}/{p.stem}", p, "test", 0, GOOD, None, category)
        for p in normals
        if p.name in to_test
    ]
    for p in list_images(folder / ANOMALOUS_DIR):
        mask = find_mask(folder / MASKS_DIR, p.stem, ("{stem}", "{stem}_mask"))
        samples.append(Sample(f"test/{ANOMALOUS}/{p.stem}", p, "test", 1, ANOMALOUS, mask, category))
    if not samples:
        raise empty_category(root, category, f"images in {folder}/{NORMAL_DIR} or {folder}/{ANOMALOUS_DIR}")
    return samples


FORMAT = DatasetFormat(
    name="folder",
    layout=LAYOUT,
    detect=detect_folder,
    list_categories=list_folder_categories,
    make_samples=make_folder_samples,
)
