"""refcfa.data.synthetic: determinism, layout, masks, and the domain shift."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from refcfa.data import inspect_root, make_samples, read_image, read_mask
from refcfa.data.synthetic import DEFECT_TYPES, SOURCE, TARGET, make_synthetic, synthesize_image
from refcfa.errors import DatasetError


def _digests(root):
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    return make_synthetic(tmp_path_factory.mktemp("syn") / "data", size=64, seed=0)


def test_bit_identical_for_a_seed(synthetic_root, tmp_path):
    again = make_synthetic(tmp_path / "again", size=64, seed=0)
    first, second = _digests(synthetic_root), _digests(again)
    assert len(first) == 2 * (60 + 20 + 30 + 30) + 1
    assert first == second
    other = _digests(
        make_synthetic(tmp_path / "seed1", size=64, seed=1, n_train=2, n_test_good=0, n_test_defect=0)
    )
    assert other["source_texture/train/good/000.png"] != first["source_texture/train/good/000.png"]


def test_counts_match_inspect(synthetic_root):
    info = inspect_root(synthetic_root)
    expected = {
        "train_normal": 60,
        "train_anomalous": 0,
        "test_normal": 20,
        "test_anomalous": 30,
        "masks": 30,
        "channels": 3,
    }
    assert info == {"format": "mvtec", "categories": {SOURCE: expected, TARGET: expected}}
    meta = json.loads((synthetic_root / "synthetic.json").read_text())
    assert meta["seed"] == 0 and meta["size"] == 64 and meta["defect_types"] == list(DEFECT_TYPES)


def test_masks_non_empty_for_defects_and_absent_for_goods(synthetic_root):
    assert len(DEFECT_TYPES) >= 3
    for category in (SOURCE, TARGET):
        samples = make_samples(synthetic_root, "mvtec", category)
        assert {s.defect for s in samples if s.label} == set(DEFECT_TYPES)
        assert all(s.mask_path is None for s in samples if not s.label)
        for s in samples:
            if not s.label:
                continue
            raw = read_image(s.mask_path)
            assert set(np.unique(raw).tolist()) == {0, 255}
            mask = read_mask(s.mask_path, shape=(64, 64), image_path=s.path)
            assert max(30, 0.012 * 64 * 64) <= mask.sum() <= 0.25 * 64 * 64, s.image_id


def test_defects_change_pixels_inside_their_mask_only():
    # The test_defect split with defect=None draws the same texture: the defect-free twin.
    for index in range(len(DEFECT_TYPES)):
        defect = DEFECT_TYPES[index]
        image, mask = synthesize_image(64, 0, SOURCE, "test_defect", index, defect)
        clean, _ = synthesize_image(64, 0, SOURCE, "test_defect", index, None)
        diff = np.abs(image.astype(float) - clean).mean(axis=2)
        assert diff[mask].mean() > 2.5 * diff[~mask].mean() + 5, defect
        assert 0 < image[mask].mean() < 255  # visible but not saturated
        assert (image[mask] == 255).mean() < 0.05 and (image[mask] == 0).mean() < 0.05


def test_source_and_target_distributions_differ():
    def stats(domain):
        images = np.stack([synthesize_image(64, 0, domain, "train", i)[0] for i in range(12)]).astype(float)
        return images.mean(axis=(0, 1, 2)), images.std(axis=(0, 1, 2))

    (mean_s, std_s), (mean_t, std_t) = stats(SOURCE), stats(TARGET)
    assert np.abs(mean_s - mean_t).max() > 10  # colour cast / gamma
    assert np.abs(std_s - std_t).max() > 3  # contrast
    assert (mean_t[0] / mean_t[2]) > 1.08 * (mean_s[0] / mean_s[2])  # warmer cast


def test_other_sizes_and_overwrite(tmp_path):
    root = make_synthetic(tmp_path / "s", size=128, n_train=2, n_test_good=1, n_test_defect=5)
    sample = make_samples(root, "mvtec", TARGET)[-1]
    assert read_image(sample.path).shape == (128, 128, 3)
    with pytest.raises(
        DatasetError,
        match=r"target_texture already exists: choose another output folder or pass overwrite=True|source_texture already exists",
    ):
        make_synthetic(root, size=128, n_train=1, n_test_good=0, n_test_defect=0)
    make_synthetic(root, size=32, n_train=1, n_test_good=0, n_test_defect=1, overwrite=True)
    assert inspect_root(root)["categories"][SOURCE]["train_normal"] == 1
    with pytest.raises(ValueError, match="size=16"):
        make_synthetic(tmp_path / "tiny", size=16)
