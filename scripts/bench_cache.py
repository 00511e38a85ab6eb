"""Benchmark the trajectory cache: one-step reads (the GUI's scrub) and bytes per cached image.

Builds a 256×256, C = 3, K = 10 record, puts it, then reads one step of R, M and Q ``--repeats``
times each from a warm entry (``CacheEntry.read_step``, float16 → float32 included). Side by side,
with HDF5's chunk cache off (every read goes to the file), the entry's uncompressed chunks against
a gzip-compressed copy of the same datasets (the layout the cache does *not* use) give a ratio
that does not depend on the machine. The last two lines are, exactly::

    cache_read_ms: X          # median over R, M, Q of each field's median one-step read, in ms
    cache_bytes_per_image: N  # size of the entry file

Usage: ``python scripts/bench_cache.py [--size 256] [--channels 3] [--steps 10] [--repeats 200]``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from refcfa.field.cache import FieldRecord, TrajectoryCache, array_digest, encode_uint8, entry_key


def make_record(size: int, channels: int, steps: int, seed: int = 0) -> FieldRecord:
    rng = np.random.default_rng(seed)
    shape = (steps, size, size)
    image = encode_uint8(rng.uniform(-1, 1, (channels, size, size)))
    attrs = {
        "checkpoint_digest": "bench-checkpoint",
        "config_digest": "bench-config",
        "image_digest": array_digest(image),
        "image_id": "bench/0",
    }
    return FieldRecord(
        R=rng.gamma(2.0, 0.5, shape).astype(np.float16),
        M=rng.gamma(2.0, 0.3, shape).astype(np.float16),
        Q=rng.gamma(2.0, 0.2, shape).astype(np.float16),
        d=rng.normal(size=(steps, channels, size, size)).astype(np.float16),
        x0_hat=encode_uint8(rng.uniform(-1, 1, (steps, channels, size, size))),
        timesteps=np.linspace(100, 10, steps).astype(np.int64),
        image=image,
        attrs=attrs,
    )


def time_reads(read, steps: int, repeats: int) -> float:
    """Median ms of ``read(n)`` over ``repeats`` calls cycling through the steps (one warm-up pass)."""
    for n in range(1, steps + 1):
        read(n)
    times = []
    for i in range(repeats):
        n = i % steps + 1
        t = time.perf_counter()
        read(n)
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--channels", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()

    record = make_record(args.size, args.channels, args.steps)
    key = entry_key(*(record.attrs[k] for k in ("checkpoint_digest", "config_digest", "image_digest")))
    with tempfile.TemporaryDirectory() as tmp:
        cache = TrajectoryCache(Path(tmp) / "cache")
        t = time.perf_counter()
        path = cache.put(key, record)
        put_ms = (time.perf_counter() - t) * 1e3
        nbytes = path.stat().st_size

        gz_path = Path(tmp) / "gzip.h5"
        with h5py.File(gz_path, "w") as f:
            for name in ("R", "M", "Q"):
                f.create_dataset(
                    name, data=getattr(record, name), chunks=(1, args.size, args.size), compression="gzip"
                )

        entry = cache.get(key)
        if entry is None:
            raise SystemExit(f"benchmark entry {key} could not be read back")
        per_field, plain_field, gz_field = {}, {}, {}
        no_cache = {"locking": False, "rdcc_nbytes": 0}
        with entry, h5py.File(path, "r", **no_cache) as plain, h5py.File(gz_path, "r", **no_cache) as gz:
            for name in ("R", "M", "Q"):
                per_field[name] = time_reads(
                    lambda n, f=name: entry.read_step(f, n), args.steps, args.repeats
                )
                for src, out in ((plain, plain_field), (gz, gz_field)):
                    ds = src[name]
                    out[name] = time_reads(
                        lambda n, ds=ds: ds[n - 1].astype(np.float32), args.steps, args.repeats
                    )

    read_ms = statistics.median(per_field.values())
    plain_ms = statistics.median(plain_field.values())
    gz_ms = statistics.median(gz_field.values())
    print(
        f"record: {args.size}x{args.size}, C={args.channels}, K={args.steps}; in-memory {record.nbytes} bytes"
    )
    print(f"put: {put_ms:.1f} ms (write, fsync, rename, index)")
    for name in ("R", "M", "Q"):
        print(
            f"read_step {name}: median {per_field[name]:.4f} ms; chunk cache off: "
            f"uncompressed {plain_field[name]:.4f} ms, gzip {gz_field[name]:.4f} ms"
        )
    print(f"gzip_over_uncompressed_read_ratio: {gz_ms / plain_ms:.2f} (chunk cache off)")
    print(f"cache_read_ms: {read_ms:.4f}")
    print(f"cache_bytes_per_image: {nbytes}")


if __name__ == "__main__":
    main()
