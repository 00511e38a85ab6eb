"""Shared plumbing for :mod:`refcfa.evaluation.figures`: figure creation, atomic saving, input
validation, the step axis and the direction/AUROC helper.

matplotlib is imported inside the functions that need it, never at module level, and only through
its object API (``matplotlib.figure.Figure`` + ``FigureCanvasAgg``): no pyplot, no global state.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "DPI",
    "NORMAL_COLOR",
    "ANOMALOUS_COLOR",
    "CLASS_COLORS",
    "CLASSES",
    "DOMAIN_LINESTYLES",
    "HIGHER",
    "LOWER",
    "new_figure",
    "save_figure",
    "direction_and_auroc",
    "rank_auroc",
    "auroc_note",
    "as_vector",
    "as_matrix",
    "as_image",
    "as_mask",
    "as_timesteps",
    "check_mapping",
    "class_groups",
    "setup_step_axis",
    "step_ticks",
    "legend_columns",
    "draw_gt_contour",
    "plain_log_yaxis",
    "note_in_axes",
    "fmt_number",
]

DPI = 150
#: Okabe-Ito blue / vermillion: distinguishable with the common colour-vision deficiencies.
NORMAL_COLOR = "#0072B2"
ANOMALOUS_COLOR = "#D55E00"
CLASSES = ("normal", "anomalous")
CLASS_COLORS = {"normal": NORMAL_COLOR, "anomalous": ANOMALOUS_COLOR}
#: line style per domain, in the order the domains are given (source, target, ...).
DOMAIN_LINESTYLES = ("-", "--", ":", "-.")
HIGHER = "higher = anomalous"
LOWER = "lower = anomalous"

_FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf"}


# --------------------------------------------------------------------------- figure and file


def new_figure(width: float, height: float) -> Figure:
    """A ``Figure`` with constrained layout, attached to an Agg canvas (no pyplot)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: str | os.PathLike[str], func: str) -> Path:
    """Write ``fig`` to ``path`` atomically and return the path.

    The format follows the suffix: ``.png`` (150 dpi), ``.svg`` or ``.pdf``. The file is written
    to a unique temporary name in the same folder and moved into place with ``os.replace``, so a
    reader never sees a half-written figure. Missing parent folders are created.
    """
    out = Path(path)
    fmt = _FORMATS.get(out.suffix.lower())
    if fmt is None:
        raise ValueError(
            f"{func}: path {str(out)!r} must end with one of {sorted(_FORMATS)}; got suffix {out.suffix!r}"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    # no creation date in vector formats: the same inputs give the same bytes
    metadata = {"Date": None} if fmt == "svg" else ({"CreationDate": None} if fmt == "pdf" else None)
    try:
        with open(tmp, "xb") as fh:
            fig.savefig(fh, format=fmt, dpi=DPI, metadata=metadata)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    return out


# --------------------------------------------------------------------------- statistics


def rank_auroc(normal: np.ndarray, anomalous: np.ndarray) -> float:
    """AUROC of "anomalous scores higher" by the rank (Mann-Whitney U) formula.

    ``AUROC = (Σ rank(anomalous) − n_a (n_a + 1) / 2) / (n_a n_n)`` with average ranks over the
    pooled sample, so a tie between a normal and an anomalous value counts one half — the value
    ``sklearn.metrics.roc_auc_score`` gives.
    """
    from scipy.stats import rankdata

    n_n, n_a = normal.size, anomalous.size
    ranks = rankdata(np.concatenate([normal, anomalous]))
    u = float(ranks[n_n:].sum()) - n_a * (n_a + 1) / 2.0
    return u / (float(n_a) * float(n_n))


def direction_and_auroc(normal: Any, anomalous: Any) -> tuple[str, float]:
    """Which way a statistic separates the classes, and its AUROC.

    Args:
        normal: ``(N,)`` values on normal pixels (or images).
        anomalous: ``(A,)`` values on anomalous pixels.

    Returns:
        ``(direction, auroc)``: ``direction`` is ``"higher = anomalous"`` when
        ``median(anomalous) > median(normal)`` and ``"lower = anomalous"`` when it is smaller; on
        equal medians the AUROC breaks the tie (``>= 0.5`` → higher). ``auroc`` is the AUROC of
        the raw values with anomalous as the positive class (rank formula, ties count one half);
        a value below 0.5 means the statistic works inverted, with AUROC ``1 − auroc``.
    """
    n = as_vector(normal, "normal", "direction_and_auroc")
    a = as_vector(anomalous, "anomalous", "direction_and_auroc")
    auc = rank_auroc(n, a)
    med_a, med_n = float(np.median(a)), float(np.median(n))
    if med_a > med_n:
        direction = HIGHER
    elif med_a < med_n:
        direction = LOWER
    else:
        direction = HIGHER if auc >= 0.5 else LOWER
    return direction, auc


def auroc_note(direction: str, auc: float) -> str:
    """``"higher = anomalous, AUROC 0.912"`` or ``"… AUROC 0.300 (inverted 0.700)"``."""
    text = f"{direction}, AUROC {auc:.3f}"
    if auc < 0.5:
        text += f" (inverted {1.0 - auc:.3f})"
    return text


# --------------------------------------------------------------------------- validation


def _as_float(x: Any, name: str, func: str) -> np.ndarray:
    try:
        arr = np.asarray(x)
    except Exception as exc:  # ragged lists and the like
        raise TypeError(f"{func}: {name} must be a numeric array; got {type(x).__name__}") from exc
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise TypeError(f"{func}: {name} must be a real numeric array; got dtype {arr.dtype}")
    return arr


def _check_finite(arr: np.ndarray, name: str, func: str) -> None:
    if arr.size and not np.all(np.isfinite(arr)):
        bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(
            f"{func}: {name} contains {bad} non-finite value(s) (NaN/inf); remove or replace them "
            "before plotting"
        )


def as_vector(x: Any, name: str, func: str) -> np.ndarray:
    """A non-empty, finite ``(N,)`` float array, or a ValueError/TypeError naming ``name``."""
    arr = _as_float(x, name, func)
    if arr.ndim != 1:
        raise ValueError(f"{func}: {name} has shape {arr.shape}; expected (N,) — pass x.ravel()")
    if arr.size == 0:
        raise ValueError(f"{func}: {name} is empty; expected at least one value")
    _check_finite(arr, name, func)
    return arr.astype(np.float64, copy=False)


def as_matrix(x: Any, name: str, func: str, K: int) -> np.ndarray:
    """A non-empty, finite ``(P, K)`` float array of per-pixel step sequences."""
    arr = _as_float(x, name, func)
    if arr.ndim != 2 or arr.shape[1] != K:
        raise ValueError(
            f"{func}: {name} has shape {arr.shape}; expected (P, K) = (P, {K}) with K = len(timesteps)"
        )
    if arr.shape[0] == 0:
        raise ValueError(f"{func}: {name} has no rows (P = 0); pass at least one pixel sequence")
    _check_finite(arr, name, func)
    return arr.astype(np.float64, copy=False)


def as_timesteps(x: Any, func: str) -> np.ndarray:
    """Timesteps ``s_1 … s_K`` as a non-empty finite ``(K,)`` array."""
    return as_vector(x, "timesteps", func)


def as_image(image: Any, func: str, name: str = "image") -> np.ndarray:
    """A ``uint8`` image as ``(H, W, C)`` with ``C ∈ {1, 3}``; ``(H, W)`` is taken as ``C = 1``."""
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        raise TypeError(
            f"{func}: {name} must be uint8 (H, W, C); got dtype {arr.dtype} — convert with "
            "np.clip(x, 0, 255).astype(np.uint8)"
        )
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3) or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{func}: {name} has shape {np.shape(image)}; expected (H, W, C) with C in (1, 3)")
    return arr


def as_mask(mask: Any, func: str, hw: tuple[int, int], name: str = "mask") -> np.ndarray | None:
    """``None`` or a bool ``(H, W)`` mask; 0/1 numeric masks are accepted, other values refused."""
    if mask is None:
        return None
    arr = np.asarray(mask)
    if arr.shape != hw:
        raise ValueError(f"{func}: {name} has shape {arr.shape}; expected (H, W) = {hw} like the image")
    if arr.dtype != bool:
        if not np.issubdtype(arr.dtype, np.number) or not np.all(np.isin(arr, (0, 1))):
            raise ValueError(f"{func}: {name} must be bool (or 0/1); got dtype {arr.dtype} with other values")
        arr = arr.astype(bool)
    return arr


def check_mapping(x: Any, name: str, func: str, nonempty: bool = True) -> Mapping[str, Any]:
    if not isinstance(x, Mapping):
        raise TypeError(f"{func}: {name} must be a dict; got {type(x).__name__}")
    if nonempty and not x:
        raise ValueError(f"{func}: {name} is empty; expected at least one entry")
    return x


def class_groups(groups: Any, name: str, func: str) -> Mapping[str, Any]:
    """Check a ``{"normal": …, "anomalous": …}`` dict (either key may be missing, not both)."""
    check_mapping(groups, name, func)
    unknown = sorted(set(groups) - set(CLASSES))
    if unknown:
        raise ValueError(f"{func}: {name} has key(s) {unknown}; expected only 'normal' and/or 'anomalous'")
    return groups


# --------------------------------------------------------------------------- drawing helpers


def fmt_number(x: float) -> str:
    """Integers without a decimal point, everything else with 3 significant digits."""
    return str(int(round(x))) if float(x).is_integer() else f"{x:.3g}"


def legend_columns(n_entries: int, width_in: float, entry_in: float = 2.3) -> int:
    """Columns for a figure legend below the axes so that it fits the figure's width."""
    return max(1, min(n_entries, int(width_in // entry_in)))


def step_ticks(K: int) -> list[int]:
    """At most ~7 readable tick positions on ``n = 1..K``, always including 1 and K."""
    if K <= 8:
        return list(range(1, K + 1))
    step = next(s for s in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 10**9) if s >= K / 6)
    ticks = [m for m in range(step, K, step) if m - 1 > step / 2 and K - m > step / 2]
    return [1, *ticks, K]


def setup_step_axis(ax: Axes, timesteps: np.ndarray, top_label: bool = True) -> None:
    """Bottom axis: reverse step ``n``; top axis: the matching timestep ``s_n`` at the same ticks."""
    K = timesteps.size
    ticks = step_ticks(K)
    ax.set_xlim(0.5, K + 0.5)
    ax.set_xticks(ticks)
    ax.set_xlabel("reverse step n")
    top = ax.secondary_xaxis("top")
    top.set_xticks(ticks, labels=[fmt_number(timesteps[t - 1]) for t in ticks])
    if top_label:
        top.set_xlabel("timestep $s_n$")


def plain_log_yaxis(ax: Axes) -> None:
    """Log y axis with plain tick labels (``0.3``, ``1``, ``4``) instead of ``4×10⁰``; minor
    ticks are labelled only while the axis spans few decades (matplotlib's own rule)."""
    from matplotlib.ticker import LogFormatter

    class _PlainLogFormatter(LogFormatter):
        # LogFormatter decides which ticks get a label; the label itself is a plain number
        def __call__(self, x: float, pos: int | None = None) -> str:
            return f"{x:.3g}" if super().__call__(x, pos) else ""

    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(_PlainLogFormatter(labelOnlyBase=False))
    ax.yaxis.set_minor_formatter(_PlainLogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.5)))


def draw_gt_contour(ax: Axes, mask: np.ndarray | None, linewidth: float = 1.0) -> bool:
    """Ground-truth outline as a white line on a black halo (visible on any background)."""
    if mask is None or not mask.any():
        return False
    m = mask.astype(np.float32)
    ax.contour(m, levels=[0.5], colors="black", linewidths=linewidth * 2.4)
    ax.contour(m, levels=[0.5], colors="white", linewidths=linewidth)
    return True


def note_in_axes(ax: Axes, text: str, loc: str = "upper left", fontsize: float = 8) -> None:
    """A small boxed note inside the axes (``loc``: upper/lower left/right or center)."""
    x, ha = (0.03, "left") if "left" in loc else ((0.97, "right") if "right" in loc else (0.5, "center"))
    y, va = (0.97, "top") if "upper" in loc else ((0.03, "bottom") if "lower" in loc else (0.5, "center"))
    ax.text(
        x,
        y,
        text,
        transform=ax.transAxes,
        ha=ha,
        va=va,
        fontsize=fontsize,
        bbox={"boxstyle": "round,pad=0.3", "facecolor": "white", "edgecolor": "0.7", "alpha": 0.85},
        zorder=10,
    )
