#!/usr/bin/env python
"""The seed's `train_net`: stage S1/T1 — `refcfa train` under its old name.

    python scripts/train_net.py --config-file configs/experiments/mvtec/source_bottle.yaml
    python scripts/train_net.py --config-file configs/experiments/mvtec/target_cable.yaml [--resume]

Every `refcfa train` option works (`--set key=value`, `--stage`, `--device`); `configs/...` paths
resolve to the shipped `resources/configs/...`.
"""

from __future__ import annotations

import sys

from refcfa.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["train", *sys.argv[1:]]))
