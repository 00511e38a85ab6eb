"""Which raw field carries the signal? Per-field AUROC of the trained networks on a held-out draw.

Generates (once) a second draw of the synthetic domains with another seed — never the demo's test
split — computes the REF of its source and target test images under the source and target networks
of a finished run, and prints pixel/image AUROC of the raw fields `R_1`, `Q_K`, `mean_n M_n` and the
reconstruction residual. This is how the demo's settings were chosen (README, "What limits the demo").

    python scripts/diagnose_fields.py --output output/demo [--set field.t0=50 ...]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from refcfa.data import make_samples
from refcfa.data.torch_dataset import load_masks
from refcfa.engine.checkpoint import find_last_checkpoint
from refcfa.field.cache import TrajectoryCache
from refcfa.field.extract import FieldExtractor, items_from_samples, load_fieldset
from refcfa.metrics import default_sigma, image_auroc, pixel_auroc, smooth_and_max

sys.path.insert(0, str(Path(__file__).parent))
from _heldout import heldout_draw, parse_args  # noqa: E402


def main() -> None:
    args = parse_args(__doc__, "field.t0=50")
    cfg, root = heldout_draw(args)
    size = cfg.data.image_size
    cache = TrajectoryCache(Path(args.output) / "cache_heldout")
    for which in ("source", "target"):
        ckpt = find_last_checkpoint(cfg.experiment_dir(which))
        if ckpt is None:
            raise SystemExit(f"no {which} network in {cfg.experiment_dir(which)}: run the pipeline first")
        dom = cfg.domain(which)
        samples = [s for s in make_samples(root, "mvtec", dom.category) if s.split == "test"]
        ex = FieldExtractor(ckpt, cfg, cache, cfg.device)
        items = items_from_samples(samples, size, ex.channels)
        list(ex.extract(items, shard=False))
        fs, img, x0 = load_fieldset(cache, ex.keys(items))
        masks = load_masks(samples, size)
        labels = masks.reshape(len(masks), -1).any(1)
        fields = {"R_1": fs.R[:, 0], "Q_K": fs.Q[:, -1], "mean M": fs.M.mean(1), "residual": np.abs(x0 - img).mean(1)}
        parts = []
        for name, maps in fields.items():
            scores = smooth_and_max(maps, default_sigma(size))
            parts.append(f"{name} {pixel_auroc(maps, masks):.3f}/{image_auroc(scores, labels):.3f}")
        print(f"{which} network on held-out {dom.category} (pixel/image AUROC): " + " | ".join(parts))


if __name__ == "__main__":
    main()
