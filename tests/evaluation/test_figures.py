"""Tests for refcfa.evaluation.figures: files written (valid PNG/SVG, size from 150 dpi), atomic
writes, input validation messages, and the direction/AUROC numbers checked against scikit-learn."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from refcfa.evaluation import figures as F
from refcfa.evaluation import figures_common, figures_eval, figures_ref

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
K = 10
H = W = 24


def read_png(path: Path) -> np.ndarray:
    from matplotlib.image import imread

    assert path.read_bytes()[:8] == PNG_MAGIC
    img = imread(path)
    assert img.ndim == 3 and img.shape[2] in (3, 4)
    # something was drawn: not a blank canvas
    assert float(img[..., :3].std()) > 0.01
    return img


def no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture
def timesteps() -> np.ndarray:
    return np.linspace(100, 10, K).round()


@pytest.fixture
def series(rng):
    return {
        f: {
            "normal": np.exp(rng.normal(0, 0.5, (40, K))),
            "anomalous": 3 * np.exp(rng.normal(0, 0.5, (15, K))),
        }
        for f in ("R", "M", "Q")
    }


@pytest.fixture
def scene(rng):
    yy, xx = np.mgrid[:H, :W]
    mask = (yy - 12) ** 2 + (xx - 8) ** 2 < 20
    image = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    fields = {f: np.abs(rng.normal(1, 0.3, (K, H, W))).astype(np.float16) for f in ("Q", "R", "M")}
    return image, mask, fields


@pytest.fixture
def stats(rng):
    return {
        dom: {
            "E": {"normal": np.exp(rng.normal(0, 1, 400)), "anomalous": np.exp(rng.normal(2, 1, 100))},
            "NS": {"normal": rng.gamma(2, 0.1, 400), "anomalous": rng.gamma(2, 0.05, 100)},
            "DV": {"normal": rng.beta(5, 2, 400), "anomalous": rng.beta(2, 5, 100)},
        }
        for dom in ("source", "target")
    }


# --------------------------------------------------------------------------- direction and AUROC


@pytest.mark.parametrize("seed", range(5))
def test_direction_and_auroc_matches_sklearn(seed):
    r = np.random.default_rng(seed)
    normal = r.normal(0, 1, 300)
    anomalous = r.normal(r.uniform(-1.5, 1.5), 1, 120)
    direction, auc = F.direction_and_auroc(normal, anomalous)
    labels = np.r_[np.zeros(normal.size), np.ones(anomalous.size)]
    assert auc == pytest.approx(roc_auc_score(labels, np.r_[normal, anomalous]), abs=1e-12)
    expected = F.HIGHER if np.median(anomalous) > np.median(normal) else F.LOWER
    assert direction == expected


def test_direction_and_auroc_with_ties_matches_sklearn(rng):
    normal = rng.integers(0, 5, 500).astype(float)
    anomalous = rng.integers(2, 7, 200).astype(float)
    _, auc = F.direction_and_auroc(normal, anomalous)
    labels = np.r_[np.zeros(500), np.ones(200)]
    assert auc == pytest.approx(roc_auc_score(labels, np.r_[normal, anomalous]), abs=1e-12)


def test_direction_on_constructed_data():
    normal = np.arange(100.0)
    assert F.direction_and_auroc(normal, normal + 1000) == (F.HIGHER, 1.0)
    assert F.direction_and_auroc(normal, normal - 1000) == (F.LOWER, 0.0)
    # NS/DV-like: anomalous lower, partly overlapping -> AUROC < 0.5, shown inverted
    direction, auc = F.direction_and_auroc(normal, normal[:50])
    assert direction == F.LOWER
    # P(a > n) + P(a == n) / 2 = (sum_{a<50} a + 50 / 2) / (50 * 100) = 0.25
    assert auc == pytest.approx(0.25, abs=1e-12)
    note = figures_common.auroc_note(direction, auc)
    assert note == f"lower = anomalous, AUROC {auc:.3f} (inverted {1 - auc:.3f})"
    assert figures_common.auroc_note(F.HIGHER, 0.9) == "higher = anomalous, AUROC 0.900"


def test_direction_tie_of_medians_broken_by_auroc():
    normal = np.array([0.0, 1.0, 2.0])
    anomalous = np.array([1.0, 1.0, 5.0])  # same median 1.0, anomalous ranks higher
    direction, auc = F.direction_and_auroc(normal, anomalous)
    assert auc > 0.5 and direction == F.HIGHER


@pytest.mark.parametrize(
    ("normal", "anomalous", "exc", "match"),
    [
        (np.zeros((3, 2)), np.ones(3), ValueError, r"normal has shape \(3, 2\)"),
        (np.zeros(3), np.array([]), ValueError, "anomalous is empty"),
        (np.array([0.0, np.nan]), np.ones(3), ValueError, "non-finite"),
        (np.array(["a", "b"]), np.ones(3), TypeError, "normal must be a real numeric array"),
    ],
)
def test_direction_and_auroc_validates(normal, anomalous, exc, match):
    with pytest.raises(exc, match=match):
        F.direction_and_auroc(normal, anomalous)


def test_statistic_panels_note_direction_and_auroc(tmp_path, stats, monkeypatch):
    notes: list[str] = []
    real = figures_ref.note_in_axes
    monkeypatch.setattr(
        figures_ref, "note_in_axes", lambda ax, text, *a, **k: (notes.append(text), real(ax, text, *a, **k))
    )
    F.plot_statistic_distributions(stats, tmp_path / "s.png")
    assert len(notes) == 3
    for note, name in zip(notes, ("E", "NS", "DV"), strict=True):
        lines = note.splitlines()
        assert [ln.split(":")[0] for ln in lines] == ["source", "target"]
        for ln, dom in zip(lines, ("source", "target"), strict=True):
            g = stats[dom][name]
            direction, auc = F.direction_and_auroc(g["normal"], g["anomalous"])
            assert ln == f"{dom}: {figures_common.auroc_note(direction, auc)}"
    assert "higher = anomalous" in notes[0] and "inverted" not in notes[0]
    assert notes[1].count("lower = anomalous") == 2 and notes[1].count("inverted") == 2


# --------------------------------------------------------------------------- each figure writes a file


def test_plot_ref_dynamics_png(tmp_path, timesteps, series):
    out = F.plot_ref_dynamics(timesteps, series, tmp_path / "dyn.png", title="t")
    assert out == tmp_path / "dyn.png"
    img = read_png(out)
    # 150 dpi: 3 panels of 4.3 in x 3.9 in
    assert img.shape[:2] == (round(3.9 * 150), round(3 * 4.3 * 150))
    assert no_temp_files(tmp_path)


def test_plot_ref_dynamics_log_y_only_for_wide_positive_ranges(tmp_path, timesteps, monkeypatch):
    calls = []
    monkeypatch.setattr(figures_ref, "plain_log_yaxis", lambda ax: calls.append(ax))
    wide = np.tile(np.geomspace(0.01, 10, K), (5, 1))
    narrow = np.tile(np.linspace(1, 2, K), (5, 1))
    F.plot_ref_dynamics(timesteps, {"R": {"normal": wide}, "M": {"normal": narrow}}, tmp_path / "a.png")
    assert len(calls) == 1
    F.plot_ref_dynamics(timesteps, {"R": {"normal": wide - 1}}, tmp_path / "b.png")  # negatives: linear
    assert len(calls) == 1


def test_plot_field_maps_png(tmp_path, scene, timesteps):
    image, mask, fields = scene
    out = F.plot_field_maps(image, mask, fields, [1, 5, K], tmp_path / "maps.png", timesteps=timesteps)
    img = read_png(out)
    assert img.shape[0] > img.shape[1] / 3  # 3 rows of cells
    # grayscale (H, W) image and no mask are accepted
    read_png(F.plot_field_maps(image[:, :, 0], None, {"R": fields["R"]}, [2], tmp_path / "g.png"))


def test_plot_statistic_distributions_png(tmp_path, stats):
    read_png(F.plot_statistic_distributions(stats, tmp_path / "stats.png"))
    # a domain without anomalous pixels, and log-x requested on non-positive values
    partial = {"target": {"E": {"normal": np.r_[0.0, np.ones(20)]}}}
    read_png(F.plot_statistic_distributions(partial, tmp_path / "p.png"))


def test_plot_attention_over_steps_png(tmp_path, timesteps, rng):
    a = rng.dirichlet(np.ones(K), size=30)
    att = {"source": {"normal": a, "anomalous": a[:5]}, "target": {"normal": a}}
    read_png(F.plot_attention_over_steps(timesteps, att, tmp_path / "att.png"))


def test_plot_roc_curves_png(tmp_path, rng):
    y = np.r_[np.zeros(60), np.ones(40)].astype(bool)
    curves = {
        "residual": (rng.normal(0, 1, 100), y),
        "ref_cfa": (rng.normal(0, 1, 100) + 2 * y, y.astype(int)),
    }
    img = read_png(F.plot_roc_curves(curves, tmp_path / "roc.png", "target"))
    assert img.shape[:2] == (750, 780)


def test_plot_roc_curves_large_input_is_thinned(tmp_path, rng, monkeypatch):
    n = 50_000
    y = rng.random(n) < 0.1
    drawn = []
    from matplotlib.axes import Axes

    real_plot = Axes.plot
    monkeypatch.setattr(
        Axes, "plot", lambda self, *a, **k: (drawn.append(len(a[0])), real_plot(self, *a, **k))[1]
    )
    F.plot_roc_curves({"m": (rng.normal(0, 1, n) + y, y)}, tmp_path / "roc.png")
    assert max(drawn) <= figures_eval.MAX_ROC_POINTS


def test_roc_curve_area_matches_sklearn(rng):
    s = rng.integers(0, 20, 300).astype(float)
    y = rng.random(300) < 0.3
    fpr, tpr = figures_eval.roc_curve(s, y)
    assert fpr[0] == tpr[0] == 0 and fpr[-1] == tpr[-1] == 1
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
    area = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
    assert area == pytest.approx(roc_auc_score(y, s), abs=1e-12)


def test_plot_score_histograms_png(tmp_path, rng):
    scores = {
        "source": {"normal": rng.normal(0.2, 0.05, 30), "anomalous": rng.normal(0.6, 0.1, 20)},
        "target": {"normal": rng.normal(0.3, 0.05, 30)},
    }
    read_png(F.plot_score_histograms(scores, tmp_path / "h.png"))


def test_plot_cfa_diagnostics_full_and_partial(tmp_path):
    full = {
        "temporal": {"dtw_cost_before": 3.2, "dtw_cost_after": 0.4},
        "coral": {"coral_distance_before": 2e-4, "coral_distance_after": 1e-6},
        "subspace": {
            "principal_angles_before": np.radians([10, 40, 70]),
            "principal_angles_after": [0.01, 0.1, 0.3],
        },
    }
    read_png(F.plot_cfa_diagnostics(full, tmp_path / "full.png"))
    partial = {
        "temporal": {"dtw_cost_before": 1.0},
        "coral": None,
        "dsa": {"enabled": False},
        "extra": [1, 2],
    }
    read_png(F.plot_cfa_diagnostics(partial, tmp_path / "partial.png"))
    read_png(F.plot_cfa_diagnostics({}, tmp_path / "off.png"))
    deg = {"subspace": {"principal_angles_before": [30.0, 80.0], "principal_angles_after": [5.0, 9.0]}}
    read_png(F.plot_cfa_diagnostics(deg, tmp_path / "deg.png", angle_unit="deg"))


def test_plot_cfa_diagnostics_validates(tmp_path):
    with pytest.raises(ValueError, match=r"angle_unit='deg'"):
        F.plot_cfa_diagnostics({"subspace": {"principal_angles_before": [30.0, 80.0]}}, tmp_path / "x.png")
    with pytest.raises(
        ValueError, match=r"diagnostics\['coral'\]\['coral_distance_after'\] must be a finite number"
    ):
        F.plot_cfa_diagnostics({"coral": {"coral_distance_after": "big"}}, tmp_path / "x.png")
    with pytest.raises(ValueError, match="angle_unit"):
        F.plot_cfa_diagnostics({}, tmp_path / "x.png", angle_unit="grad")
    assert not (tmp_path / "x.png").exists()


def test_plot_anomaly_map_png_and_svg(tmp_path, scene):
    image, mask, _ = scene
    amap = np.random.default_rng(1).random((H, W))
    img = read_png(F.plot_anomaly_map(image, amap, mask, tmp_path / "a.png", "test/x/000", score=0.9))
    assert img.shape[:2] == (round(3.9 * 150), round(11.0 * 150))
    svg = F.plot_anomaly_map(image[:, :, :1], amap * 7, None, tmp_path / "a.svg", "gray")
    text = svg.read_text()
    assert text.lstrip().startswith("<?xml") and ET.fromstring(text.encode()).tag.endswith("svg")


def test_every_function_writes_svg(tmp_path, timesteps, series, scene, stats):
    image, mask, fields = scene
    y = np.r_[0, 0, 1, 1].astype(bool)
    outs = [
        F.plot_ref_dynamics(timesteps, series, tmp_path / "1.svg"),
        F.plot_field_maps(image, mask, fields, [1, 2], tmp_path / "2.svg"),
        F.plot_statistic_distributions(stats, tmp_path / "3.svg"),
        F.plot_attention_over_steps(timesteps, {"s": {"normal": series["R"]["normal"]}}, tmp_path / "4.svg"),
        F.plot_roc_curves({"m": (np.arange(4.0), y)}, tmp_path / "5.svg"),
        F.plot_score_histograms(
            {"s": {"normal": np.ones(3), "anomalous": np.arange(3.0)}}, tmp_path / "6.svg"
        ),
        F.plot_cfa_diagnostics({"temporal": {"dtw_cost_before": 1, "dtw_cost_after": 0}}, tmp_path / "7.svg"),
    ]
    for out in outs:
        ET.fromstring(out.read_bytes())  # well-formed XML
        assert b"<svg" in out.read_bytes()[:2000]
    # no date in SVG metadata: the same inputs give the same bytes
    again = F.plot_cfa_diagnostics(
        {"temporal": {"dtw_cost_before": 1, "dtw_cost_after": 0}}, tmp_path / "7b.svg"
    )
    assert b"<dc:date>" not in again.read_bytes()


# --------------------------------------------------------------------------- files: atomic, suffix


def test_atomic_replace_and_failed_write_keeps_old_file(tmp_path, rng, monkeypatch):
    target = tmp_path / "sub" / "dir" / "h.png"  # parents are created
    scores = {"s": {"normal": rng.random(10), "anomalous": rng.random(10) + 1}}
    F.plot_score_histograms(scores, target)
    old = target.read_bytes()
    F.plot_score_histograms(scores, target, title="again")
    assert target.read_bytes() != old and target.read_bytes()[:8] == PNG_MAGIC
    current = target.read_bytes()

    from matplotlib.figure import Figure

    def boom(self, fh, **kw):
        fh.write(b"half a figure")
        raise OSError("disk full")

    monkeypatch.setattr(Figure, "savefig", boom)
    with pytest.raises(OSError, match="disk full"):
        F.plot_score_histograms(scores, target)
    assert target.read_bytes() == current
    assert no_temp_files(target.parent)


def test_unknown_suffix_is_refused(tmp_path, rng):
    with pytest.raises(ValueError, match=r"must end with one of \['.pdf', '.png', '.svg'\]"):
        F.plot_score_histograms({"s": {"normal": rng.random(5)}}, tmp_path / "h.jpg")


# --------------------------------------------------------------------------- validation messages


def test_ref_dynamics_validation(tmp_path, timesteps, series):
    bad = dict(series, R={"normal": np.ones((10, 5))})
    with pytest.raises(
        ValueError, match=r"series\['R'\]\['normal'\] has shape \(10, 5\); expected \(P, K\) = \(P, 10\)"
    ):
        F.plot_ref_dynamics(timesteps, bad, tmp_path / "x.png")
    with pytest.raises(ValueError, match=r"series\['R'\] has key\(s\) \['abnormal'\]"):
        F.plot_ref_dynamics(timesteps, {"R": {"abnormal": np.ones((2, K))}}, tmp_path / "x.png")
    with pytest.raises(ValueError, match=r"timesteps has shape \(2, 5\)"):
        F.plot_ref_dynamics(np.ones((2, 5)), series, tmp_path / "x.png")
    with pytest.raises(ValueError, match="series is empty"):
        F.plot_ref_dynamics(timesteps, {}, tmp_path / "x.png")
    with pytest.raises(ValueError, match="non-finite"):
        F.plot_ref_dynamics(timesteps, {"R": {"normal": np.full((2, K), np.inf)}}, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_field_maps_validation(tmp_path, scene, timesteps):
    image, mask, fields = scene
    p = tmp_path / "x.png"
    with pytest.raises(
        ValueError, match=rf"fields\['M'\] has shape \(10, 5, 5\); expected \(K, H, W\) = \(K, {H}, {W}\)"
    ):
        F.plot_field_maps(image, mask, dict(fields, M=np.ones((K, 5, 5))), [1], p)
    with pytest.raises(ValueError, match=r"fields\['M'\] has K = 3 steps"):
        F.plot_field_maps(image, mask, dict(fields, M=np.ones((3, H, W))), [1], p)
    with pytest.raises(ValueError, match=r"steps contains 0; steps are reverse-step numbers n in 1..10"):
        F.plot_field_maps(image, mask, fields, [0, 1], p)
    with pytest.raises(ValueError, match="steps contains 11"):
        F.plot_field_maps(image, mask, fields, [K + 1], p)
    with pytest.raises(ValueError, match="steps is empty"):
        F.plot_field_maps(image, mask, fields, [], p)
    with pytest.raises(ValueError, match=rf"mask has shape \(3, 3\); expected \(H, W\) = \({H}, {W}\)"):
        F.plot_field_maps(image, np.ones((3, 3), bool), fields, [1], p)
    with pytest.raises(ValueError, match="mask must be bool"):
        F.plot_field_maps(image, mask * 2, fields, [1], p)
    with pytest.raises(TypeError, match="image must be uint8"):
        F.plot_field_maps(image.astype(np.float32), mask, fields, [1], p)
    with pytest.raises(ValueError, match=r"image has shape \(24, 24, 2\)"):
        F.plot_field_maps(image[:, :, :2], mask, fields, [1], p)
    with pytest.raises(ValueError, match=r"timesteps has shape \(3,\); expected \(K,\) = \(10,\)"):
        F.plot_field_maps(image, mask, fields, [1], p, timesteps=timesteps[:3])
    assert not p.exists()


def test_statistics_and_attention_validation(tmp_path, timesteps):
    p = tmp_path / "x.png"
    with pytest.raises(
        ValueError, match=r"stats\['source'\]\['E'\]\['normal'\] has shape \(4, 4\); expected \(N,\)"
    ):
        F.plot_statistic_distributions({"source": {"E": {"normal": np.ones((4, 4))}}}, p)
    with pytest.raises(TypeError, match=r"stats\['source'\] must be a dict"):
        F.plot_statistic_distributions({"source": [1, 2]}, p)
    with pytest.raises(
        ValueError,
        match=r"attention\['target'\]\['anomalous'\] has shape \(3, 4\); expected \(P, K\) = \(P, 10\)",
    ):
        F.plot_attention_over_steps(timesteps, {"target": {"anomalous": np.ones((3, 4))}}, p)
    assert not p.exists()


def test_roc_and_histogram_validation(tmp_path):
    p = tmp_path / "x.png"
    with pytest.raises(ValueError, match=r"curves\['m'\] labels has shape \(3,\); expected \(N,\) = \(4,\)"):
        F.plot_roc_curves({"m": (np.ones(4), np.array([0, 1, 1]))}, p)
    with pytest.raises(ValueError, match="one class only"):
        F.plot_roc_curves({"m": (np.ones(4), np.zeros(4))}, p)
    with pytest.raises(ValueError, match="bool or 0/1"):
        F.plot_roc_curves({"m": (np.ones(4), np.array([0, 1, 2, 1]))}, p)
    with pytest.raises(TypeError, match=r"curves\['m'\] must be a \(scores, labels\) pair"):
        F.plot_roc_curves({"m": np.ones(4)}, p)
    with pytest.raises(ValueError, match=r"scores\['s'\]\['normal'\] has shape \(2, 2\)"):
        F.plot_score_histograms({"s": {"normal": np.ones((2, 2))}}, p)
    assert not p.exists()


def test_anomaly_map_validation(tmp_path, scene):
    image, mask, _ = scene
    p = tmp_path / "x.png"
    with pytest.raises(ValueError, match=rf"amap has shape \(5, 5\); expected \(H, W\) = \({H}, {W}\)"):
        F.plot_anomaly_map(image, np.ones((5, 5)), mask, p)
    amap = np.zeros((H, W))
    amap[3, 4] = np.nan
    with pytest.raises(ValueError, match="amap contains 1 non-finite"):
        F.plot_anomaly_map(image, amap, None, p)
    assert not p.exists()


# --------------------------------------------------------------------------- imports


def test_matplotlib_is_lazy_and_pyplot_never_used(tmp_path):
    code = (
        "import sys, numpy as np\n"
        "from refcfa.evaluation import figures\n"
        "assert 'matplotlib' not in sys.modules, 'matplotlib imported at module import'\n"
        f"figures.plot_score_histograms({{'s': {{'normal': np.arange(5.0)}}}}, {str(tmp_path / 'h.png')!r})\n"
        "assert 'matplotlib' in sys.modules\n"
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
