"""Score a run's detector (S2) and alignment (T2) on held-out draws — never the run's test split.

Generates (once) a second draw of the synthetic domains with another seed (`make_synthetic(seed=1)`
into `data/synthetic_heldout`), then, with the networks of a finished run in `--output`:

- trains S2 again when the overrides change the detector (same rule as the pipeline: the segmenter
  is reused while its run digest matches — so this *replaces* the run's segmenter; re-running the
  demo without the overrides trains it back);
- **source validation**: the segmenter on the held-out *source* test images under S1, no
  alignment (image AUROC, pixel AUROC, AUPRO) — what a user with only source labels can measure;
- **held-out target**: every method of the evaluation on the held-out *target* test images under
  T1, CFA fitted on them without labels, as the pipeline does.

This is how the demo's detector settings were chosen (README, "How the demo's settings were chosen").

    python scripts/validate_detector.py --output output/demo [--set detector.epochs=6 ...]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from refcfa.config import load_config
from refcfa.data import make_samples
from refcfa.data.torch_dataset import load_masks
from refcfa.engine.checkpoint import find_last_checkpoint
from refcfa.evaluation.pipeline import Pipeline
from refcfa.field.detector import predict_maps
from refcfa.field.extract import FieldExtractor, items_from_samples, load_fieldset
from refcfa.field.segmenter_io import load_segmenter
from refcfa.metrics import evaluate_maps

sys.path.insert(0, str(Path(__file__).parent))
from _heldout import heldout_draw, parse_args  # noqa: E402


def _row(name: str, maps: np.ndarray, masks: np.ndarray) -> str:
    labels = masks.reshape(len(masks), -1).any(1)
    m = evaluate_maps(maps, masks, labels)
    return f"{name:34s} {m['image_auroc']:.3f}  {m['pixel_auroc']:.3f}  {m['aupro']:.3f}"


def main() -> None:
    args = parse_args(__doc__, "detector.epochs=6")
    _, heldout = heldout_draw(args)
    cfg = load_config(args.config, [f"output_dir={args.output}", f"target.root={heldout}", *args.set])
    size = cfg.data.image_size
    pipe = Pipeline(cfg)
    pipe._load_data()
    for which in ("source", "target"):
        ckpt = find_last_checkpoint(cfg.experiment_dir(which))
        if ckpt is None:
            raise SystemExit(f"no {which} network in {cfg.experiment_dir(which)}: run the pipeline first")
        pipe.checkpoints[which] = ckpt
    for _ in pipe._extract():  # the run's source fields (cached) and the held-out target's
        pass
    for _ in pipe._train_s2():  # reused unless the overrides changed the detector
        pass
    model, _ = load_segmenter(pipe.segmenter_path())

    samples = [s for s in make_samples(heldout, "mvtec", cfg.source.category) if s.split == "test"]
    ex = FieldExtractor(pipe.checkpoints["source"], cfg, pipe.cache, cfg.device)
    items = items_from_samples(samples, size, ex.channels)
    for _ in ex.extract(items, shard=False):
        pass
    src_fields, _, _ = load_fieldset(pipe.cache, ex.keys(items))
    print(f"{'':34s} image  pixel  AUPRO   (overrides: {' '.join(args.set) or 'none'})")
    print(_row(f"source validation ({cfg.source.category})", predict_maps(model, src_fields),
               load_masks(samples, size)))

    for _ in pipe._run_t2():
        pass
    pipe.target.open_for_evaluation()
    masks = pipe.target.masks(size)
    for name, maps in pipe.maps.items():
        print(_row(f"held-out target {name}", maps, masks))


if __name__ == "__main__":
    main()
