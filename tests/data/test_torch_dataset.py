"""refcfa.data.torch_dataset: tensors, augmentation determinism, evaluation masks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from refcfa.data import Sample, make_samples
from refcfa.data.torch_dataset import ImageDataset, infer_channels, load_masks
from refcfa.errors import DatasetError

from .fakes import fake_box, write, write_fake_dagm_seed, write_fake_mvtec


@pytest.fixture()
def mvtec_samples(tmp_path):
    return make_samples(write_fake_mvtec(tmp_path / "m", size=16), "mvtec", "bottle")


def test_items_shape_range_and_keys(mvtec_samples):
    ds = ImageDataset(mvtec_samples, image_size=8, channels=3)
    assert len(ds) == len(mvtec_samples)
    item = ds[5]
    assert set(item) == {"image", "image_id", "label", "index"}
    assert item["image"].dtype == torch.float32 and item["image"].shape == (3, 8, 8)
    assert -1.0 <= float(item["image"].min()) and float(item["image"].max()) <= 1.0
    assert item["image_id"] == mvtec_samples[5].image_id and item["index"] == 5
    assert item["label"] == mvtec_samples[5].label


def test_values_map_to_minus_one_one(tmp_path):
    img = np.zeros((4, 4, 3), np.uint8)
    img[0, 0] = 255
    path = write(tmp_path / "x.png", img)
    ds = ImageDataset([Sample("train/good/x", path, "train", 0, "good", None, "c")], image_size=4, channels=3)
    image = ds[0]["image"]
    assert float(image[0, 0, 0]) == 1.0 and float(image[0, 1, 1]) == -1.0


def test_grayscale_dataset(tmp_path):
    samples = make_samples(write_fake_dagm_seed(tmp_path / "d", size=32), "dagm", "Class1")
    assert infer_channels(samples) == 1
    assert ImageDataset(samples, 16, 1)[0]["image"].shape == (1, 16, 16)
    assert ImageDataset(samples, 16, 3)[0]["image"].shape == (3, 16, 16)


def test_seeded_loader_is_deterministic_and_augments(mvtec_samples):
    ds = ImageDataset(mvtec_samples, 16, 3, augment={"hflip": True, "vflip": True, "rot90": True})

    def run(seed, workers):
        if workers == 0:
            torch.manual_seed(seed)  # the main process draws from the global RNG
        loader = DataLoader(
            ds, batch_size=3, shuffle=True, num_workers=workers, generator=torch.Generator().manual_seed(seed)
        )
        batches = list(loader)
        return torch.cat([b["image"] for b in batches]), [i for b in batches for i in b["image_id"]]

    for workers in (0, 2):  # workers are seeded from the loader's generator
        first, second = run(0, workers), run(0, workers)
        assert torch.equal(first[0], second[0]) and first[1] == second[1]
    images, ids = run(0, 0)
    plain = {s.image_id: ImageDataset([s], 16, 3)[0]["image"] for s in mvtec_samples}
    changed = [not torch.equal(x, plain[i]) for x, i in zip(images, ids, strict=True)]
    assert any(changed)  # items get flipped/rotated
    for x, i in zip(images, ids, strict=True):  # augmentation only permutes pixels
        assert torch.equal(x.flatten().sort().values, plain[i].flatten().sort().values)


def test_unknown_augmentation(mvtec_samples):
    with pytest.raises(ValueError, match="unknown augmentation.*blur.*known are hflip, vflip, rot90"):
        ImageDataset(mvtec_samples, 16, 3, augment={"blur": True})
    with pytest.raises(ValueError, match="channels=2"):
        ImageDataset(mvtec_samples, 16, 2)


def test_load_masks(mvtec_samples):
    masks = load_masks(mvtec_samples, 8)
    assert masks.dtype == bool and masks.shape == (len(mvtec_samples), 8, 8)
    for s, m in zip(mvtec_samples, masks, strict=True):
        if s.label:
            y0, y1, x0, x1 = (v // 2 for v in fake_box(16))
            assert m[y0:y1, x0:x1].all() and m.sum() == (y1 - y0) * (x1 - x0)
        else:
            assert not m.any()


def test_load_masks_errors(tmp_path):
    root = write_fake_mvtec(tmp_path / "m", size=16)
    mask_file = root / "bottle" / "ground_truth" / "crack" / "000_mask.png"
    write(mask_file, np.zeros((8, 8), np.uint8))
    samples = make_samples(root, "mvtec", "bottle")
    with pytest.raises(
        DatasetError, match=r"000_mask\.png is 8x8 .* its image .*test/crack/000\.png is 16x16"
    ):
        load_masks(samples, 16)
    mask_file.unlink()
    samples = make_samples(root, "mvtec", "bottle")
    with pytest.raises(DatasetError, match=r"anomalous image .*000\.png \(test/crack/000\) has no mask file"):
        load_masks(samples, 16)
    assert not load_masks(samples, 16, missing="zeros")[
        [s.image_id for s in samples].index("test/crack/000")
    ].any()
    with pytest.raises(DatasetError, match="no samples"):
        infer_channels([])
