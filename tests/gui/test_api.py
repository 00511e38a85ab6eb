"""`refcfa.api`, the facade the GUI reads through: numbers against the cache and the library."""

from __future__ import annotations

import subprocess
import sys
import warnings

import h5py
import numpy as np
import pytest

from refcfa import api
from refcfa.errors import CacheError, DatasetError


def _entry(world, image_id="test/crack/000"):
    return api.open_entry(world.cache, world.keys[("source_texture", image_id)])


def test_api_module_imports_no_qt_and_no_torch():
    code = (
        "import sys, refcfa.api; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('PySide6', 'pyqtgraph', 'torch')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_open_dataset_reads_categories_and_explains_wrong_layouts(world_template, tmp_path):
    info = api.open_dataset(world_template.root)
    assert info.format == "mvtec" and info.categories == ["source_texture", "target_texture"]
    assert len(info.samples["source_texture"]) == 6 + 2 + 3
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("hello")
    with pytest.raises(DatasetError, match="Expected one of"):
        api.open_dataset(tmp_path / "notes")
    with pytest.raises(FileNotFoundError):
        api.open_dataset(tmp_path / "missing")


def test_list_and_find_cached(world_template):
    cached = api.list_cached(world_template.cache)
    assert {(c.category, c.image_id) for c in cached} == set(world_template.keys)
    first = cached[0]
    assert first.compatible and first.K == world_template.K and first.format_version == 1
    found = api.find_cached(cached, "test/crack/000", "source_texture")
    assert found.key == world_template.keys[("source_texture", "test/crack/000")]
    assert api.find_cached(cached, "test/crack/000", "target_texture") is None
    assert api.list_cached(world_template.cache / "nothing-here") == []
    with pytest.raises(CacheError, match="is a file"):
        api.list_cached(world_template.cache / "index.json")


def test_read_step_frame_and_series_equal_the_cache(world_template):
    key = world_template.keys[("source_texture", "test/crack/000")]
    with _entry(world_template) as entry:
        raw_R = entry.read_all("R")
        for n in range(1, entry.K + 1):
            np.testing.assert_array_equal(api.read_step(world_template.cache, key, "R", n), raw_R[n - 1])
            frame = api.read_frame(entry, n)
            np.testing.assert_array_equal(frame["M"], entry.read_step("M", n))
            assert frame["x0_hat"].dtype == np.uint8 and frame["x0_hat"].shape == (entry.H, entry.W, 3)
            # x0_hat decodes back to the stored bytes exactly
            np.testing.assert_array_equal(frame["x0_hat"], np.moveaxis(entry._ds["x0_hat"][n - 1], 0, -1))
        series = api.read_pixel_series(entry, None, 5, 7)
        np.testing.assert_array_equal(series["R"], raw_R[:, 5, 7])
        roi = api.read_roi_series(entry, None, 2, 3, 6, 9)
        np.testing.assert_allclose(roi["Q"], entry.read_all("Q")[:, 2:6, 3:9].mean(axis=(1, 2)), rtol=1e-6)
        with pytest.raises(ValueError, match="non-empty box"):
            api.read_roi_series(entry, None, 4, 4, 4, 8)
        lo, hi = api.field_levels(entry, None, "R")
        assert (lo, hi) == pytest.approx(tuple(np.percentile(raw_R, [1, 99])))


def test_normal_reference_band_over_normals_and_outside_the_mask(world_template):
    normals = [
        api.open_entry(world_template.cache, k) for (c, i), k in world_template.keys.items() if "good" in i
    ]
    try:
        band = api.normal_reference_band(normals, "R", max_pixels_per_image=10**9)
        data = np.concatenate([e.read_all("R").reshape(e.K, -1) for e in normals], axis=1)
        np.testing.assert_allclose(band.median, np.percentile(data, 50, axis=1), rtol=1e-6)
        np.testing.assert_allclose(band.p5, np.percentile(data, 5, axis=1), rtol=1e-6)
        np.testing.assert_allclose(band.p95, np.percentile(data, 95, axis=1), rtol=1e-6)
        assert band.source == "normal_images" and band.n_images == 2
    finally:
        for e in normals:
            e.close()
    with _entry(world_template) as entry:
        mask = np.zeros((entry.H, entry.W), bool)
        mask[:8, :8] = True
        band = api.normal_reference_band([entry], "Q", mask=mask, max_pixels_per_image=10**9)
        outside = entry.read_all("Q").reshape(entry.K, -1)[:, ~mask.reshape(-1)]
        np.testing.assert_allclose(band.median, np.median(outside, axis=1), rtol=1e-6)
        assert band.source == "outside_mask" and "outside the ground-truth mask" in band.description
        with pytest.raises(ValueError, match="whole image"):
            api.normal_reference_band([entry], "Q", mask=np.ones_like(mask))


def test_overlay_maps_are_the_reference_statistics(world_template, tmp_path):
    import torch

    from refcfa.field.statistics import adaptive_statistics

    with _entry(world_template) as entry:
        maps = api.overlay_maps(entry)
        ref = adaptive_statistics(
            torch.from_numpy(entry.read_all("R"))[None], torch.from_numpy(entry.read_all("d"))[None]
        )
        for name in ("E", "NS", "DV"):
            np.testing.assert_allclose(maps[name], ref[name][0].numpy(), rtol=1e-6)
        # E by hand: mean over steps of R^2 (uniform a_n = 1/K)
        np.testing.assert_allclose(maps["E"], (entry.read_all("R") ** 2).mean(axis=0), rtol=1e-5)
        assert "A" not in maps
        amap = np.linspace(0, 1, entry.H * entry.W, dtype=np.float32).reshape(entry.H, entry.W)
        np.save(tmp_path / "a.npy", amap)
        np.testing.assert_array_equal(api.overlay_maps(entry, tmp_path / "a.npy")["A"], amap)
        small = api.load_anomaly_map(amap[::2, ::2], (entry.H, entry.W))
        assert small.shape == (entry.H, entry.W)


def test_entry_of_another_format_version_is_refused_with_the_reason(world):
    key = world.keys[("source_texture", "test/crack/000")]
    path = next(world.cache.glob(f"*/{key}.h5"))
    with h5py.File(path, "r+") as f:
        f.attrs["format_version"] = 99
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the facade turns the cache's warning into the error
        with pytest.raises(CacheError, match="format version 99"):
            api.open_entry(world.cache, key)
    with pytest.raises(CacheError, match="no cache entry"):
        api.open_entry(world.cache, "0" * 32)


def test_stream_fields_computes_steps_then_caches_them(world, tmp_path):
    from refcfa.data import make_samples

    sample = next(s for s in make_samples(world.root, "mvtec", "target_texture") if s.label == 1)
    cache = tmp_path / "cache"
    steps = list(api.stream_fields(world.checkpoint, None, sample.path, cache, sample=sample, device="cpu"))
    assert [s.n for s in steps] == list(range(1, world.K + 1))
    assert [s.cached for s in steps] == [False] * (world.K - 1) + [True]
    key = steps[-1].key
    with api.open_entry(cache, key) as entry:
        assert entry.attrs["image_id"] == f"target_texture/{sample.image_id}"  # the extractor's id
        assert entry.attrs["category"] == "target_texture" and "label" not in entry.attrs
        for s in steps:
            for name in ("R", "M", "Q"):  # what was streamed is exactly what was cached
                np.testing.assert_array_equal(getattr(s, name), entry.read_step(name, s.n))
            np.testing.assert_array_equal(s.x0_hat, api.read_frame(entry, s.n)["x0_hat"])
    # the same key as the pipeline's extractor: a GUI computation is a cache hit for `refcfa extract`
    from refcfa.config import config_from_dict
    from refcfa.engine.checkpoint import load_checkpoint
    from refcfa.field.cache import TrajectoryCache
    from refcfa.field.extract import FieldExtractor, items_from_samples

    cfg = config_from_dict(load_checkpoint(world.checkpoint)["config"])
    extractor = FieldExtractor(world.checkpoint, cfg, TrajectoryCache(cache), device="cpu")
    assert extractor.key_for(items_from_samples([sample], 32, 3)[0]) == key
    assert api.list_cached(cache)[0].image_id == sample.image_id  # the category prefix is removed
    # a second run reads the entry back instead of computing
    again = list(api.stream_fields(world.checkpoint, None, sample.path, cache, sample=sample, device="cpu"))
    assert again[-1].cached and again[-1].key == key
    np.testing.assert_array_equal(again[0].R, steps[0].R)


def test_stream_fields_stopped_early_writes_nothing(world, tmp_path):
    from refcfa.data import make_samples

    sample = make_samples(world.root, "mvtec", "source_texture")[-1]
    gen = api.stream_fields(world.checkpoint, None, sample.path, tmp_path / "c", sample=sample, device="cpu")
    next(gen)
    gen.close()
    assert api.list_cached(tmp_path / "c") == []


def test_stream_fields_missing_checkpoint_says_how_to_fix(world, tmp_path):
    gen = api.stream_fields(tmp_path / "nope.pth", None, world.root / "x.png", tmp_path / "c")
    with pytest.raises(FileNotFoundError, match="--checkpoint"):
        next(gen)


def test_find_checkpoint_follows_last_pointer(world, tmp_path):
    assert api.find_checkpoint(world.checkpoint.parent.parent) == world.checkpoint
    assert api.find_checkpoint(world.checkpoint) == world.checkpoint
    assert api.find_checkpoint(tmp_path / "empty") is None
