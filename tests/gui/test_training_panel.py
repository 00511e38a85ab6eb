"""The Training / CFA panel: real stages on the quick config, cancel, errors, the queue, life cycle."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from PySide6.QtCore import QTimer

from refcfa_gui.state.jobs import JobQueue
from refcfa_gui.widgets.training_panel import TrainingPanel
from refcfa_gui.workers.job_runner import JobRunner

pytestmark = pytest.mark.gui

REPO = Path(__file__).resolve().parents[2]
QUICK = REPO / "resources" / "configs" / "quick" / "quick.yaml"
JOB_TIMEOUT_MS = 240_000


@pytest.fixture
def make_panel(qtbot, synthetic_root, tmp_path):
    made = []

    def make(output: Path | None = None, runner: JobRunner | None = None, **values) -> TrainingPanel:
        panel = TrainingPanel(config=QUICK, runner=runner)
        qtbot.addWidget(panel)
        panel.resize(420, 900)
        panel.set_value("source.root", str(synthetic_root))
        panel.set_value("target.root", str(synthetic_root))
        panel.set_value("output_dir", str(output or tmp_path / "out"))
        for key, value in values.items():
            panel.set_value(key.replace("__", "."), value)
        panel.show()
        made.append(panel)
        return panel

    yield make
    for panel in made:
        assert panel.shutdown(60), "a job did not stop"


def wait_job(qtbot, job, timeout: int = JOB_TIMEOUT_MS) -> None:
    qtbot.waitUntil(lambda: job.is_finished, timeout=timeout)


def test_run_s1_draws_the_loss_curve_and_writes_a_checkpoint(qtbot, make_panel, tmp_path):
    panel = make_panel()
    ticks = []
    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(lambda: ticks.append(1))
    workers = []
    panel.queue.events.changed.connect(
        lambda job: (
            workers.append(panel.runner.worker_of(job)) if job.status == "running" and not workers else None
        )
    )
    timer.start()
    job = panel.run_stage("S1")
    assert job is not None and job.stage == "S1"
    wait_job(qtbot, job)
    timer.stop()
    assert job.status == "done", job.error_details
    # the loss curve got every StepEvent (quick config: 6 steps, log_every 1), and drew them
    assert [x for x, _ in job.loss["S1"]] == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    qtbot.waitUntil(lambda: panel.loss_plot.shown_count() == 6, timeout=2000)
    assert panel.loss_plot.redraws >= 1
    # the checkpoint is on disk and the panel lists it
    ckpt = Path(job.checkpoints[-1])
    assert ckpt.is_file() and ckpt.parent == tmp_path / "out" / "Quick_Source"
    qtbot.waitUntil(lambda: "✓" in panel.stage_labels["S1"].text(), timeout=5000)
    assert ckpt.name in panel.stage_labels["S1"].text()
    assert "not run yet" in panel.stage_labels["T1"].text()
    # the job ran on a worker thread, the GUI thread kept ticking meanwhile
    assert workers and workers[0].thread_name not in ("", threading.main_thread().name)
    assert len(ticks) > 10
    assert "→ cpu" in panel.form.device_label.text()
    assert "checkpoint_epoch_2.pth" in panel.monitor.log_view.toPlainText()
    assert job.status in panel.monitor.job_list.item(0).text()
    assert panel.monitor.progress.value() == 1000 and panel.monitor.progress.format() == "6/6 steps"


@pytest.mark.slow
def test_cancel_stops_within_a_batch_and_keeps_a_loadable_checkpoint(qtbot, make_panel, tmp_path):
    from refcfa.engine.checkpoint import find_last_checkpoint, load_checkpoint

    panel = make_panel(train__max_steps=100_000, train__checkpoint_every=100_000)
    job = panel.run_stage("S1")

    def cancel_on_first_step(item):
        j, _part = item
        if j is job and not j.cancel_requested:
            panel.cancel_current()

    panel.queue.events.loss.connect(cancel_on_first_step)
    wait_job(qtbot, job)
    assert job.status == "cancelled"
    first_steps = [x for x, _ in job.loss["S1"]]
    # the engine checks the token before every step: it stops a step or so after the cancel lands
    assert first_steps[0] == 1.0 and len(first_steps) < 10
    ckpt = find_last_checkpoint(tmp_path / "out" / "Quick_Source")
    assert ckpt is not None and str(ckpt) == job.checkpoints[-1]
    state = load_checkpoint(ckpt)
    assert state["step"] == len(first_steps) and state["kind"] == "score_network"
    assert panel.banner.level == "warning" and "cancelled" in panel.banner.message()
    assert "cancelled" in panel.monitor.job_list.item(0).text()
    assert not panel.cancel_button.isEnabled()


@pytest.mark.slow
def test_run_all_gives_the_numbers_of_refcfa_pipeline(qtbot, make_panel, tmp_path, monkeypatch):
    from refcfa import cli
    from refcfa_gui.widgets.evaluation_panel import EvaluationPanel

    panel = make_panel(output=tmp_path / "gui")
    results = EvaluationPanel()
    qtbot.addWidget(results)
    panel.results_ready.connect(results.load)
    job = panel.run_stage("all")
    wait_job(qtbot, job)
    assert job.status == "done", job.error_details
    qtbot.waitUntil(lambda: results.results is not None and results.idle(), timeout=30000)
    written = json.loads((tmp_path / "gui" / "metrics.json").read_text())
    assert results.metrics_values() == written["methods"]
    assert job.metrics["methods"] == written["methods"]
    assert results.image_table.rowCount() == written["n_target_test"]

    # the same settings saved from the panel run unchanged by the CLI, on a second output folder
    saved = panel.save_config(tmp_path / "saved.yaml")
    assert saved is not None and "_base_" not in saved.read_text()
    monkeypatch.chdir(tmp_path)
    assert cli.main(["pipeline", "--config", str(saved), "--output", str(tmp_path / "cli"), "--quiet"]) == 0
    by_cli = json.loads((tmp_path / "cli" / "metrics.json").read_text())
    assert by_cli["methods"] == written["methods"]  # deterministic on CPU: equal, not close
    assert by_cli["cfa_diagnostics"] == written["cfa_diagnostics"]
    # the panel now lists every stage as done
    qtbot.waitUntil(
        lambda: all("✓" in panel.stage_labels[s].text() for s in ("S1", "T1", "S2", "T2")), timeout=5000
    )


def test_a_failing_job_shows_an_error_and_the_panel_keeps_working(qtbot, make_panel, tmp_path):
    panel = make_panel()
    missing = tmp_path / "no_such_dataset"
    panel.set_value("source.root", str(missing))
    job = panel.run_stage("S1")
    wait_job(qtbot, job)
    assert job.status == "failed" and str(missing) in job.error
    assert panel.banner.level == "error" and str(missing) in panel.banner.message()
    assert panel.details_button.isVisibleTo(panel) and "Traceback" in panel.last_error_details
    box = panel.show_error_details()
    assert "Traceback" in box.detailedText()
    box.close()
    # an invalid setting is refused before it becomes a job
    assert not panel.set_value("field.K", 500)
    assert not panel.run_buttons["S1"].isEnabled() and "field.K" in panel.banner.message()
    assert panel.run_stage("T1") is None and len(panel.queue.jobs) == 1
    panel.set_value("field.K", 4)
    assert panel.run_buttons["S1"].isEnabled()
    # the panel keeps working: the next job runs (a stand-in stage, to keep the test short)
    ran = []
    panel.runner.stage_fn = _fake_stage(ran)
    job2 = panel.run_stage("S1")
    wait_job(qtbot, job2)
    assert (
        job2.status == "done" and ran and panel.banner.level == "error"
    )  # the old error stays until dismissed
    assert [x for x, _ in job2.loss["S1"]] == [1.0, 2.0, 3.0]


def test_stage_without_its_prerequisite_fails_with_a_message(qtbot, make_panel):
    panel = make_panel()
    job = panel.run_stage("S2")
    wait_job(qtbot, job)
    assert job.status == "failed" and "run S1 first" in job.error


def _fake_stage(log: list, gate: threading.Event | None = None):
    from refcfa.engine.events import LogEvent, StepEvent, TrainFinished, TrainStarted

    def stage_fn(cfg, stage, device, cancel):
        log.append((stage, threading.current_thread().name))
        yield TrainStarted(total_steps=3, domain="source", device="cpu")
        for s in range(1, 4):
            if gate is not None:
                gate.wait(5)
            if cancel.cancelled:
                yield TrainFinished(step=s - 1, checkpoint=None, cancelled=True, reason="cancelled")
                return
            yield StepEvent(step=s, epoch=1, loss=1.0 / s, lr=1e-3, throughput=1.0, eta_s=3.0 - s)
        yield LogEvent(f"{stage} done")
        yield TrainFinished(step=3, checkpoint=None)

    return stage_fn


def test_the_queue_runs_one_job_at_a_time_in_order(qtbot, make_panel):
    ran = []
    gate = threading.Event()
    runner = JobRunner(JobQueue(), stage_fn=_fake_stage(ran, gate))
    panel = make_panel(runner=runner)
    a, b, c = panel.run_stage("S1"), panel.run_stage("T1"), panel.run_stage("S2")
    assert (a.status, b.status, c.status) == ("running", "queued", "queued")
    assert panel.runner.cancel(c) and c.status == "cancelled"
    assert panel.monitor.job_list.count() == 3
    gate.set()
    wait_job(qtbot, b)
    assert (a.status, b.status, c.status) == ("done", "done", "cancelled")
    assert [s for s, _ in ran] == ["S1", "T1"]
    assert all(name != threading.main_thread().name for _, name in ran)
    assert "T1 done" in panel.monitor.log_view.toPlainText()
    panel.monitor.clear_button.click()
    assert panel.monitor.job_list.count() == 0 and panel.queue.jobs == []


def test_reopening_shows_what_was_trained_and_loads_the_latest_metrics(qtbot, synthetic_root, tmp_path):
    from refcfa.config import load_config, save_config

    out = tmp_path / "out"
    for rel in (
        "Quick_Source/checkpoint_epoch_1.pth",
        "Quick_Source/supervised_segmenter.pth",
        "Quick_Target/checkpoint_epoch_3.pth",
        "cache/ab/abcd.h5",
    ):
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_bytes(b"x")
    (out / "metrics.json").write_text(json.dumps({"methods": {"ref_cfa": {"image_auroc": 0.75}}}))
    cfg = load_config(
        QUICK, [f"source.root={synthetic_root}", f"target.root={synthetic_root}", f"output_dir={out}"]
    )
    path = save_config(cfg, tmp_path / "run.yaml")
    panel = TrainingPanel(config=path)
    qtbot.addWidget(panel)
    with qtbot.waitSignal(panel.results_ready, timeout=10000) as blocker:
        pass
    assert blocker.args == [str(out / "metrics.json")]
    assert "checkpoint_epoch_1.pth" in panel.stage_labels["S1"].text()
    assert "checkpoint_epoch_3.pth" in panel.stage_labels["T1"].text()
    assert "supervised_segmenter.pth" in panel.stage_labels["S2"].text()
    assert "not run yet" in panel.stage_labels["T2"].text()
    tree = panel.outputs_tree.topLevelItem(0)
    rows = [tree.child(i).text(0) for i in range(tree.childCount())]
    assert rows == ["Quick_Source", "Quick_Target", "detector (S2)", "trajectory cache", "metrics"]
    assert panel.load_results_button.isEnabled()
    panel.shutdown(5)


def test_config_widgets_follow_the_file_and_edit_it(qtbot, make_panel, synthetic_root, tmp_path):
    panel = make_panel()
    spin = panel.form.fields["train.max_steps"]
    assert spin.value() == 6
    spin.setValue(40)
    assert panel.model.config().train.max_steps == 40 and "(edited)" in panel.config_label.text()
    panel.form.fields["cfa.coral"].setChecked(False)
    assert panel.model.config().cfa.coral is False
    combo = panel.form.fields["target.category"]
    assert {combo.itemText(i) for i in range(combo.count())} >= {"source_texture", "target_texture"}
    panel.form.fields["device"].setCurrentText("cpu")
    assert panel.model.config().device == "cpu"
    saved = panel.save_config(tmp_path / "edited.yaml")
    assert "(edited)" not in panel.config_label.text() and panel.model.path == saved
    other = make_panel()
    assert other.open_config(saved)
    assert (
        other.form.fields["train.max_steps"].value() == 40 and not other.form.fields["cfa.coral"].isChecked()
    )
    assert not other.open_config(tmp_path / "missing.yaml")
    assert "missing.yaml" in other.banner.message()


DROP_RUNNER = """
import gc, os, sys, threading, time
os.environ["QT_QPA_PLATFORM"] = "offscreen"
from PySide6.QtWidgets import QApplication
app = QApplication([])
from refcfa_gui.workers import job_runner
from refcfa_gui.workers.job_runner import JobRunner

gate = threading.Event()

def stage_fn(cfg, stage, device, cancel):
    gate.wait(10)
    yield from ()

runner = JobRunner(stage_fn=stage_fn)
job = runner.submit("S1", None, device="cpu")
del runner
gc.collect()
app.processEvents()
gate.set()
end = time.monotonic() + 20
while any(t.isRunning() for t, _ in job_runner._LIVE.values()) and time.monotonic() < end:
    app.processEvents()
    time.sleep(0.01)
print("alive" if any(t.isRunning() for t, _ in job_runner._LIVE.values()) else "finished")
"""


def test_dropping_a_runner_mid_job_never_destroys_a_running_thread(tmp_path):
    import os
    import subprocess
    import sys

    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    proc = subprocess.run(
        [sys.executable, "-c", DROP_RUNNER], capture_output=True, text=True, timeout=120, env=env
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "finished"
    assert "Destroyed while thread is still running" not in proc.stderr


# -- in the main window -----------------------------------------------------------------------------
CLOSE_DURING_JOB = """
import json, os, sys, time
os.environ["QT_QPA_PLATFORM"] = "offscreen"
os.environ["REFCFA_GUI_THEME"] = "light"
from PySide6.QtWidgets import QApplication, QMessageBox
app = QApplication([])
asked = []
QMessageBox.question = staticmethod(lambda *a, **k: asked.append(a[2]) or QMessageBox.StandardButton.Yes)
from refcfa_gui.main_window import MainWindow
from refcfa_gui.settings import Settings, make_qsettings
from refcfa_gui.workers import job_runner

root, out, quick = sys.argv[1:4]
w = MainWindow(Settings(make_qsettings(os.path.join(out, "settings.ini"))), cache_dir=os.path.join(out, "cache"))
w.show()
p = w.training
assert p.open_config(quick)
for key, value in (("source.root", root), ("target.root", root), ("output_dir", out),
                   ("train.max_steps", 100000), ("train.checkpoint_every", 100000)):
    p.set_value(key, value)
job = p.run_stage("S1")
end = time.monotonic() + 120
while not job.loss.get("S1") and time.monotonic() < end:
    app.processEvents()
    time.sleep(0.005)
worker = p.runner.worker_of(job)
t0 = time.monotonic()
closed = w.close()
took = time.monotonic() - t0
print(json.dumps({"closed": closed, "asked": len(asked), "status": job.status, "took_s": took,
                  "cancel_requested": worker.cancel_requested, "checkpoints": job.checkpoints,
                  "threads_running": sum(t.isRunning() for t, _ in job_runner._LIVE.values()),
                  "steps": len(job.loss["S1"])}))
"""


@pytest.mark.slow
def test_closing_the_window_during_a_job_cancels_it_and_exits_cleanly(tmp_path, synthetic_root):
    import os
    import subprocess
    import sys

    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    env.pop("REFCFA_GUI_SETTINGS", None)
    proc = subprocess.run(
        [sys.executable, "-c", CLOSE_DURING_JOB, str(synthetic_root), str(tmp_path), str(QUICK)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "QThread: Destroyed while thread" not in proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["closed"] and out["asked"] == 1 and out["cancel_requested"]
    assert out["status"] == "cancelled" and out["threads_running"] == 0
    assert out["steps"] < 100000 and Path(out["checkpoints"][-1]).is_file()  # the cancel wrote a checkpoint


def test_closing_with_a_job_can_be_declined(make_window, world_template, qtbot, monkeypatch):
    from PySide6.QtWidgets import QMessageBox

    ran = []
    gate = threading.Event()
    w = make_window(world_template, open_root=False)
    w.training.runner.stage_fn = _fake_stage(ran, gate)
    job = w.training.run_stage("S1")
    answers = [QMessageBox.StandardButton.No]
    monkeypatch.setattr(QMessageBox, "question", staticmethod(lambda *a, **k: answers.pop(0)))
    assert not w.close() and w.isVisible() and job.status == "running"  # "No": nothing happens
    assert "Running: S1 (running)" in w.status.jobs_label.text()
    gate.set()
    wait_job(qtbot, job)
    assert job.status == "done" and w.close()  # nothing left to ask about


def test_a_result_row_opens_that_image_in_the_timeline(make_window, world_template, qtbot, tmp_path):
    import numpy as np

    from refcfa.evaluation.pipeline import save_maps

    ids = ["test/crack/000", "test/good/000"]
    out = tmp_path / "run"
    vis = out / "vis_supervised" / "source_texture"
    maps = np.random.default_rng(0).random((2, 8, 8))
    save_maps(vis, ids, np.array([1, 0], bool), np.zeros((2, 8, 8), bool), {"ref_cfa": maps, "residual": maps})
    metrics = {
        "source": {"category": "source_texture"},
        "target": {"root": str(world_template.root), "category": "source_texture"},
        "methods": {
            "ref_cfa": dict.fromkeys(("image_auroc", "pixel_auroc", "aupro", "pixel_ap", "f1_max"), 1.0)
        },
    }
    (out / "metrics.json").write_text(json.dumps(metrics))

    w = make_window(world_template, open_root=False)  # the run's dataset is not open yet
    with qtbot.waitSignal(w.evaluation.loaded, timeout=20000):
        w.evaluation.load(out)
    table = w.evaluation.image_table
    row = next(r for r in range(table.rowCount()) if table.item(r, 0).text() == "test/crack/000")
    table.cellClicked.emit(row, 0)
    qtbot.waitUntil(lambda: w.selection.current is not None, timeout=15000)
    assert w.dataset.root is not None and w.dataset.root.resolve() == world_template.root.resolve()
    assert (w.selection.current.category, w.selection.current.image_id) == (
        "source_texture",
        "test/crack/000",
    )
    qtbot.waitUntil(lambda: w.controller.source == "cache" and w.controller.frame_step > 0, timeout=15000)
    # with the dataset open, another row is selected at once
    row = next(r for r in range(table.rowCount()) if table.item(r, 0).text() == "test/good/000")
    table.cellClicked.emit(row, 0)
    assert w.selection.current.image_id == "test/good/000"


def test_the_window_shows_the_panels_and_the_training_menu(make_window, world_template):
    w = make_window(world_template, open_root=False)
    assert w.docks["training"].widget() is w.training
    assert w.results_tabs.widget(0) is w.evaluation
    for key, shortcut in (("run_all", "F5"), ("run_S1", "F6"), ("run_T2", "F9"), ("cancel_job", "Shift+F5")):
        assert w.actions[key].shortcut().toString() == shortcut
