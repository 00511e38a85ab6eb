"""`refcfa train`: stage S1 or T1 — train a domain's diffusion score network.

    refcfa train --config-file CFG [--set key=value ...] [--resume] [--stage source|target] [--device D]
    torchrun --standalone --nproc_per_node=N -m refcfa train --config-file CFG ...   (DDP)

Renders the trainer's events with tqdm (loss, lr, it/s) and prints the last checkpoint's path.
Ctrl-C (or SIGTERM) cancels cleanly: the step finishes and a checkpoint is written; resume with
`--resume`. A second Ctrl-C aborts at once.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading


def add_arguments(name: str, parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config-file",
        "--config",
        dest="config_file",
        required=True,
        metavar="CFG",
        help="experiment YAML (e.g. configs/experiments/synthetic/demo.yaml)",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        nargs="+",
        action="extend",
        default=[],
        metavar="KEY=VALUE",
        help="config overrides, e.g. --set train.max_steps=100 output_dir=out",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue from the experiment's last checkpoint (from scratch if there is none)",
    )
    parser.add_argument(
        "--stage",
        choices=("source", "target"),
        default=None,
        help="which network to train (default: the config's `stage`)",
    )
    parser.add_argument("--device", default=None, help="auto | cpu | cuda | cuda:N (default: the config's)")
    parser.add_argument(
        "opts",
        nargs="*",
        metavar="KEY=VALUE",
        default=[],
        help="more overrides (detectron2 style, after the options)",
    )


def _install_cancel_handlers(cancel) -> dict:
    """SIGINT/SIGTERM cancel cleanly (a second one aborts); returns the previous handlers."""
    if threading.current_thread() is not threading.main_thread():
        return {}

    def handler(signum, frame):
        if cancel.cancelled:
            raise KeyboardInterrupt
        cancel.cancel()

    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.getsignal(sig)
        signal.signal(sig, handler)
    return previous


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from refcfa.config import load_config
    from refcfa.engine.distributed import cleanup_distributed, init_distributed
    from refcfa.engine.events import (
        CheckpointSaved,
        LogEvent,
        StepEvent,
        TrainFinished,
        TrainStarted,
        ValidationEvent,
    )
    from refcfa.engine.trainer import CancelToken, DiffusionTrainer

    overrides = list(args.overrides) + list(args.opts)
    if args.stage:
        overrides.append(f"stage={args.stage}")
    if args.device:
        overrides.append(f"device={args.device}")
    cfg = load_config(args.config_file, overrides)
    dist = init_distributed(cfg.device)
    cancel = CancelToken()
    previous_handlers = _install_cancel_handlers(cancel)
    show = dist.is_main
    bar = None
    final = None
    ok = False
    try:
        trainer = DiffusionTrainer(cfg, cfg.stage, dist=dist, resume=args.resume)
        for event in trainer.run(cancel):
            if isinstance(event, TrainFinished):
                final = event
            if not show:
                continue
            if isinstance(event, TrainStarted):
                print(
                    f"training the {event.domain} score network ({'S1' if event.domain == 'source' else 'T1'}) "
                    f"on {event.device} x{event.world_size}: {event.n_train} images"
                    f"{' (transductive: incl. target test images, unlabelled)' if event.transductive else ''}, "
                    f"{event.n_val} held out, {event.n_parameters / 1e6:.2f} M parameters, "
                    f"{event.steps_per_epoch} steps/epoch -> {event.experiment_dir}",
                    file=sys.stderr,
                )
                bar = tqdm(
                    total=event.total_steps,
                    initial=event.start_step,
                    desc=f"train {event.domain}",
                    unit="step",
                    dynamic_ncols=True,
                    file=sys.stderr,
                )
            elif isinstance(event, StepEvent) and bar is not None:
                bar.update(event.step - bar.n)
                bar.set_postfix(
                    loss=f"{event.loss:.4f}",
                    lr=f"{event.lr:.2e}",
                    epoch=event.epoch,
                    img_s=f"{event.throughput:.1f}",
                    refresh=False,
                )
            elif isinstance(event, ValidationEvent):
                _write(
                    bar, f"step {event.step}: val_loss {event.val_loss:.5f} (best {event.best_val_loss:.5f})"
                )
            elif isinstance(event, CheckpointSaved):
                _write(bar, f"step {event.step}: checkpoint {event.path}")
            elif isinstance(event, LogEvent):
                _write(bar, event.message)
        if bar is not None:
            bar.close()
        if final is not None:
            if dist.distributed and final.extra.get("weights_sha256"):
                print(
                    f"rank {dist.rank}/{dist.world_size} weights sha256 {final.extra['weights_sha256']}",
                    file=sys.stderr,
                    flush=True,
                )
            if show:
                state = "cancelled at" if final.cancelled else "finished at"
                print(
                    f"{state} step {final.step} ({final.reason})"
                    + (f", val_loss {final.val_loss:.5f}" if final.val_loss is not None else ""),
                    file=sys.stderr,
                )
                print(f"checkpoint: {final.checkpoint}", flush=True)
        ok = True
    finally:
        if bar is not None:
            bar.close()
        cleanup_distributed(barrier=ok)
        for sig, handler in previous_handlers.items():
            signal.signal(sig, handler)
    return 130 if final is not None and final.cancelled else 0


def _write(bar, message: str) -> None:
    if bar is not None:
        bar.write(message, file=sys.stderr)
    else:
        print(message, file=sys.stderr)
