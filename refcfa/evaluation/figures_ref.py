"""Figures of the Residual-Evolution Field and its statistics (``--analyze_residuals`` and
``--analyze_transformer``): REF dynamics over the reverse steps, field maps, E/NS/DV distributions,
attention weights over steps. See :mod:`refcfa.evaluation.figures` for the conventions.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from refcfa.evaluation.figures_common import (
    CLASS_COLORS,
    CLASSES,
    DOMAIN_LINESTYLES,
    as_image,
    as_mask,
    as_matrix,
    as_timesteps,
    as_vector,
    auroc_note,
    check_mapping,
    class_groups,
    direction_and_auroc,
    draw_gt_contour,
    fmt_number,
    legend_columns,
    new_figure,
    note_in_axes,
    plain_log_yaxis,
    save_figure,
    setup_step_axis,
)

__all__ = [
    "plot_ref_dynamics",
    "plot_field_maps",
    "plot_statistic_distributions",
    "plot_attention_over_steps",
]

PRIMITIVES = ("R", "M", "Q")
FIELD_TITLES = {"R": "gradient residual", "M": "directional offset", "Q": "path-integrated drift"}
FIELD_YLABELS = {
    "R": "$R_n$ (score-residual RMS)",
    "M": "$M_n$ (directional offset)",
    "Q": "$Q_n$ (path-integrated drift)",
}
STAT_XLABELS = {
    "E": r"E (energy, $\Sigma_n\, a_n R_n^2$)",
    "NS": "NS (non-stationarity)",
    "DV": "DV (directional variability)",
}
#: a positive series spanning more than this max/min ratio is drawn on a log y axis
LOG_Y_RATIO = 10.0


def _ordered_fields(keys: Collection[str]) -> list[str]:
    """R, M, Q first (DESIGN.md 3 order), then any other key in the given order."""
    return [f for f in PRIMITIVES if f in keys] + [k for k in keys if k not in PRIMITIVES]


def _domain_style(i: int) -> str:
    return DOMAIN_LINESTYLES[i % len(DOMAIN_LINESTYLES)]


def plot_ref_dynamics(
    timesteps: Any,
    series: Mapping[str, Mapping[str, Any]],
    path: str | os.PathLike[str],
    title: str | None = None,
) -> Path:
    """REF primitives along the reverse trajectory: per-step median and 5–95 % band by class.

    Args:
        timesteps: ``(K,)`` timesteps ``s_1 = t0 > … > s_K`` (DESIGN.md 2).
        series: ``series[field]["normal" | "anomalous"]`` — ``(P, K)`` per-pixel sequences of a
            sample of pixels (``P`` may differ per class; either class may be missing). One panel
            per field, ``R, M, Q`` first.
        path: output ``.png`` (150 dpi), ``.svg`` or ``.pdf``.
        title: figure title; default "REF dynamics along the reverse trajectory".

    The x axis is the reverse step ``n = 1..K`` with ``s_n`` on the top axis. A panel uses a log
    y axis when every plotted value is positive and they span more than a factor
    ``LOG_Y_RATIO`` (10).

    Returns:
        ``path`` as a ``Path``, written atomically.
    """
    func = "plot_ref_dynamics"
    ts = as_timesteps(timesteps, func)
    K = ts.size
    check_mapping(series, "series", func)
    fields = _ordered_fields(list(series))
    data: dict[str, dict[str, np.ndarray]] = {}
    for f in fields:
        groups = class_groups(series[f], f"series[{f!r}]", func)
        data[f] = {c: as_matrix(groups[c], f"series[{f!r}][{c!r}]", func, K) for c in CLASSES if c in groups}

    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    fig = new_figure(4.3 * len(fields), 3.9)
    axes = fig.subplots(1, len(fields), squeeze=False)[0]
    n = np.arange(1, K + 1)
    counts: dict[str, set[int]] = {c: set() for c in CLASSES}
    for ax, f in zip(axes, fields, strict=True):
        plotted = []
        for c, arr in data[f].items():
            lo, med, hi = np.percentile(arr, [5, 50, 95], axis=0)
            ax.fill_between(n, lo, hi, color=CLASS_COLORS[c], alpha=0.22, linewidth=0)
            ax.plot(n, med, color=CLASS_COLORS[c], marker="o", markersize=3, linewidth=1.6)
            plotted.extend([lo, hi])
            counts[c].add(arr.shape[0])
        values = np.concatenate(plotted)
        if values.min() > 0 and values.max() / values.min() > LOG_Y_RATIO:
            plain_log_yaxis(ax)
        setup_step_axis(ax, ts)
        ax.set_ylabel(FIELD_YLABELS.get(f, f"${f}_n$"))
        ax.set_title(FIELD_TITLES.get(f, f), fontsize=11)
        ax.grid(alpha=0.3, which="major")

    handles = []
    for c in CLASSES:
        if counts[c]:
            p = "/".join(str(v) for v in sorted(counts[c]))
            handles.append(
                Line2D(
                    [], [], color=CLASS_COLORS[c], marker="o", markersize=3, label=f"{c}: median (P = {p} px)"
                )
            )
            handles.append(Patch(facecolor=CLASS_COLORS[c], alpha=0.22, label=f"{c}: 5–95 % band"))
    ncol = legend_columns(len(handles), fig.get_figwidth(), 2.6)
    fig.legend(handles=handles, loc="outside lower center", ncol=ncol, fontsize=9, frameon=False)
    fig.suptitle(title or "REF dynamics along the reverse trajectory", fontsize=12)
    return save_figure(fig, path, func)


def plot_field_maps(
    image: Any,
    mask: Any | None,
    fields: Mapping[str, Any],
    steps: Sequence[int],
    path: str | os.PathLike[str],
    *,
    timesteps: Any | None = None,
    title: str | None = None,
    gt_on_fields: bool = True,
    cmap: str = "inferno",
) -> Path:
    """Grid of field maps: rows = fields (R, M, Q first), columns = the input then the chosen steps.

    Args:
        image: ``(H, W, C)`` uint8, ``C ∈ {1, 3}`` (``(H, W)`` taken as grayscale).
        mask: ``(H, W)`` bool ground truth or ``None``; drawn as a white outline on a black halo.
        fields: ``fields[name]`` — ``(K, H, W)`` per-step maps (same ``K`` for all fields).
        steps: reverse-step numbers ``n`` in ``1..K`` (1-based, as in DESIGN.md 2), one column each.
        path: output ``.png`` / ``.svg`` / ``.pdf``.
        timesteps: optional ``(K,)`` ``s_n`` to print in the column titles.
        title: figure title.
        gt_on_fields: also outline the ground truth on the field maps.
        cmap: colour map of the fields.

    Colour scale: shared by all steps of one field (one colour bar per row), from the 1st to the
    99th percentile of that field's values over the shown steps; values outside are clipped and
    the colour bar shows an arrow for them.

    Returns:
        ``path`` as a ``Path``, written atomically.
    """
    func = "plot_field_maps"
    img = as_image(image, func)
    H, W = img.shape[:2]
    gt = as_mask(mask, func, (H, W))
    check_mapping(fields, "fields", func)
    names = _ordered_fields(list(fields))
    maps: dict[str, np.ndarray] = {}
    K = -1
    for f in names:
        arr = np.asarray(fields[f])
        if arr.ndim != 3 or arr.shape[1:] != (H, W):
            raise ValueError(
                f"{func}: fields[{f!r}] has shape {arr.shape}; expected (K, H, W) = (K, {H}, {W})"
            )
        if K >= 0 and arr.shape[0] != K:
            raise ValueError(
                f"{func}: fields[{f!r}] has K = {arr.shape[0]} steps; the other fields have K = {K}"
            )
        K = arr.shape[0]
        maps[f] = arr
    steps = list(steps)
    if not steps:
        raise ValueError(f"{func}: steps is empty; pass reverse-step numbers n in 1..{K}")
    for s in steps:
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or not 1 <= s <= K:
            raise ValueError(
                f"{func}: steps contains {s!r}; steps are reverse-step numbers n in 1..{K} (1-based, not indices)"
            )
    ts = None
    if timesteps is not None:
        ts = as_timesteps(timesteps, func)
        if ts.size != K:
            raise ValueError(
                f"{func}: timesteps has shape {ts.shape}; expected (K,) = ({K},) like the fields"
            )
    for f in names:
        sel = maps[f][[s - 1 for s in steps]].astype(np.float32)
        if not np.all(np.isfinite(sel)):
            raise ValueError(
                f"{func}: fields[{f!r}] has non-finite values at the chosen steps; replace them first"
            )
        maps[f] = sel

    from matplotlib.colors import Normalize

    ncols = 1 + len(steps)
    cell = 2.1
    fig = new_figure(cell * ncols + 1.3, cell * len(names) + 0.9)
    axes = fig.subplots(len(names), ncols, squeeze=False)
    img_kw = {"cmap": "gray", "vmin": 0, "vmax": 255} if img.shape[2] == 1 else {}
    shown = img[:, :, 0] if img.shape[2] == 1 else img
    for r, f in enumerate(names):
        ax0 = axes[r, 0]
        ax0.imshow(shown, interpolation="nearest", **img_kw)
        draw_gt_contour(ax0, gt)
        ax0.set_ylabel(f"{f}: {FIELD_TITLES.get(f, f)}", fontsize=10)
        vals = maps[f]
        vmin, vmax = (float(v) for v in np.percentile(vals, [1, 99]))
        if vmax <= vmin:
            vmin, vmax = float(vals.min()), float(vals.max())
        if vmax <= vmin:
            vmax = vmin + 1e-12
        norm = Normalize(vmin=vmin, vmax=vmax)
        im = None
        for j in range(len(steps)):
            ax = axes[r, j + 1]
            im = ax.imshow(vals[j], cmap=cmap, norm=norm, interpolation="nearest")
            if gt_on_fields:
                draw_gt_contour(ax, gt, linewidth=0.7)
        below, above = vals.min() < vmin, vals.max() > vmax
        extend = "both" if below and above else ("min" if below else ("max" if above else "neither"))
        cb = fig.colorbar(im, ax=list(axes[r, 1:]), extend=extend, shrink=0.9, pad=0.02)
        cb.set_label(FIELD_YLABELS.get(f, f"${f}_n$").split(" (")[0], fontsize=10)
        for ax in axes[r]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_title("input" + (" + GT" if gt is not None else ""), fontsize=10)
    for j, s in enumerate(steps):
        label = f"n = {s}" + (f", $s_n$ = {fmt_number(ts[s - 1])}" if ts is not None else "")
        axes[0, j + 1].set_title(label, fontsize=10)
    default = "REF field maps" + (" (ground truth outlined)" if gt is not None and gt.any() else "")
    fig.suptitle(title or default, fontsize=12)
    return save_figure(fig, path, func)


def _hist_edges(values: np.ndarray, log: bool, bins: int) -> np.ndarray:
    lo, hi = np.percentile(values, [0.5, 99.5])
    if hi <= lo:
        lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        lo, hi = (lo / 2, lo * 2) if log else (lo - 0.5, hi + 0.5)
    return np.geomspace(lo, hi, bins + 1) if log else np.linspace(lo, hi, bins + 1)


def plot_statistic_distributions(
    stats: Mapping[str, Mapping[str, Mapping[str, Any]]],
    path: str | os.PathLike[str],
    *,
    log_x: Collection[str] = ("E",),
    bins: int | None = None,
    title: str | None = None,
) -> Path:
    """Distributions of the adaptive statistics, normal vs anomalous, per domain.

    Args:
        stats: ``stats[domain][name]["normal" | "anomalous"]`` — ``(N,)`` pixel values (e.g.
            domains ``source``/``target``, names ``E``, ``NS``, ``DV``; any names allowed).
        path: output ``.png`` / ``.svg`` / ``.pdf``.
        log_x: statistic names (case-insensitive) drawn on a log x axis with log-spaced bins —
            only when all their values are positive, otherwise linear with a note.
        bins: number of bins, shared by all curves of a panel, spanning the 0.5–99.5 %
            percentiles of the panel's pooled values; default ``sqrt`` of the smallest class
            size in the panel, clipped to 10..60.
        title: figure title.

    One panel per statistic. Curves are densities normalised by each class's total count
    (per unit x; per decade on a log axis), so mass outside the binned range is not spread back.
    Each panel notes, per domain with both classes, the direction (median anomalous > median
    normal → "higher = anomalous", else "lower = anomalous") and the AUROC of the raw statistic
    (rank formula; below 0.5 also shown inverted) — see :func:`direction_and_auroc`.

    Returns:
        ``path`` as a ``Path``, written atomically.
    """
    func = "plot_statistic_distributions"
    check_mapping(stats, "stats", func)
    domains = list(stats)
    names: list[str] = []
    data: dict[str, dict[str, dict[str, np.ndarray]]] = {}
    for dom in domains:
        check_mapping(stats[dom], f"stats[{dom!r}]", func)
        data[dom] = {}
        for name, groups in stats[dom].items():
            class_groups(groups, f"stats[{dom!r}][{name!r}]", func)
            data[dom][name] = {
                c: as_vector(groups[c], f"stats[{dom!r}][{name!r}][{c!r}]", func)
                for c in CLASSES
                if c in groups
            }
            if name not in names:
                names.append(name)
    log_names = {s.lower() for s in log_x}

    from matplotlib.lines import Line2D

    fig = new_figure(4.4 * len(names), 4.0)
    axes = fig.subplots(1, len(names), squeeze=False)[0]
    for ax, name in zip(axes, names, strict=True):
        pooled = np.concatenate([v for dom in domains for v in data[dom].get(name, {}).values()])
        log = name.lower() in log_names
        lines = []
        if log and pooled.min() <= 0:
            log = False
            lines.append("linear x: non-positive values")
        smallest = min(v.size for dom in domains for v in data[dom].get(name, {}).values())
        n_bins = bins if bins is not None else int(np.clip(np.sqrt(smallest), 10, 60))
        edges = _hist_edges(pooled, log, n_bins)
        widths = np.diff(np.log10(edges)) if log else np.diff(edges)
        peak = 0.0
        for i, dom in enumerate(domains):
            groups = data[dom].get(name, {})
            for c, v in groups.items():
                counts, _ = np.histogram(v, bins=edges)
                dens = counts / (v.size * widths)
                peak = max(peak, float(dens.max()))
                ax.stairs(dens, edges, color=CLASS_COLORS[c], linestyle=_domain_style(i), linewidth=1.5)
            if len(groups) == 2:
                direction, auc = direction_and_auroc(groups["normal"], groups["anomalous"])
                lines.append(f"{dom}: {auroc_note(direction, auc)}")
        if log:
            ax.set_xscale("log")
        n_lines = max(len(lines), 1)
        ax.set_ylim(0, max(peak, 1e-12) * (1.12 + 0.11 * n_lines))
        if lines:
            note_in_axes(ax, "\n".join(lines), "upper left", fontsize=7.5)
        ax.set_xlabel(STAT_XLABELS.get(name, name))
        ax.set_ylabel("density per decade" if log else "density")
        ax.set_title(name, fontsize=11)
        ax.grid(alpha=0.3)
    handles = [
        Line2D([], [], color=CLASS_COLORS[c], linestyle=_domain_style(i), label=f"{dom} {c}")
        for i, dom in enumerate(domains)
        for c in CLASSES
        if any(c in g for g in data[dom].values())
    ]
    ncol = min(4, legend_columns(len(handles), fig.get_figwidth(), 1.9))
    fig.legend(handles=handles, loc="outside lower center", ncol=ncol, fontsize=9, frameon=False)
    fig.suptitle(title or "Adaptive field statistics: normal vs anomalous pixels", fontsize=12)
    return save_figure(fig, path, func)


def plot_attention_over_steps(
    timesteps: Any,
    attention: Mapping[str, Mapping[str, Any]],
    path: str | os.PathLike[str],
    *,
    title: str | None = None,
) -> Path:
    """Field Transformer attention weights ``a_n`` over the reverse steps, mean ± std by class.

    Args:
        timesteps: ``(K,)`` timesteps ``s_1 … s_K``.
        attention: ``attention[domain]["normal" | "anomalous"]`` — ``(P, K)`` per-pixel weights.
            One panel per domain (shared y axis).
        path: output ``.png`` / ``.svg`` / ``.pdf``.
        title: figure title.

    The ± std band is clipped at 0 (weights are non-negative). A dotted line marks the uniform weights ``1/K`` of the reference statistics (DESIGN.md 4).

    Returns:
        ``path`` as a ``Path``, written atomically.
    """
    func = "plot_attention_over_steps"
    ts = as_timesteps(timesteps, func)
    K = ts.size
    check_mapping(attention, "attention", func)
    data = {
        dom: {
            c: as_matrix(g[c], f"attention[{dom!r}][{c!r}]", func, K)
            for c in CLASSES
            if c in class_groups(g, f"attention[{dom!r}]", func)
        }
        for dom, g in attention.items()
    }

    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    fig = new_figure(4.6 * len(data), 3.9)
    axes = fig.subplots(1, len(data), squeeze=False, sharey=True)[0]
    n = np.arange(1, K + 1)
    for ax, (dom, groups) in zip(axes, data.items(), strict=True):
        for c, arr in groups.items():
            mean, std = arr.mean(axis=0), arr.std(axis=0)
            # weights are >= 0: the band is clipped at 0 for display
            ax.fill_between(
                n, np.maximum(mean - std, 0.0), mean + std, color=CLASS_COLORS[c], alpha=0.2, linewidth=0
            )
            ax.plot(n, mean, color=CLASS_COLORS[c], marker="o", markersize=3, linewidth=1.6)
        ax.axhline(1.0 / K, color="0.35", linestyle=":", linewidth=1.2)
        setup_step_axis(ax, ts)
        ax.set_title(dom, fontsize=11)
        ax.grid(alpha=0.3)
        pix = ", ".join(f"{c} P = {arr.shape[0]}" for c, arr in groups.items())
        note_in_axes(ax, pix, "upper right", fontsize=7.5)
    axes[0].set_ylabel("attention weight $a_n$")
    present = [c for c in CLASSES if any(c in g for g in data.values())]
    handles: list[Any] = []
    for c in present:
        handles.append(Line2D([], [], color=CLASS_COLORS[c], marker="o", markersize=3, label=f"{c}: mean"))
        handles.append(Patch(facecolor=CLASS_COLORS[c], alpha=0.2, label=f"{c}: ± 1 std"))
    handles.append(Line2D([], [], color="0.35", linestyle=":", label=f"uniform 1/K = {1.0 / K:.3g}"))
    ncol = legend_columns(len(handles), fig.get_figwidth(), 1.9)
    fig.legend(handles=handles, loc="outside lower center", ncol=ncol, fontsize=9, frameon=False)
    fig.suptitle(title or "Field Transformer attention over the reverse steps", fontsize=12)
    return save_figure(fig, path, func)
