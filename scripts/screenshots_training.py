"""Screenshots of the Training / CFA panel and the Results dock, in a real window.

Run it in a real X server so the window looks as a person sees it:

    ../shared/tools/with-xvfb .venv/bin/python scripts/screenshots_training.py [--run OUTPUT_DIR]

1. A finished run for the Results dock: ``--run`` (an output folder of ``refcfa pipeline``), else
   the quick chain is run first through the CLI (``refcfa pipeline``, a minute or so on a CPU).
2. The main window opens on a small synthetic dataset; the Training / CFA panel starts S1 of the
   quick config with a longer ``train.max_steps``; mid-training the window is saved to
   ``docs/gui_training.png``; the job is cancelled.
3. The finished run's metrics are loaded into the Results dock: ``docs/gui_results.png`` (the
   metrics table) and ``docs/gui_results_roc.png`` (the ROC curves).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
QUICK = REPO / "resources" / "configs" / "quick" / "quick.yaml"
DOCS = REPO / "docs"


def finished_run(root: Path, out: Path) -> Path:
    """The quick chain through the CLI, exactly as a user would run it."""
    from refcfa import cli

    code = cli.main(
        [
            "pipeline",
            "--config",
            str(QUICK),
            "--output",
            str(out),
            "--quiet",
            "--set",
            f"source.root={root}",
            f"target.root={root}",
        ]
    )
    if code != 0:
        raise SystemExit(f"refcfa pipeline failed with exit code {code}")
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", type=Path, help="output folder of a finished `refcfa pipeline` run")
    p.add_argument("--steps", type=int, default=3000, help="max_steps of the training shown mid-way")
    p.add_argument("--points", type=int, default=40, help="loss points to wait for before the screenshot")
    p.add_argument("--size", default="1500x950")
    p.add_argument("--out", type=Path, default=DOCS)
    args = p.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="refcfa_shots_"))
    os.environ.setdefault("REFCFA_GUI_SETTINGS", str(tmp / "settings.ini"))

    from refcfa.data import make_synthetic

    root = make_synthetic(tmp / "data", size=64, seed=0, n_train=12, n_test_good=4, n_test_defect=6)
    run = args.run or finished_run(root, tmp / "finished")

    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QApplication

    from refcfa_gui import theme
    from refcfa_gui.export import save_png
    from refcfa_gui.main_window import MainWindow
    from refcfa_gui.settings import Settings, make_qsettings

    app = QApplication.instance() or QApplication(sys.argv[:1])
    theme.apply_theme(app)
    window = MainWindow(Settings(make_qsettings(tmp / "settings.ini")), cache_dir=tmp / "cache")
    w, _, h = args.size.partition("x")
    window.resize(int(w), int(h))
    window.show()

    def spin(cond, timeout: float, what: str) -> None:
        end = time.monotonic() + timeout
        while not cond():
            app.processEvents()
            time.sleep(0.005)
            if time.monotonic() > end:
                raise SystemExit(f"timed out waiting for {what}")

    def settle(seconds: float = 0.5) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            app.processEvents()
            time.sleep(0.01)

    window.start(root)
    spin(lambda: window.dataset.root is not None and window.browser.thumbnails_done(), 60, "the dataset")
    panel = window.training
    panel.auto_load_results = False
    assert panel.open_config(QUICK)
    for key, value in (
        ("source.root", str(root)),
        ("target.root", str(root)),
        ("output_dir", str(tmp / "training")),
        ("train.max_steps", args.steps),
        ("train.checkpoint_every", 50),
    ):
        panel.set_value(key, value)
    window.docks["training"].raise_()
    window.resizeDocks([window.docks["training"]], [440], Qt.Orientation.Horizontal)
    job = panel.run_stage("S1")
    spin(lambda: len(job.loss.get("S1", [])) >= args.points or job.is_finished, 600, "the loss curve")
    if job.status == "failed":
        raise SystemExit(f"S1 failed: {job.error}")
    settle(0.6)  # the throttled redraws of the curve and the progress bar
    args.out.mkdir(parents=True, exist_ok=True)
    shot = save_png(window, args.out / "gui_training.png")
    print(f"screenshot: {shot} (step {job.done}/{job.total})")
    panel.cancel_current()
    spin(lambda: job.is_finished, 120, "the cancel")

    window.evaluation.load(run)
    spin(lambda: window.evaluation.results is not None and window.evaluation.idle(), 60, "the results")
    window.docks["results"].raise_()
    window.resizeDocks([window.docks["results"]], [330], Qt.Orientation.Vertical)
    window.evaluation.tabs.setCurrentIndex(0)
    settle()
    shot = save_png(window, args.out / "gui_results.png")
    print(f"screenshot: {shot}")
    window.evaluation.tabs.setCurrentIndex(1)
    settle()
    shot = save_png(window, args.out / "gui_results_roc.png")
    print(f"screenshot: {shot}")
    window.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
