"""refcfa.data.dagm: the seed's layout, the public release and the competition release."""

from __future__ import annotations

import numpy as np
import pytest

from refcfa.data._common import split_normals
from refcfa.data.dagm import (
    EllipseLabel,
    detect_dagm,
    list_dagm_categories,
    make_dagm_samples,
    rasterize_ellipse,
    read_labels_txt,
)
from refcfa.data.io import read_image, read_mask
from refcfa.data.registry import detect_format, inspect_root
from refcfa.errors import DatasetError

from .fakes import (
    competition_ellipse,
    ellipse_inside,
    fake_box,
    write_fake_dagm_competition,
    write_fake_dagm_public,
    write_fake_dagm_seed,
    write_fake_mvtec,
)


def _counts(samples):
    return {
        key: sum(1 for s in samples if (s.split, s.label) == key)
        for key in (("train", 0), ("train", 1), ("test", 0), ("test", 1))
    }


def test_seed_layout(tmp_path):
    root = write_fake_dagm_seed(
        tmp_path / "dagm", classes=("Class1", "Class2", "Class10"), n_normal=10, n_defect=3
    )
    assert detect_dagm(root) and detect_format(root) == "dagm"
    assert list_dagm_categories(root) == ["Class1", "Class2", "Class10"]
    samples = make_dagm_samples(root, "Class2")
    assert _counts(samples) == {("train", 0): 8, ("train", 1): 0, ("test", 0): 2, ("test", 1): 3}
    expected_test = split_normals([f"{i:04d}.png" for i in range(1, 11)])
    assert {s.path.name for s in samples if s.split == "test" and not s.label} == expected_test
    defects = [s for s in samples if s.label]
    assert [s.image_id for s in defects] == ["test/defect/0001", "test/defect/0002", "test/defect/0003"]
    assert all(s.mask_path.name == f"{s.path.stem}_mask.png" for s in defects)
    assert not any(s.path.stem.endswith("_mask") for s in samples)
    assert read_image(samples[0].path).shape[2] == 1  # grayscale kept 1-channel


def test_public_layout(tmp_path):
    root = write_fake_dagm_public(
        tmp_path / "dagm",
        classes=("Class1", "Class3"),
        n_train_normal=5,
        n_train_defect=2,
        n_test_normal=4,
        n_test_defect=3,
    )
    assert detect_format(root) == "dagm"
    assert list_dagm_categories(root) == ["Class1", "Class3"]
    samples = make_dagm_samples(root, "Class3")
    # train defects are reported (label 1, split train) for inspect; training keeps label == 0
    assert _counts(samples) == {("train", 0): 5, ("train", 1): 2, ("test", 0): 4, ("test", 1): 3}
    train_defects = sorted(s.image_id for s in samples if s.split == "train" and s.label)
    assert train_defects == ["train/defect/0001", "train/defect/0002"]
    for s in samples:
        if s.label:
            assert s.mask_path.name == f"{s.path.stem}_label.PNG"
            y0, y1, x0, x1 = fake_box(32)
            assert read_mask(s.mask_path)[y0:y1, x0:x1].all()
        else:
            assert s.mask_path is None
    summary = inspect_root(root)["categories"]["Class3"]
    assert summary == {
        "train_normal": 5,
        "train_anomalous": 2,
        "test_normal": 4,
        "test_anomalous": 3,
        "masks": 5,
        "channels": 1,
    }


def test_public_layout_nested_and_root_as_class(tmp_path):
    write_fake_dagm_public(tmp_path / "nested" / "Class1")  # Class1/Class1/{Train,Test}
    assert list_dagm_categories(tmp_path / "nested") == ["Class1"]
    assert len(make_dagm_samples(tmp_path / "nested", "Class1")) == 14
    root = write_fake_dagm_public(tmp_path / "flat")
    assert list_dagm_categories(root / "Class1") == ["Class1"]
    assert make_dagm_samples(root / "Class1", "Class1") == make_dagm_samples(root, "Class1")


def test_competition_layout_rasterises_ellipses(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("REFCFA_CACHE_DIR", str(cache))
    root = write_fake_dagm_competition(tmp_path / "dagm", n_normal=10, n_defect=3, size=64)
    assert detect_format(root) == "dagm"
    samples = make_dagm_samples(root, "Class1")
    assert _counts(samples) == {("train", 0): 8, ("train", 1): 0, ("test", 0): 2, ("test", 1): 3}
    defects = [s for s in samples if s.label]
    yy, xx = np.mgrid[0:64, 0:64].astype(float)
    for i, s in enumerate(defects):
        assert s.image_id == f"test/defect/{i + 1}"
        assert s.mask_path is not None and cache in s.mask_path.parents  # the dataset is not written to
        mask = read_mask(s.mask_path, shape=(64, 64))
        ellipse = competition_ellipse(i, 64)
        cx, cy = ellipse[3], ellipse[4]
        assert mask[int(round(cy)), int(round(cx))]  # covers the centre
        assert not (mask & ~ellipse_inside(xx, yy, ellipse, margin=1.5)).any()  # nothing far outside
        assert ellipse_inside(xx, yy, ellipse, margin=-1.5)[~mask].sum() == 0  # fills the inside
        area = np.pi * ellipse[0] * ellipse[1]
        assert area <= mask.sum() <= 1.3 * area  # cv2.ellipse fills the outline pixels too
    # a second parse reuses the cached masks
    assert [s.mask_path for s in make_dagm_samples(root, "Class1") if s.label] == [
        s.mask_path for s in defects
    ]
    assert not list(root.rglob("*_mask.png"))


def test_ellipse_angle_reading():
    # angle pi/2: the major axis runs along the image y axis
    mask = rasterize_ellipse(EllipseLabel(1, 10.0, 3.0, np.pi / 2, 20.0, 20.0), (40, 40)) > 0
    ys, xs = np.nonzero(mask)
    assert ys.max() - ys.min() > 2.5 * (xs.max() - xs.min())
    # angle pi/4 with y pointing down: the major axis runs from top-left to bottom-right
    diag = rasterize_ellipse(EllipseLabel(1, 12.0, 2.0, np.pi / 4, 20.0, 20.0), (40, 40)) > 0
    assert diag[28, 28] and diag[12, 12] and not diag[12, 28] and not diag[28, 12]


def test_labels_txt_errors(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_text("2\n1\t1\t1.png\t10\t5\n")
    with pytest.raises(DatasetError, match=r"labels\.txt line 2: a defect line needs 8 fields"):
        read_labels_txt(path)
    path.write_text("1\tx\t1.png\n")
    with pytest.raises(DatasetError, match=r"labels\.txt line 1: flag 'x' is not 0 or 1"):
        read_labels_txt(path)
    path.write_text("1\t1\t1.png\t10\t5\tabc\t3\t4\n")
    with pytest.raises(DatasetError, match=r"line 1: the ellipse parameters .* are not numbers"):
        read_labels_txt(path)
    path.write_text("3\n1\t0\t1.png\n2\t1\t2.png\t10\t5\t0.5\t30\t31\n")
    assert read_labels_txt(path) == {
        "1.png": EllipseLabel(0),
        "2.png": EllipseLabel(1, 10.0, 5.0, 0.5, 30.0, 31.0),
    }


def test_unknown_and_empty_class(tmp_path):
    root = write_fake_dagm_seed(tmp_path / "dagm")
    with pytest.raises(DatasetError, match=r"category 'Class7' not found .*known categories: Class1"):
        make_dagm_samples(root, "Class7")
    (root / "Class4" / "Train").mkdir(parents=True)
    with pytest.raises(DatasetError, match=r"category 'Class4' under .* has no images"):
        make_dagm_samples(root, "Class4")


def test_mvtec_category_named_like_a_class_is_not_dagm(tmp_path):
    root = write_fake_mvtec(tmp_path / "m", categories=("class1",))
    assert not detect_dagm(root)
    assert detect_format(root) == "mvtec"
