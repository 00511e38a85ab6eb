"""`refcfa make-synthetic` and `refcfa data inspect`."""

from __future__ import annotations

import argparse
import json


def add_arguments(name: str, parser: argparse.ArgumentParser) -> None:
    if name == "make-synthetic":
        parser.add_argument("--out", required=True, help="folder to write the MVTec-layout dataset into")
        parser.add_argument("--size", type=int, default=64, help="image side in pixels (default 64)")
        parser.add_argument("--seed", type=int, default=0, help="random seed (same seed, same files)")
        return
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    p = sub.add_parser("inspect", help="count images, masks and channels per category")
    p.add_argument("root", help="dataset root folder")
    p.add_argument("--format", default="auto", help="auto | mvtec | visa | dagm | folder (default auto)")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    from refcfa import data

    if getattr(args, "data_command", None) is None:  # make-synthetic
        out = data.make_synthetic(args.out, size=args.size, seed=args.seed)
        info = data.inspect_root(out, "mvtec")
        for cat, counts in info["categories"].items():
            print(f"{cat}: " + ", ".join(f"{k}={v}" for k, v in counts.items()))
        print(f"wrote {out}")
        return 0
    info = data.inspect_root(args.root, args.format)
    if args.json:
        print(json.dumps(info, sort_keys=True))
        return 0
    print(f"format: {info['format']}")
    keys = ["train_normal", "train_anomalous", "test_normal", "test_anomalous", "masks", "channels"]
    width = max([len("category")] + [len(c) for c in info["categories"]])
    print(f"{'category':<{width}}  " + "  ".join(keys))
    for cat, counts in info["categories"].items():
        print(f"{cat:<{width}}  " + "  ".join(f"{counts[k]:>{len(k)}}" for k in keys))
    return 0
