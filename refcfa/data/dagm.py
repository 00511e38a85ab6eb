"""DAGM 2007 in its three distributed layouts. Categories are the ``ClassN`` folders.

DAGM images are 8-bit grayscale PNGs and are kept 1-channel (:func:`refcfa.data.io.read_image`
does not add channels). Defective samples get ``defect="defect"``.

**(a) The seed's layout** — normals and defects in sibling folders, pixel masks beside the
defects::

    <root>/ClassN/NNNN.png                 normal images
    <root>/ClassN_def/NNNN.png             defective images
    <root>/ClassN_def/NNNN_mask.png        their masks

**(b) The public ten-class release** — the dataset's own split, a label image per defect::

    <root>/ClassN/{Train,Test}/NNNN.PNG
    <root>/ClassN/{Train,Test}/Label/NNNN_label.PNG    (present for defective images only)

(``<root>/ClassN/ClassN/{Train,Test}`` as unzipped from the archive is accepted too.)

**(c) The original competition release** — like (a), but defects are marked by an ellipse in a
``labels.txt`` per folder, one line per image::

    index  flag  filename  semi_major  semi_minor  rotation_angle  x_center  y_center

``flag`` 1 marks a defect (the geometry columns may be absent on ``flag 0`` lines; lines with
fewer than three fields, such as a count header, are skipped). Our reading of the geometry:
axes and centre in pixels, centre ``(x, y)`` with x to the right and y down, and the rotation in
**radians**, measured from the image x axis towards the y axis — i.e. clockwise on screen, the
convention of ``cv2.ellipse``, which receives ``degrees(rotation_angle)``. The ellipse is filled
into a mask of the image's size by ``cv2.ellipse`` (its outline pixels included, so the mask
reaches about one pixel beyond the ideal ellipse). The labels are weak (an ellipse around the defect, not its exact
outline). The rasterised masks are PNG files written once to a cache folder,
``$REFCFA_CACHE_DIR/dagm_ellipse_masks`` (default ``~/.cache/refcfa/...``, or under
``$XDG_CACHE_HOME``), keyed by the labels file's path and content, so the dataset folder is never
written to. Where a ``NNNN_mask.png`` exists it wins over the ellipse.

Split policy:

* (a) and (c): every defective image goes to ``test``; the normal images are split by
  :func:`refcfa.data._common.split_normals` (20 % to ``test``, chosen by a salted SHA-256 of the
  file name). The images a ``labels.txt`` lists with ``flag 0`` are normals wherever they lie;
  images it does not list are normal in ``ClassN`` and defective in ``ClassN_def``.
* (b): the release's own ``Train``/``Test``. Defective images in ``Train`` (those with a label
  file) are kept as ``split="train", label=1`` samples, so that ``inspect`` reports them as
  ``train_anomalous``; training code must keep ``label == 0`` only (unsupervised training on
  normals). Their ids are ``"train/defect/NNNN"``.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

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
from refcfa.data.io import image_shape
from refcfa.data.sample import GOOD, Sample, Split
from refcfa.errors import DatasetError

DEFECT = "defect"
LAYOUT = (
    "<root>/ClassN/*.png + <root>/ClassN_def/*.png (with NNNN_mask.png or labels.txt), "
    "or <root>/ClassN/{Train,Test}/*.PNG with Label/NNNN_label.PNG"
)
_CLASS_RE = re.compile(r"^class(\d+)(_def)?$", re.IGNORECASE)
_EXCLUDED_STEMS = ("_mask", "_label")
_LABEL_FILES = ("labels.txt", "Labels.txt", "LABELS.TXT")
_ELLIPSE_CACHE_VERSION = "v1-radians-from-x-towards-y"


# ---------------------------------------------------------------------------------------- layout


def _match(name: str) -> re.Match[str] | None:
    return _CLASS_RE.match(name)


def _public_dir(folder: Path) -> Path | None:
    """The folder holding ``Train``/``Test`` for layout (b), or ``None``."""
    for candidate in (folder, folder / folder.name):
        if (candidate / "Train").is_dir() or (candidate / "Test").is_dir():
            return candidate
    return None


def _root_is_category(root: Path) -> bool:
    m = _match(root.name)
    return m is not None and m.group(2) is None and _public_dir(root) is not None


def _is_class_dir(folder: Path) -> bool:
    """A ``ClassN``/``ClassN_def`` folder holding images, ``labels.txt`` or ``Train``/``Test``."""
    if _match(folder.name) is None:
        return False
    return (
        _public_dir(folder) is not None or _find_labels_txt(folder) is not None or bool(list_images(folder))
    )


def detect_dagm(root: str | Path) -> bool:
    """Whether ``root`` holds ``ClassN`` / ``ClassN_def`` folders, or is a ``ClassN/{Train,Test}`` folder."""
    root = Path(root)
    if not root.is_dir():
        return False
    return _root_is_category(root) or any(_is_class_dir(d) for d in subdirs(root))


def list_dagm_categories(root: str | Path) -> list[str]:
    """Category names ``ClassN`` in numeric order (``Class2`` before ``Class10``)."""
    root = require_dir(root)
    if _root_is_category(root):
        return [root.name]
    names: dict[str, int] = {}
    for d in subdirs(root):
        m = _match(d.name)
        if m and _is_class_dir(d):
            base = d.name[: len(d.name) - 4] if m.group(2) else d.name
            names[base] = int(m.group(1))
    return sorted(names, key=lambda n: (names[n], n))


# ---------------------------------------------------------------------------- labels.txt (c)


@dataclass(frozen=True)
class EllipseLabel:
    """One ``labels.txt`` line: ``flag`` and, for defects, the ellipse (pixels, radians)."""

    flag: int
    semi_major: float = 0.0
    semi_minor: float = 0.0
    angle: float = 0.0
    x_center: float = 0.0
    y_center: float = 0.0


def read_labels_txt(path: str | Path) -> dict[str, EllipseLabel]:
    """Parse a competition ``labels.txt`` into ``{filename: EllipseLabel}`` (see the module docstring).

    Raises:
        DatasetError: a line that cannot be read, naming the file and line number.
    """
    path = Path(path)
    labels: dict[str, EllipseLabel] = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        fields = raw.replace(",", " ").split()
        if len(fields) < 3:
            continue
        where = f"{path} line {number}"
        try:
            flag = int(float(fields[1]))
        except ValueError:
            raise DatasetError(
                f"{where}: flag {fields[1]!r} is not 0 or 1 (expected 'index flag filename ...')"
            ) from None
        if flag not in (0, 1):
            raise DatasetError(f"{where}: flag {flag} is not 0 or 1 (expected 'index flag filename ...')")
        if flag == 0:
            labels[fields[2]] = EllipseLabel(0)
            continue
        if len(fields) < 8:
            raise DatasetError(
                f"{where}: a defect line needs 8 fields 'index flag filename semi_major semi_minor "
                f"rotation_angle x_center y_center', found {len(fields)}"
            )
        try:
            a, b, angle, x, y = (float(v) for v in fields[3:8])
        except ValueError:
            raise DatasetError(f"{where}: the ellipse parameters {fields[3:8]} are not numbers") from None
        labels[fields[2]] = EllipseLabel(1, a, b, angle, x, y)
    return labels


def rasterize_ellipse(label: EllipseLabel, shape: tuple[int, int]) -> np.ndarray:
    """Filled ellipse of ``label`` as ``uint8 (H, W)`` with values 0/255 (sub-pixel, 4 fraction bits)."""
    mask = np.zeros(shape, dtype=np.uint8)
    scale = 16  # shift=4
    center = (int(round(label.x_center * scale)), int(round(label.y_center * scale)))
    axes = (max(1, int(round(label.semi_major * scale))), max(1, int(round(label.semi_minor * scale))))
    cv2.ellipse(
        mask,
        center,
        axes,
        math.degrees(label.angle),
        0.0,
        360.0,
        255,
        thickness=-1,
        lineType=cv2.LINE_8,
        shift=4,
    )
    return mask


def ellipse_cache_root() -> Path:
    """Where rasterised ellipse masks are written (see the module docstring)."""
    if os.environ.get("REFCFA_CACHE_DIR"):
        base = Path(os.environ["REFCFA_CACHE_DIR"])
    elif os.environ.get("XDG_CACHE_HOME"):
        base = Path(os.environ["XDG_CACHE_HOME"]) / "refcfa"
    else:
        base = Path.home() / ".cache" / "refcfa"
    return base / "dagm_ellipse_masks"


def _ellipse_mask_file(labels_path: Path, image: Path, label: EllipseLabel) -> Path:
    key = hashlib.sha256(
        f"{_ELLIPSE_CACHE_VERSION}\n{labels_path.resolve()}\n".encode() + labels_path.read_bytes()
    ).hexdigest()[:20]
    folder = ellipse_cache_root() / key
    target = folder / f"{image.stem}_mask.png"
    if target.is_file():
        return target
    try:
        folder.mkdir(parents=True, exist_ok=True)
        ok, encoded = cv2.imencode(".png", rasterize_ellipse(label, image_shape(image)))
        if not ok:  # pragma: no cover - PNG encoding of a uint8 array does not fail
            raise OSError("PNG encoding failed")
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            fh.write(encoded.tobytes())
        os.replace(tmp, target)
    except OSError as exc:
        raise DatasetError(
            f"cannot write the ellipse mask for {image} to {folder}: {exc} "
            "(set REFCFA_CACHE_DIR to a writable folder)"
        ) from exc
    return target


def _find_labels_txt(folder: Path) -> Path | None:
    for name in _LABEL_FILES:
        if (folder / name).is_file():
            return folder / name
    return None


# -------------------------------------------------------------------------------- parsers


def _flat_samples(root: Path, category: str) -> list[Sample]:
    """Layouts (a) and (c): ``ClassN`` + ``ClassN_def``."""
    normals: list[Path] = []
    defects: list[tuple[Path, Path | None]] = []
    for folder in (root / category, root / f"{category}_def"):
        labels_path = _find_labels_txt(folder)
        labels = read_labels_txt(labels_path) if labels_path else {}
        lowered = {k.lower(): v for k, v in labels.items()}
        for image in list_images(folder, exclude_suffixes=_EXCLUDED_STEMS):
            entry = labels.get(image.name) or lowered.get(image.name.lower())
            is_defect = entry.flag == 1 if entry is not None else folder.name.lower().endswith("_def")
            if not is_defect:
                normals.append(image)
                continue
            mask = find_mask(folder, image.stem, ("{stem}_mask",))
            if mask is None and entry is not None and labels_path is not None:
                mask = _ellipse_mask_file(labels_path, image, entry)
            defects.append((image, mask))
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
    samples += [Sample(f"test/{DEFECT}/{p.stem}", p, "test", 1, DEFECT, m, category) for p, m in defects]
    return samples


def _public_samples(folder: Path, category: str) -> list[Sample]:
    """Layout (b): ``ClassN/{Train,Test}`` with ``Label/NNNN_label.PNG``."""
    samples: list[Sample] = []
    folders: tuple[tuple[str, Split], ...] = (("Train", "train"), ("Test", "test"))
    for sub, split in folders:
        for image in list_images(folder / sub, exclude_suffixes=_EXCLUDED_STEMS):
            mask = find_mask(folder / sub / "Label", image.stem, ("{stem}_label",))
            if mask is None:
                samples.append(Sample(f"{split}/{GOOD}/{image.stem}", image, split, 0, GOOD, None, category))
            else:
                samples.append(
                    Sample(f"{split}/{DEFECT}/{image.stem}", image, split, 1, DEFECT, mask, category)
                )
    return samples


def make_dagm_samples(root: str | Path, category: str) -> list[Sample]:
    """Parse one DAGM class in any of the three layouts (see the module docstring for the split).

    Raises:
        FileNotFoundError: ``root`` is missing.
        DatasetError: unknown class, a class without images, a malformed ``labels.txt``, or an
            unwritable ellipse-mask cache.
    """
    root = require_dir(root)
    known = list_dagm_categories(root)
    if category not in known:
        raise unknown_category(root, category, known, "dagm")
    if _root_is_category(root):
        public = _public_dir(root)
    else:
        public = _public_dir(root / category) if (root / category).is_dir() else None
    if public is not None:
        samples = _public_samples(public, category)
        where = f"{public}/Train or {public}/Test"
    else:
        samples = _flat_samples(root, category)
        where = f"{root / category} or {root / category}_def"
    if not samples:
        raise empty_category(root, category, f"PNG images in {where}")
    return samples


FORMAT = DatasetFormat(
    name="dagm",
    layout=LAYOUT,
    detect=detect_dagm,
    list_categories=list_dagm_categories,
    make_samples=make_dagm_samples,
)
