"""Evaluation figures: ROC curves, image-score histograms, CFA diagnostics, anomaly maps
(``output/vis_supervised/``). See :mod:`refcfa.evaluation.figures` for the conventions.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from numbers import Real
from pathlib import Path
from typing import Any, Literal

import numpy as np

from refcfa.evaluation.figures_common import (
    CLASS_COLORS,
    CLASSES,
    as_image,
    as_mask,
    as_vector,
    auroc_note,
    check_mapping,
    class_groups,
    direction_and_auroc,
    draw_gt_contour,
    new_figure,
    note_in_axes,
    rank_auroc,
    save_figure,
    step_ticks,
)

__all__ = [
    "plot_roc_curves",
    "plot_score_histograms",
    "plot_cfa_diagnostics",
    "plot_anomaly_map",
    "roc_curve",
]

#: at most this many points of a ROC curve are drawn (the AUROC always uses all of them)
MAX_ROC_POINTS = 4000


def _binary_labels(labels: Any, name: str, func: str, n: int) -> np.ndarray:
    y = np.asarray(labels)
    if y.shape != (n,):
        raise ValueError(f"{func}: {name} has shape {y.shape}; expected (N,) = ({n},) like the scores")
    if y.dtype != bool:
        if not np.issubdtype(y.dtype, np.number) or not np.all(np.isin(y, (0, 1))):
            raise ValueError(f"{func}: {name} must be bool or 0/1 (1 = anomalous); got other values")
        y = y.astype(bool)
    if y.all() or not y.any():
        raise ValueError(
            f"{func}: {name} holds one class only; a ROC curve needs normal and anomalous samples"
        )
    return y


def roc_curve(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(fpr, tpr)`` from ``(0, 0)`` to ``(1, 1)``, one point per distinct score (ties merged)."""
    order = np.argsort(scores, kind="mergesort")[::-1]
    s, y = scores[order], labels[order]
    last = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]
    tps = np.cumsum(y)[last]
    fps = last + 1 - tps
    return np.r_[0.0, fps / fps[-1]], np.r_[0.0, tps / tps[-1]]


def plot_roc_curves(
    curves: Mapping[str, tuple[Any, Any]],
    path: str | os.PathLike[str],
    title: str | None = None,
) -> Path:
    """ROC curve per method, with its AUROC in the legend and the chance diagonal.

    Args:
        curves: ``curves[method] = (scores (N,), labels (N,))``; labels bool or 0/1 (1 = anomalous),
            both classes present; higher score = more anomalous. ``N`` may differ per method.
        path: output ``.png`` / ``.svg`` / ``.pdf``.
        title: axes title; default "ROC".

    Curves with more than ``MAX_ROC_POINTS`` points are thinned for drawing (evenly over the
    curve, end points kept); the AUROC in the legend uses every sample (rank formula).

    Returns:
        ``path`` as a ``Path``, written atomically.
    """
    func = "plot_roc_curves"
    check_mapping(curves, "curves", func)
    data = []
    for method, pair in curves.items():
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise TypeError(
                f"{func}: curves[{method!r}] must be a (scores, labels) pair; got {type(pair).__name__}"
            )
        s = as_vector(pair[0], f"curves[{method!r}] scores", func)
        y = _binary_labels(pair[1], f"curves[{method!r}] labels", func, s.size)
        auc = rank_auroc(s[~y], s[y])
        fpr, tpr = roc_curve(s, y)
        if fpr.size > MAX_ROC_POINTS:
            keep = np.unique(np.round(np.linspace(0, fpr.size - 1, MAX_ROC_POINTS)).astype(int))
            fpr, tpr = fpr[keep], tpr[keep]
        data.append((method, auc, fpr, tpr, int(y.sum()), int((~y).sum())))

    fig = new_figure(5.2, 5.0)
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], color="0.55", linestyle="--", linewidth=1, label="chance (AUROC 0.500)")
    for method, auc, fpr, tpr, _, _ in data:
        ax.plot(fpr, tpr, linewidth=1.8, label=f"{method} (AUROC {auc:.3f})", drawstyle="default")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.005)
    ax.set_aspect("equal")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.grid(alpha=0.3)
    counts = {(p, n) for *_, p, n in data}
    if len(counts) == 1:
        ((p, n),) = counts
        note_in_axes(ax, f"{p} anomalous / {n} normal", "upper left")
    ax.legend(loc="lower right", fontsize=8.5)
    ax.set_title(title or "ROC", fontsize=12)
    return save_figure(fig, path, func)


def plot_score_histograms(
    scores: Mapping[str, Mapping[str, Any]],
    path: str | os.PathLike[str],
    *,
    title: str | None = None,
    xlabel: str = "image anomaly score",
    bins: int = 20,
) -> Path:
    """Normal vs anomalous image scores, one panel per domain.

    Args:
        scores: ``scores[domain]["normal" | "anomalous"]`` — ``(N,)`` image scores (either class
            may be missing).
        path: output ``.png`` / ``.svg`` / ``.pdf``.
        title: figure title.
        xlabel: x-axis label.
        bins: bins per panel, shared by both classes.

    Each panel with both classes notes the direction and AUROC (:func:`direction_and_auroc`).

    Returns:
        ``path`` as a ``Path``, written atomically.
    """
    func = "plot_score_histograms"
    check_mapping(scores, "scores", func)
    data = {}
    for dom, groups in scores.items():
        class_groups(groups, f"scores[{dom!r}]", func)
        data[dom] = {c: as_vector(groups[c], f"scores[{dom!r}][{c!r}]", func) for c in CLASSES if c in groups}

    from matplotlib.ticker import MaxNLocator

    fig = new_figure(4.4 * len(data), 3.8)
    axes = fig.subplots(1, len(data), squeeze=False)[0]
    for ax, (dom, groups) in zip(axes, data.items(), strict=True):
        pooled = np.concatenate(list(groups.values()))
        lo, hi = float(pooled.min()), float(pooled.max())
        if hi <= lo:
            lo, hi = lo - 0.5, hi + 0.5
        edges = np.linspace(lo, hi, bins + 1)
        peak = 0
        for c, v in groups.items():
            counts, _ = np.histogram(v, bins=edges)
            peak = max(peak, int(counts.max()))
            ax.stairs(counts, edges, color=CLASS_COLORS[c], fill=True, alpha=0.3)
            ax.stairs(counts, edges, color=CLASS_COLORS[c], linewidth=1.5, label=f"{c} (n = {v.size})")
        ax.set_ylim(0, max(peak, 1) * 1.35)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        if len(groups) == 2:
            direction, auc = direction_and_auroc(groups["normal"], groups["anomalous"])
            note_in_axes(ax, auroc_note(direction, auc), "upper left")
        ax.legend(loc="upper right", fontsize=8.5, bbox_to_anchor=(1.0, 0.86))
        ax.set_xlabel(xlabel)
        ax.set_ylabel("number of images")
        ax.set_title(dom, fontsize=11)
        ax.grid(alpha=0.3)
    fig.suptitle(title or "Image anomaly scores: normal vs anomalous", fontsize=12)
    return save_figure(fig, path, func)


# (part name, accepted aliases, panel title, metric key stem, y label)
_CFA_PARTS = (
    ("temporal", ("temporal", "ta"), "temporal alignment (TA)", "dtw_cost", "DTW cost"),
    ("coral", ("coral", "soa"), "second-order alignment (SOA)", "coral_distance", "CORAL distance"),
    (
        "subspace",
        ("subspace", "dsa"),
        "directional subspace (DSA)",
        "principal_angles",
        "principal angle (degrees)",
    ),
)
_BEFORE_AFTER_COLORS = ("0.6", "#009E73")
#: before/after values further apart than this factor are drawn on a log y axis
LOG_BAR_RATIO = 50.0


def _scalar(x: Any, name: str, func: str) -> float:
    if isinstance(x, np.ndarray) and x.size == 1:
        x = x.item()
    if isinstance(x, bool) or not isinstance(x, Real) or not math.isfinite(float(x)):
        raise ValueError(f"{func}: {name} must be a finite number; got {x!r}")
    return float(x)


def _part(diagnostics: Mapping[str, Any], aliases: tuple[str, ...], func: str) -> tuple[str, Any]:
    for key in aliases:
        if key in diagnostics:
            return key, diagnostics[key]
    return aliases[0], None


def plot_cfa_diagnostics(
    diagnostics: Mapping[str, Any],
    path: str | os.PathLike[str],
    *,
    angle_unit: Literal["rad", "deg"] = "rad",
    title: str | None = None,
) -> Path:
    """Before/after bars for the three CFA parts (DESIGN.md 6).

    Args:
        diagnostics: ``{"temporal": {"dtw_cost_before": x, "dtw_cost_after": y},
            "coral": {"coral_distance_before": …, "coral_distance_after": …},
            "subspace": {"principal_angles_before": […], "principal_angles_after": […]}}``.
            Part names ``ta`` / ``soa`` / ``dsa`` are accepted too. A missing part, ``None``, an
            empty dict or ``{"enabled": False}`` is drawn as "switched off"; a part that lacks one
            of its two values says so in the panel. Other keys are ignored.
        path: output ``.png`` / ``.svg`` / ``.pdf``.
        angle_unit: unit of the principal angles given (``"rad"``, as
            ``scipy.linalg.subspace_angles`` returns, or ``"deg"``); they are drawn in degrees.
        title: figure title.

    Returns:
        ``path`` as a ``Path``, written atomically.
    """
    func = "plot_cfa_diagnostics"
    check_mapping(diagnostics, "diagnostics", func, nonempty=False)
    if angle_unit not in ("rad", "deg"):
        raise ValueError(f"{func}: angle_unit must be 'rad' or 'deg'; got {angle_unit!r}")

    fig = new_figure(12.0, 3.9)
    axes = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1, 1, 1.5]})
    labels = ("before", "after")
    for ax, (_, aliases, panel_title, stem, ylabel) in zip(axes, _CFA_PARTS, strict=True):
        key, part = _part(diagnostics, aliases, func)
        ax.set_title(panel_title, fontsize=11)
        if part is None or (isinstance(part, Mapping) and (not part or part.get("enabled", True) is False)):
            _empty_panel(ax, "switched off")
            continue
        check_mapping(part, f"diagnostics[{key!r}]", func, nonempty=False)
        names = [f"{stem}_{w}" for w in labels]
        present = [n for n in names if part.get(n) is not None]
        if not present:
            _empty_panel(ax, f"not reported\n(no {names[0]!r} / {names[1]!r})")
            continue
        missing = [n for n in names if n not in present]
        if stem == "principal_angles":
            _angle_bars(ax, part, names, key, angle_unit, func)
        else:
            vals = [
                _scalar(part[n], f"diagnostics[{key!r}][{n!r}]", func) if n in present else 0.0 for n in names
            ]
            bars = ax.bar(labels, vals, color=_BEFORE_AFTER_COLORS, width=0.6, edgecolor="0.2", linewidth=0.6)
            ax.bar_label(
                bars,
                labels=[f"{v:.3g}" if n in present else "n/a" for v, n in zip(vals, names, strict=True)],
                fontsize=9,
                padding=2,
            )
            _value_axis(ax, [v for v, n in zip(vals, names, strict=True) if n in present])
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3, axis="y")
        if missing:
            note_in_axes(ax, "missing: " + ", ".join(missing), "upper left", fontsize=7.5)
    fig.suptitle(title or "Cross-domain Field Alignment diagnostics (before / after)", fontsize=12)
    return save_figure(fig, path, func)


def _value_axis(ax: Any, vals: list[float]) -> None:
    """Linear y from 0, or log y when two positive values differ by more than LOG_BAR_RATIO
    (a CORAL distance typically drops by orders of magnitude; a linear bar would vanish)."""
    from matplotlib.ticker import FormatStrFormatter

    top = max(vals)
    if min(vals) > 0 and top / min(vals) > LOG_BAR_RATIO:
        ax.set_yscale("log")
        ax.set_ylim(min(vals) / 3, top * 4)
    else:
        ax.set_ylim(0, top * 1.25 if top > 0 else 1.0)
        ax.yaxis.set_major_formatter(FormatStrFormatter("%.3g"))


def _empty_panel(ax: Any, text: str) -> None:
    ax.text(
        0.5,
        0.5,
        text,
        transform=ax.transAxes,
        ha="center",
        va="center",
        fontsize=10,
        color="0.4",
        style="italic",
    )
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_color("0.8")


def _angle_bars(ax: Any, part: Mapping[str, Any], names: list[str], key: str, unit: str, func: str) -> None:
    width = 0.38
    limit = math.pi / 2 + 1e-6 if unit == "rad" else 90 + 1e-4
    n_max = 0
    for i, (n, color) in enumerate(zip(names, _BEFORE_AFTER_COLORS, strict=True)):
        if part.get(n) is None:
            continue
        label = f"diagnostics[{key!r}][{n!r}]"
        a = as_vector(np.atleast_1d(np.asarray(part[n], dtype=float)), label, func)
        if a.min() < -1e-9 or a.max() > limit:
            hint = " — pass angle_unit='deg' if they are in degrees" if unit == "rad" else ""
            raise ValueError(
                f"{func}: {label} must lie in [0, {'π/2' if unit == 'rad' else '90'}] {unit}; "
                f"got range [{a.min():.3g}, {a.max():.3g}]{hint}"
            )
        deg = np.degrees(a) if unit == "rad" else a
        k = np.arange(1, deg.size + 1)
        ax.bar(
            k + (i - 0.5) * width,
            deg,
            width=width,
            color=color,
            edgecolor="0.2",
            linewidth=0.6,
            label=n.rsplit("_", 1)[1],
        )
        n_max = max(n_max, deg.size)
    ax.set_xlabel("principal angle index k")
    ax.set_xticks(step_ticks(n_max) if n_max else [])
    ax.set_ylim(0, 108)  # the band above 90° holds the legend
    ax.set_yticks([0, 15, 30, 45, 60, 75, 90])
    ax.axhline(90, color="0.5", linewidth=0.8)
    ax.legend(loc="upper center", ncol=2, fontsize=8.5, borderaxespad=0.3)


def plot_anomaly_map(
    image: Any,
    amap: Any,
    mask: Any | None,
    path: str | os.PathLike[str],
    title: str | None = None,
    *,
    score: float | None = None,
    vmin: float | None = None,
    vmax: float | None = None,
    cmap: str = "turbo",
    alpha: float = 0.5,
) -> Path:
    """Input, anomaly map with colour bar, and overlay with the ground-truth outline.

    Args:
        image: ``(H, W, C)`` uint8, ``C ∈ {1, 3}``.
        amap: ``(H, W)`` anomaly map ``A(u)``, higher = more anomalous.
        mask: ``(H, W)`` bool ground truth or ``None``.
        path: output ``.png`` / ``.svg`` / ``.pdf``.
        title: figure title (e.g. the image id).
        score: image score to print above the map.
        vmin, vmax: colour range; by default ``[0, 1]`` when the map lies in it (sigmoid maps
            compare across images), else the map's own min/max.
        cmap: colour map of the map and the overlay.
        alpha: opacity of the map in the overlay.

    Returns:
        ``path`` as a ``Path``, written atomically.
    """
    func = "plot_anomaly_map"
    img = as_image(image, func)
    H, W = img.shape[:2]
    a = np.asarray(amap)
    if a.shape != (H, W):
        raise ValueError(f"{func}: amap has shape {a.shape}; expected (H, W) = {(H, W)} like the image")
    a = as_vector(a.astype(np.float64).ravel(), "amap", func).reshape(H, W)
    gt = as_mask(mask, func, (H, W))
    lo, hi = float(a.min()), float(a.max())
    if vmin is None and vmax is None and lo >= 0.0 and hi <= 1.0:
        vmin, vmax = 0.0, 1.0
    vmin = lo if vmin is None else float(vmin)
    vmax = hi if vmax is None else float(vmax)
    if vmax <= vmin:
        vmax = vmin + 1e-12

    fig = new_figure(11.0, 3.9)
    axes = fig.subplots(1, 3)
    gray = img.shape[2] == 1
    shown = img[:, :, 0] if gray else img
    img_kw = {"cmap": "gray", "vmin": 0, "vmax": 255} if gray else {}
    axes[0].imshow(shown, interpolation="nearest", **img_kw)
    axes[0].set_title("input", fontsize=11)
    im = axes[1].imshow(a, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    axes[1].set_title(
        "anomaly map" + (f" (image score {score:.3g})" if score is not None else ""), fontsize=11
    )
    axes[2].imshow(shown, interpolation="nearest", **img_kw)
    axes[2].imshow(a, cmap=cmap, vmin=vmin, vmax=vmax, alpha=alpha, interpolation="bilinear")
    has_gt = draw_gt_contour(axes[2], gt, linewidth=1.2)
    axes[2].set_title("overlay" + (" + GT (white outline)" if has_gt else ""), fontsize=11)
    cb = fig.colorbar(im, ax=list(axes[1:]), shrink=0.9, pad=0.02)
    cb.set_label("anomaly score A(u)")
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=12)
    return save_figure(fig, path, func)
