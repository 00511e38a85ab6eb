"""The end-to-end REF-CFA run: S1, T1, REF extraction, S2, T2 and the evaluation.

`Pipeline(cfg).run()` is a generator of events (stage started/progress/finished, the training
events of S1/T1, the detector's epochs, and `PipelineFinished` with the metrics), so the CLI
renders it with tqdm and the GUI drives the same generator in a worker thread.

What each stage sees (DESIGN.md sections 5–7):

- S1: source `train` normals. T1: target `train` plus, when `data.transductive` (default), the
  target `test` images *without labels* (`refcfa.engine.trainer.split_training_images`).
- REF: fields of source train normals, source test images, synthetic anomalies composited into
  source normals (fields computed on the composited images), all under the S1 network; fields of
  the target images under the T1 network. Everything goes through the HDF5 cache, so a re-run
  reuses what is there.
- S2: the detector on the source fields with the source masks (labelled anomalies + synthetic).
  The source CFA statistics come from the source train normals and test images (a mixture, as
  the target is).
- T2: CFA fitted on the target images without labels — the target test images (transductive) or
  the target train images (inductive, `data.transductive: false`) — then the source detector.
- Evaluation: the target labels are unlocked (`TargetImages.open_for_evaluation`) only here.
  Every method is scored on the same target test split from the same cached trajectories.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from refcfa.config import Config, config_digest, save_config
from refcfa.data import make_samples
from refcfa.errors import DatasetError
from refcfa.evaluation.labels import TargetImages

STAGES = ("S1", "T1", "extract", "S2", "T2", "eval")
METHODS = ("residual", "ref_energy", "ref_nocfa", "ref_cfa_ta", "ref_cfa_ta_soa", "ref_cfa")
METRIC_KEYS = ("image_auroc", "pixel_auroc", "aupro", "pixel_ap", "f1_max")
SEGMENTER_FILE = "supervised_segmenter.pth"


@dataclass(frozen=True)
class StageStarted:
    stage: str
    description: str
    total: int = 0


@dataclass(frozen=True)
class StageProgress:
    stage: str
    done: int
    total: int
    message: str = ""


@dataclass(frozen=True)
class StageFinished:
    stage: str
    seconds: float
    message: str = ""
    skipped: bool = False


@dataclass(frozen=True)
class PipelineFinished:
    output_dir: str
    metrics_path: str
    metrics: dict = field(default_factory=dict)
    cancelled: bool = False


@dataclass
class _Group:
    """Images of one role, their cache keys, and (source only) their masks."""

    name: str
    items: list
    keys: list = field(default_factory=list)
    masks: np.ndarray | None = None


class Pipeline:
    """Runs S1 → T1 → extract → S2 → T2 → eval for one config (see the module docstring).

    Args:
        cfg: the run's config; `cfg.output_dir` receives checkpoints, cache, maps and metrics.
        device: overrides `cfg.device`.
        cancel: a `refcfa.engine.trainer.CancelToken`; checked between steps and batches.
    """

    def __init__(self, cfg: Config, device: str | None = None, cancel: Any = None):
        from refcfa.engine.trainer import CancelToken

        self.cfg = cfg
        self.device = device or cfg.device
        self.cancel = cancel or CancelToken()
        self.out = Path(cfg.output_dir)
        self.timings: dict[str, float] = {}
        self.checkpoints: dict[str, Path] = {}
        self.groups: dict[str, _Group] = {}
        self.target: TargetImages | None = None
        self.diagnostics: dict = {}
        self.maps: dict[str, np.ndarray] = {}

    # ------------------------------------------------------------------ data
    def _load_data(self, domains: tuple[str, ...] = ("source", "target")) -> None:
        """Read both domains' sample lists and refuse inputs the method cannot run on."""
        cfg = self.cfg
        self.source_samples = []
        if "source" in domains:
            src = make_samples(cfg.source.root, cfg.source.format, cfg.source.category)
            n_anom = sum(1 for s in src if s.split == "test" and s.label == 1 and s.mask_path is not None)
            if not cfg.detector.synthetic_anomalies and (n_anom == 0 or not cfg.detector.use_labelled):
                raise DatasetError(
                    f"source category {cfg.source.category!r} in {cfg.source.root} has no labelled anomalies "
                    "(test images with masks) and detector.synthetic_anomalies is false: stage S2 has nothing "
                    "to learn from; set detector.synthetic_anomalies=true or use a source with masks"
                )
            self.source_samples = src
        if "target" in domains:
            tgt = make_samples(cfg.target.root, cfg.target.format, cfg.target.category)
            self.target = TargetImages([s for s in tgt if s.split == "test"])
            self.target_train = [s for s in tgt if s.split == "train"]
            if len(self.target) == 0:
                raise DatasetError(
                    f"target category {cfg.target.category!r} in {cfg.target.root} has no test images to "
                    "detect anomalies in; check `target.root`, `target.category` and `target.format`"
                )
            if not cfg.data.transductive and not self.target_train:
                raise DatasetError(
                    f"data.transductive is false but target category {cfg.target.category!r} has no train "
                    "images to fit the alignment on; use the transductive default or add target train images"
                )

    # ------------------------------------------------------------------ S1 / T1
    def _train(self, which: str) -> Iterator[Any]:
        from refcfa.engine.events import TrainFinished
        from refcfa.engine.trainer import DiffusionTrainer

        trainer = DiffusionTrainer(self.cfg, which, self.device, resume=True)
        for ev in trainer.run(self.cancel):
            yield ev
            if isinstance(ev, TrainFinished) and ev.checkpoint:
                self.checkpoints[which] = Path(ev.checkpoint)

    # ------------------------------------------------------------------ extraction
    def _extract(self, domains: tuple[str, ...] = ("source", "target")) -> Iterator[Any]:
        from refcfa.field.cache import TrajectoryCache
        from refcfa.field.extract import FieldExtractor

        cfg = self.cfg
        cache = TrajectoryCache(cfg.cache_dir(), budget_bytes=int(cfg.cache.budget_gb * 2**30))
        self.cache = cache
        jobs = []
        C = None
        if "source" in domains:
            src_ex = FieldExtractor(self.checkpoints["source"], cfg, cache, self.device)
            C = src_ex.channels
            jobs.append((src_ex, self._source_groups(C)))
        if "target" in domains:
            tgt_ex = FieldExtractor(self.checkpoints["target"], cfg, cache, self.device)
            if C is not None and tgt_ex.channels != C:
                raise DatasetError(
                    f"the source network takes {C}-channel images but the target network {tgt_ex.channels}; "
                    "set data.channels so both domains use the same channel count"
                )
            jobs.append((tgt_ex, self._target_groups(tgt_ex.channels)))
        total = sum(len(g.items) for _, gs in jobs for g in gs)
        done = 0
        for ex, gs in jobs:
            for g in gs:
                for prog in ex.extract(g.items, self.cancel, shard=False):
                    if prog.computed or prog.image_id == "":
                        yield StageProgress("extract", done + prog.done, total, g.name)
                done += len(g.items)
                g.keys = ex.keys(g.items)
                self.groups[g.name] = g
                if self.cancel.cancelled:
                    return

    def _source_groups(self, C: int) -> list[_Group]:
        from refcfa.data.torch_dataset import load_masks
        from refcfa.field.extract import ImageItem, items_from_samples
        from refcfa.field.synthetic_anomalies import make_synthetic_anomalies

        cfg = self.cfg
        size = cfg.data.image_size
        src = self.source_samples
        normals = sorted([s for s in src if s.split == "train" and s.label == 0], key=lambda s: s.image_id)
        test = sorted([s for s in src if s.split == "test"], key=lambda s: s.image_id)
        if not cfg.detector.use_labelled:
            test = [s for s in test if s.label == 0]
        g_norm = _Group("source_normal", items_from_samples(normals, size, C, {"role": "source_normal"}))
        g_norm.masks = np.zeros((len(normals), size, size), bool)
        g_test = _Group("source_test", items_from_samples(test, size, C, {"role": "source_test"}))
        g_test.masks = load_masks(test, size) if test else np.zeros((0, size, size), bool)
        groups = [g_norm, g_test]
        if cfg.detector.synthetic_anomalies and cfg.detector.n_synthetic > 0:
            imgs, masks = make_synthetic_anomalies([it.image for it in g_norm.items], cfg.detector.n_synthetic,
                                                   seed=cfg.seed)
            g_syn = _Group("source_synthetic", [
                ImageItem(f"{cfg.source.category}/synthetic/{i:04d}", img, {"role": "source_synthetic"})
                for i, img in enumerate(imgs)
            ])
            g_syn.masks = np.stack(masks).astype(bool)
            groups.append(g_syn)
        return groups

    def _target_groups(self, C: int) -> list[_Group]:
        from refcfa.field.extract import items_from_samples

        cfg = self.cfg
        size = cfg.data.image_size
        unl = self.target.samples_for_loading()
        g_tt = _Group("target_test", items_from_samples(unl, size, C, {"role": "target_test"}))
        tgroups = [g_tt]
        if not cfg.data.transductive:
            g_tr = _Group("target_train", items_from_samples(self.target_train, size, C, {"role": "target_train"}))
            tgroups.append(g_tr)
        return tgroups

    def _fields(self, *names: str):
        from refcfa.field.extract import load_fieldset

        keys = [k for n in names for k in self.groups[n].keys]
        return load_fieldset(self.cache, keys)

    def _masks(self, *names: str) -> np.ndarray:
        return np.concatenate([self.groups[n].masks for n in names])

    # ------------------------------------------------------------------ S2
    def field_signature(self, fields) -> dict:
        cfg = self.cfg
        return {"K": int(fields.K), "C": int(fields.C), "t0": cfg.field.t0, "patch": cfg.field.patch,
                "image_size": cfg.data.image_size, "guidance_w": cfg.field.guidance_w}

    def _segmenter_digest(self) -> str:
        from refcfa.field.cache import file_digest

        return config_digest(self.cfg, ["transformer", "detector", "field", "cfa", "seed"]) + ":" + \
            file_digest(self.checkpoints["source"])[:16]

    def segmenter_path(self) -> Path:
        """`supervised_segmenter.pth` beside the source network's checkpoint (the seed's layout)."""
        ckpt = self.checkpoints.get("source")
        folder = Path(ckpt).parent if ckpt else self.cfg.experiment_dir("source")
        return folder / SEGMENTER_FILE

    def _train_s2(self) -> Iterator[Any]:
        from refcfa.alignment import SourceFieldStats
        from refcfa.field.detector import DetectorEpoch, DetectorTrained, train_detector
        from refcfa.field.segmenter_io import load_segmenter, save_segmenter

        cfg = self.cfg
        path = self.segmenter_path()
        digest = self._segmenter_digest()
        if path.exists():
            try:
                _, meta = load_segmenter(path)
                if (meta.get("extra") or {}).get("run_digest") == digest:
                    yield StageProgress("S2", 1, 1, f"reusing {path}")
                    return
            except Exception:  # noqa: BLE001 - an unusable old file is retrained, not trusted
                pass
        names = [n for n in ("source_normal", "source_test", "source_synthetic") if n in self.groups]
        fields, _, _ = self._fields(*names)
        masks = self._masks(*names)
        n = len(masks)
        rng = np.random.default_rng(cfg.seed)
        order = rng.permutation(n)
        n_val = int(round(cfg.detector.val_fraction * n)) if n >= 5 else 0
        val_idx, tr_idx = np.sort(order[:n_val]), np.sort(order[n_val:])
        train_fs, val = _take(fields, tr_idx), None
        if n_val:
            val = (_take(fields, val_idx), masks[val_idx])
        stats_fields, _, _ = self._fields("source_normal", "source_test")
        stats = SourceFieldStats.from_fields(stats_fields, max_pixels=cfg.cfa.max_pixels, seed=cfg.seed)
        model, history = None, []
        for ev in train_detector(train_fs, masks[tr_idx], cfg.detector, cfg.transformer,
                                 timesteps=fields.timesteps, seed=cfg.seed, device=_torch_device(self.device),
                                 val=val, cancel=self.cancel, crop_size=cfg.detector.crop_size,
                                 num_train_timesteps=cfg.diffusion.num_train_timesteps, delta=cfg.field.delta):
            if isinstance(ev, DetectorEpoch):
                history.append({"epoch": ev.epoch, "loss": ev.loss, "val_loss": ev.val_loss,
                                "val_auroc": ev.val_auroc})
                yield StageProgress("S2", ev.epoch, ev.epochs,
                                    f"loss {ev.loss:.4f}" + (f" val AUROC {ev.val_auroc:.3f}" if ev.val_auroc else ""))
            elif isinstance(ev, DetectorTrained):
                model = ev.model
            yield ev
        if model is None or self.cancel.cancelled:
            return
        save_segmenter(path, model, config_dict=cfg.to_dict(), source_stats=stats.to_dict(),
                       field_signature={**self.field_signature(fields),
                                        "timesteps": [int(t) for t in fields.timesteps]},
                       extra={"run_digest": digest, "history": history, "n_train": int(len(tr_idx)),
                              "n_val": int(n_val)})

    # ------------------------------------------------------------------ T2
    def _run_t2(self) -> Iterator[Any]:
        from refcfa.alignment import CFA, SourceFieldStats
        from refcfa.field.detector import predict_maps, predict_outputs
        from refcfa.field.segmenter_io import load_segmenter

        cfg = self.cfg
        dev = _torch_device(self.device)
        fit_group = "target_test" if cfg.data.transductive else "target_train"
        tfields, images, x0_last = self._fields("target_test")
        fit_fields = tfields if fit_group == "target_test" else self._fields(fit_group)[0]
        model, meta = load_segmenter(self.segmenter_path(), expected_signature=self.field_signature(tfields),
                                     device=dev)
        stats = SourceFieldStats.from_dict(meta["source_stats"])
        bs = cfg.detector.batch_size
        ts = np.asarray(meta["field_signature"]["timesteps"]) if "timesteps" in meta["field_signature"] else None
        self.maps["residual"] = np.abs(x0_last - images).mean(axis=1)
        raw = predict_outputs(model, tfields, bs, dev, timesteps=ts)
        self.maps["ref_energy"] = raw["E_ref"]
        self.maps["ref_nocfa"] = raw["A"]
        self.overlays = {k: raw[k] for k in ("E", "NS", "DV") if k in raw}
        yield StageProgress("T2", 1, 4, "ref_nocfa")
        variants = {
            "ref_cfa_ta": dict(temporal=cfg.cfa.temporal, coral=False, subspace=False),
            "ref_cfa_ta_soa": dict(temporal=cfg.cfa.temporal, coral=cfg.cfa.coral, subspace=False),
            "ref_cfa": dict(temporal=cfg.cfa.temporal, coral=cfg.cfa.coral, subspace=cfg.cfa.subspace),
        }
        for i, (name, switches) in enumerate(variants.items(), start=2):
            cfa = CFA(**switches, coral_reg=cfg.cfa.coral_lambda, n_components=cfg.cfa.subspace_k,
                      max_pixels=cfg.cfa.max_pixels, seed=cfg.seed)
            cfa.fit(stats, fit_fields)
            aligned = cfa.transform(tfields)
            self.maps[name] = predict_maps(model, aligned, bs, dev, timesteps=ts)
            if name == "ref_cfa":
                self.diagnostics = _jsonable(cfa.diagnostics_)
            yield StageProgress("T2", i, 4, name)
        self.target_fields = tfields
        self.target_images = images

    # ------------------------------------------------------------------ evaluation
    def _evaluate(self) -> dict:
        from refcfa.metrics import evaluate_maps

        cfg = self.cfg
        self.target.open_for_evaluation()
        labels = self.target.labels()
        masks = self.target.masks(cfg.data.image_size)
        results = {}
        for name in METHODS:
            m = evaluate_maps(self.maps[name], masks, labels, sigma=cfg.eval.sigma)
            results[name] = {k: float(m[k]) for k in METRIC_KEYS}
        if cfg.eval.oracle:
            results["oracle"] = self._oracle(labels, masks)
        self._write_maps(labels, masks)
        return results

    def _oracle(self, labels: np.ndarray, masks: np.ndarray) -> dict:
        """Upper bound: a detector trained on half the labelled target test fields, scored on the rest."""
        from refcfa.field.detector import DetectorTrained, predict_maps, train_detector
        from refcfa.metrics import evaluate_maps

        cfg = self.cfg
        rng = np.random.default_rng(cfg.seed + 1)
        order = rng.permutation(len(labels))
        half = len(order) // 2
        a, b = np.sort(order[:half]), np.sort(order[half:])
        model = None
        for ev in train_detector(_take(self.target_fields, a), masks[a], cfg.detector, cfg.transformer,
                                 timesteps=self.target_fields.timesteps, seed=cfg.seed,
                                 device=_torch_device(self.device)):
            if isinstance(ev, DetectorTrained):
                model = ev.model
        maps = predict_maps(model, _take(self.target_fields, b), cfg.detector.batch_size, _torch_device(self.device))
        m = evaluate_maps(maps, masks[b], labels[b], sigma=cfg.eval.sigma)
        out = {k: float(m[k]) for k in METRIC_KEYS}
        out["note"] = "scored on the held-out half of the target test split only"
        return out

    def _write_maps(self, labels: np.ndarray, masks: np.ndarray) -> None:
        vis = self.out / "vis_supervised" / self.cfg.target.category
        ids = [s.image_id for s in self.target.unlabelled]
        save_maps(vis, ids, labels, masks, self.maps)
        if not self.cfg.eval.write_maps:
            return
        try:
            from refcfa.evaluation.figures import plot_anomaly_map
        except ImportError:  # pragma: no cover - figures are optional for the metrics
            return
        imgs = ((self.target_images.transpose(0, 2, 3, 1) + 1.0) * 127.5).clip(0, 255).astype(np.uint8)
        for i, image_id in enumerate(ids):
            name = image_id.replace("/", "_")
            plot_anomaly_map(imgs[i], self.maps["ref_cfa"][i], masks[i] if masks[i].any() else None,
                             vis / f"{name}.png", title=f"{self.cfg.target.category} {image_id}: A(u), ref_cfa")

    # ------------------------------------------------------------------ run
    def run(self) -> Iterator[Any]:
        cfg = self.cfg
        self.out.mkdir(parents=True, exist_ok=True)
        t_all = time.perf_counter()
        self._load_data()
        plan = [
            ("S1", "train the source score network", lambda: self._train("source")),
            ("T1", "train the target score network", lambda: self._train("target")),
            ("extract", "compute the Residual-Evolution Fields", self._extract),
            ("S2", "train the Field Transformer and detector on the source", self._train_s2),
            ("T2", "align the target fields (CFA) and detect", self._run_t2),
        ]
        for stage, desc, fn in plan:
            t = time.perf_counter()
            yield StageStarted(stage, desc)
            yield from fn()
            self.timings[stage] = round(time.perf_counter() - t, 2)
            if self.cancel.cancelled:
                yield StageFinished(stage, self.timings[stage], "cancelled")
                yield PipelineFinished(str(self.out), "", {}, cancelled=True)
                return
            yield StageFinished(stage, self.timings[stage])
        t = time.perf_counter()
        yield StageStarted("eval", "score every method on the target test split")
        results = self._evaluate()
        self.timings["eval"] = round(time.perf_counter() - t, 2)
        yield StageFinished("eval", self.timings["eval"])
        self.timings["total"] = round(time.perf_counter() - t_all, 2)
        metrics = self.metrics_document(results)
        path = write_metrics(self.out, metrics)
        save_config(cfg, self.out / "config.yaml")
        yield PipelineFinished(str(self.out), str(path), metrics)

    def metrics_document(self, results: dict) -> dict:
        cfg = self.cfg
        return {
            "source": {"root": cfg.source.root, "format": cfg.source.format, "category": cfg.source.category},
            "target": {"root": cfg.target.root, "format": cfg.target.format, "category": cfg.target.category},
            "transductive": bool(cfg.data.transductive),
            "t1_transductive": bool(cfg.t1_transductive()),
            "note": _setting_note(cfg),
            "n_target_test": len(self.target),
            "field": {"t0": cfg.field.t0, "K": cfg.field.K, "image_size": cfg.data.image_size},
            "methods": results,
            "cfa_diagnostics": self.diagnostics,
            "timings_s": self.timings,
            "checkpoints": {k: str(v) for k, v in self.checkpoints.items()},
        }


def run_stage(cfg: Config, stage: str, device: str | None = None, cancel: Any = None) -> Iterator[Any]:
    """One stage on its own (`S1`, `T1`, `S2`, `T2`) or the whole chain (`all`), as events.

    S2 uses the source network's last checkpoint in `output/<source ExpName>/`; T2 also the
    target's. This is what the GUI's training panel runs in its workers.
    """
    from refcfa.engine.checkpoint import find_last_checkpoint
    from refcfa.engine.trainer import DiffusionTrainer
    from refcfa.errors import CheckpointError
    from refcfa.evaluation import analysis

    if stage in ("S1", "T1"):
        which = "source" if stage == "S1" else "target"
        yield from DiffusionTrainer(cfg, which, device, resume=True).run(cancel)
        return
    if stage == "all":
        yield from Pipeline(cfg, device, cancel).run()
        return
    if stage not in ("S2", "T2"):
        raise ValueError(f"stage {stage!r}: expected one of S1, T1, S2, T2, all")
    ckpt = find_last_checkpoint(cfg.experiment_dir("source"))
    if ckpt is None:
        raise CheckpointError(f"no source score network in {cfg.experiment_dir('source')}: run S1 first")
    fn = analysis.train_localization if stage == "S2" else analysis.run_supervised_localization
    yield from fn(cfg, ckpt, device, cancel)


def save_maps(vis: Path, image_ids: list[str], labels: np.ndarray, masks: np.ndarray,
              maps: dict[str, np.ndarray]) -> Path:
    """``vis/maps.npz`` (written atomically): the image ids, labels, masks and each method's maps
    ``(N, H, W)`` as float32 — the maps the metrics were computed from (the GUI's Results dock and
    ``scripts/compare_methods.py`` recompute image scores from them)."""
    vis = Path(vis)
    vis.mkdir(parents=True, exist_ok=True)
    tmp = vis / "maps.npz.tmp.npz"
    np.savez_compressed(tmp, image_ids=np.array(image_ids), labels=np.asarray(labels, bool),
                        masks=np.asarray(masks, bool), **{k: np.asarray(v, np.float32) for k, v in maps.items()})
    return tmp.replace(vis / "maps.npz")


def write_metrics(out: Path, metrics: dict) -> Path:
    """`out/metrics.json` and `out/metrics.md` (written atomically)."""
    path = out / "metrics.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(metrics, indent=2, sort_keys=False))
    tmp.replace(path)
    md = out / "metrics.md"
    tmp = md.with_suffix(".md.tmp")
    tmp.write_text(metrics_table(metrics))
    tmp.replace(md)
    return path


def metrics_table(metrics: dict) -> str:
    """The methods × metrics table as Markdown."""
    head = "| method | " + " | ".join(METRIC_KEYS) + " |\n|---|" + "---:|" * len(METRIC_KEYS) + "\n"
    rows = []
    for name, vals in metrics["methods"].items():
        rows.append(f"| {name} | " + " | ".join(f"{vals[k]:.3f}" for k in METRIC_KEYS) + " |")
    src, tgt = metrics["source"], metrics["target"]
    title = f"Target `{tgt['category']}` (source `{src['category']}`), {metrics['n_target_test']} test images; {metrics['note']}.\n\n"
    return title + head + "\n".join(rows) + "\n"


def _setting_note(cfg: Config) -> str:
    t1 = "the target network saw the target test images without labels" if cfg.t1_transductive() else \
        "the target network saw only the target train images"
    cfa = "CFA was fitted on the target test images without labels" if cfg.data.transductive else \
        "CFA was fitted on the target train images only"
    return ("transductive" if cfg.data.transductive else "inductive") + f": {t1}; {cfa}"


def _take(fields, idx: np.ndarray):
    from refcfa.alignment.fields import FieldSet

    return FieldSet(R=fields.R[idx], M=fields.M[idx], Q=fields.Q[idx], d=fields.d[idx], timesteps=fields.timesteps)


def _torch_device(spec: str):
    from refcfa.engine.devices import resolve_device

    return resolve_device(spec)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    return obj

