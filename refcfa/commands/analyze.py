"""`refcfa analyze` — the seed's `analyze_net` with its four modes.

    refcfa analyze --config CFG --checkpoint CKPT --train_localization          # S2
    refcfa analyze --config CFG --checkpoint CKPT --run_supervised_localization # T2 + metrics
    refcfa analyze --config CFG --checkpoint CKPT --analyze_residuals           # REF dynamics
    refcfa analyze --config CFG --checkpoint CKPT --analyze_transformer         # E/NS/DV, attention

`CKPT` is the source score network, as in the seed's README; the segmenter lives beside it.
"""

from __future__ import annotations

import argparse

MODES = ("train_localization", "run_supervised_localization", "analyze_residuals", "analyze_transformer")


def add_arguments(name: str, parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "--config-file", dest="config", required=True, help="experiment YAML")
    parser.add_argument("--checkpoint", required=True, help="source score-network checkpoint")
    for mode in MODES:
        parser.add_argument(f"--{mode}", action="store_true", help=mode.replace("_", " "))
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="config overrides")
    parser.add_argument("--device", default=None, help="auto | cpu | cuda | cuda:N")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from refcfa.config import load_config
    from refcfa.engine.events import LogEvent
    from refcfa.evaluation import analysis
    from refcfa.evaluation.pipeline import PipelineFinished, StageProgress, metrics_table

    modes = [m for m in MODES if getattr(args, m)]
    if not modes:
        raise ValueError("choose what to do: one or more of " + ", ".join(f"--{m}" for m in MODES))
    if not Path(args.checkpoint).exists():
        raise FileNotFoundError(f"--checkpoint {args.checkpoint}: no such file (train it with `refcfa train`)")
    cfg = load_config(args.config, args.set)
    for mode in modes:
        for ev in getattr(analysis, mode)(cfg, args.checkpoint, args.device):
            if isinstance(ev, StageProgress):
                print(f"\r{ev.stage}: {ev.done}/{ev.total} {ev.message}", end="", flush=True)
            elif isinstance(ev, LogEvent):
                print(ev.message)
            elif isinstance(ev, PipelineFinished):
                print()
                if ev.metrics.get("methods"):
                    print(metrics_table(ev.metrics))
                for fig in ev.metrics.get("figures", []):
                    print(f"wrote {fig}")
                print(f"{mode}: wrote {ev.metrics_path}")
    return 0
