"""Is one method's image AUROC really above another's? A paired bootstrap over a run's test images.

Reads the maps a finished run wrote (`DIR/vis_supervised/<category>/maps.npz`), scores images as the
evaluation does (max of the Gaussian-smoothed map), and resamples the test images with replacement
(normals and anomalies separately, so every resample has both) to give the difference of image
AUROC between two methods with a 95 % interval. With 20 normal and 30 anomalous images, as in the
demo, differences of a few hundredths are inside that interval.

    python scripts/compare_methods.py --output output/demo ref_cfa residual [--rounds 2000]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from refcfa.config import load_config
from refcfa.metrics import default_sigma, image_auroc, smooth_and_max


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--output", required=True, help="output folder of a finished run")
    ap.add_argument("a", help="method name, e.g. ref_cfa")
    ap.add_argument("b", help="method name to compare with, e.g. residual")
    ap.add_argument("--rounds", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    files = sorted(Path(args.output).glob("vis_supervised/*/maps.npz"))
    if not files:
        raise SystemExit(f"no vis_supervised/*/maps.npz under {args.output}: run the pipeline first")
    data = np.load(files[0])
    for name in (args.a, args.b):
        if name not in data.files:
            methods = [k for k in data.files if k not in ("image_ids", "labels", "masks")]
            raise SystemExit(f"method {name!r} is not in {files[0]}; it has: {', '.join(methods)}")
    labels = data["labels"].astype(bool)
    sigma = default_sigma(data["masks"].shape[1:])
    saved = Path(args.output) / "config.yaml"  # the run's config, for an eval.sigma it set
    if saved.exists() and load_config(saved).eval.sigma is not None:
        sigma = load_config(saved).eval.sigma
    sa = smooth_and_max(data[args.a].astype(np.float32), sigma)
    sb = smooth_and_max(data[args.b].astype(np.float32), sigma)
    observed = image_auroc(sa, labels) - image_auroc(sb, labels)
    rng = np.random.default_rng(args.seed)
    pos, neg = np.flatnonzero(labels), np.flatnonzero(~labels)
    diffs = np.empty(args.rounds)
    for r in range(args.rounds):
        idx = np.r_[rng.choice(pos, pos.size), rng.choice(neg, neg.size)]
        diffs[r] = image_auroc(sa[idx], labels[idx]) - image_auroc(sb[idx], labels[idx])
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    print(f"{files[0].parent.name}: {pos.size} anomalous, {neg.size} normal test images")
    print(f"image AUROC {args.a} {image_auroc(sa, labels):.3f}, {args.b} {image_auroc(sb, labels):.3f}")
    print(f"difference {observed:+.3f}, 95 % bootstrap interval [{lo:+.3f}, {hi:+.3f}] "
          f"({args.rounds} paired resamples); P({args.a} > {args.b}) = {np.mean(diffs > 0):.2f}")


if __name__ == "__main__":
    main()
