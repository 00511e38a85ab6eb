"""The evaluation part of the Results dock: table, ROC, histograms, CFA diagnostics, per-image rows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from refcfa.evaluation.pipeline import save_maps
from refcfa_gui.widgets.evaluation_panel import EvaluationPanel

pytestmark = pytest.mark.gui

KEYS = ("image_auroc", "pixel_auroc", "aupro", "pixel_ap", "f1_max")
DIAG = {
    "dtw_cost_before": 0.5,
    "dtw_cost_after": 0.25,
    "coral_distance_before": 2e-3,
    "coral_distance_after": 1e-9,
    "mean_shift_before": 0.1,
    "mean_shift_after": 1e-6,
    "principal_angles_before": [1.0, 30.0, 70.0],
    "principal_angles_after": [0.5, 3.0, 7.0],
}


def write_run(out: Path) -> dict:
    """A run folder as the pipeline writes it: metrics.json + vis_supervised/<target>/maps.npz."""
    rng = np.random.default_rng(0)
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1], bool)
    masks = np.zeros((9, 16, 16), bool)
    masks[labels, 5:9, 5:9] = True
    maps = {"residual": rng.random((9, 16, 16)), "ref_cfa": rng.random((9, 16, 16)) + 2.0 * masks}
    vis = out / "vis_supervised" / "target_texture"
    save_maps(vis, [f"test/{'good' if not y else 'crack'}/{i:03d}" for i, y in enumerate(labels)], labels, masks, maps)
    metrics = {
        "source": {"category": "source_texture"},
        "target": {"category": "target_texture"},
        "transductive": True,
        "n_target_test": 9,
        "methods": {
            "residual": {k: 0.25 + i / 100 for i, k in enumerate(KEYS)},
            "ref_cfa": {k: 0.75 + i / 100 for i, k in enumerate(KEYS)},
        },
        "cfa_diagnostics": DIAG,
    }
    (out / "metrics.json").write_text(json.dumps(metrics))
    return metrics


@pytest.fixture
def loaded(qtbot, tmp_path):
    metrics = write_run(tmp_path)
    panel = EvaluationPanel()
    qtbot.addWidget(panel)
    panel.resize(1000, 400)
    panel.show()
    with qtbot.waitSignal(panel.loaded, timeout=20000):
        panel.load(tmp_path)
    yield panel, metrics, tmp_path
    assert panel.shutdown(20)


def test_metrics_table_shows_the_numbers_of_metrics_json(loaded):
    panel, metrics, _ = loaded
    assert panel.metrics_values() == metrics["methods"]
    t = panel.metrics_table
    assert t.item(1, 0).text() == "0.750" and t.verticalHeaderItem(1).text() == "ref_cfa"
    assert t.item(1, 0).font().bold() and not t.item(0, 0).font().bold()  # the best per metric in bold
    assert "target target_texture (source source_texture) · 9 test images" in panel.title.text()
    assert panel.category == "target_texture"


def test_roc_histograms_and_cfa_diagnostics_are_drawn(loaded):
    panel, _, _ = loaded
    res = panel.results
    names = [item.name() for item in panel.roc_plot.getPlotItem().listDataItems()]
    assert names == [
        "chance",
        f"residual ({res.roc['residual'][2]:.3f})",
        f"ref_cfa ({res.roc['ref_cfa'][2]:.3f})",
    ]
    assert res.roc["ref_cfa"][2] == 1.0  # anomalies add 2.0 inside the mask: perfectly separated
    key = panel.roc_key.text()  # the legend beside the plot: the run's AUROC, then the curve's
    assert "ref_cfa" in key and "0.750" in key and "1.000" in key and "float16" in key
    assert panel.hist_method.currentText() == "ref_cfa"
    hist = [item.name() for item in panel.hist_plot.getPlotItem().listDataItems()]
    assert hist == ["normal (n = 4)", "anomalous (n = 5)"]
    panel.hist_method.setCurrentText("residual")
    assert len(panel.hist_plot.getPlotItem().listDataItems()) == 2
    rows = [panel.cfa_table.verticalHeaderItem(r).text() for r in range(panel.cfa_table.rowCount())]
    assert rows == ["DTW cost (TA)", "CORAL distance (SOA)", "mean shift (SOA)", "principal angles, ° (DSA)"]
    assert panel.cfa_table.item(0, 0).text() == "0.5" and panel.cfa_table.item(3, 0).text() == "max 70.0"
    bars = [i for i in panel.angles_plot.getPlotItem().items if type(i).__name__ == "BarGraphItem"]
    assert len(bars) == 2


def test_a_click_on_an_image_row_requests_that_image(qtbot, loaded):
    panel, _, _ = loaded
    t = panel.image_table
    assert t.rowCount() == 9
    scores = [float(t.item(r, 2).text()) for r in range(9)]
    assert scores == sorted(scores, reverse=True)  # the most anomalous first
    top = t.item(0, 0).text()
    assert top.startswith("test/crack/") and t.item(0, 1).text() == "anomalous"
    rect = t.visualItemRect(t.item(2, 1))
    with qtbot.waitSignal(panel.image_requested, timeout=2000) as blocker:
        from PySide6.QtCore import Qt

        qtbot.mouseClick(t.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert blocker.args == [t.item(2, 0).text()]


@pytest.mark.slow
def test_export_writes_the_publication_figures(qtbot, loaded, tmp_path):
    panel, _, _ = loaded
    worker = panel.export(tmp_path / "figs")
    with qtbot.waitSignal(worker.finished, timeout=60000):
        pass
    names = sorted(p.name for p in (tmp_path / "figs").iterdir())
    assert names == ["cfa_diagnostics.png", "roc.png", "score_histograms.png"]
    assert all((tmp_path / "figs" / n).stat().st_size > 5000 for n in names)
    assert panel.status.text().startswith("saved ")


def test_metrics_without_maps_and_load_errors(qtbot, tmp_path):
    panel = EvaluationPanel()
    qtbot.addWidget(panel)
    panel.set_metrics({"methods": {"ref_cfa": dict.fromkeys(KEYS, 0.5)}}, "")
    assert panel.metrics_values() == {"ref_cfa": dict.fromkeys(KEYS, 0.5)}
    assert panel.image_table.rowCount() == 0 and panel.export_button.isEnabled()
    panel.load(tmp_path / "nothing_here")
    qtbot.waitUntil(lambda: panel.error != "" and panel.idle(), timeout=10000)
    assert "no metrics.json" in panel.title.text()
    assert panel.metrics_values() == {"ref_cfa": dict.fromkeys(KEYS, 0.5)}  # the previous results stay
