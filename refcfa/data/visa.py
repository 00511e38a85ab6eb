"""VisA layout: the raw release, with or without its split file, and the converted layout.

Raw release::

    <root>/<category>/Data/Images/Normal/*.JPG
    <root>/<category>/Data/Images/Anomaly/*.JPG
    <root>/<category>/Data/Masks/Anomaly/<stem>.png     (class ids: any non-zero = anomalous)
    <root>/split_csv/1cls.csv                           (optional)

Split policy:

* With ``<root>/split_csv/1cls.csv`` (columns ``object,split,label,image,mask``; ``label`` is
  ``normal``/``anomaly``; paths relative to ``<root>``) its rows for the category are the samples,
  as listed. A category the file does not mention falls back to the rule below.
* Without it: every anomaly goes to ``test``; the normals are split by
  :func:`refcfa.data._common.split_normals` (20 % to ``test``, chosen by a salted SHA-256 of the
  file name, independent of listing order and machine).

Anomalous images get ``defect="bad"`` (VisA has no per-type folders), hence ids such as
``"test/bad/000"``; normals ``"train/good/0000"``. ``root`` may also be a category folder itself.

Converted layout (``<category>/train/good``, ``test/{good,bad}``, ``ground_truth/bad`` with masks
named ``<stem>.png`` or ``<stem>_mask.png``) is parsed by :mod:`refcfa.data.mvtec`; automatic
detection reports such a root as ``mvtec`` (the samples are the same).
"""

from __future__ import annotations

import csv
from pathlib import Path

from refcfa.data import mvtec
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
from refcfa.data.sample import GOOD, Sample, Split
from refcfa.errors import DatasetError

LAYOUT = "<root>/<category>/Data/Images/{Normal,Anomaly}/*.JPG with <root>/<category>/Data/Masks/Anomaly/<stem>.png (optional <root>/split_csv/1cls.csv)"
SPLIT_CSV = Path("split_csv") / "1cls.csv"
ANOMALY = "bad"
_CSV_COLUMNS = ("object", "split", "label", "image", "mask")


def _is_raw_category(folder: Path) -> bool:
    return (folder / "Data" / "Images").is_dir()


def detect_visa(root: str | Path) -> bool:
    """Whether ``root`` holds the raw VisA layout (``<category>/Data/Images``) or ``split_csv/1cls.csv``."""
    root = Path(root)
    if not root.is_dir():
        return False
    return (
        (root / SPLIT_CSV).is_file()
        or _is_raw_category(root)
        or any(_is_raw_category(d) for d in subdirs(root))
    )


def list_visa_categories(root: str | Path) -> list[str]:
    """Sorted category names (raw and converted layouts together)."""
    root = require_dir(root)
    if _is_raw_category(root):
        return [root.name]
    names = {d.name for d in subdirs(root) if _is_raw_category(d)}
    if mvtec.detect_mvtec(root):
        names.update(mvtec.list_mvtec_categories(root))
    return sorted(names)


def _read_split_csv(csv_path: Path, data_root: Path, category: str) -> list[Sample] | None:
    """Samples of ``category`` from ``1cls.csv``; ``None`` when the file does not list it."""
    with csv_path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        header = [c.strip().lower() for c in (reader.fieldnames or [])]
        missing = [c for c in _CSV_COLUMNS if c not in header]
        if missing:
            raise DatasetError(
                f"split file {csv_path} lacks the column(s) {', '.join(missing)}: expected the header "
                "'object,split,label,image,mask' (use VisA's split_csv/1cls.csv or delete the file)"
            )
        rows = [{k.strip().lower(): (v or "").strip() for k, v in row.items() if k} for row in reader]
    samples: list[Sample] = []
    for line, row in enumerate(rows, start=2):
        if row["object"] != category:
            continue
        where = f"{csv_path} line {line}"
        split: Split = "train" if row["split"].lower() == "train" else "test"
        label_name = row["label"].lower()
        if row["split"].lower() not in ("train", "test"):
            raise DatasetError(f"{where}: split {row['split']!r}, expected 'train' or 'test'")
        if label_name not in ("normal", "anomaly"):
            raise DatasetError(f"{where}: label {row['label']!r}, expected 'normal' or 'anomaly'")
        image = data_root / row["image"]
        if not image.is_file():
            raise DatasetError(
                f"{where} lists image {image}, which does not exist (restore the file or fix the row)"
            )
        mask: Path | None = None
        if label_name == "anomaly" and row["mask"]:
            mask = data_root / row["mask"]
            if not mask.is_file():
                raise DatasetError(
                    f"{where} lists mask {mask}, which does not exist (restore the file or fix the row)"
                )
        label = int(label_name == "anomaly")
        defect = ANOMALY if label else GOOD
        samples.append(Sample(f"{split}/{defect}/{image.stem}", image, split, label, defect, mask, category))
    return samples or None


def _split_by_rule(folder: Path, category: str) -> list[Sample]:
    images = folder / "Data" / "Images"
    normals = list_images(images / "Normal")
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
    masks = folder / "Data" / "Masks" / "Anomaly"
    for p in list_images(images / "Anomaly"):
        mask = find_mask(masks, p.stem, ("{stem}", "{stem}_mask"))
        samples.append(Sample(f"test/{ANOMALY}/{p.stem}", p, "test", 1, ANOMALY, mask, category))
    return samples


def make_visa_samples(root: str | Path, category: str) -> list[Sample]:
    """Parse one VisA category (raw release, with or without ``1cls.csv``, or converted layout).

    Raises:
        FileNotFoundError: ``root`` is missing.
        DatasetError: unknown category, a category without images, or a malformed ``1cls.csv``.
    """
    root = require_dir(root)
    if _is_raw_category(root) and category == root.name:
        folder, data_root = root, root.parent
    elif _is_raw_category(root / category):
        folder, data_root = root / category, root
    elif mvtec.detect_mvtec(root) and category in mvtec.list_mvtec_categories(root):
        return mvtec.make_mvtec_samples(root, category)
    else:
        raise unknown_category(root, category, list_visa_categories(root), "visa")
    samples = None
    if (data_root / SPLIT_CSV).is_file():
        samples = _read_split_csv(data_root / SPLIT_CSV, data_root, category)
    if samples is None:
        samples = _split_by_rule(folder, category)
    if not samples:
        raise empty_category(root, category, f"images in {folder}/Data/Images/Normal or .../Anomaly")
    return samples


FORMAT = DatasetFormat(
    name="visa",
    layout=LAYOUT,
    detect=detect_visa,
    list_categories=list_visa_categories,
    make_samples=make_visa_samples,
)
