"""The Training / Results state models without Qt: job queue, settings, output scan, results."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from refcfa.evaluation.pipeline import save_maps
from refcfa_gui.state.jobs import JobQueue, format_eta, summarize_event
from refcfa_gui.state.results import find_metrics, load_results, nested_diagnostics, roc_points
from refcfa_gui.state.training import TrainingSettings, scan_outputs

REPO = Path(__file__).resolve().parents[2]
QUICK = REPO / "resources" / "configs" / "quick" / "quick.yaml"


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_state_modules_import_no_qt_and_no_torch():
    code = (
        "import sys, refcfa_gui.state.jobs, refcfa_gui.state.training, refcfa_gui.state.results; "
        "print(sorted(m for m in ('PySide6', 'torch', 'pyqtgraph', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_summarize_event_turns_library_events_into_small_dicts():
    from refcfa.engine.events import (
        CheckpointSaved,
        EpochEnd,
        LogEvent,
        StepEvent,
        TrainFinished,
        TrainStarted,
    )
    from refcfa.evaluation.pipeline import PipelineFinished, StageProgress, StageStarted

    assert summarize_event(TrainStarted(total_steps=50, start_step=10, domain="target", device="cpu")) == {
        "kind": "train_started",
        "part": "T1",
        "total": 50,
        "start": 10,
        "device": "cpu",
        "n_train": 0,
        "resumed_from": None,
    }
    step = summarize_event(StepEvent(step=3, epoch=1, loss=0.5, lr=1e-4, throughput=8.0, eta_s=12.0))
    assert step == {
        "kind": "step",
        "step": 3,
        "epoch": 1,
        "loss": 0.5,
        "lr": 1e-4,
        "throughput": 8.0,
        "eta_s": 12.0,
    }
    assert (
        summarize_event(CheckpointSaved(step=3, path="/x/checkpoint_epoch_1.pth"))["path"]
        == "/x/checkpoint_epoch_1.pth"
    )
    assert summarize_event(LogEvent("hello"))["message"] == "hello"
    assert summarize_event(TrainFinished(step=3, checkpoint=None, cancelled=True))["cancelled"] is True
    assert summarize_event(EpochEnd(epoch=1, step=3)) is None
    assert summarize_event(StageStarted("S2", "detector"))["stage"] == "S2"
    assert summarize_event(StageProgress("extract", 2, 5, "source_test"))["done"] == 2
    fin = summarize_event(PipelineFinished("/o", "/o/metrics.json", {"methods": {}}))
    assert fin["kind"] == "pipeline_finished" and fin["metrics"] == {"methods": {}}

    class DetectorTrained:  # the field that must not cross threads: the trained network
        model = object()
        epochs_run, best_epoch, cancelled = 4, 3, False

    payload = summarize_event(DetectorTrained())
    assert payload == {"kind": "detector_trained", "epochs_run": 4, "best_epoch": 3, "cancelled": False}


def test_queue_runs_jobs_in_order_and_tracks_progress_loss_and_checkpoints():
    clock = Clock()
    q = JobQueue(clock=clock)
    seen = {"changed": 0, "loss": 0, "finished": []}
    q.events.changed.connect(lambda job: seen.__setitem__("changed", seen["changed"] + 1))
    q.events.loss.connect(lambda item: seen.__setitem__("loss", seen["loss"] + 1))
    q.events.finished.connect(lambda job: seen["finished"].append((job.id, job.status)))
    a, b = q.submit("S1", output_dir="/o"), q.submit("T1", output_dir="/o")
    assert [j.status for j in q.jobs] == ["queued", "queued"] and q.next_queued() is a
    q.mark_running(a)
    assert q.next_queued() is None and q.running() is a and q.active() == [a, b]
    with pytest.raises(ValueError, match="only a queued job"):
        q.mark_running(a)
    q.apply(
        a,
        {
            "kind": "train_started",
            "part": "S1",
            "total": 10,
            "start": 0,
            "device": "cpu",
            "n_train": 8,
            "resumed_from": None,
        },
    )
    for s in (1, 2):
        q.apply(
            a,
            {
                "kind": "step",
                "step": s,
                "epoch": 1,
                "loss": 1.0 / s,
                "lr": 1e-4,
                "throughput": 4.0,
                "eta_s": 8.0 / s,
            },
        )
    q.apply(a, {"kind": "val", "step": 2, "val_loss": 0.7})
    q.apply(a, {"kind": "checkpoint", "step": 2, "path": "/o/S/checkpoint_epoch_1.pth"})
    # the ETA: the engine's per-step pace (8/9 s, then 4/8 s) averaged over the windows
    assert (a.done, a.total, a.fraction) == (2, 10, 0.2)
    assert a.eta_s == pytest.approx((0.7 * 8 / 9 + 0.3 * 4 / 8) * 8)
    assert a.loss == {"S1": [(1.0, 1.0), (2.0, 0.5)]} and a.val_loss == {"S1": [(2.0, 0.7)]}
    assert a.checkpoints == ["/o/S/checkpoint_epoch_1.pth"] and a.device == "cpu"
    assert seen["loss"] == 3 and "#1 S1 · running · 2/10 · ETA 6 s" == a.summary()
    clock.t += 5
    q.mark_done(a)
    assert a.status == "done" and seen["finished"] == [(1, "done")] and q.next_queued() is b
    assert a.summary().endswith("5 s")


def test_cancel_queued_and_running_jobs():
    q = JobQueue(clock=Clock())
    a, b = q.submit("all"), q.submit("S2")
    assert q.cancel(b) and b.status == "cancelled"
    q.mark_running(a)
    assert q.cancel(a) and a.status == "running" and a.cancel_requested
    assert "cancelling" in a.summary()
    q.apply(a, {"kind": "checkpoint", "step": 7, "path": "/o/c.pth"})
    q.mark_done(a)  # the worker returned normally after the cancel: the job still counts as cancelled
    assert a.status == "cancelled" and "last checkpoint /o/c.pth" in a.message
    assert not q.cancel(a) and q.active() == []
    q.remove_finished()
    assert q.jobs == []


def test_failed_job_keeps_message_and_details():
    q = JobQueue(clock=Clock())
    job = q.submit("S1")
    q.mark_running(job)
    lines = []
    q.events.log.connect(lambda item: lines.append(item[1]))
    q.mark_failed(job, "dataset root data/missing not found", "Traceback …")
    assert job.status == "failed" and job.error_details == "Traceback …"
    assert "failed" in job.summary() and "data/missing" in job.summary()
    assert lines == ["#1 S1: dataset root data/missing not found"]
    q.mark_done(job)  # a late finish does not change a finished job
    assert job.status == "failed"


def test_stage_progress_eta_from_the_pace_and_detector_epochs():
    clock = Clock()
    q = JobQueue(clock=clock)
    job = q.submit("all")
    q.mark_running(job)
    q.apply(job, {"kind": "stage_started", "stage": "extract", "description": "fields", "total": 0})
    clock.t += 10
    q.apply(job, {"kind": "stage_progress", "stage": "extract", "done": 2, "total": 10, "message": ""})
    assert job.part == "extract" and job.eta_s == pytest.approx(40.0)
    q.apply(
        job,
        {
            "kind": "detector_epoch",
            "epoch": 1,
            "epochs": 4,
            "loss": 0.3,
            "val_loss": 0.4,
            "val_auroc": 0.8,
            "elapsed_s": 2.0,
        },
    )
    assert job.part == "S2" and (job.done, job.total) == (1, 4) and job.eta_s == pytest.approx(6.0)
    assert job.loss["S2"] == [(1.0, 0.3)] and job.val_loss["S2"] == [(1.0, 0.4)]
    metrics = {"methods": {"ref_cfa": {"image_auroc": 1.0}}}
    q.apply(
        job,
        {
            "kind": "pipeline_finished",
            "output_dir": "/o",
            "metrics_path": "/o/metrics.json",
            "metrics": metrics,
            "cancelled": False,
        },
    )
    assert job.metrics == metrics and job.metrics_path == "/o/metrics.json"


def test_format_eta():
    assert [format_eta(v) for v in (None, float("nan"), 4.4, 75, 3725)] == [
        "?",
        "?",
        "4 s",
        "1 min 15 s",
        "1 h 02 min",
    ]


def test_unknown_stage_is_refused():
    with pytest.raises(ValueError, match="expected one of S1, T1, S2, T2, all"):
        JobQueue().submit("S3")


# -- settings ----------------------------------------------------------------------------------------
def test_settings_edit_validate_and_save_round_trip(tmp_path):
    from refcfa.config import load_config

    s = TrainingSettings()
    errors = []
    s.events.error.connect(errors.append)
    cfg = s.open(QUICK)
    assert cfg.train.max_steps == 6 and s.get("train.max_steps") == 6 and not s.is_edited
    assert s.get("eval.sigma") is None and s.get("cfa.coral") is True  # schema defaults for absent keys
    assert s.set("train.max_steps", 9) and s.config().train.max_steps == 9 and s.is_edited
    assert not s.set("field.K", 500)  # K must be ≤ t0 = 20
    assert errors and "field.K" in errors[-1]
    with pytest.raises(ValueError, match="field.K"):
        s.config()
    assert s.set("field.K", 5) and errors[-1] is None
    s.set("source.root", str(tmp_path / "data"))
    s.set("cfa.subspace", False)
    out = s.save(tmp_path / "saved.yaml")
    assert not s.is_edited and s.path == out
    text = out.read_text()
    assert "_base_" not in text
    loaded = load_config(out)
    assert loaded.to_dict() == s.config().to_dict()
    assert (loaded.train.max_steps, loaded.field.K, loaded.cfa.subspace) == (9, 5, False)


def test_settings_open_reports_missing_files():
    with pytest.raises(FileNotFoundError):
        TrainingSettings().open("/no/such/config.yaml")


def _touch(p: Path, text: str = "") -> Path:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


def test_scan_outputs_lists_what_earlier_runs_left(tmp_path):
    from refcfa.config import load_config

    cfg = load_config(QUICK, [f"output_dir={tmp_path / 'out'}"])
    empty = scan_outputs(cfg)
    assert empty.empty and empty.stages == {}
    out = tmp_path / "out"
    _touch(out / "Quick_Source" / "checkpoint_epoch_1.pth")
    _touch(out / "Quick_Source" / "checkpoint_epoch_2.pth")
    _touch(out / "Quick_Source" / "last", "checkpoint_epoch_2.pth")
    _touch(out / "Quick_Source" / "supervised_segmenter.pth")
    _touch(out / "Quick_Target" / "checkpoint_epoch_1.pth")
    _touch(out / "cache" / "ab" / "abc.h5", "x" * 10)
    _touch(out / "cache" / "cd" / "cde.h5", "x" * 5)
    _touch(out / "vis_supervised" / "target_texture" / "maps.npz")
    _touch(out / "vis_supervised" / "target_texture" / "metrics.json", "{}")
    found = scan_outputs(cfg)
    assert found.checkpoints["Quick_Source"][-1].endswith("checkpoint_epoch_2.pth")
    assert list(found.checkpoints) == ["Quick_Source", "Quick_Target"]
    assert found.segmenters == [str(out / "Quick_Source" / "supervised_segmenter.pth")]
    assert (found.cache_entries, found.cache_bytes) == (2, 15)
    assert found.stages == {
        "S1": "Quick_Source/checkpoint_epoch_2.pth",
        "T1": "Quick_Target/checkpoint_epoch_1.pth",
        "S2": "Quick_Source/supervised_segmenter.pth",
        "T2": "vis_supervised/target_texture/maps.npz",
    }
    assert found.latest_metrics == str(out / "vis_supervised" / "target_texture" / "metrics.json")
    _touch(out / "metrics.json", "{}")
    assert Path(scan_outputs(cfg).metrics[0]).parent in (out, out / "vis_supervised" / "target_texture")


# -- results -----------------------------------------------------------------------------------------
def _write_run(out: Path, diag: dict | None = None) -> dict:
    rng = np.random.default_rng(0)
    labels = np.array([0, 0, 0, 1, 1, 1, 1], bool)
    masks = np.zeros((7, 16, 16), bool)
    masks[labels, 4:8, 4:8] = True
    good = rng.random((7, 16, 16)).astype(np.float32) + masks * 3.0
    flat = np.ones((7, 16, 16), np.float32)
    vis = out / "vis_supervised" / "tgt"
    save_maps(vis, [f"test/x/{i:03d}" for i in range(7)], labels, masks, {"residual": flat, "ref_cfa": good})
    metrics = {
        "source": {"category": "src"},
        "target": {"category": "tgt"},
        "transductive": True,
        "n_target_test": 7,
        "methods": {
            "residual": dict.fromkeys(("image_auroc", "pixel_auroc", "aupro", "pixel_ap", "f1_max"), 0.5),
            "ref_cfa": dict.fromkeys(("image_auroc", "pixel_auroc", "aupro", "pixel_ap", "f1_max"), 1.0),
        },
        "cfa_diagnostics": diag or {},
    }
    (out / "metrics.json").write_text(json.dumps(metrics))
    return metrics


def test_load_results_scores_rocs_and_the_title(tmp_path):
    from refcfa.metrics import default_sigma, image_auroc, smooth_and_max

    metrics = _write_run(tmp_path)
    assert find_metrics(tmp_path) == tmp_path / "metrics.json"
    res = load_results(tmp_path)
    assert res.methods == metrics["methods"] and res.image_ids[0] == "test/x/000"
    assert res.title() == "target tgt (source src) · 7 test images · transductive"
    assert res.sigma == default_sigma(16)
    with np.load(tmp_path / "vis_supervised" / "tgt" / "maps.npz") as z:
        expected = smooth_and_max(z["ref_cfa"].astype(np.float32), default_sigma(16))
    np.testing.assert_array_equal(res.scores["ref_cfa"], expected)
    fpr, tpr, auc = res.roc["ref_cfa"]
    assert auc == image_auroc(expected, res.labels) == 1.0
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert res.roc["residual"][2] == 0.5  # all ties: one threshold


def test_roc_points_match_the_auroc_by_trapezoids():
    rng = np.random.default_rng(1)
    s, y = rng.random(40), rng.random(40) > 0.5
    fpr, tpr, auc = roc_points(s, y)
    assert np.trapezoid(tpr, fpr) == pytest.approx(auc)
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)


def test_load_results_errors_and_t2_layout(tmp_path):
    with pytest.raises(FileNotFoundError, match="no metrics.json"):
        load_results(tmp_path)
    (tmp_path / "metrics.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="no `methods` table"):
        load_results(tmp_path)
    (tmp_path / "metrics.json").unlink()
    t2 = tmp_path / "vis_supervised" / "cat"
    t2.mkdir(parents=True)
    (t2 / "metrics.json").write_text(json.dumps({"methods": {"ref_cfa": {}}, "target": {"category": "cat"}}))
    assert find_metrics(tmp_path) == t2 / "metrics.json"
    res = load_results(tmp_path)
    assert res.scores == {} and "no maps.npz" in res.note


def test_nested_diagnostics_for_the_figure():
    flat = {
        "dtw_cost_before": 1.0,
        "dtw_cost_after": 0.5,
        "coral_distance_before": 2.0,
        "coral_distance_after": 0.1,
        "principal_angles_before": [10.0],
        "principal_angles_after": [1.0],
        "index_cost_before": 3.0,
    }
    assert nested_diagnostics(flat) == {
        "temporal": {"dtw_cost_before": 1.0, "dtw_cost_after": 0.5},
        "coral": {"coral_distance_before": 2.0, "coral_distance_after": 0.1},
        "subspace": {"principal_angles_before": [10.0], "principal_angles_after": [1.0]},
    }
    assert nested_diagnostics({}) == {}
