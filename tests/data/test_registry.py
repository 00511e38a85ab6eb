"""refcfa.data.registry: detection, errors, inspect, disjointness."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from refcfa.data import (
    FORMATS,
    Sample,
    check_disjoint,
    check_unique_ids,
    detect_format,
    get_format,
    inspect_root,
    list_categories,
    make_samples,
)
from refcfa.errors import DatasetError

from .fakes import (
    write,
    write_fake_dagm_competition,
    write_fake_dagm_public,
    write_fake_dagm_seed,
    write_fake_folder,
    write_fake_mvtec,
    write_fake_visa,
)


@pytest.mark.parametrize(
    ("writer", "expected"),
    [
        (lambda r: write_fake_mvtec(r), "mvtec"),
        (lambda r: write_fake_visa(r, with_csv=True), "visa"),
        (lambda r: write_fake_visa(r, with_csv=False), "visa"),
        (lambda r: write_fake_dagm_seed(r), "dagm"),
        (lambda r: write_fake_dagm_public(r), "dagm"),
        (lambda r: write_fake_dagm_competition(r), "dagm"),
        (lambda r: write_fake_folder(r), "folder"),
    ],
)
def test_detect_each_layout(tmp_path, writer, expected):
    root = writer(tmp_path / "root")
    assert detect_format(root) == expected
    assert make_samples(root, "auto", list_categories(root)[0]) == make_samples(
        root, expected, list_categories(root, expected)[0]
    )


def test_get_format_unknown_lists_known():
    assert get_format("mvtec") is FORMATS["mvtec"]
    with pytest.raises(
        DatasetError, match=r"unknown dataset format 'mvtech': known formats are mvtec, visa, dagm, folder"
    ):
        get_format("mvtech")


def test_missing_root(tmp_path):
    missing = tmp_path / "no_such_dataset"
    for call in (detect_format, list_categories, inspect_root, lambda r: make_samples(r, "mvtec", "x")):
        with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
            call(missing)


def test_root_that_is_a_file(tmp_path):
    (tmp_path / "f.txt").write_text("x")
    with pytest.raises(DatasetError, match=r"f\.txt is a file: expected a directory"):
        detect_format(tmp_path / "f.txt")


def test_folder_that_is_no_dataset(tmp_path):
    (tmp_path / "photos" / "holiday").mkdir(parents=True)
    write(tmp_path / "photos" / "holiday" / "beach.png", np.zeros((4, 4), "uint8"))
    with pytest.raises(
        DatasetError,
        match=r"photos holds no dataset layout .*mvtec: <root>/<category>/train/good.*folder: <root>/<category>/normal",
    ):
        detect_format(tmp_path / "photos")


def test_empty_category(tmp_path):
    root = write_fake_mvtec(tmp_path / "m")
    (root / "void" / "train" / "good").mkdir(parents=True)
    with pytest.raises(DatasetError, match=r"category 'void' under .* has no images"):
        make_samples(root, "auto", "void")
    with pytest.raises(DatasetError, match=r"category 'void'"):
        inspect_root(root)


def test_unknown_category_lists_known(tmp_path):
    root = write_fake_mvtec(tmp_path / "m", categories=("bottle", "cable"))
    with pytest.raises(DatasetError, match=r"category 'capsule' not found .*known categories: bottle, cable"):
        make_samples(root, "auto", "capsule")


def test_category_may_be_omitted_only_when_unique(tmp_path):
    one = write_fake_mvtec(tmp_path / "one")
    assert make_samples(one) == make_samples(one, "mvtec", "bottle")
    two = write_fake_mvtec(tmp_path / "two", categories=("a", "b"))
    with pytest.raises(DatasetError, match=r"holds 2 categories \(a, b\): name one"):
        make_samples(two)


def test_inspect_root_counts(tmp_path):
    root = write_fake_mvtec(tmp_path / "m", categories=("bottle", "gray"), n_train=4, n_test_good=2)
    info = inspect_root(root)
    assert info == {
        "format": "mvtec",
        "categories": {
            "bottle": {
                "train_normal": 4,
                "train_anomalous": 0,
                "test_normal": 2,
                "test_anomalous": 3,
                "masks": 3,
                "channels": 3,
            },
            "gray": {
                "train_normal": 4,
                "train_anomalous": 0,
                "test_normal": 2,
                "test_anomalous": 3,
                "masks": 3,
                "channels": 3,
            },
        },
    }
    gray_root = write_fake_mvtec(tmp_path / "g", channels=1)
    assert inspect_root(gray_root, "mvtec")["categories"]["bottle"]["channels"] == 1


def _sample(path: Path, split: str, image_id: str, category: str = "c") -> Sample:
    return Sample(image_id, path, split, 0, "good", None, category)  # type: ignore[arg-type]


def test_check_disjoint_raises_on_overlap(tmp_path):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    check_disjoint([_sample(a, "train", "train/good/a"), _sample(b, "test", "test/good/b")])
    check_disjoint([_sample(a, "train", "x", "c1"), _sample(a, "test", "y", "c2")])  # other category
    overlap = [_sample(a, "train", "train/good/a"), _sample(tmp_path / "." / "a.png", "test", "test/good/a")]
    with pytest.raises(DatasetError, match=r"a\.png is in both the train and the test split of category 'c'"):
        check_disjoint(overlap)


def test_check_unique_ids(tmp_path):
    with pytest.raises(DatasetError, match=r"a\.png and .*a\.jpg both get the id 'train/good/a'"):
        check_unique_ids(
            [
                _sample(tmp_path / "a.png", "train", "train/good/a"),
                _sample(tmp_path / "a.jpg", "train", "train/good/a"),
            ]
        )
    root = write_fake_mvtec(tmp_path / "m")
    write(root / "bottle" / "train" / "good" / "000.jpg", np.zeros((16, 16, 3), "uint8"))
    with pytest.raises(DatasetError, match=r"both get the id 'train/good/000'"):
        make_samples(root, "mvtec", "bottle")


def test_data_package_does_not_import_torch():
    code = "import sys, refcfa.data; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
