"""Benchmark REF extraction against the bare network calls it cannot avoid.

For one batch on the demo's score network (64×64, the demo UNet, K = 10, random weights — the
cost does not depend on them), measured side by side in one run, interleaved over `--rounds`:

- bare: the `K` network calls `unet(x_t, t)` on the batch under `torch.inference_mode()`;
- REF:  the whole extraction of that batch — DDIM trajectory, R/M/Q/d for every step, the records
        and their writes to a fresh trajectory cache (`FieldRecord.from_steps` + `put`).

Prints the medians and, as the last line, `ref_overhead_ratio: X` (REF / bare).
Usage: `python scripts/bench_ref.py [--batch 16] [--size 64] [--K 10] [--rounds 5]`.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import numpy as np
import torch

from refcfa.config import load_config
from refcfa.diffusion.model import build_score_network
from refcfa.diffusion.schedule import alphas_cumprod, build_scheduler
from refcfa.diffusion.trajectory import as_score_fn, timestep_grid
from refcfa.field.cache import FieldRecord, TrajectoryCache, array_digest, encode_uint8, entry_key
from refcfa.field.primitives import compute_fields


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--K", type=int, default=10)
    ap.add_argument("--t0", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()

    cfg = load_config("experiments/synthetic/demo.yaml", [f"data.image_size={args.size}"])
    torch.manual_seed(0)
    unet = build_score_network(cfg.model, 3, args.size).eval().requires_grad_(False)
    alphas = alphas_cumprod(build_scheduler(cfg.diffusion))
    score_fn = as_score_fn(unet)
    x = torch.rand(args.batch, 3, args.size, args.size) * 2 - 1
    ids = [f"bench/{i}" for i in range(args.batch)]
    grid = timestep_grid(args.t0, args.K)
    print(f"torch threads: {torch.get_num_threads()}, batch {args.batch}, {args.size}px, K={args.K}")

    def bare() -> None:
        with torch.inference_mode():
            x_t = x.clone()
            for s in grid[:-1]:
                score_fn(x_t, torch.full((args.batch,), s, dtype=torch.long))

    def ref(cache: TrajectoryCache, round_no: int) -> None:
        steps = list(compute_fields(score_fn, alphas, x, ids, args.t0, args.K, seed=0))
        image = encode_uint8(x.numpy())
        records = []
        for i in range(args.batch):
            attrs = {"checkpoint_digest": "bench", "config_digest": f"round{round_no}",
                     "image_digest": array_digest(image[i]), "image_id": ids[i]}
            records.append((entry_key("bench", f"round{round_no}", attrs["image_digest"]),
                            FieldRecord.from_steps(steps, image[i], attrs, index=i)))
        cache.put_many(records)  # as FieldExtractor.extract does: one index update per batch

    bare()  # warm-up
    t_bare, t_ref = [], []
    with tempfile.TemporaryDirectory() as tmp:
        cache = TrajectoryCache(tmp)
        ref(cache, -1)
        for r in range(args.rounds):
            t = time.perf_counter()
            bare()
            t_bare.append(time.perf_counter() - t)
            t = time.perf_counter()
            ref(cache, r)
            t_ref.append(time.perf_counter() - t)
    b, f = statistics.median(t_bare), statistics.median(t_ref)
    print(f"bare_network_s: {b:.3f}")
    print(f"ref_extraction_s: {f:.3f}  ({f / args.batch * 1000:.0f} ms per image)")
    print(f"ref_overhead_ratio: {f / b:.3f}")


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
