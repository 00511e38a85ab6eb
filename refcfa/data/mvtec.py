"""MVTec AD layout (also VisA's converted layout and the synthetic generator's output).

::

    <root>/<category>/train/good/*.png
    <root>/<category>/test/good/*.png
    <root>/<category>/test/<defect>/*.png
    <root>/<category>/ground_truth/<defect>/<stem>_mask.png   (or <stem>.png)

``root`` may also be the category folder itself (it then holds ``train/`` and ``test/``); the
category is the folder's name. The split is the dataset's own. An anomalous image without a mask
file gets ``mask_path=None``. Other folders under ``train/`` than ``good`` are ignored.
"""

from __future__ import annotations

from pathlib import Path

from refcfa.data._common import (
    DatasetFormat,
    empty_category,
    find_mask,
    list_images,
    require_dir,
    subdirs,
    unknown_category,
)
from refcfa.data.sample import GOOD, Sample

LAYOUT = "<root>/<category>/train/good/*.png, <root>/<category>/test/<defect>/*.png, <root>/<category>/ground_truth/<defect>/<stem>_mask.png"
MASK_PATTERNS = ("{stem}_mask", "{stem}")


def _is_category_dir(folder: Path) -> bool:
    return (folder / "train" / GOOD).is_dir() or (
        (folder / "test").is_dir() and any(subdirs(folder / "test"))
    )


def _root_is_category(root: Path) -> bool:
    return _is_category_dir(root)


def detect_mvtec(root: str | Path) -> bool:
    """Whether ``root`` (or one of its sub-folders) holds ``train/good`` or ``test/<defect>``."""
    root = Path(root)
    if not root.is_dir():
        return False
    return _root_is_category(root) or any(_is_category_dir(d) for d in subdirs(root))


def list_mvtec_categories(root: str | Path) -> list[str]:
    """Sorted category names: sub-folders with ``train/good`` or ``test/<defect>``, or ``root``'s name."""
    root = require_dir(root)
    if _root_is_category(root):
        return [root.name]
    return [d.name for d in subdirs(root) if _is_category_dir(d)]


def category_dir(root: Path, category: str, fmt: str = "mvtec") -> Path:
    """The folder of ``category``: ``root/<category>``, or ``root`` when it is the category."""
    if _root_is_category(root) and category == root.name:
        return root
    folder = root / category
    if not (folder.is_dir() and _is_category_dir(folder)):
        raise unknown_category(root, category, list_mvtec_categories(root), fmt)
    return folder


def make_mvtec_samples(root: str | Path, category: str) -> list[Sample]:
    """Parse one MVTec-layout category into samples (train normals first, then test by defect).

    Raises:
        FileNotFoundError: ``root`` is missing.
        DatasetError: unknown category, or a category without any image.
    """
    root = require_dir(root)
    folder = category_dir(root, category)
    samples: list[Sample] = []
    for path in list_images(folder / "train" / GOOD):
        samples.append(Sample(f"train/{GOOD}/{path.stem}", path, "train", 0, GOOD, None, category))
    for defect_dir in subdirs(folder / "test"):
        defect = defect_dir.name
        for path in list_images(defect_dir):
            if defect == GOOD:
                samples.append(Sample(f"test/{GOOD}/{path.stem}", path, "test", 0, GOOD, None, category))
            else:
                mask = find_mask(folder / "ground_truth" / defect, path.stem, MASK_PATTERNS)
                samples.append(Sample(f"test/{defect}/{path.stem}", path, "test", 1, defect, mask, category))
    if not samples:
        raise empty_category(root, category, f"images in {folder}/train/good or {folder}/test/<defect>")
    return samples


FORMAT = DatasetFormat(
    name="mvtec",
    layout=LAYOUT,
    detect=detect_mvtec,
    list_categories=list_mvtec_categories,
    make_samples=make_mvtec_samples,
)
