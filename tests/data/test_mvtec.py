"""refcfa.data.mvtec on fake MVTec trees."""

from __future__ import annotations

import pytest

from refcfa.data.io import read_mask
from refcfa.data.mvtec import detect_mvtec, list_mvtec_categories, make_mvtec_samples
from refcfa.errors import DatasetError

from .fakes import fake_box, write_fake_mvtec


def test_counts_ids_and_masks(tmp_path):
    root = write_fake_mvtec(tmp_path / "mvtec", categories=("bottle", "cable"), n_train=4, n_test_good=2)
    assert detect_mvtec(root)
    assert list_mvtec_categories(root) == ["bottle", "cable"]
    samples = make_mvtec_samples(root, "bottle")
    assert len(samples) == 4 + 2 + 3
    train = [s for s in samples if s.split == "train"]
    assert [s.image_id for s in train] == [
        "train/good/000",
        "train/good/001",
        "train/good/002",
        "train/good/003",
    ]
    assert all(s.label == 0 and s.defect == "good" and s.mask_path is None for s in train)
    test_ids = sorted(s.image_id for s in samples if s.split == "test")
    assert test_ids == [
        "test/crack/000",
        "test/crack/001",
        "test/good/000",
        "test/good/001",
        "test/scratch/000",
    ]
    crack = next(s for s in samples if s.image_id == "test/crack/001")
    assert crack.label == 1 and crack.defect == "crack" and crack.category == "bottle"
    assert crack.mask_path == root / "bottle" / "ground_truth" / "crack" / "001_mask.png"
    y0, y1, x0, x1 = fake_box(16)
    assert read_mask(crack.mask_path)[y0:y1, x0:x1].all()


def test_root_may_be_the_category_folder(tmp_path):
    root = write_fake_mvtec(tmp_path / "mvtec")
    assert list_mvtec_categories(root / "bottle") == ["bottle"]
    samples = make_mvtec_samples(root / "bottle", "bottle")
    assert len(samples) == 9
    assert samples == make_mvtec_samples(root, "bottle")


def test_masks_named_by_stem_only(tmp_path):
    root = write_fake_mvtec(tmp_path / "m", mask_suffix="")
    masks = [s.mask_path for s in make_mvtec_samples(root, "bottle") if s.label]
    assert len(masks) == 3 and all(m is not None and m.name in {"000.png", "001.png"} for m in masks)


def test_anomaly_without_mask_gets_none(tmp_path):
    root = write_fake_mvtec(tmp_path / "m")
    (root / "bottle" / "ground_truth" / "scratch" / "000_mask.png").unlink()
    scratch = next(s for s in make_mvtec_samples(root, "bottle") if s.defect == "scratch")
    assert scratch.label == 1 and scratch.mask_path is None


def test_unknown_and_empty_category(tmp_path):
    root = write_fake_mvtec(tmp_path / "m")
    with pytest.raises(DatasetError, match=r"category 'botle' not found .*known categories: bottle"):
        make_mvtec_samples(root, "botle")
    (root / "empty" / "train" / "good").mkdir(parents=True)
    with pytest.raises(DatasetError, match=r"category 'empty' under .* has no images"):
        make_mvtec_samples(root, "empty")
