"""refcfa.data.folder: normal/anomalous/masks folders."""

from __future__ import annotations

import pytest

from refcfa.data._common import split_normals
from refcfa.data.folder import detect_folder, list_folder_categories, make_folder_samples
from refcfa.data.registry import detect_format
from refcfa.errors import DatasetError

from .fakes import write_fake_folder


def test_counts_split_and_masks(tmp_path):
    root = write_fake_folder(tmp_path / "own", n_normal=10, n_anomalous=3)
    assert detect_folder(root) and detect_format(root) == "folder"
    assert list_folder_categories(root) == ["widget"]
    samples = make_folder_samples(root, "widget")
    train = [s for s in samples if s.split == "train"]
    test_normal = [s for s in samples if s.split == "test" and not s.label]
    anomalous = [s for s in samples if s.label]
    assert (len(train), len(test_normal), len(anomalous)) == (8, 2, 3)
    assert {s.path.name for s in test_normal} == split_normals([f"n{i:02d}.png" for i in range(10)])
    assert [s.image_id for s in anomalous] == [
        "test/anomalous/a00",
        "test/anomalous/a01",
        "test/anomalous/a02",
    ]
    assert all(s.mask_path == root / "widget" / "masks" / f"{s.path.stem}.png" for s in anomalous)


def test_mask_suffix_variant_and_no_masks(tmp_path):
    root = write_fake_folder(tmp_path / "a", mask_suffix="_mask")
    assert all(s.mask_path.name.endswith("_mask.png") for s in make_folder_samples(root, "widget") if s.label)
    root = write_fake_folder(tmp_path / "b", with_masks=False)
    assert all(s.mask_path is None for s in make_folder_samples(root, "widget"))


def test_root_is_the_category(tmp_path):
    root = write_fake_folder(tmp_path / "parts", category=None, n_normal=5, n_anomalous=0)
    assert list_folder_categories(root) == ["parts"]
    samples = make_folder_samples(root, "parts")
    assert len(samples) == 5 and sum(s.split == "test" for s in samples) == 1


def test_unknown_and_empty(tmp_path):
    root = write_fake_folder(tmp_path / "own")
    with pytest.raises(DatasetError, match=r"category 'gadget' not found .*known categories: widget"):
        make_folder_samples(root, "gadget")
    (root / "hollow" / "normal").mkdir(parents=True)
    with pytest.raises(DatasetError, match=r"category 'hollow' under .* has no images: expected images in"):
        make_folder_samples(root, "hollow")
