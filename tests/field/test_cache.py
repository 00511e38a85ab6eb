"""HDF5 trajectory cache: exact round trips, keys, bad entries, crash safety, LRU, concurrent access."""

from __future__ import annotations

import fcntl
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from refcfa.errors import CacheError
from refcfa.field.cache import (
    CACHE_FORMAT_VERSION,
    CacheEntry,
    CacheWarning,
    FieldRecord,
    TrajectoryCache,
    array_digest,
    decode_uint8,
    encode_uint8,
    entry_key,
    file_digest,
)

# Deterministic records, shared with the writer subprocesses (run as source there).
MAKER_SRC = textwrap.dedent(
    """
    import numpy as np
    from refcfa.field.cache import FieldRecord, array_digest, encode_uint8, entry_key

    def make_record(i, K=4, C=3, H=16, W=16, checkpoint="ckpt-A", config="cfg-A"):
        rng = np.random.default_rng(i)
        image = rng.integers(0, 256, (C, H, W), dtype=np.uint8)
        attrs = {
            "checkpoint_digest": checkpoint, "config_digest": config, "image_digest": array_digest(image),
            "image_id": f"img/{i}", "index": i, "label": i % 2, "split": "test", "score": 0.25 * i,
            "is_synthetic": bool(i % 3 == 0),
        }
        rec = FieldRecord(
            R=rng.gamma(2.0, 1.0, (K, H, W)).astype(np.float16),
            M=rng.gamma(2.0, 0.5, (K, H, W)).astype(np.float16),
            Q=rng.gamma(2.0, 0.2, (K, H, W)).astype(np.float16),
            d=rng.uniform(-1, 1, (K, C, H, W)).astype(np.float16),
            x0_hat=encode_uint8(rng.uniform(-1.2, 1.2, (K, C, H, W))),
            timesteps=np.linspace(100, 100 // K, K).astype(np.int64),
            image=image,
            attrs=attrs,
        )
        return entry_key(checkpoint, config, attrs["image_digest"]), rec
    """
)
_ns: dict = {}
exec(MAKER_SRC, _ns)
make_record = _ns["make_record"]

WRITER_SRC = MAKER_SRC + textwrap.dedent(
    """
    import sys, time
    from refcfa.field.cache import TrajectoryCache
    root, start, stop, step, pause, size, K = sys.argv[1:8]
    cache = TrajectoryCache(root)
    for i in range(int(start), int(stop), int(step)):
        cache.put(*make_record(i, K=int(K), H=int(size), W=int(size)))
        time.sleep(float(pause))
    """
)


def start_writer(
    root: Path, start: int, stop: int, step: int = 1, pause: float = 0.0, size: int = 16, K: int = 4
):
    args = [str(a) for a in (root, start, stop, step, pause, size, K)]
    return subprocess.Popen([sys.executable, "-c", WRITER_SRC, *args], stderr=subprocess.PIPE)


def assert_entry_equals(entry: CacheEntry, rec: FieldRecord) -> None:
    for name in ("R", "M", "Q", "d"):
        got = entry.read_all(name)
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got.astype(np.float16), getattr(rec, name))
        np.testing.assert_array_equal(got, getattr(rec, name).astype(np.float32))
    np.testing.assert_array_equal(entry.read_all("x0_hat"), decode_uint8(rec.x0_hat))
    np.testing.assert_array_equal(entry.read_image(), rec.image)
    np.testing.assert_array_equal(entry.timesteps, rec.timesteps)
    assert entry.attrs == rec.attrs


def temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob(".*.tmp")]


# -- round trip and layout -----------------------------------------------------------------------


def test_put_get_round_trip_is_exact(tmp_path):
    cache = TrajectoryCache(tmp_path / "cache")
    key, rec = make_record(1)
    path = cache.put(key, rec)
    assert path == tmp_path / "cache" / key[:2] / f"{key}.h5"
    assert cache.has(key) and cache.keys() == [key]
    with cache.get(key) as entry:
        assert_entry_equals(entry, rec)
        assert (entry.K, entry.C, entry.H, entry.W) == (4, 3, 16, 16)
        for n in range(1, 5):
            np.testing.assert_array_equal(entry.read_step("R", n), rec.R[n - 1].astype(np.float32))
            np.testing.assert_array_equal(entry.read_step("d", n), rec.d[n - 1].astype(np.float32))
            np.testing.assert_array_equal(entry.read_step("x0_hat", n), decode_uint8(rec.x0_hat[n - 1]))
        px = entry.read_pixel(5, 7)
        assert set(px) == {"R", "M", "Q"}
        for name in ("R", "M", "Q"):
            np.testing.assert_array_equal(px[name], getattr(rec, name)[:, 5, 7].astype(np.float32))
        assert entry.attrs["t0"] == 100 and entry.attrs["K"] == 4
        assert entry.attrs["format_version"] == CACHE_FORMAT_VERSION
        assert entry.attrs["label"] == 1 and entry.attrs["split"] == "test" and entry.attrs["score"] == 0.25
        with pytest.raises(ValueError, match="1 <= n <= K"):
            entry.read_step("R", 0)
        with pytest.raises(ValueError, match="one of"):
            entry.read_step("E", 1)
    (listed,) = cache.list_entries()
    assert listed["key"] == key and listed["image_id"] == "img/1"
    assert listed["size_bytes"] == path.stat().st_size and listed["attrs"]["split"] == "test"


def test_datasets_are_chunked_one_step_per_chunk_without_compression(tmp_path):
    cache = TrajectoryCache(tmp_path)
    key, rec = make_record(2, K=3, C=1, H=12, W=10)
    with h5py.File(cache.put(key, rec), "r") as f:
        for name in ("R", "M", "Q"):
            assert (
                f[name].chunks == (1, 12, 10) and f[name].compression is None and f[name].dtype == np.float16
            )
        assert f["d"].chunks == (1, 1, 12, 10) and f["d"].dtype == np.float16
        assert f["x0_hat"].chunks == (1, 1, 12, 10) and f["x0_hat"].dtype == np.uint8
        assert f.attrs["format_version"] == CACHE_FORMAT_VERSION


def test_missing_key_is_a_miss(tmp_path):
    cache = TrajectoryCache(tmp_path)
    key, _ = make_record(3)
    assert cache.get(key) is None and not cache.has(key)
    with pytest.raises(ValueError, match="32 lowercase hex"):
        cache.get("not-a-key")


def test_from_steps_round_trip(tmp_path):
    import torch

    from refcfa.field.primitives import compute_fields

    abar = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000), 0)
    x = torch.rand(2, 3, 8, 8) * 2 - 1
    steps = list(compute_fields(lambda x_t, t: 0.1 * x_t, abar, x, ["a", "b"], t0=50, K=5, seed=0))
    attrs = {
        "checkpoint_digest": "c",
        "config_digest": "g",
        "image_digest": "i",
        "image_id": "b",
        "category": "bottle",
    }
    rec = FieldRecord.from_steps(steps, x[1], attrs=attrs, index=1)
    assert rec.attrs["t0"] == 50 and rec.attrs["K"] == 5 and rec.attrs["category"] == "bottle"
    np.testing.assert_array_equal(rec.timesteps, [50, 40, 30, 20, 10])
    np.testing.assert_array_equal(rec.Q, torch.stack([s.Q[1] for s in steps]).numpy().astype(np.float16))
    np.testing.assert_array_equal(rec.d, torch.stack([s.d[1] for s in steps]).numpy().astype(np.float16))
    np.testing.assert_array_equal(rec.x0_hat, encode_uint8(torch.stack([s.x0_hat[1] for s in steps]).numpy()))
    np.testing.assert_array_equal(rec.image, encode_uint8(x[1].numpy()))
    cache = TrajectoryCache(tmp_path)
    key = entry_key("c", "g", "i")
    cache.put(key, rec)
    with cache.get(key) as entry:
        assert_entry_equals(entry, rec)
    with pytest.raises(ValueError, match="n = 1..K"):
        FieldRecord.from_steps(steps[1:], x[0], attrs=attrs)


def test_uint8_encoding():
    x = np.array([-1.5, -1.0, 0.0, 0.999, 1.0, 2.0], dtype=np.float32)
    u = encode_uint8(x)
    np.testing.assert_array_equal(u, [0, 0, 128, 255, 255, 255])
    assert (
        np.abs(decode_uint8(encode_uint8(np.linspace(-1, 1, 101))) - np.linspace(-1, 1, 101)).max()
        <= 1 / 255 + 1e-6
    )


def test_record_validation():
    _, rec = make_record(4)
    with pytest.raises(TypeError, match="float16"):
        FieldRecord(**{**vars(rec), "R": rec.R.astype(np.float32)})
    with pytest.raises(ValueError, match="x0_hat"):
        FieldRecord(**{**vars(rec), "x0_hat": rec.x0_hat[:, :1]})
    with pytest.raises(TypeError, match="attrs"):
        FieldRecord(**{**vars(rec), "attrs": {**rec.attrs, "bad": [1, 2]}})
    with pytest.raises(ValueError, match="disagrees"):
        FieldRecord(**{**vars(rec), "attrs": {**rec.attrs, "K": 7}})


# -- keys -----------------------------------------------------------------------------------------


def test_keys_change_with_checkpoint_config_and_image(tmp_path):
    base = entry_key("ckpt", "cfg", "img")
    assert len(base) == 32 and int(base, 16) >= 0 and base == entry_key("ckpt", "cfg", "img")
    assert (
        len(
            {
                base,
                entry_key("ckpt2", "cfg", "img"),
                entry_key("ckpt", "cfg2", "img"),
                entry_key("ckpt", "cfg", "img2"),
            }
        )
        == 4
    )
    assert entry_key("a", "bc", "d") != entry_key("ab", "c", "d")
    with pytest.raises(ValueError, match="checkpoint_digest"):
        entry_key("", "cfg", "img")

    f = tmp_path / "model.pth"
    f.write_bytes(b"weights-1")
    d1 = file_digest(f)
    f.write_bytes(b"weights-2")
    assert file_digest(f) != d1
    img = np.zeros((3, 4, 4), np.uint8)
    changed = img.copy()
    changed[0, 0, 0] = 1
    digests = {
        array_digest(img),
        array_digest(changed),
        array_digest(img.reshape(3, 2, 8)),
        array_digest(img.astype(np.float32)),
    }
    assert len(digests) == 4

    # a changed digest is a miss, never a stale hit
    cache = TrajectoryCache(tmp_path / "cache")
    key, rec = make_record(5)
    cache.put(key, rec)
    _, rec_new_ckpt = make_record(5, checkpoint="ckpt-B")
    key_new = entry_key("ckpt-B", "cfg-A", rec.attrs["image_digest"])
    assert key_new != key and cache.get(key_new) is None
    with pytest.raises(ValueError, match="does not match"):
        cache.put(key, rec_new_ckpt)
    cache.put(key_new, rec_new_ckpt)
    assert len(cache.keys()) == 2


def test_put_requires_digest_attrs(tmp_path):
    key, rec = make_record(6)
    rec.attrs.pop("image_id")
    with pytest.raises(ValueError, match="image_id"):
        TrajectoryCache(tmp_path).put(key, rec)


# -- bad entries ----------------------------------------------------------------------------------


def _recompute_works(cache, key, rec):
    assert not cache.has(key) and key not in cache.keys()
    cache.put(key, rec)
    with cache.get(key) as entry:
        assert_entry_equals(entry, rec)


def test_truncated_entry_is_a_miss_and_recomputable(tmp_path):
    cache = TrajectoryCache(tmp_path)
    key, rec = make_record(7)
    path = cache.put(key, rec)
    with open(path, "r+b") as fh:
        fh.truncate(path.stat().st_size // 2)
    with pytest.warns(CacheWarning, match="unusable"):
        assert cache.get(key) is None
    _recompute_works(cache, key, rec)


def test_garbage_entry_is_a_miss(tmp_path):
    cache = TrajectoryCache(tmp_path)
    key, rec = make_record(8)
    cache.put(key, rec).write_bytes(b"\x00" * 100)
    with pytest.warns(CacheWarning):
        assert cache.get(key) is None
    _recompute_works(cache, key, rec)


def test_wrong_format_version_is_a_miss(tmp_path):
    cache = TrajectoryCache(tmp_path)
    key, rec = make_record(9)
    with h5py.File(cache.put(key, rec), "r+") as f:
        f.attrs["format_version"] = CACHE_FORMAT_VERSION + 1
    with pytest.warns(CacheWarning, match="format version"):
        assert cache.get(key) is None
    _recompute_works(cache, key, rec)


def test_missing_dataset_is_a_miss(tmp_path):
    cache = TrajectoryCache(tmp_path)
    key, rec = make_record(10)
    with h5py.File(cache.put(key, rec), "r+") as f:
        del f["M"]
    with pytest.warns(CacheWarning, match="missing datasets"):
        assert cache.get(key) is None


def test_unwritable_cache_dir_raises_cache_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(CacheError, match="choose another --cache directory") as info:
        TrajectoryCache(blocker / "cache")
    assert str(blocker / "cache") in str(info.value)


# -- index ----------------------------------------------------------------------------------------


def test_index_is_advisory_and_rescan_reconciles(tmp_path):
    root = tmp_path / "cache"
    cache = TrajectoryCache(root)
    keys = [cache.put(*make_record(i)) and make_record(i)[0] for i in range(3)]
    (root / "index.json").unlink()
    fresh = TrajectoryCache(root)  # no index: rebuilt from the files
    assert fresh.keys() == sorted(keys)
    assert {e["image_id"] for e in fresh.list_entries()} == {"img/0", "img/1", "img/2"}

    fresh.path_for(keys[0]).unlink()
    stale = root / keys[1][:2] / f".{keys[1]}.999.dead.tmp"
    stale.write_bytes(b"half an entry")
    live = root / keys[2][:2] / f".{keys[2]}.1.live.tmp"
    live.write_bytes(b"being written")
    (root / ".index.1.x.tmp").write_text("{")
    fd = os.open(live, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # a live writer holds its temp file
        counts = fresh.rescan()
    finally:
        os.close(fd)
    assert counts["dropped"] == 1 and counts["entries"] == 2 and counts["removed_temp"] == 2
    assert fresh.keys() == sorted(keys[1:])
    assert not stale.exists() and live.exists() and not (root / ".index.1.x.tmp").exists()
    assert fresh.rescan()["removed_temp"] == 1 and not live.exists()


def test_corrupt_index_is_rebuilt(tmp_path):
    cache = TrajectoryCache(tmp_path)
    key, rec = make_record(11)
    cache.put(key, rec)
    (tmp_path / "index.json").write_text("{ not json")
    assert cache.keys() == []  # listing does not guess
    other_key, other = make_record(12)
    with pytest.warns(CacheWarning, match="rebuilding"):
        cache.put(other_key, other)
    assert cache.keys() == sorted([key, other_key])


def test_reader_keeps_its_version_when_the_entry_is_replaced(tmp_path):
    cache = TrajectoryCache(tmp_path)
    key, rec = make_record(13)
    cache.put(key, rec)
    with cache.get(key) as old:
        rec2 = FieldRecord(**{**vars(rec), "R": (rec.R + np.float16(1)).astype(np.float16)})
        cache.put(key, rec2)
        np.testing.assert_array_equal(old.read_all("R"), rec.R.astype(np.float32))
    with cache.get(key) as new:
        np.testing.assert_array_equal(new.read_all("R"), rec2.R.astype(np.float32))


# -- LRU ------------------------------------------------------------------------------------------


def test_lru_eviction_respects_budget_and_evicts_least_recently_read(tmp_path):
    probe = TrajectoryCache(tmp_path / "probe")
    size = probe.put(*make_record(0)).stat().st_size
    cache = TrajectoryCache(tmp_path / "cache", budget_bytes=int(3.5 * size), access_flush_s=3600)
    k = {name: make_record(i) for i, name in enumerate("abcde")}
    for name in "abc":
        cache.put(*k[name])
    cache.get(k["a"][0]).close()  # a is now more recent than b and c
    cache.put(*k["d"])
    assert set(cache.keys()) == {k[n][0] for n in "acd"}
    assert not cache.path_for(k["b"][0]).exists()
    assert cache.total_bytes() <= cache.budget_bytes
    cache.get(k["c"][0]).close()
    cache.put(*k["e"])  # LRU is now a
    assert set(cache.keys()) == {k[n][0] for n in "cde"}
    assert cache.evict(target_bytes=int(1.5 * size)) == [k["d"][0], k["c"][0]]
    assert cache.keys() == [k["e"][0]]


def test_entry_larger_than_budget_is_kept_until_the_next_put(tmp_path):
    cache = TrajectoryCache(tmp_path, budget_bytes=10)
    k0, r0 = make_record(0)
    k1, r1 = make_record(1)
    cache.put(k0, r0)
    assert cache.keys() == [k0]
    cache.put(k1, r1)
    assert cache.keys() == [k1]


def test_access_times_reach_the_index(tmp_path):
    cache = TrajectoryCache(tmp_path, access_flush_s=0.0)
    key, rec = make_record(14)
    cache.put(key, rec)
    before = cache.list_entries()[0]["last_access"]
    time.sleep(0.01)
    cache.get(key).close()
    assert TrajectoryCache(tmp_path).list_entries()[0]["last_access"] > before


# -- crash safety and concurrency -----------------------------------------------------------------


@pytest.mark.parametrize("kill_seed", [0, 1, 2])
def test_writer_killed_mid_write_leaves_earlier_entries_readable(tmp_path, kill_seed):
    root = tmp_path / "cache"
    size, K = 64, 6
    proc = start_writer(root, 0, 500, size=size, K=K)
    deadline = time.monotonic() + 30
    listed = []
    while len(listed) < 3:
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "writer did not produce entries"
        time.sleep(0.005)
        if (root / "index.json").exists():
            listed = TrajectoryCache(root).keys()
    time.sleep(random.Random(kill_seed).uniform(0.0, 0.03))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stderr.close()

    cache = TrajectoryCache(root)
    cache.rescan()
    assert temp_files(root) == []  # the interrupted write is cleaned up, never an entry
    keys = cache.keys()
    on_disk = sorted(p.stem for p in root.glob("*/*.h5"))
    assert keys == on_disk and len(keys) >= 3
    done = set()
    for key in keys:
        with cache.get(key) as entry:
            i = entry.attrs["index"]
            expected_key, rec = make_record(i, K=K, H=size, W=size)
            assert expected_key == key
            assert_entry_equals(entry, rec)
            done.add(i)
    assert done == set(range(len(done)))  # entries were written in order: no gap, no partial one
    nxt = len(done)
    cache.put(*make_record(nxt, K=K, H=size, W=size))
    with cache.get(make_record(nxt, K=K, H=size, W=size)[0]) as entry:
        assert entry.attrs["index"] == nxt


def test_read_while_two_processes_write(tmp_path):
    root = tmp_path / "cache"
    n = 24
    cache = TrajectoryCache(root)
    writers = [start_writer(root, start, n, step=2, pause=0.01) for start in (0, 1)]
    reads_while_writing = 0
    expected = {i: make_record(i) for i in range(n)}
    while any(w.poll() is None for w in writers):
        for key in cache.keys():
            entry = cache.get(key)
            assert entry is not None
            with entry:
                i = entry.attrs["index"]
                assert key == expected[i][0]
                np.testing.assert_array_equal(entry.read_step("R", 2), expected[i][1].R[1].astype(np.float32))
            reads_while_writing += 1
        time.sleep(0.005)
    for w in writers:
        assert w.returncode == 0, w.stderr.read().decode()
        w.stderr.close()
    assert reads_while_writing > 0
    assert cache.keys() == sorted(key for key, _ in expected.values())  # index updates were not lost
    for key, rec in expected.values():
        with cache.get(key) as entry:
            assert_entry_equals(entry, rec)


def test_crash_between_rename_and_index_update_is_picked_up_by_rescan(tmp_path, monkeypatch):
    cache = TrajectoryCache(tmp_path)
    key, rec = make_record(15)

    def die(*args, **kwargs):
        raise KeyboardInterrupt("killed after the rename")

    monkeypatch.setattr(TrajectoryCache, "_write_index_locked", die)
    with pytest.raises(KeyboardInterrupt):
        cache.put(key, rec)
    monkeypatch.undo()
    assert cache.has(key) and cache.keys() == [] and temp_files(tmp_path) == []
    assert cache.rescan()["added"] == 1 and cache.keys() == [key]
    with cache.get(key) as entry:
        assert_entry_equals(entry, rec)


def test_failed_write_leaves_no_temp_file(tmp_path, monkeypatch):
    cache = TrajectoryCache(tmp_path)
    key, rec = make_record(16)

    def fail(fobj, record):
        fobj.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(TrajectoryCache, "_write_h5", staticmethod(fail))
    with pytest.raises(OSError, match="disk full"):
        cache.put(key, rec)
    assert temp_files(tmp_path) == [] and not cache.has(key) and cache.keys() == []


def test_put_many_indexes_once_and_keeps_entries_written_before_an_error(tmp_path, monkeypatch):
    cache = TrajectoryCache(tmp_path)
    items = [make_record(i) for i in range(4)]
    writes = []
    real_write = TrajectoryCache._write_index_locked
    monkeypatch.setattr(
        TrajectoryCache,
        "_write_index_locked",
        lambda self, *a, **k: writes.append(1) or real_write(self, *a, **k),
    )
    paths = cache.put_many(items[:3])
    assert len(writes) == 1 and [p.stem for p in paths] == [k for k, _ in items[:3]]
    assert cache.keys() == sorted(k for k, _ in items[:3])

    bad_key, bad = make_record(5)
    with pytest.raises(ValueError, match="does not match"):  # validated before anything is written
        cache.put_many([items[3], (bad_key, items[3][1])])
    assert not cache.has(items[3][0])

    real_entry = TrajectoryCache._write_entry
    calls = []

    def fail_second(self, final, key, record):
        calls.append(key)
        if len(calls) == 2:
            raise OSError("disk full")
        return real_entry(self, final, key, record)

    monkeypatch.setattr(TrajectoryCache, "_write_entry", fail_second)
    with pytest.raises(OSError, match="disk full"):
        cache.put_many([items[3], (bad_key, bad)])
    assert items[3][0] in cache.keys() and bad_key not in cache.keys()


def test_bench_cache_script_smoke():
    script = Path(__file__).resolve().parents[2] / "scripts" / "bench_cache.py"
    out = subprocess.run(
        [sys.executable, str(script), "--size", "32", "--channels", "1", "--steps", "3", "--repeats", "5"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout.splitlines()
    assert out[-2].startswith("cache_read_ms: ") and float(out[-2].split(": ")[1]) > 0
    assert out[-1].startswith("cache_bytes_per_image: ") and int(out[-1].split(": ")[1]) > 3 * 3 * 32 * 32 * 2
