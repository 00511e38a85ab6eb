"""refcfa.data.visa: raw layout with and without 1cls.csv, and the converted layout."""

from __future__ import annotations

import pytest

from refcfa.data._common import split_normals
from refcfa.data.io import read_mask
from refcfa.data.registry import detect_format, make_samples
from refcfa.data.visa import detect_visa, list_visa_categories, make_visa_samples
from refcfa.errors import DatasetError

from .fakes import fake_box, write_fake_mvtec, write_fake_visa


def _counts(samples):
    return {
        key: sum(1 for s in samples if (s.split, s.label) == key)
        for key in (("train", 0), ("train", 1), ("test", 0), ("test", 1))
    }


def test_with_split_csv(tmp_path):
    root = write_fake_visa(
        tmp_path / "visa", with_csv=True, categories=("candle", "pcb2"), n_normal=10, n_anomaly=3
    )
    assert detect_visa(root) and detect_format(root) == "visa"
    assert list_visa_categories(root) == ["candle", "pcb2"]
    samples = make_visa_samples(root, "candle")
    assert _counts(samples) == {("train", 0): 7, ("train", 1): 0, ("test", 0): 3, ("test", 1): 3}
    assert {s.image_id for s in samples if s.split == "train"} == {f"train/good/{i:04d}" for i in range(7)}
    anomalies = [s for s in samples if s.label]
    assert [s.image_id for s in anomalies] == ["test/bad/000", "test/bad/001", "test/bad/002"]
    assert all(s.defect == "bad" and s.category == "candle" for s in anomalies)
    mask = read_mask(anomalies[0].mask_path)  # class id 3 -> True
    y0, y1, x0, x1 = fake_box(16)
    assert mask.sum() == (y1 - y0) * (x1 - x0) and mask[y0:y1, x0:x1].all()


def test_without_split_csv_uses_documented_rule(tmp_path):
    root = write_fake_visa(tmp_path / "visa", with_csv=False, n_normal=10, n_anomaly=3)
    samples = make_visa_samples(root, "candle")
    assert _counts(samples) == {("train", 0): 8, ("train", 1): 0, ("test", 0): 2, ("test", 1): 3}
    expected_test = split_normals([f"{i:04d}.JPG" for i in range(10)])
    assert {s.path.name for s in samples if s.split == "test" and s.label == 0} == expected_test
    assert all(s.mask_path is not None and s.mask_path.suffix == ".png" for s in samples if s.label)
    # deterministic: the same split on a second parse and in another folder
    other = write_fake_visa(tmp_path / "elsewhere", with_csv=False, n_normal=10, n_anomaly=3)
    assert [s.image_id for s in make_visa_samples(other, "candle")] == [s.image_id for s in samples]


def test_category_missing_from_csv_falls_back_to_rule(tmp_path):
    root = write_fake_visa(tmp_path / "visa", with_csv=True, categories=("candle",))
    write_fake_visa(tmp_path / "visa", with_csv=False, categories=("macaroni1",), n_normal=5, n_anomaly=2)
    assert list_visa_categories(root) == ["candle", "macaroni1"]
    samples = make_visa_samples(root, "macaroni1")
    assert _counts(samples) == {("train", 0): 4, ("train", 1): 0, ("test", 0): 1, ("test", 1): 2}


def test_root_may_be_a_raw_category(tmp_path):
    root = write_fake_visa(tmp_path / "visa", with_csv=True)
    samples = make_visa_samples(root / "candle", "candle")
    assert _counts(samples)[("train", 0)] == 7  # the csv beside the category is used


def test_converted_layout_with_stem_masks(tmp_path):
    root = write_fake_mvtec(
        tmp_path / "visa_conv", categories=("candle",), defects={"bad": 3}, mask_suffix=""
    )
    samples = make_samples(root, "visa", "candle")
    anomalies = [s for s in samples if s.label]
    assert len(anomalies) == 3 and all(s.mask_path.name == s.path.name for s in anomalies)
    assert detect_format(root) == "mvtec"  # same layout, same samples
    assert make_samples(root, "auto", "candle") == samples


def test_malformed_csv(tmp_path):
    root = write_fake_visa(tmp_path / "visa", with_csv=True)
    csv_path = root / "split_csv" / "1cls.csv"
    csv_path.write_text("object,split,image\ncandle,train,candle/Data/Images/Normal/0000.JPG\n")
    with pytest.raises(DatasetError, match=r"1cls\.csv lacks the column\(s\) label, mask"):
        make_visa_samples(root, "candle")
    csv_path.write_text(
        "object,split,label,image,mask\ncandle,val,normal,candle/Data/Images/Normal/0000.JPG,\n"
    )
    with pytest.raises(DatasetError, match=r"1cls\.csv line 2: split 'val', expected 'train' or 'test'"):
        make_visa_samples(root, "candle")
    csv_path.write_text(
        "object,split,label,image,mask\ncandle,train,normal,candle/Data/Images/Normal/9999.JPG,\n"
    )
    with pytest.raises(DatasetError, match=r"line 2 lists image .*9999\.JPG, which does not exist"):
        make_visa_samples(root, "candle")


def test_csv_putting_a_file_in_both_splits_is_refused(tmp_path):
    root = write_fake_visa(tmp_path / "visa", with_csv=True)
    csv_path = root / "split_csv" / "1cls.csv"
    with csv_path.open("a") as fh:
        fh.write("candle,test,normal,candle/Data/Images/Normal/0000.JPG,\n")
    with pytest.raises(
        DatasetError, match=r"0000\.JPG is in both the train and the test split of category 'candle'"
    ):
        make_samples(root, "visa", "candle")
