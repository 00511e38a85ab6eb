"""Puts the Training / CFA panel and the evaluation results into the main window, and wires them.

:func:`install_training` (called by ``MainWindow.__init__``) creates

- ``window.training`` — :class:`~refcfa_gui.widgets.training_panel.TrainingPanel` in the right dock;
- ``window.evaluation`` — :class:`~refcfa_gui.widgets.evaluation_panel.EvaluationPanel`, the first
  tab of the Results dock;
- a **Training** menu (open/save config, run each stage or the chain, cancel, show results),

and connects: a finished evaluation (or the newest ``metrics.json`` of the output folder at start)
→ the Results dock; a click on a per-image result → that image in the timeline viewer (opening
the run's dataset, trajectory cache and target network when they are not the ones shown); an
explicit source/target role in the dataset browser → the panel's data settings; running jobs and
the device they use → the status bar.

Closing the window with jobs running: ``MainWindow.closeEvent`` asks
(:meth:`TrainingPanel.confirm_close`), then cancels and waits (:meth:`TrainingPanel.shutdown`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtGui import QAction, QKeySequence

from refcfa_gui.widgets.evaluation_panel import EvaluationPanel
from refcfa_gui.widgets.training_panel import TrainingPanel

if TYPE_CHECKING:  # pragma: no cover
    from refcfa_gui.main_window import MainWindow

log = logging.getLogger(__name__)


def install_training(window: MainWindow) -> None:
    """See the module docstring."""
    panel = TrainingPanel(window.settings)
    panel.dialog_parent = window.dialog_parent
    window.training = panel
    window.set_training_panel(panel)
    evaluation = EvaluationPanel()
    window.evaluation = evaluation
    window.add_results_panel(evaluation, "Evaluation")
    panel.results_ready.connect(evaluation.load)
    evaluation.image_requested.connect(lambda image_id: open_result_image(window, image_id))
    _wire_roles(window, panel)
    _wire_status(window, panel)
    _add_menu(window, panel, evaluation)


def open_result_image(window: MainWindow, image_id: str) -> bool:
    """Show a target test image of the shown evaluation in the timeline viewer.

    The run's target dataset is opened when another one is; its trajectory cache
    (``<output_dir>/cache``) and target network are used when they exist, so the viewer shows the
    very fields the run scored. Returns True when the image was selected now (False: it will be
    once the dataset has loaded, or it is not there — then the viewer says so).
    """
    res = window.evaluation.results
    category = res.target_category if res is not None else ""
    metrics = res.metrics if res is not None else {}
    run_dir = _run_dir(Path(res.metrics_path)) if res is not None and res.metrics_path else None
    if run_dir is not None:
        cache = run_dir / "cache"
        if cache.is_dir() and Path(window.controller.cache_dir or "").resolve() != cache.resolve():
            log.info("showing the trajectories of the run in %s", run_dir)
            window.open_cache(cache)
    ckpt = (metrics.get("checkpoints") or {}).get("target")
    if ckpt and Path(ckpt).is_file() and window.controller.checkpoint != ckpt:
        window.controller.set_checkpoint(ckpt)
    root = (metrics.get("target") or {}).get("root")
    open_root = window.dataset.root
    if (
        root
        and Path(root).is_dir()
        and (open_root is None or Path(open_root).resolve() != Path(root).resolve())
    ):
        window.pending_image = f"{category}:{image_id}" if category else image_id
        window.open_dataset(root)
        return False
    return window.show_image(image_id, category or None)


def _run_dir(metrics_path: Path) -> Path:
    """The output folder of a run from its metrics.json (the chain's, or T2's in vis_supervised/)."""
    if metrics_path.parent.parent.name == "vis_supervised":
        return metrics_path.parent.parent.parent
    return metrics_path.parent


def _wire_roles(window: MainWindow, panel: TrainingPanel) -> None:
    """A role given in the dataset browser sets the panel's source/target (not the guesses on load)."""
    state = {"just_loaded": False}

    def loaded(_dataset) -> None:
        state["just_loaded"] = True

    def roles(mapping: dict) -> None:
        if state["just_loaded"]:  # the roles guessed when a dataset opens do not rewrite the config
            state["just_loaded"] = False
            return
        ds = window.dataset
        for role, category in mapping.items():
            if category and ds.root is not None and category != panel.model.get(f"{role}.category"):
                panel.set_domain(role, root=str(ds.root), category=category, fmt=ds.format or "auto")
                log.info("training %s: %s in %s", role, category, ds.root)

    window.dataset.events.loaded.connect(loaded)
    window.dataset.events.roles.connect(roles)


def _wire_status(window: MainWindow, panel: TrainingPanel) -> None:
    def jobs(_names=None) -> None:
        window.status.set_jobs(window.workers.job_names() + panel.runner.job_titles())

    panel.runner.running_changed.connect(jobs)
    window.workers.jobs_changed.connect(jobs)  # after the window's own connection: the union wins

    def device(job) -> None:
        if job.device and job.status == "running":
            window.status.set_device(job.device)

    panel.queue.events.changed.connect(device)


def _add_menu(window: MainWindow, panel: TrainingPanel, evaluation: EvaluationPanel) -> None:
    mb = window.menuBar()
    menu = mb.addMenu("T&raining")
    help_action = next((a for a in mb.actions() if a.text().replace("&", "") == "Help"), None)
    if help_action is not None:  # keep Help last
        mb.removeAction(menu.menuAction())
        mb.insertMenu(help_action, menu)

    def add(key: str, text: str, slot, shortcut: str | None = None, tip: str = "") -> QAction:
        action = QAction(text, window)
        if shortcut:
            action.setShortcut(QKeySequence(shortcut))
        action.setStatusTip(tip)
        action.setToolTip(tip)
        action.triggered.connect(lambda _checked=False: slot())
        window.addAction(action)
        menu.addAction(action)
        window.actions[key] = action
        return action

    add(
        "training_open",
        "&Open Config…",
        panel.choose_config,
        "Ctrl+Alt+O",
        "Open a YAML config for the stages",
    )
    add("training_save", "&Save Config…", panel.choose_save_path, "Ctrl+Alt+S", "Save the settings as YAML")
    menu.addSeparator()
    add(
        "run_all",
        "Run &All (S1 → T2, metrics)",
        lambda: panel.run_stage("all"),
        "F5",
        "The chain, as `refcfa pipeline`",
    )
    for stage, key in (("S1", "F6"), ("T1", "F7"), ("S2", "F8"), ("T2", "F9")):
        add(f"run_{stage}", f"Run {stage}", lambda s=stage: panel.run_stage(s), key, f"Queue stage {stage}")
    add("cancel_job", "&Cancel Running Job", panel.cancel_current, "Shift+F5", "Stop after the current batch")
    menu.addSeparator()
    add(
        "show_results",
        "Show &Latest Results",
        panel._emit_latest_results,
        None,
        "Newest metrics.json → Results",
    )
    add("open_metrics", "Open &Metrics…", evaluation.choose_metrics, None, "Load the metrics.json of a run")
    add(
        "export_figures",
        "&Export Result Figures…",
        evaluation.choose_export_folder,
        None,
        "ROC, histograms, CFA",
    )


__all__ = ["install_training", "open_result_image"]
