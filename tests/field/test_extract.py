"""REF extraction into the cache: determinism, cache keys, crash safety, sharding, bad inputs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from refcfa.config import load_config, resources_dir
from refcfa.errors import DatasetError
from refcfa.field.cache import TrajectoryCache

QUICK = resources_dir() / "configs" / "quick" / "quick.yaml"
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def cfg_for(root, out, *extra):
    return load_config(QUICK, [f"source.root={root}", f"target.root={root}", f"output_dir={out}", *extra])


@pytest.fixture(scope="module")
def trained(tmp_path_factory, synthetic_root):
    """A quick source checkpoint (a few steps: the weights only need to be fixed, not good)."""
    from refcfa.engine.trainer import train_score_network

    out = tmp_path_factory.mktemp("extract_ckpt")
    cfg = cfg_for(synthetic_root, out, "train.max_steps=2", "train.checkpoint_every=0")
    return cfg, train_score_network(cfg, "source", device="cpu")


def _items(cfg, ex, split="test"):
    from refcfa.data import make_samples
    from refcfa.field.extract import items_from_samples

    samples = [s for s in make_samples(cfg.source.root, "mvtec", "source_texture") if s.split == split]
    return items_from_samples(sorted(samples, key=lambda s: s.image_id), cfg.data.image_size, ex.channels)


def test_same_inputs_give_bit_identical_entries_and_changes_are_misses(trained, tmp_path):
    from refcfa.field.extract import FieldExtractor, ImageItem

    cfg, ckpt = trained
    fields = ("R", "M", "Q", "d", "x0_hat")
    read = {}
    for run in ("a", "b"):
        cache = TrajectoryCache(tmp_path / run)
        ex = FieldExtractor(ckpt, cfg, cache, "cpu")
        items = _items(cfg, ex)[:3]
        list(ex.extract(items, shard=False))
        keys = ex.keys(items)
        with cache.get(keys[0]) as entry:
            read[run] = (keys, {f: entry.read_all(f) for f in fields})
    assert read["a"][0] == read["b"][0]
    for f in fields:
        assert np.array_equal(read["a"][1][f], read["b"][1][f]), f  # bit-identical

    cache = TrajectoryCache(tmp_path / "a")
    ex = FieldExtractor(ckpt, cfg, cache, "cpu")
    item = _items(cfg, ex)[0]
    assert cache.has(ex.key_for(item))
    # a changed field config is a miss
    ex_t0 = FieldExtractor(ckpt, cfg_for(cfg.source.root, cfg.output_dir, "field.t0=30"), cache, "cpu")
    assert not cache.has(ex_t0.key_for(item))
    # a changed image is a miss
    img = item.image.copy()
    img[0, 0, 0] ^= 1
    assert not cache.has(ex.key_for(ImageItem(item.image_id, img)))
    # a changed checkpoint is a miss
    other = tmp_path / "other.pth"
    data = bytearray(Path(ckpt).read_bytes())
    other.write_bytes(bytes(data))
    assert ex.key_for(item) == FieldExtractor(other, cfg, cache, "cpu").key_for(item)  # same bytes, same key
    from refcfa.engine.trainer import train_score_network

    cfg3 = cfg_for(cfg.source.root, tmp_path / "o3", "train.max_steps=3", "train.checkpoint_every=0")
    ckpt3 = train_score_network(cfg3, "source", device="cpu")
    assert not cache.has(FieldExtractor(ckpt3, cfg, cache, "cpu").key_for(item))


def test_streaming_an_uncached_image_fills_the_cache(trained, tmp_path):
    from refcfa.field.extract import FieldExtractor

    cfg, ckpt = trained
    cache = TrajectoryCache(tmp_path / "c")
    ex = FieldExtractor(ckpt, cfg, cache, "cpu")
    item = _items(cfg, ex)[1]
    steps = list(ex.stream(item))
    assert [s.n for s in steps] == list(range(1, cfg.field.K + 1))
    with cache.get(ex.key_for(item)) as entry:
        np.testing.assert_array_equal(entry.read_step("R", 2), steps[1].R[0].numpy().astype(np.float16))


def test_image_size_other_than_the_network_is_a_clear_error(trained, tmp_path):
    from refcfa.field.extract import FieldExtractor, ImageItem

    cfg, ckpt = trained
    with pytest.raises(DatasetError, match=r"trained on 16px images.*data.image_size=32"):
        FieldExtractor(ckpt, cfg_for(cfg.source.root, tmp_path, "data.image_size=32"), TrajectoryCache(tmp_path / "c"))
    ex = FieldExtractor(ckpt, cfg, TrajectoryCache(tmp_path / "c"), "cpu")
    with pytest.raises(DatasetError, match=r"image bad: shape \(20, 20, 3\) does not match.*\(16, 16, 3\)"):
        list(ex.extract([ImageItem("bad", np.zeros((20, 20, 3), np.uint8))]))


def _extract_cmd(cfg, ckpt, cache, *extra):
    return [sys.executable, "-m", "refcfa", "extract", "--config", str(QUICK), "--checkpoint", str(ckpt),
            "--cache", str(cache), "--domain", "source", "--quiet",
            "--set", f"source.root={cfg.source.root}", f"target.root={cfg.source.root}",
            f"output_dir={cfg.output_dir}", "field.batch_size=1", *extra]


@pytest.mark.slow
def test_extraction_killed_mid_write_leaves_a_readable_cache(trained, tmp_path):
    from refcfa.field.extract import FieldExtractor

    cfg, ckpt = trained
    cache_dir = tmp_path / "cache"
    proc = subprocess.Popen(_extract_cmd(cfg, ckpt, cache_dir, "field.K=12", "field.t0=60"), env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            if len(list(cache_dir.glob("*/*.h5"))) >= 3 or proc.poll() is not None:
                break
            time.sleep(0.05)
        assert proc.poll() is None, f"extraction ended before it could be killed: {proc.stderr.read()}"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(30)
    cfg_k = cfg_for(cfg.source.root, cfg.output_dir, "field.K=12", "field.t0=60")
    cache = TrajectoryCache(cache_dir)
    cache.rescan()
    ex = FieldExtractor(ckpt, cfg_k, cache, "cpu")
    items = _items(cfg_k, ex, "train") + _items(cfg_k, ex, "test")
    done = [it for it in items if cache.has(ex.key_for(it))]
    assert 3 <= len(done) < len(items)
    assert not [p for p in cache_dir.rglob("*") if p.is_file() and ".tmp" in p.name]
    # every completed entry reads back exactly what a fresh computation gives
    fresh = TrajectoryCache(tmp_path / "fresh")
    ex_fresh = FieldExtractor(ckpt, cfg_k, fresh, "cpu")
    for it in done:
        list(ex_fresh.extract([it], shard=False))
        with cache.get(ex.key_for(it)) as a, fresh.get(ex.key_for(it)) as b:
            for f in ("R", "M", "Q", "d", "x0_hat"):
                assert np.array_equal(a.read_all(f), b.read_all(f)), (it.image_id, f)
    # re-running completes it
    res = subprocess.run(_extract_cmd(cfg, ckpt, cache_dir, "field.K=12", "field.t0=60"), env=ENV,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert all(TrajectoryCache(cache_dir).has(ex.key_for(it)) for it in items)


@pytest.mark.slow
def test_torchrun_ranks_take_their_shards(trained, tmp_path):
    from refcfa.field.extract import FieldExtractor

    cfg, ckpt = trained
    cache_dir = tmp_path / "cache"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           *_extract_cmd(cfg, ckpt, cache_dir, "field.batch_size=4")[1:]]
    res = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    cache = TrajectoryCache(cache_dir)
    ex = FieldExtractor(ckpt, cfg, cache, "cpu")
    items = _items(cfg, ex, "train") + _items(cfg, ex, "test")
    assert all(cache.has(ex.key_for(it)) for it in items)
    # each rank computed about half
    computed = [int(line.split()[0]) for line in res.stdout.splitlines() if "computed" in line]
    assert sorted(computed) == [len(items) // 2, len(items) - len(items) // 2]
