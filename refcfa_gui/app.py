"""``refcfa-gui``: the desktop app's entry point.

    refcfa-gui [--open ROOT] [--cache DIR] [--checkpoint CKPT]
               [--screenshot PATH [--image ID] [--step N] [--overlay NAME]... [--probe Y,X]]

Start-up imports Qt, pyqtgraph, numpy and h5py only; torch loads on the first computation.
With nothing to open it opens the last dataset, else the demo dataset ``data/synthetic``
(generated on a worker when missing). ``--screenshot`` renders the window in that state, saves a
PNG of it and exits (status 0; 1 when the state could not be reached in time).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

T_START = time.perf_counter()
log = logging.getLogger("refcfa_gui")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="refcfa-gui", description="Watch the Residual-Evolution Fields of REF-CFA evolve"
    )
    p.add_argument(
        "--open", metavar="ROOT", help="dataset root to open (default: the last one, else data/synthetic)"
    )
    p.add_argument("--cache", metavar="DIR", help="trajectory cache folder (default: output/cache)")
    p.add_argument(
        "--checkpoint",
        metavar="CKPT",
        help="score network to compute uncached images (default: found under output/)",
    )
    p.add_argument(
        "--screenshot", metavar="PATH", help="save a PNG of the window in the requested state and exit"
    )
    p.add_argument(
        "--image",
        metavar="ID",
        help="image to show: an image id (test/crack/000), category:id or a cache key",
    )
    p.add_argument("--step", metavar="N", type=int, help="reverse step to show (1..K)")
    p.add_argument(
        "--overlay",
        metavar="NAME",
        action="append",
        default=[],
        choices=["E", "NS", "DV", "A", "contour"],
        help="overlay to switch on (repeatable)",
    )
    p.add_argument("--probe", metavar="Y,X", help="probe this pixel (plot its fields over the steps)")
    p.add_argument("--size", metavar="WxH", default="1500x950", help="window size for --screenshot")
    p.add_argument("--screenshot-timeout", type=float, default=120.0, help=argparse.SUPPRESS)
    p.add_argument("--settings", metavar="INI", help="settings file (default: the user's QSettings)")
    return p


def _parse_probe(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    try:
        y, x = (int(v) for v in text.split(","))
    except ValueError:
        raise SystemExit(f"refcfa-gui: --probe {text!r}: expected Y,X (two integers)") from None
    return y, x


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    probe = _parse_probe(args.probe)
    if args.screenshot and "QT_QPA_PLATFORM" not in os.environ and not os.environ.get("DISPLAY"):
        os.environ["QT_QPA_PLATFORM"] = "offscreen"

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from refcfa_gui import theme
    from refcfa_gui.main_window import MainWindow
    from refcfa_gui.settings import Settings, make_qsettings

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setOrganizationName("refcfa")
    app.setApplicationName("refcfa-gui")
    theme.apply_theme(app)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    window = MainWindow(
        Settings(make_qsettings(args.settings)), cache_dir=args.cache, checkpoint=args.checkpoint
    )
    window.pending_image = args.image
    window.pending_step = args.step
    if args.screenshot:
        w, _, h = args.size.partition("x")
        window.resize(int(w), int(h))

    def on_shown() -> None:
        log.info("startup_s: %.3f (window shown)", time.perf_counter() - T_START)
        print(f"window_shown_s: {time.perf_counter() - T_START:.3f}", flush=True)
        window.start(args.open)

    window.shown.connect(on_shown)
    window.show()
    if args.screenshot:
        shooter = Screenshot(
            window,
            Path(args.screenshot),
            args.overlay,
            probe,
            args.image is not None,
            args.screenshot_timeout,
        )
        QTimer.singleShot(0, shooter.poll)
    code = app.exec()
    return int(getattr(window, "exit_code", code) or 0)


class Screenshot:
    """Waits until the requested state is drawn, then saves the window as a PNG and quits."""

    def __init__(
        self,
        window,
        path: Path,
        overlays: list[str],
        probe: tuple[int, int] | None,
        wants_image: bool,
        timeout_s: float,
    ) -> None:
        self.window, self.path, self.overlays, self.probe = window, path, overlays, probe
        self.wants_image = wants_image
        self.deadline = time.monotonic() + timeout_s
        self.applied = False
        self.settle = 0
        window.exit_code = 0

    def _ready(self) -> bool:
        w = self.window
        c, s = w.controller, w.timeline_state
        if w.dataset.root is None and w.dataset.error is None:
            return False
        if not w.browser.thumbnails_done():
            return False
        if not self.wants_image:
            return True
        if w.pending_image is not None or c.is_computing() or w.pending_step is not None:
            return False
        if c.source is None and w.timeline.banner.isVisible():
            return True  # the image cannot be shown (not cached, no checkpoint…): shoot the message
        if c.source != "cache" or c.frame_step != s.step or s.step == 0:
            return False
        if not self.applied:
            for name in self.overlays:
                s.set_overlay(name, visible=True, opacity=0.55)
            if self.probe is not None:
                w.probe.set_pixel(*self.probe)
            self.applied = True
            return False
        wanted = [n for n in self.overlays if n in s.overlays_available]
        if any(n not in c.overlay_data for n in wanted):
            return False
        return c.analysis.idle() and c.frames.idle()

    def poll(self) -> None:
        from PySide6.QtCore import QTimer
        from PySide6.QtWidgets import QApplication

        timed_out = time.monotonic() > self.deadline
        if self._ready() or timed_out:
            self.settle += 1
            if self.settle >= 4 or timed_out:  # a few event-loop turns for the last paints
                from refcfa_gui.export import save_png

                self.window.repaint()
                save_png(self.window, self.path)
                print(
                    f"screenshot: {self.path}"
                    + (" (timed out before the state was reached)" if timed_out else ""),
                    flush=True,
                )
                self.window.exit_code = 1 if timed_out else 0
                self.window.close()
                QApplication.instance().quit()
                return
        else:
            self.settle = 0
        QTimer.singleShot(100, self.poll)


if __name__ == "__main__":
    raise SystemExit(main())
