"""The end-to-end pipeline on the quick config: outputs, label lock, bad inputs, seed commands."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from refcfa.cli import main
from refcfa.config import load_config
from refcfa.errors import CheckpointError, DatasetError
from refcfa.evaluation.labels import LabelsLockedError, TargetImages
from refcfa.evaluation.pipeline import METHODS, METRIC_KEYS, Pipeline, PipelineFinished

pytestmark = pytest.mark.slow


def quick(quick_cfg_path, root, out, *extra):
    return load_config(quick_cfg_path, [f"source.root={root}", f"target.root={root}", f"output_dir={out}",
                                        "eval.write_maps=false", *extra])


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, synthetic_root):
    """One full quick pipeline run, shared by the tests that only read its outputs."""
    from refcfa.config import resources_dir

    out = tmp_path_factory.mktemp("pipeline_out")
    cfg = quick(resources_dir() / "configs" / "quick" / "quick.yaml", synthetic_root, out)
    events = list(Pipeline(cfg, "cpu").run())
    return cfg, out, events


def test_pipeline_writes_a_complete_metrics_json(finished_run):
    cfg, out, events = finished_run
    assert isinstance(events[-1], PipelineFinished) and not events[-1].cancelled
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["source"]["category"] == "source_texture"
    assert metrics["target"]["category"] == "target_texture"
    assert metrics["transductive"] is True
    assert set(metrics["methods"]) == set(METHODS)
    for name, vals in metrics["methods"].items():
        assert set(vals) >= set(METRIC_KEYS), name
        for k in METRIC_KEYS:
            assert 0.0 <= vals[k] <= 1.0, (name, k, vals[k])
    diag = metrics["cfa_diagnostics"]
    assert any("dtw" in k for k in _flat_keys(diag))
    assert any("coral" in k for k in _flat_keys(diag))
    assert any("angle" in k for k in _flat_keys(diag))
    assert {"S1", "T1", "extract", "S2", "T2", "eval", "total"} <= set(metrics["timings_s"])
    table = (out / "metrics.md").read_text()
    for name in METHODS:
        assert f"| {name} |" in table
    assert (out / "Quick_Source" / "supervised_segmenter.pth").exists()
    maps = np.load(out / "vis_supervised" / "target_texture" / "maps.npz")
    assert maps["ref_cfa"].shape == (10, 16, 16)
    # the stored maps are the ones scored: they reproduce metrics.json exactly
    from refcfa.metrics import evaluate_maps

    for name in METHODS:
        m = evaluate_maps(maps[name], maps["masks"], maps["labels"], sigma=cfg.eval.sigma)
        assert m["image_auroc"] == metrics["methods"][name]["image_auroc"], name
        assert m["aupro"] == metrics["methods"][name]["aupro"], name


def _flat_keys(d, prefix=""):
    for k, v in d.items():
        yield prefix + k
        if isinstance(v, dict):
            yield from _flat_keys(v, prefix + k + ".")


def test_rerun_reuses_checkpoints_cache_and_segmenter(finished_run):
    from refcfa.engine.events import TrainFinished
    from refcfa.evaluation.pipeline import StageProgress

    cfg, out, _ = finished_run
    before = json.loads((out / "metrics.json").read_text())
    events = list(Pipeline(cfg, "cpu").run())
    finished = [e for e in events if isinstance(e, TrainFinished)]
    assert [e.reason for e in finished] == ["already_done", "already_done"]
    assert any(isinstance(e, StageProgress) and "reusing" in e.message for e in events)
    after = json.loads((out / "metrics.json").read_text())
    assert after["methods"] == before["methods"]  # same trajectories, same detector: same numbers


def test_target_labels_are_locked_until_evaluation(tmp_path, synthetic_root, quick_cfg_path, monkeypatch):
    """Every read of target labels/masks before the eval stage would raise; the run must not hit one."""
    import refcfa.data.torch_dataset as tds

    reads = []
    real_load_masks = tds.load_masks

    def spy(samples, *a, **k):
        reads.append({s.category for s in samples})
        return real_load_masks(samples, *a, **k)

    monkeypatch.setattr(tds, "load_masks", spy)
    opened_at = []
    real_open = TargetImages.open_for_evaluation

    def spy_open(self):
        opened_at.append(len(reads))
        real_open(self)

    monkeypatch.setattr(TargetImages, "open_for_evaluation", spy_open)
    cfg = quick(quick_cfg_path, synthetic_root, tmp_path)
    stages = []
    for ev in Pipeline(cfg, "cpu").run():
        if type(ev).__name__ == "StageStarted":
            stages.append(ev.stage)
    # masks of the target were read only after open_for_evaluation, which came in the eval stage
    n_before_open = opened_at[0]
    assert all("target_texture" not in cats for cats in reads[:n_before_open])
    assert any("target_texture" in cats for cats in reads[n_before_open:])
    assert stages[-1] == "eval"


def test_target_images_refuse_labels_before_evaluation(synthetic_root):
    from refcfa.data import make_samples

    t = TargetImages([s for s in make_samples(synthetic_root, "mvtec", "target_texture") if s.split == "test"])
    with pytest.raises(LabelsLockedError, match="before the evaluation stage"):
        t.labels()
    with pytest.raises(LabelsLockedError):
        t.masks(16)
    assert all(s.label == 0 and s.mask_path is None for s in t.samples_for_loading())
    t.open_for_evaluation()
    assert t.labels().sum() == 6


def test_target_without_images_is_a_clear_error(tmp_path, synthetic_root, quick_cfg_path):
    root = tmp_path / "data"
    shutil.copytree(synthetic_root, root)
    shutil.rmtree(root / "target_texture" / "test")
    (root / "target_texture" / "test").mkdir()
    cfg = quick(quick_cfg_path, root, tmp_path / "out")
    with pytest.raises(DatasetError, match=r"target.*target_texture.*no test images"):
        list(Pipeline(cfg, "cpu").run())


def test_source_without_anomalies_and_no_synthetic_is_refused(tmp_path, synthetic_root, quick_cfg_path):
    cfg = quick(quick_cfg_path, synthetic_root, tmp_path, "detector.synthetic_anomalies=false",
                "detector.use_labelled=false")
    with pytest.raises(DatasetError, match=r"no labelled anomalies.*synthetic_anomalies is false"):
        list(Pipeline(cfg, "cpu").run())


def test_segmenter_from_another_field_configuration_is_refused(finished_run, tmp_path):
    """T2 with K changed: the stored segmenter expects other fields and says so."""
    from refcfa.evaluation import analysis

    cfg, out, _ = finished_run
    cfg2 = load_config(cfg.source_file.split(" (with")[0],
                       [f"source.root={cfg.source.root}", f"target.root={cfg.target.root}",
                        f"output_dir={out}", "field.K=3", "eval.write_maps=false"])
    src_ckpt = next((out / "Quick_Source").glob("checkpoint_epoch_*.pth"))
    with pytest.raises(CheckpointError, match=r"K"):
        list(analysis.run_supervised_localization(cfg2, src_ckpt, "cpu"))


def test_seed_analyze_modes_write_their_outputs(finished_run, capsys):
    cfg, out, _ = finished_run
    src_ckpt = sorted((out / "Quick_Source").glob("checkpoint_epoch_*.pth"))[-1]
    base = ["analyze", "--config", cfg.source_file.split(" (with")[0], "--checkpoint", str(src_ckpt),
            "--set", f"source.root={cfg.source.root}", f"target.root={cfg.target.root}", f"output_dir={out}",
            "eval.write_maps=true"]
    assert main([*base, "--analyze_residuals", "--analyze_transformer"]) == 0
    assert (out / "vis_ref_dynamics" / "source_texture" / "ref_dynamics.png").stat().st_size > 1000
    assert (out / "vis_transformer" / "statistics.png").stat().st_size > 1000
    assert (out / "vis_transformer" / "attention.png").stat().st_size > 1000
    assert main([*base, "--run_supervised_localization"]) == 0
    vis = out / "vis_supervised" / "target_texture"
    assert json.loads((vis / "metrics.json").read_text())["methods"]["ref_cfa"]["image_auroc"] >= 0
    assert len(list(vis.glob("test_*.png"))) == 10


def test_analyze_without_a_mode_or_checkpoint_is_a_clear_error(quick_cfg_path, tmp_path, capsys):
    assert main(["analyze", "--config", str(quick_cfg_path), "--checkpoint", str(tmp_path / "x.pth"),
                 "--train_localization"]) == 2
    assert "x.pth: no such file" in capsys.readouterr().err
    assert main(["analyze", "--config", str(quick_cfg_path), "--checkpoint", "x"]) == 2
    assert "--train_localization" in capsys.readouterr().err


def test_cli_pipeline_prints_the_table(tmp_path, synthetic_root, quick_cfg_path, capsys):
    code = main(["pipeline", "--config", str(quick_cfg_path), "--output", str(tmp_path / "o"), "--quiet",
                 "--set", f"source.root={synthetic_root}", f"target.root={synthetic_root}",
                 "eval.write_maps=false"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "| ref_cfa |" in printed and "metrics.json" in printed
    assert Path(tmp_path / "o" / "config.yaml").exists()


def test_validate_detector_script_scores_held_out_draws(finished_run, tmp_path, capsys, monkeypatch):
    """`scripts/validate_detector.py` (how the demo's detector settings were chosen) runs on a
    finished run: source validation plus every method on a held-out target draw."""
    import runpy
    import sys

    from refcfa.config import resources_dir

    cfg, out, _ = finished_run
    run = tmp_path / "run"
    shutil.copytree(out, run)
    seg = run / "Quick_Source" / "supervised_segmenter.pth"
    before = seg.stat().st_mtime_ns
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [
        "validate_detector.py", "--config", str(resources_dir() / "configs" / "quick" / "quick.yaml"),
        "--output", str(run), "--heldout", str(tmp_path / "heldout"),
        "--set", f"source.root={cfg.source.root}", "eval.write_maps=false",
    ])
    runpy.run_path(str(Path(__file__).parents[2] / "scripts" / "validate_detector.py"), run_name="__main__")
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith("source validation (source_texture)") for line in lines)
    for name in METHODS:
        row = next(line for line in lines if line.startswith(f"held-out target {name} "))
        values = [float(v) for v in row.split()[-3:]]
        assert all(0.0 <= v <= 1.0 for v in values), row
    assert seg.stat().st_mtime_ns == before  # same detector settings: the segmenter is reused
    assert (tmp_path / "heldout" / "target_texture").is_dir()


def test_compare_methods_script_reproduces_the_run_and_bootstraps(finished_run, capsys, monkeypatch):
    """`scripts/compare_methods.py` recomputes the run's image AUROCs from maps.npz exactly, and a
    method against itself differs by exactly 0 in every resample."""
    import runpy
    import sys

    _, out, _ = finished_run
    metrics = json.loads((out / "metrics.json").read_text())["methods"]
    script = str(Path(__file__).parents[2] / "scripts" / "compare_methods.py")
    for a, b in (("ref_cfa", "residual"), ("ref_cfa", "ref_cfa")):
        monkeypatch.setattr(sys, "argv", ["compare_methods.py", "--output", str(out), a, b, "--rounds", "200"])
        runpy.run_path(script, run_name="__main__")
        text = capsys.readouterr().out
        assert f"image AUROC {a} {metrics[a]['image_auroc']:.3f}, {b} {metrics[b]['image_auroc']:.3f}" in text
    assert "difference +0.000, 95 % bootstrap interval [+0.000, +0.000]" in text
    monkeypatch.setattr(sys, "argv", ["compare_methods.py", "--output", str(out), "ref_cfa", "nope"])
    with pytest.raises(SystemExit, match="method 'nope' is not in"):
        runpy.run_path(script, run_name="__main__")
