"""Benchmark the timeline scrub (and, with ``--startup``, the app's start-up), offscreen.

Scrub: a synthetic 256×256 cache entry (K steps, written with the cache API) is shown in the real
timeline viewer with the E overlay on; each step change is timed from ``TimelineState.set_step``
to the frame drawn (all four field views set through the loader thread, then a synchronous
repaint of the views). In the same run, a bare pyqtgraph ``ImageItem.setImage`` of one 256×256
frame plus the same repaint is timed as the reference. Prints the medians and, last,

    scrub_frame_ms: X
    scrub_ratio_to_bare: Y

``--startup`` also spawns ``refcfa-gui --screenshot`` (N times) and reports the median time from
process start to the window shown (``startup_s: X``). Targets: scrub ≤ 16 ms, start-up ≤ 2 s.

``--training`` (instead of the scrub) measures how long the GUI thread stalls while a job runs:
the main window's Training panel trains S1 of the quick config on a worker QThread while a 10 ms
QTimer ticks on the GUI thread; the longest gap between two ticks is the stall. Measured in one
run: the idle window (reference), the session's first job (it imports torch in the worker, whose
C extension holds the GIL while it initialises) and a second S1 job (the training itself). Last
line ``gui_stall_ms: X`` (the median over the repeated trainings of their longest gap; target < 100 ms).

    .venv/bin/python scripts/bench_gui.py [--size 256] [--K 25] [--repeats 200] [--startup]
    .venv/bin/python scripts/bench_gui.py --training [--training-steps 60] [--training-repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("REFCFA_GUI_THEME", "light")


def smooth_noise(rng, shape, cells: int = 8):
    import cv2
    import numpy as np

    grid = rng.standard_normal((cells, cells)).astype(np.float32)
    return cv2.resize(grid, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)


def write_entry(cache_dir: Path, size: int, K: int, seed: int = 0) -> tuple[str, Path]:
    """A synthetic entry (plausible-looking fields, one bright anomaly) stored through TrajectoryCache."""
    import numpy as np

    from refcfa.field.cache import FieldRecord, TrajectoryCache, array_digest, entry_key

    rng = np.random.default_rng(seed)
    H = W = size
    yy, xx = np.mgrid[0:H, 0:W]
    blob = np.exp(-(((yy - 0.6 * H) ** 2 + (xx - 0.4 * W) ** 2) / (2 * (0.06 * H) ** 2))).astype(np.float32)
    base = 0.3 + 0.1 * smooth_noise(rng, (H, W))
    R, M, Q, d, x0 = [], [], [], [], []
    image = (127 + 60 * smooth_noise(rng, (H, W), 16)[None].repeat(3, 0)).clip(0, 255).astype(np.uint8)
    for n in range(1, K + 1):
        noise = np.abs(rng.standard_normal((H, W))).astype(np.float32) * (1.0 - n / (K + 1))
        R.append(base + 0.3 * noise + blob * (0.5 + n / K))
        M.append(0.5 * R[-1] + 0.05 * noise)
        Q.append(blob * n / K + 0.02 * n / K + 0.01 * noise)
        d.append(rng.standard_normal((3, H, W)).astype(np.float32))
        x0.append(np.clip(image.astype(np.int16) + rng.integers(-20, 20, (3, H, W)), 0, 255).astype(np.uint8))
    attrs = {
        "checkpoint_digest": "bench",
        "config_digest": "bench",
        "image_digest": array_digest(image),
        "image_id": "bench/test/blob/000",  # as the extractor writes it: <category>/<image_id>
        "category": "bench",
        "label": 1,
        "split": "test",
        "defect": "blob",
        "path": str(cache_dir / "bench.png"),
        "mask_path": "",
    }
    record = FieldRecord(
        R=np.stack(R).astype(np.float16),
        M=np.stack(M).astype(np.float16),
        Q=np.stack(Q).astype(np.float16),
        d=np.stack(d).astype(np.float16),
        x0_hat=np.stack(x0),
        timesteps=np.linspace(250, 10, K).astype(np.int64),
        image=image,
        attrs=attrs,
    )
    key = entry_key("bench", "bench", attrs["image_digest"])
    TrajectoryCache(cache_dir).put(key, record)
    return key, cache_dir / "bench.png"


def bench_scrub(size: int, K: int, repeats: int) -> tuple[float, float, dict]:
    import numpy as np
    import pyqtgraph as pg
    from PySide6.QtCore import QEventLoop
    from PySide6.QtWidgets import QApplication

    from refcfa.data.sample import Sample
    from refcfa_gui import theme
    from refcfa_gui.main_window import MainWindow
    from refcfa_gui.settings import Settings, make_qsettings

    app = QApplication.instance() or QApplication([])
    theme.apply_theme(app)
    tmp = Path(tempfile.mkdtemp(prefix="refcfa_bench_"))
    key, path = write_entry(tmp / "cache", size, K)
    window = MainWindow(Settings(make_qsettings(tmp / "settings.ini")), cache_dir=tmp / "cache")
    window.resize(1600, 1000)
    window.show()
    bare = pg.GraphicsLayoutWidget()
    try:
        c, s, viewer = window.controller, window.timeline_state, window.timeline

        def spin(cond, timeout=30.0):
            end = time.monotonic() + timeout
            while not cond():
                app.processEvents()
                if time.monotonic() > end:
                    raise TimeoutError("the viewer did not reach the expected state")

        spin(lambda: bool(c.cached))
        sample = Sample("test/blob/000", path, "test", 1, "blob", None, "bench")
        window.selection.select(sample)
        spin(lambda: c.source == "cache" and c.frame_step > 0)
        s.set_overlay("E", visible=True, opacity=0.5)
        spin(lambda: "E" in c.overlay_data and c.analysis.idle(), timeout=120)
        for _ in range(20):
            app.processEvents()
        grid = viewer.grid

        # wait in an event loop (the GUI thread sleeps, as in the app) until the step's frame is drawn
        loop = QEventLoop()
        target = {"n": 0}
        viewer.frame_shown.connect(lambda n: loop.quit() if n == target["n"] else None)
        times = []
        steps = [1 + (i % K) for i in range(1, repeats + 1)]
        for n in steps:
            if n == s.step:
                continue
            target["n"] = n
            t0 = time.perf_counter()
            s.set_step(n)
            loop.exec()
            grid.viewport().repaint()  # the four views and the overlay, painted now
            app.processEvents()  # whatever else the step changed (the probe plot's cursor, the step label)
            times.append(time.perf_counter() - t0)
        frame = np.asarray(grid.panels["R"].image.image)
        for name in ("R", "M", "Q"):  # what is drawn is the cached step
            assert np.array_equal(grid.panels[name].image.image, c.read_frame_now(s.step)[name])

        # the reference: one bare ImageItem of the same size, same levels, same repaint
        bare.resize(grid.size())
        vb = bare.addViewBox(lockAspect=True, invertY=True)
        item = pg.ImageItem(axisOrder="row-major")
        vb.addItem(item)
        bare.show()
        frames = [c.read_frame_now(n)["R"] for n in range(1, K + 1)]
        levels = s.levels["R"]
        item.setImage(frames[0], autoLevels=False, levels=levels)
        vb.autoRange()
        for _ in range(10):
            app.processEvents()
        bare_times = []
        for i in range(len(times)):
            f = frames[(i + 1) % K]
            t0 = time.perf_counter()
            item.setImage(f, autoLevels=False, levels=levels)
            bare.viewport().repaint()
            app.processEvents()
            bare_times.append(time.perf_counter() - t0)
        info = {
            "frames": len(times),
            "shape": frame.shape,
            "dropped_requests": c.frames.dropped,
            "p90_ms": 1000 * float(np.percentile(times, 90)),
        }
    finally:
        window.close()
        bare.close()
    return 1000 * statistics.median(times), 1000 * statistics.median(bare_times), info


def bench_startup(runs: int) -> float:
    """Median seconds from spawning ``refcfa-gui --screenshot`` to its window being shown."""
    from refcfa.data import make_synthetic

    tmp = Path(tempfile.mkdtemp(prefix="refcfa_startup_"))
    root = make_synthetic(tmp / "data", size=32, seed=0, n_train=2, n_test_good=1, n_test_defect=1)
    exe = Path(sys.executable).with_name("refcfa-gui")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "refcfa_gui.app"]
    env = dict(os.environ)
    results = []
    for i in range(runs):
        args = cmd + [
            "--open",
            str(root),
            "--cache",
            str(tmp / "cache"),
            "--screenshot",
            str(tmp / f"s{i}.png"),
            "--settings",
            str(tmp / "settings.ini"),
        ]
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            args, cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env
        )
        shown = None
        for line in proc.stdout:
            if line.startswith("window_shown_s:") and shown is None:
                shown = time.perf_counter() - t0
        proc.wait(timeout=120)
        if shown is None:
            raise RuntimeError(f"refcfa-gui did not report its window (exit {proc.returncode})")
        results.append(shown)
        print(f"startup run {i + 1}: {shown:.3f} s")
    return statistics.median(results)


def bench_training(steps: int, repeats: int = 3, idle_s: float = 3.0) -> dict:
    """Max gap between the ticks of a 10 ms QTimer on the GUI thread while S1 trains on a worker.

    The main window with the Training / CFA panel, the quick config on a small synthetic dataset.
    Phases in one run: idle windows (the reference: what the machine alone does to the GUI thread),
    the session's first job (it loads torch in the worker thread), then ``repeats`` S1 jobs (torch
    loaded: the training itself). Per phase the longest gap; over the repeats their median.
    """
    import numpy as np
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from refcfa.data import make_synthetic
    from refcfa_gui import theme
    from refcfa_gui.main_window import MainWindow
    from refcfa_gui.settings import Settings, make_qsettings

    app = QApplication.instance() or QApplication([])
    theme.apply_theme(app)
    tmp = Path(tempfile.mkdtemp(prefix="refcfa_bench_training_"))
    root = make_synthetic(tmp / "data", size=32, seed=0, n_train=12, n_test_good=4, n_test_defect=6)
    window = MainWindow(Settings(make_qsettings(tmp / "settings.ini")), cache_dir=tmp / "cache")
    window.resize(1500, 950)
    window.show()
    panel = window.training
    quick = Path(__file__).resolve().parents[1] / "resources" / "configs" / "quick" / "quick.yaml"
    assert panel.open_config(quick)
    for key, value in (("source.root", str(root)), ("target.root", str(root)), ("train.max_steps", steps)):
        panel.set_value(key, value)

    def gaps_while(busy) -> np.ndarray:
        gaps, last = [], [time.perf_counter()]

        def tick():
            t = time.perf_counter()
            gaps.append(t - last[0])
            last[0] = t

        timer = QTimer()
        timer.setInterval(10)
        timer.timeout.connect(tick)
        timer.start()
        while busy():
            app.processEvents()
            time.sleep(0.001)  # the GUI thread idles between events, as in app.exec()
        timer.stop()
        return 1000 * np.asarray(gaps)

    try:
        idle, runs = [], []
        for i in range(repeats + 1):
            end = time.monotonic() + idle_s
            idle.append(gaps_while(lambda end=end: time.monotonic() < end))
            panel.set_value("output_dir", str(tmp / f"out_{i}"))
            job = panel.run_stage("S1")
            runs.append((gaps_while(lambda job=job: not job.is_finished), job))
            if job.status != "done":
                raise RuntimeError(f"S1 ended {job.status}: {job.error}")
    finally:
        window.close()
    (first, first_job), warm = runs[0], runs[1:]
    return {
        "idle_max_ms": float(np.median([g.max() for g in idle])),
        "first_job_max_ms": float(first.max()),
        "first_job_p99_ms": float(np.percentile(first, 99)),
        "training_max_ms": float(np.median([g.max() for g, _ in warm])),
        "training_max_each_ms": [round(float(g.max()), 1) for g, _ in warm],
        "training_p99_ms": float(np.median([np.percentile(g, 99) for g, _ in warm])),
        "training_ticks": int(sum(g.size for g, _ in warm)),
        "steps": len(first_job.loss.get("S1", [])),
        "repeats": len(warm),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--K", type=int, default=25)
    p.add_argument("--repeats", type=int, default=200)
    p.add_argument(
        "--startup", action="store_true", help="also measure the start-up (process start → window shown)"
    )
    p.add_argument("--startup-runs", type=int, default=5)
    p.add_argument(
        "--training",
        action="store_true",
        help="instead: the GUI thread's longest stall while S1 trains in the Training panel (gui_stall_ms)",
    )
    p.add_argument("--training-steps", type=int, default=60)
    p.add_argument("--training-repeats", type=int, default=3)
    args = p.parse_args(argv)
    if args.training:
        r = bench_training(args.training_steps, args.training_repeats)
        print(
            f"idle (no job), 10 ms timer: longest gap {r['idle_max_ms']:.1f} ms (median of the idle windows)"
        )
        print(
            f"first job ({r['steps']} S1 steps, loads torch in the worker): longest gap "
            f"{r['first_job_max_ms']:.1f} ms, p99 {r['first_job_p99_ms']:.1f} ms"
        )
        print(
            f"S1 training x{r['repeats']} ({r['steps']} steps each, {r['training_ticks']} ticks): longest gaps "
            f"{r['training_max_each_ms']} ms, p99 {r['training_p99_ms']:.1f} ms"
        )
        print(f"gui_stall_first_job_ms: {r['first_job_max_ms']:.1f}")
        print(f"gui_stall_ratio_to_idle: {r['training_max_ms'] / r['idle_max_ms']:.2f}")
        print(f"gui_stall_ms: {r['training_max_ms']:.1f}")
        return 0
    if args.startup:
        print(f"startup_s: {bench_startup(args.startup_runs):.3f}")
    scrub, bare, info = bench_scrub(args.size, args.K, args.repeats)
    print(
        f"frames timed: {info['frames']} of {info['shape'][0]}x{info['shape'][1]}, p90 {info['p90_ms']:.2f} ms, "
        f"loader requests dropped: {info['dropped_requests']}"
    )
    print(f"bare_setimage_ms: {bare:.2f}")
    print(f"scrub_frame_ms: {scrub:.2f}")
    print(f"scrub_ratio_to_bare: {scrub / bare:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
