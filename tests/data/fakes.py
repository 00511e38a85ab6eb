"""Fake dataset trees written to disk, one writer per layout (reused by other test packages).

Every writer takes the root to write under, returns it, and draws pixel values from a generator
seeded by the file's position, so trees are identical in every run. Anomaly masks are filled
rectangles at :func:`fake_box` so tests can check the exact pixels.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np


def fake_box(size: int) -> tuple[int, int, int, int]:
    """``(y0, y1, x0, x1)`` of the anomalous rectangle the fakes draw in an image of side ``size``."""
    return size // 4, size // 2, size // 4, (3 * size) // 4


def fake_image(size: int, channels: int, seed: int, dtype: type = np.uint8) -> np.ndarray:
    """Random pixels: ``(size, size)`` for 1 channel, ``(size, size, channels)`` otherwise."""
    rng = np.random.default_rng(seed)
    high = 65536 if dtype == np.uint16 else 256
    shape = (size, size) if channels == 1 else (size, size, channels)
    return rng.integers(0, high, size=shape).astype(dtype)


def fake_mask(size: int, value: int = 255, channels: int = 1) -> np.ndarray:
    """A mask with :func:`fake_box` set to ``value``."""
    mask = np.zeros((size, size), dtype=np.uint8)
    y0, y1, x0, x1 = fake_box(size)
    mask[y0:y1, x0:x1] = value
    return mask if channels == 1 else np.repeat(mask[:, :, None], channels, axis=2)


def write(path: Path, array: np.ndarray) -> Path:
    """Write ``array`` with OpenCV (BGR order on disk), creating the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), array):
        raise OSError(f"could not write {path}")
    return path


def write_fake_mvtec(
    root: Path,
    categories: Sequence[str] = ("bottle",),
    n_train: int = 4,
    n_test_good: int = 2,
    defects: Mapping[str, int] | None = None,
    size: int = 16,
    channels: int = 3,
    mask_suffix: str = "_mask",
) -> Path:
    """MVTec layout: ``<cat>/train/good``, ``test/good``, ``test/<defect>``, ``ground_truth/<defect>``.

    ``defects`` defaults to ``{"crack": 2, "scratch": 1}``; masks are ``<stem><mask_suffix>.png``.
    """
    defects = {"crack": 2, "scratch": 1} if defects is None else dict(defects)
    for c, category in enumerate(categories):
        base = root / category
        for i in range(n_train):
            write(base / "train" / "good" / f"{i:03d}.png", fake_image(size, channels, 1000 * c + i))
        for i in range(n_test_good):
            write(base / "test" / "good" / f"{i:03d}.png", fake_image(size, channels, 1000 * c + 100 + i))
        for d, (defect, n) in enumerate(defects.items()):
            for i in range(n):
                write(
                    base / "test" / defect / f"{i:03d}.png",
                    fake_image(size, channels, 1000 * c + 200 + 10 * d + i),
                )
                write(base / "ground_truth" / defect / f"{i:03d}{mask_suffix}.png", fake_mask(size))
    return root


def write_fake_visa(
    root: Path,
    with_csv: bool,
    categories: Sequence[str] = ("candle",),
    n_normal: int = 10,
    n_anomaly: int = 3,
    n_csv_train: int = 7,
    size: int = 16,
) -> Path:
    """Raw VisA: ``<cat>/Data/Images/{Normal,Anomaly}/*.JPG``, ``Data/Masks/Anomaly/<stem>.png``.

    Masks hold the class id 3 (not 255). With ``with_csv``, ``split_csv/1cls.csv`` puts the first
    ``n_csv_train`` normals in train and the other normals and all anomalies in test.
    """
    rows = []
    for c, category in enumerate(categories):
        for i in range(n_normal):
            rel = f"{category}/Data/Images/Normal/{i:04d}.JPG"
            write(root / rel, fake_image(size, 3, 5000 + 1000 * c + i))
            rows.append([category, "train" if i < n_csv_train else "test", "normal", rel, ""])
        for i in range(n_anomaly):
            rel = f"{category}/Data/Images/Anomaly/{i:03d}.JPG"
            mask_rel = f"{category}/Data/Masks/Anomaly/{i:03d}.png"
            write(root / rel, fake_image(size, 3, 5500 + 1000 * c + i))
            write(root / mask_rel, fake_mask(size, value=3))
            rows.append([category, "test", "anomaly", rel, mask_rel])
    if with_csv:
        (root / "split_csv").mkdir(parents=True, exist_ok=True)
        with (root / "split_csv" / "1cls.csv").open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["object", "split", "label", "image", "mask"])
            writer.writerows(rows)
    return root


def write_fake_dagm_seed(
    root: Path, classes: Sequence[str] = ("Class1",), n_normal: int = 10, n_defect: int = 3, size: int = 32
) -> Path:
    """The seed's DAGM layout: ``ClassN/NNNN.png`` normals, ``ClassN_def/NNNN.png`` + ``NNNN_mask.png``."""
    for c, name in enumerate(classes):
        for i in range(n_normal):
            write(root / name / f"{i + 1:04d}.png", fake_image(size, 1, 7000 + 100 * c + i))
        for i in range(n_defect):
            write(root / f"{name}_def" / f"{i + 1:04d}.png", fake_image(size, 1, 7050 + 100 * c + i))
            write(root / f"{name}_def" / f"{i + 1:04d}_mask.png", fake_mask(size))
    return root


def write_fake_dagm_public(
    root: Path,
    classes: Sequence[str] = ("Class1",),
    n_train_normal: int = 5,
    n_train_defect: int = 2,
    n_test_normal: int = 4,
    n_test_defect: int = 3,
    size: int = 32,
) -> Path:
    """Public DAGM release: ``ClassN/{Train,Test}/NNNN.PNG``, ``Label/NNNN_label.PNG`` and ``Labels.txt``.

    In each folder the defective images come first (``0001.PNG`` ...), then the normal ones.
    """
    for c, name in enumerate(classes):
        for sub, n_def, n_norm in (
            ("Train", n_train_defect, n_train_normal),
            ("Test", n_test_defect, n_test_normal),
        ):
            folder = root / name / sub
            lines = ["1"]
            for i in range(n_def + n_norm):
                stem = f"{i + 1:04d}"
                write(folder / f"{stem}.PNG", fake_image(size, 1, 8000 + 100 * c + 50 * (sub == "Test") + i))
                if i < n_def:
                    write(folder / "Label" / f"{stem}_label.PNG", fake_mask(size))
                    lines.append(f"{i + 1}\t1\t{stem}.PNG\t0\t{stem}_label.PNG")
                else:
                    lines.append(f"{i + 1}\t0\t{stem}.PNG\t0")
            (folder / "Label").mkdir(parents=True, exist_ok=True)
            (folder / "Label" / "Labels.txt").write_text("\n".join(lines) + "\n")
    return root


def competition_ellipse(index: int, size: int) -> tuple[float, float, float, float, float]:
    """``(semi_major, semi_minor, angle_rad, x_center, y_center)`` of fake defect ``index`` (0-based)."""
    return (size * 0.25, size * 0.08, 0.3 + 0.5 * index, size * 0.5 + index, size * 0.45)


def write_fake_dagm_competition(
    root: Path, classes: Sequence[str] = ("Class1",), n_normal: int = 10, n_defect: int = 3, size: int = 64
) -> Path:
    """Original competition release: ``ClassN`` and ``ClassN_def`` each with a ``labels.txt``.

    ``ClassN/labels.txt`` lists the normals with flag 0 (no geometry), ``ClassN_def/labels.txt`` the
    defects with flag 1 and :func:`competition_ellipse`; a count line heads each file.
    """
    for c, name in enumerate(classes):
        normal_lines = [str(n_normal)]
        for i in range(n_normal):
            write(root / name / f"{i + 1}.png", fake_image(size, 1, 9000 + 100 * c + i))
            normal_lines.append(f"{i + 1}\t0\t{i + 1}.png")
        (root / name / "labels.txt").write_text("\n".join(normal_lines) + "\n")
        def_lines = [str(n_defect)]
        for i in range(n_defect):
            write(root / f"{name}_def" / f"{i + 1}.png", fake_image(size, 1, 9050 + 100 * c + i))
            a, b, angle, x, y = competition_ellipse(i, size)
            def_lines.append(f"{i + 1}\t1\t{i + 1}.png\t{a:.4f}\t{b:.4f}\t{angle:.6f}\t{x:.4f}\t{y:.4f}")
        (root / f"{name}_def" / "labels.txt").write_text("\n".join(def_lines) + "\n")
    return root


def write_fake_folder(
    root: Path,
    category: str | None = "widget",
    n_normal: int = 10,
    n_anomalous: int = 3,
    with_masks: bool = True,
    size: int = 16,
    mask_suffix: str = "",
) -> Path:
    """Folder layout ``<root>/<category>/{normal,anomalous,masks}``; ``category=None`` writes into ``root``."""
    base = root if category is None else root / category
    for i in range(n_normal):
        write(base / "normal" / f"n{i:02d}.png", fake_image(size, 3, 11000 + i))
    for i in range(n_anomalous):
        write(base / "anomalous" / f"a{i:02d}.png", fake_image(size, 3, 11500 + i))
        if with_masks:
            write(base / "masks" / f"a{i:02d}{mask_suffix}.png", fake_mask(size))
    return root


def ellipse_inside(
    x: np.ndarray, y: np.ndarray, ellipse: tuple[float, float, float, float, float], margin: float
) -> np.ndarray:
    """Whether pixel centres ``(x, y)`` lie within the ellipse grown by ``margin`` pixels on both axes.

    Uses the documented reading: angle in radians from the x axis towards the (downward) y axis.
    """
    a, b, angle, cx, cy = ellipse
    dx, dy = x - cx, y - cy
    u = dx * math.cos(angle) + dy * math.sin(angle)
    v = -dx * math.sin(angle) + dy * math.cos(angle)
    return (u / (a + margin)) ** 2 + (v / (b + margin)) ** 2 <= 1.0
