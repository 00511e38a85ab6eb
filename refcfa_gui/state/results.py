"""The latest evaluation, read from an output folder (no Qt): metrics, image scores, ROC curves.

:func:`find_metrics` locates ``metrics.json`` (the chain's ``<output_dir>/metrics.json``, else the
newest T2 one under ``vis_supervised/*/``); :func:`load_results` reads it with the anomaly maps the
same run wrote (``vis_supervised/<target category>/maps.npz``) and derives per method the image
scores (maximum of the Gaussian-smoothed map, ``refcfa.metrics.smooth_and_max`` with
``default_sigma`` unless the run's config set ``eval.sigma``) and the image-level ROC curve.

Numbers in the metrics table are the ones the run wrote (``metrics.json``); the ROC curves and
histograms are recomputed from ``maps.npz`` (float32, the maps the metrics were computed from; runs
before 2026-12 stored float16, whose ties can move a curve's AUROC in the last digits). Loading
smooths every map: run it off the GUI thread.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

METRIC_KEYS = ("image_auroc", "pixel_auroc", "aupro", "pixel_ap", "f1_max")
METRIC_LABELS = {
    "image_auroc": "image AUROC",
    "pixel_auroc": "pixel AUROC",
    "aupro": "AUPRO (0.3)",
    "pixel_ap": "pixel AP",
    "f1_max": "F1-max",
}
#: the CFA diagnostics metrics.json holds, with their labels, in display order
DIAGNOSTIC_ROWS = (
    ("dtw_cost", "DTW cost (TA)"),
    ("index_cost", "index cost (TA)"),
    ("coral_distance", "CORAL distance (SOA)"),
    ("mean_shift", "mean shift (SOA)"),
    ("principal_angles", "principal angles, ° (DSA)"),
)


@dataclass
class Results:
    """One evaluation. ``scores[method]`` ``(N,)`` image scores; ``roc[method] = (fpr, tpr, auroc)``."""

    metrics_path: str
    metrics: dict
    maps_path: str = ""
    image_ids: list[str] = field(default_factory=list)
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    scores: dict[str, np.ndarray] = field(default_factory=dict)
    roc: dict[str, tuple[np.ndarray, np.ndarray, float]] = field(default_factory=dict)
    sigma: float | None = None
    note: str = ""

    @property
    def methods(self) -> dict[str, dict]:
        return dict(self.metrics.get("methods") or {})

    @property
    def diagnostics(self) -> dict:
        return dict(self.metrics.get("cfa_diagnostics") or {})

    @property
    def target_category(self) -> str:
        return str((self.metrics.get("target") or {}).get("category", ""))

    @property
    def source_category(self) -> str:
        return str((self.metrics.get("source") or {}).get("category", ""))

    def title(self) -> str:
        m = self.metrics
        tgt, src = self.target_category or "?", self.source_category or "?"
        n = m.get("n_target_test", len(self.image_ids))
        mode = "transductive" if m.get("transductive", True) else "inductive"
        return f"target {tgt} (source {src}) · {n} test images · {mode}"


def find_metrics(output_dir: str | os.PathLike[str]) -> Path | None:
    """``<output_dir>/metrics.json``, else the newest ``vis_supervised/*/metrics.json``, else None.

    ``output_dir`` may also be a ``metrics.json`` file.
    """
    p = Path(output_dir)
    if p.is_file():
        return p
    if (p / "metrics.json").is_file():
        return p / "metrics.json"
    found = sorted(
        (p / "vis_supervised").glob("*/metrics.json"), key=lambda q: q.stat().st_mtime, reverse=True
    )
    return found[0] if found else None


def _run_sigma(metrics_path: Path, metrics: dict, size: int) -> float:
    """``eval.sigma`` of the run's saved config when set, else ``default_sigma(size)``."""
    from refcfa.metrics import default_sigma

    for cfg_path in (metrics_path.parent / "config.yaml", metrics_path.parent.parent.parent / "config.yaml"):
        if cfg_path.is_file():
            import yaml

            try:
                data = yaml.safe_load(cfg_path.read_text(encoding="utf-8")) or {}
            except (OSError, yaml.YAMLError):
                break
            sigma = (data.get("eval") or {}).get("sigma")
            if isinstance(sigma, (int, float)) and not isinstance(sigma, bool):
                return float(sigma)
            break
    return default_sigma(size)


def roc_points(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """``(fpr, tpr, auroc)`` of image scores; ties merged as in ``refcfa.metrics.image_auroc``."""
    from refcfa.metrics import binary_clf_curve, image_auroc

    y = labels.astype(bool)
    fps, tps, _ = binary_clf_curve(scores.astype(np.float64), y)
    fpr = np.r_[0.0, fps / max(1, fps[-1])]
    tpr = np.r_[0.0, tps / max(1, tps[-1])]
    return fpr, tpr, float(image_auroc(scores, y))


def load_results(path: str | os.PathLike[str]) -> Results:
    """Read an evaluation from an output folder or a ``metrics.json`` (see the module docstring).

    Raises ``FileNotFoundError`` when there is no metrics.json, ``ValueError`` when it is not one.
    """
    metrics_path = find_metrics(path)
    if metrics_path is None:
        raise FileNotFoundError(
            f"no metrics.json in {path} (nor in {Path(path) / 'vis_supervised'}/*/): run the chain "
            "(Run all) or stage T2 first"
        )
    try:
        metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{metrics_path} is not readable JSON: {exc}") from None
    if not isinstance(metrics, dict) or not isinstance(metrics.get("methods"), dict):
        raise ValueError(
            f"{metrics_path} holds no `methods` table: expected the metrics.json of `refcfa pipeline`"
        )
    res = Results(str(metrics_path), metrics)
    category = res.target_category
    candidates = [
        metrics_path.parent / "vis_supervised" / category / "maps.npz",
        metrics_path.parent / "maps.npz",
    ]
    maps_path = next((c for c in candidates if c.is_file()), None)
    if maps_path is None:
        res.note = (
            "no maps.npz beside metrics.json: ROC curves, histograms and per-image scores are unavailable"
        )
        return res
    with np.load(maps_path, allow_pickle=False) as z:
        res.maps_path = str(maps_path)
        res.image_ids = [str(s) for s in z["image_ids"]]
        res.labels = np.asarray(z["labels"]).astype(bool)
        names = [k for k in z.files if k not in ("image_ids", "labels", "masks")]
        maps = {k: np.asarray(z[k], dtype=np.float32) for k in names}
    if not maps:
        res.note = f"{maps_path} holds no anomaly maps"
        return res
    from refcfa.metrics import smooth_and_max

    size = next(iter(maps.values())).shape[-1]
    res.sigma = _run_sigma(metrics_path, metrics, int(size))
    order = [m for m in res.methods if m in maps] + [m for m in maps if m not in res.methods]
    both = res.labels.any() and (~res.labels).any()
    for name in order:
        res.scores[name] = smooth_and_max(maps[name], res.sigma)
        if both:
            res.roc[name] = roc_points(res.scores[name], res.labels)
    if not both:
        res.note = "the test split has one class only: no ROC curves"
    return res


def nested_diagnostics(diag: dict[str, Any]) -> dict[str, dict]:
    """The flat ``cfa_diagnostics`` of metrics.json → ``plot_cfa_diagnostics``' nested layout."""
    parts = {
        "temporal": ("dtw_cost",),
        "coral": ("coral_distance", "mean_shift"),
        "subspace": ("principal_angles",),
    }
    out: dict[str, dict] = {}
    for part, stems in parts.items():
        values = {
            f"{s}_{w}": diag[f"{s}_{w}"] for s in stems for w in ("before", "after") if f"{s}_{w}" in diag
        }
        if values:
            out[part] = values
    return out


def export_figures(res: Results, folder: str | os.PathLike[str], fmt: str = "png") -> list[Path]:
    """ROC curves, score histograms and the CFA diagnostics as figures in ``folder``.

    Uses ``refcfa.evaluation.figures`` (matplotlib, imported here): run it off the GUI thread.
    """
    from refcfa.evaluation.figures import plot_cfa_diagnostics, plot_roc_curves, plot_score_histograms

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    title = f"{res.target_category} (source {res.source_category})"
    if res.roc:
        curves = {m: (res.scores[m], res.labels) for m in res.roc}
        written.append(plot_roc_curves(curves, folder / f"roc.{fmt}", title=f"Image-level ROC, {title}"))
    if res.scores:
        hist = {}
        for m in ("ref_cfa", "residual"):
            if m in res.scores:
                s = res.scores[m]
                hist[f"target: {m}"] = {
                    c: v for c, v in (("normal", s[~res.labels]), ("anomalous", s[res.labels])) if v.size
                }
        written.append(
            plot_score_histograms(
                hist, folder / f"score_histograms.{fmt}", title=f"Image scores, normal vs anomalous — {title}"
            )
        )
    diag = nested_diagnostics(res.diagnostics)
    if diag:
        written.append(plot_cfa_diagnostics(diag, folder / f"cfa_diagnostics.{fmt}", angle_unit="deg"))
    return written


__all__ = [
    "DIAGNOSTIC_ROWS",
    "METRIC_KEYS",
    "METRIC_LABELS",
    "Results",
    "export_figures",
    "find_metrics",
    "load_results",
    "nested_diagnostics",
    "roc_points",
]
