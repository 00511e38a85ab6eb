#!/usr/bin/env python
"""Training-step overhead of `DiffusionTrainer` against a bare PyTorch loop, side by side.

    python scripts/bench_train.py [--config experiments/synthetic/demo.yaml] [--steps 20] [--threads N]

Both loops train the same network (the trainer's, deep-copied for the bare loop) at the demo size
(64x64, batch 16 by default). The trainer's step is everything `run()` does per step: batch
draw (indices, timesteps, noise, flips), forward, loss, backward, gradient clipping, AdamW, lr
schedule, EMA update and the hooks (logging every `train.log_every` steps; no checkpoint or
validation falls inside the timed window). The bare loop reuses one pre-built batch and does
only `forward; mse; zero_grad; loss.backward(); opt.step()` with the same AdamW settings (on
CUDA with `train.amp`, under the same fp16 autocast and GradScaler). Single steps of the two loops
alternate (ABBA) so that drift in machine speed hits both alike; the ratio is the median trainer
step time over the median bare step time (medians: robust to a busy machine's spikes). The last
line is `train_overhead_ratio: X`.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import statistics
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--config", default="experiments/synthetic/demo.yaml", help="config (model size, batch)"
    )
    parser.add_argument(
        "--set", dest="overrides", nargs="+", action="extend", default=[], metavar="KEY=VALUE"
    )
    parser.add_argument("--steps", type=int, default=20, help="timed steps of each loop")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps of each loop first")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--data", default=None, help="dataset root (default: synthetic data in a temp dir)")
    args = parser.parse_args(argv)

    import torch
    import torch.nn.functional as F

    from refcfa.config import load_config
    from refcfa.data import make_synthetic
    from refcfa.engine.trainer import DiffusionTrainer

    if args.threads:
        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory(prefix="refcfa-bench-") as tmp:
        base = load_config(args.config, args.overrides)
        root = args.data
        if root is None:
            root = make_synthetic(
                Path(tmp) / "data",
                size=max(32, base.data.image_size),
                seed=0,
                n_train=40,
                n_test_good=0,
                n_test_defect=0,
            )
        cfg = load_config(
            args.config,
            [
                *args.overrides,
                f"output_dir={Path(tmp) / 'out'}",
                f"source.root={root}",
                f"device={args.device}",
                "train.max_steps=1000000",
                "train.checkpoint_every=0",
                "train.eval_every=0",
                "train.max_time_s=0",
            ],
        )
        trainer = DiffusionTrainer(cfg, "source")
        trainer.setup()
        for hook in trainer.hooks:
            hook.before_train()
        dev = trainer.device

        bare = copy.deepcopy(trainer.model).train()
        opt_kw = {"fused": True} if dev.type == "cuda" else {"foreach": True}
        opt = torch.optim.AdamW(
            bare.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay, **opt_kw
        )
        scaler = torch.amp.GradScaler("cuda") if trainer.use_amp else None
        x0, t, noise = trainer.draw_batch(0)
        ab = trainer.sqrt_ab[t].view(-1, 1, 1, 1)
        x_t = ab * x0 + trainer.sqrt_one_minus_ab[t].view(-1, 1, 1, 1) * noise

        def autocast():
            if trainer.use_amp:
                return torch.autocast("cuda", dtype=torch.float16)
            return contextlib.nullcontext()

        def bare_step() -> None:
            with autocast():
                eps = bare(x_t, t, return_dict=False)[0]
            loss = F.mse_loss(eps.float(), noise)
            opt.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
            else:
                loss.backward()
                opt.step()

        def trainer_step() -> None:
            trainer.train_one_step()
            trainer._pending.clear()

        def sync() -> None:
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)

        def timed(fn) -> float:
            sync()
            start = time.perf_counter()
            fn()
            sync()
            return time.perf_counter() - start

        for _ in range(args.warmup):
            trainer_step()
            bare_step()
        sync()
        ours: list[float] = []
        plain: list[float] = []
        for i in range(args.steps):
            # ABBA: one step of each, the order alternating, so drift hits both loops alike
            if i % 2 == 0:
                ours.append(timed(trainer_step))
                plain.append(timed(bare_step))
            else:
                plain.append(timed(bare_step))
                ours.append(timed(trainer_step))
        print(
            f"device {dev}, threads {torch.get_num_threads()}, image {cfg.data.image_size}px, batch "
            f"{cfg.train.batch_size}, {trainer.n_parameters / 1e6:.2f} M parameters, {args.steps} timed steps per loop"
        )
        med_a, med_b = statistics.median(ours), statistics.median(plain)
        print(
            f"trainer: median {1000 * med_a:.1f} ms/step (mean {1000 * statistics.fmean(ours):.1f}); "
            f"bare: median {1000 * med_b:.1f} ms/step (mean {1000 * statistics.fmean(plain):.1f}); "
            f"ratio of means {sum(ours) / sum(plain):.3f}"
        )
        print(f"train_overhead_ratio: {med_a / med_b:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
