"""Start-up in a fresh interpreter: no torch, the demo dataset generated, the CLI screenshot."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import imageio.v3 as iio
import pytest

pytestmark = pytest.mark.gui

STARTUP = textwrap.dedent(
    """
    import json, os, sys, time
    t0 = time.perf_counter()
    from PySide6.QtWidgets import QApplication
    app = QApplication([])
    from refcfa_gui import theme
    theme.apply_theme(app)
    from refcfa_gui.main_window import MainWindow
    from refcfa_gui.settings import Settings, make_qsettings
    w = MainWindow(Settings(make_qsettings(sys.argv[1])))
    out = {}
    def shown():
        out["shown_s"] = time.perf_counter() - t0
        out["torch_when_shown"] = "torch" in sys.modules
        w.start()
    w.shown.connect(shown)
    w.show()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (w.dataset.root and w.browser.thumbnails_done() and not w.workers.running()):
        app.processEvents()
        time.sleep(0.005)
    out["torch_after_open"] = "torch" in sys.modules
    out["root"] = str(w.dataset.root)
    out["categories"] = w.dataset.categories
    out["format"] = w.browser.format_label.text()
    w.close()
    print(json.dumps(out))
    """
)


def _env() -> dict:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", REFCFA_GUI_THEME="light")
    env.pop("REFCFA_GUI_SETTINGS", None)
    return env


def test_startup_imports_no_torch_and_opens_the_generated_demo_dataset(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-c", STARTUP, str(tmp_path / "settings.ini")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env=_env(),
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["torch_when_shown"] is False and out["torch_after_open"] is False
    assert out["root"] == "data/synthetic" and out["categories"] == ["source_texture", "target_texture"]
    assert (tmp_path / "data" / "synthetic" / "source_texture" / "train" / "good").is_dir()
    assert "MVTec AD" in out["format"]
    assert (tmp_path / "settings.ini").is_file()  # not the user's settings


def test_cli_screenshot_renders_the_requested_state(world_template, tmp_path):
    shot = tmp_path / "shot.png"
    cmd = [
        sys.executable,
        "-m",
        "refcfa_gui.app",
        "--open",
        str(world_template.root),
        "--cache",
        str(world_template.cache),
        "--checkpoint",
        str(world_template.checkpoint),
        "--screenshot",
        str(shot),
        "--image",
        "source_texture:test/crack/000",
        "--step",
        "2",
        "--overlay",
        "contour",
        "--probe",
        "3,4",
        "--size",
        "1200x800",
        "--settings",
        str(tmp_path / "s.ini"),
    ]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120, env=_env())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"screenshot: {shot}" in proc.stdout and "timed out" not in proc.stdout
    assert "window_shown_s:" in proc.stdout
    assert iio.imread(shot).shape[:2] == (800, 1200)


def test_bench_script_runs_and_prints_its_two_last_lines(capsys, qtbot):
    import importlib.util

    from .conftest import REPO

    spec = importlib.util.spec_from_file_location("bench_gui", REPO / "scripts" / "bench_gui.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--size", "64", "--K", "5", "--repeats", "12"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-2].startswith("scrub_frame_ms: ") and float(lines[-2].split()[-1]) > 0
    assert lines[-1].startswith("scrub_ratio_to_bare: ") and float(lines[-1].split()[-1]) > 0
