"""The seed's `analyze_net` modes on top of the pipeline's stages.

- `train_localization` (S2): source REF under the given source checkpoint, then the detector;
  writes `supervised_segmenter.pth` beside that checkpoint.
- `run_supervised_localization` (T2): the segmenter beside the given source checkpoint, the
  target network from `output/<target ExpName>/`, CFA, anomaly maps in `output/vis_supervised/`
  and the metrics.
- `analyze_residuals`: R/M/Q against the step for normal vs anomalous pixels (median, 5–95 %
  band) and the maps at chosen steps, for the config's stage domain under the given checkpoint,
  in `output/vis_ref_dynamics/`. This is analysis: it reads the labels of the images it plots.
- `analyze_transformer`: E/NS/DV distributions normal vs anomalous per domain and the Field
  Transformer's attention over the steps, in `output/vis_transformer/`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from refcfa.config import Config
from refcfa.errors import CheckpointError
from refcfa.evaluation.pipeline import Pipeline, PipelineFinished, write_metrics


def _drain(gen: Iterator[Any]) -> list[Any]:
    return list(gen)


def train_localization(cfg: Config, checkpoint: str | Path, device: str | None = None,
                       cancel: Any = None) -> Iterator[Any]:
    p = Pipeline(cfg, device, cancel)
    p._load_data(("source",))
    p.checkpoints["source"] = Path(checkpoint)
    yield from p._extract(("source",))
    yield from p._train_s2()
    yield PipelineFinished(str(p.out), str(p.segmenter_path()), {})


def target_checkpoint(cfg: Config) -> Path:
    from refcfa.engine.checkpoint import find_last_checkpoint

    exp = cfg.experiment_dir("target")
    ckpt = find_last_checkpoint(exp)
    if ckpt is None:
        raise CheckpointError(
            f"no target score network in {exp}: train it first (stage T1): "
            f"refcfa train --config-file {cfg.source_file.split(' ')[0] or 'CFG'} --stage target"
        )
    return ckpt


def run_supervised_localization(cfg: Config, checkpoint: str | Path, device: str | None = None,
                                cancel: Any = None) -> Iterator[Any]:
    p = Pipeline(cfg, device, cancel)
    p._load_data(("target",))
    p.checkpoints["source"] = Path(checkpoint)
    p.checkpoints["target"] = target_checkpoint(cfg)
    yield from p._extract(("target",))
    if p.cancel.cancelled:
        yield PipelineFinished(str(p.out), "", {}, cancelled=True)
        return
    yield from p._run_t2()
    results = p._evaluate()
    metrics = p.metrics_document(results)
    out = p.out / "vis_supervised" / cfg.target.category
    path = write_metrics(out, metrics)
    yield PipelineFinished(str(out), str(path), metrics)


def _pixel_sample(arr: np.ndarray, mask: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """`arr (N, K, H, W)`, `mask (N, H, W)` → `(P, K)` sequences of at most `n` pixels where mask."""
    idx = np.flatnonzero(mask.reshape(-1))
    if idx.size > n:
        idx = rng.choice(idx, n, replace=False)
    N, K, H, W = arr.shape
    flat = arr.transpose(0, 2, 3, 1).reshape(N * H * W, K)
    return flat[idx]


def analyze_residuals(cfg: Config, checkpoint: str | Path, device: str | None = None,
                      n_maps: int = 4) -> Iterator[Any]:
    from refcfa.data import make_samples
    from refcfa.data.torch_dataset import load_masks
    from refcfa.evaluation.figures import plot_field_maps, plot_ref_dynamics
    from refcfa.field.cache import TrajectoryCache
    from refcfa.field.extract import FieldExtractor, items_from_samples, load_fieldset

    which = cfg.stage
    dom = cfg.domain(which)
    samples = sorted([s for s in make_samples(dom.root, dom.format, dom.category) if s.split == "test"],
                     key=lambda s: s.image_id)
    cache = TrajectoryCache(cfg.cache_dir(), budget_bytes=int(cfg.cache.budget_gb * 2**30))
    ex = FieldExtractor(checkpoint, cfg, cache, device or cfg.device)
    items = items_from_samples(samples, cfg.data.image_size, ex.channels, {"role": f"{which}_test"})
    yield from ex.extract(items, shard=False)
    fields, images, _ = load_fieldset(cache, ex.keys(items))
    masks = load_masks(samples, cfg.data.image_size)
    normal_px = np.zeros_like(masks)
    normal_px[[i for i, s in enumerate(samples) if s.label == 0]] = True
    rng = np.random.default_rng(cfg.seed)
    series = {}
    for name in ("R", "M", "Q"):
        arr = getattr(fields, name)
        series[name] = {"normal": _pixel_sample(arr, normal_px, 20000, rng)}
        if masks.any():
            series[name]["anomalous"] = _pixel_sample(arr, masks, 20000, rng)
    out = Path(cfg.output_dir) / "vis_ref_dynamics" / dom.category
    written = [plot_ref_dynamics(fields.timesteps, series, out / "ref_dynamics.png",
                                 title=f"REF dynamics, {dom.category} ({which} network {Path(checkpoint).name})")]
    imgs = ((images.transpose(0, 2, 3, 1) + 1) * 127.5).clip(0, 255).astype(np.uint8)
    K = fields.K
    steps = sorted({1, max(1, K // 3), max(1, 2 * K // 3), K})
    anomalous = [i for i, s in enumerate(samples) if s.label == 1][:n_maps]
    for i in anomalous:
        name = samples[i].image_id.replace("/", "_")
        written.append(plot_field_maps(imgs[i], masks[i], {"R": fields.R[i], "M": fields.M[i], "Q": fields.Q[i]},
                                       steps, out / f"maps_{name}.png", timesteps=fields.timesteps,
                                       title=f"{dom.category} {samples[i].image_id}"))
    yield PipelineFinished(str(out), str(written[0]), {"figures": [str(w) for w in written]})


def analyze_transformer(cfg: Config, checkpoint: str | Path, device: str | None = None) -> Iterator[Any]:
    from refcfa.engine.checkpoint import find_last_checkpoint
    from refcfa.evaluation.figures import plot_attention_over_steps, plot_statistic_distributions
    from refcfa.field.detector import predict_outputs
    from refcfa.field.segmenter_io import load_segmenter

    p = Pipeline(cfg, device)
    domains = ["source"]
    p.checkpoints["source"] = Path(checkpoint)
    tgt_ckpt = find_last_checkpoint(cfg.experiment_dir("target"))
    if tgt_ckpt is not None:
        domains.append("target")
        p.checkpoints["target"] = tgt_ckpt
    p._load_data(tuple(domains))
    yield from p._extract(tuple(domains))
    model, meta = load_segmenter(p.segmenter_path(), device="cpu")
    stats, attention = {}, {}
    rng = np.random.default_rng(cfg.seed)
    ts = None
    for domain in domains:
        if domain == "source":
            fields, _, _ = p._fields("source_test")
            masks = p.groups["source_test"].masks
        else:
            fields, _, _ = p._fields("target_test")
            p.target.open_for_evaluation()  # analysis figure: reads the target labels on purpose
            masks = p.target.masks(cfg.data.image_size)
        ts = fields.timesteps
        out = predict_outputs(model, fields, cfg.detector.batch_size, "cpu")
        normal = ~masks
        stats[domain] = {}
        for name in ("E", "NS", "DV"):
            v = out[name]
            stats[domain][name] = {"normal": _subsample(v[normal], 50000, rng),
                                   "anomalous": _subsample(v[masks], 50000, rng)}
        attention[domain] = {
            "normal": _pixel_sample(out["a"], normal, 20000, rng),
            "anomalous": _pixel_sample(out["a"], masks, 20000, rng),
        }
    folder = Path(cfg.output_dir) / "vis_transformer"
    f1 = plot_statistic_distributions(stats, folder / "statistics.png")
    f2 = plot_attention_over_steps(ts, attention, folder / "attention.png")
    yield PipelineFinished(str(folder), str(f1), {"figures": [str(f1), str(f2)]})


def _subsample(v: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    return v if v.size <= n else rng.choice(v, n, replace=False)
