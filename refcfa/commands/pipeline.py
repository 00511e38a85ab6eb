"""`refcfa pipeline` and `refcfa demo`: S1, T1, REF extraction, S2, T2 and the evaluation."""

from __future__ import annotations

import argparse
from pathlib import Path

DEMO_CONFIG = "experiments/synthetic/demo.yaml"


def add_arguments(name: str, parser: argparse.ArgumentParser) -> None:
    if name == "pipeline":
        parser.add_argument("--config", "--config-file", dest="config", required=True, help="experiment YAML")
        parser.add_argument("--output", default=None, help="output folder (default: the config's output_dir)")
    else:
        parser.add_argument("--config", "--config-file", dest="config", default=DEMO_CONFIG,
                            help=f"config (default {DEMO_CONFIG})")
        parser.add_argument("--output", default="output/demo", help="output folder (default output/demo)")
        parser.add_argument("--data", default=None, help="where the synthetic data go (default: source.root)")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="config overrides")
    parser.add_argument("--device", default=None, help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from refcfa.config import load_config

    overrides = list(args.set)
    if args.output:
        overrides.append(f"output_dir={args.output}")
    if getattr(args, "data", None):
        overrides += [f"source.root={args.data}", f"target.root={args.data}"]
    cfg = load_config(args.config, overrides)
    if args.command == "demo":
        ensure_demo_data(cfg)
    metrics = run_with_progress(cfg, args.device, quiet=args.quiet)
    if metrics is None:
        return 1
    from refcfa.evaluation.pipeline import metrics_table

    print(metrics_table(metrics))
    print(f"wrote {Path(cfg.output_dir) / 'metrics.json'} and metrics.md "
          f"({metrics['timings_s'].get('total', 0):.0f} s)")
    return 0


def ensure_demo_data(cfg) -> None:
    """Generate the synthetic benchmark at `source.root` when it is not there yet."""
    from refcfa.data import make_synthetic

    root = Path(cfg.source.root)
    if not (root / cfg.source.category).exists() or not (root / cfg.target.category).exists():
        print(f"generating the synthetic demo data in {root} …")
        make_synthetic(root, size=cfg.data.image_size, seed=cfg.seed)


def run_with_progress(cfg, device=None, quiet: bool = False):
    """Drain the pipeline's events with one tqdm bar per stage; return the metrics (None if cancelled)."""
    from tqdm.auto import tqdm

    from refcfa.engine.events import LogEvent, StepEvent, TrainStarted
    from refcfa.evaluation.pipeline import (
        Pipeline,
        PipelineFinished,
        StageFinished,
        StageProgress,
        StageStarted,
    )

    bar = None
    result = None
    for ev in Pipeline(cfg, device).run():
        if isinstance(ev, StageStarted):
            if bar is not None:
                bar.close()
            bar = tqdm(total=None, desc=f"{ev.stage}: {ev.description}", disable=quiet, leave=True,
                       dynamic_ncols=True)
        elif isinstance(ev, TrainStarted) and bar is not None:
            bar.reset(total=ev.total_steps)
            bar.update(ev.start_step)
        elif isinstance(ev, StepEvent) and bar is not None:
            bar.n = ev.step
            bar.set_postfix(loss=f"{ev.loss:.4f}", lr=f"{ev.lr:.1e}", refresh=False)
            bar.refresh()
        elif isinstance(ev, StageProgress) and bar is not None:
            if bar.total != ev.total:
                bar.reset(total=ev.total)
            bar.n = ev.done
            bar.set_postfix_str(ev.message, refresh=False)
            bar.refresh()
        elif isinstance(ev, LogEvent) and not quiet:
            tqdm.write(ev.message)
        elif isinstance(ev, StageFinished) and bar is not None:
            bar.set_postfix_str(f"{ev.seconds:.1f} s" + (f" ({ev.message})" if ev.message else ""))
            bar.close()
            bar = None
        elif isinstance(ev, PipelineFinished):
            result = None if ev.cancelled else ev.metrics
    if bar is not None:
        bar.close()
    return result
