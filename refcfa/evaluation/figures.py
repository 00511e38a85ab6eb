"""Publication figures from plain numpy inputs (``--analyze_residuals``, ``--analyze_transformer``
and the evaluation plots).

Every function takes arrays and an output path, draws with matplotlib's object API on an Agg
canvas (``matplotlib.figure.Figure`` + ``FigureCanvasAgg``; no pyplot, no global state; matplotlib
is imported only when a figure is drawn), writes the file atomically (temporary name in the same
folder + ``os.replace``) and returns the ``Path``. The format follows the suffix: ``.png`` at
150 dpi, ``.svg`` or ``.pdf``. Inputs are validated: a wrong shape raises ``ValueError`` naming the
argument, its shape and the expected one; a wrong type raises ``TypeError``.

Conventions shared by the figures:

* x axes over the trajectory show the reverse step ``n = 1..K`` (DESIGN.md 2) with the timestep
  ``s_n`` on the top axis;
* normal = Okabe-Ito blue, anomalous = vermillion; domains differ by line style (source solid,
  target dashed, in the order given);
* the ground truth is outlined in white on a black halo;
* "higher/lower = anomalous" and the AUROC come from :func:`direction_and_auroc`.

The implementation lives in ``figures_common`` (plumbing), ``figures_ref`` (REF and statistics)
and ``figures_eval`` (evaluation); import from here.
"""

from __future__ import annotations

from refcfa.evaluation.figures_common import DPI, HIGHER, LOWER, direction_and_auroc
from refcfa.evaluation.figures_eval import (
    plot_anomaly_map,
    plot_cfa_diagnostics,
    plot_roc_curves,
    plot_score_histograms,
)
from refcfa.evaluation.figures_ref import (
    plot_attention_over_steps,
    plot_field_maps,
    plot_ref_dynamics,
    plot_statistic_distributions,
)

__all__ = [
    "DPI",
    "HIGHER",
    "LOWER",
    "direction_and_auroc",
    "plot_ref_dynamics",
    "plot_field_maps",
    "plot_statistic_distributions",
    "plot_attention_over_steps",
    "plot_roc_curves",
    "plot_score_histograms",
    "plot_cfa_diagnostics",
    "plot_anomaly_map",
]
