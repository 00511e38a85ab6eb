#!/usr/bin/env python
"""The seed's `tools/analyze_net.py`: `python scripts/analyze_net.py --config CFG --checkpoint CKPT --train_localization`."""

import sys

from refcfa.cli import main

if __name__ == "__main__":
    sys.exit(main(["analyze", *sys.argv[1:]]))
