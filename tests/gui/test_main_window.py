"""The app as a user drives it: open, browse, scrub, overlay, probe, export, compute, close."""

from __future__ import annotations

import logging
import time

import imageio.v3 as iio
import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QDropEvent

from refcfa import api
from refcfa_gui.imaging import contour_rgba, read_mask_at
from refcfa_gui.state.probe import Probe
from refcfa_gui.state.timeline import OVERLAYS

from .conftest import select, wait_for_frame

pytestmark = pytest.mark.gui
CRACK = ("source_texture", "test/crack/000")


def shown_frame(window) -> dict:
    grid = window.timeline.grid
    return {name: grid.panels[name].image.image for name in ("R", "M", "Q", "x0_hat")}


def assert_frame_is_step(window, entry, n: int) -> None:
    frame = shown_frame(window)
    for name in ("R", "M", "Q"):
        np.testing.assert_array_equal(frame[name], entry.read_step(name, n), err_msg=f"{name} at step {n}")
    np.testing.assert_array_equal(frame["x0_hat"], api.read_frame(entry, n)["x0_hat"])
    assert window.timeline.scrubber.slider.value() == n


def focus_timeline(qtbot, window) -> None:
    window.activateWindow()
    window.timeline.setFocus()
    qtbot.waitUntil(lambda: window.timeline.hasFocus(), timeout=3000)


def test_opens_a_dataset_with_format_tree_counts_thumbnails_and_roles(make_window, world_template, qtbot):
    w = make_window(world_template)
    assert "MVTec AD" in w.browser.format_label.text()
    tree = w.browser.tree
    src = tree.topLevelItem(0)
    assert (src.text(0), src.text(1), src.text(2)) == ("source_texture", "11 (3 bad)", "source")
    assert tree.topLevelItem(1).text(2) == "target"
    splits = {src.child(i).text(0): src.child(i).text(1) for i in range(src.childCount())}
    assert splits == {"train": "6 (0 bad)", "test": "5 (3 bad)"}
    qtbot.waitUntil(w.browser.thumbnails_done, timeout=10000)
    item = w.browser._items[str(w.dataset.find(*CRACK).path)]
    assert not item.icon(0).isNull() and item.text(2) == "cached"
    # a defective thumbnail carries its mask in red
    from refcfa_gui.imaging import thumbnail

    thumb = thumbnail(w.dataset.find(*CRACK), 64)
    assert ((thumb[..., 0] == 255) & (thumb[..., 1] == 64)).any()

    # filter
    w.actions["filter_defective"].trigger()
    assert w.dataset.filter == "defective" and w.browser.filter_combo.currentIndex() == 2
    top = tree.topLevelItem(0)
    assert [top.child(i).text(0) for i in range(top.childCount())] == ["test"]
    w.actions["filter_all"].trigger()

    # roles: menu action on the selected category, then a drop on the source slot
    tree.setCurrentItem(tree.topLevelItem(0))
    w.actions["role_target"].trigger()
    assert w.dataset.roles == {"source": None, "target": "source_texture"}
    mime = tree.mimeData([tree.topLevelItem(1)])
    event = QDropEvent(
        QPointF(4, 4),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    w.browser.slots["source"].dropEvent(event)
    assert w.dataset.roles == {"source": "target_texture", "target": "source_texture"}
    assert "target_texture" in w.browser.slots["source"].text()


def test_scrub_every_step_with_keyboard_and_slider(make_window, world_template, qtbot):
    w = make_window(world_template)
    select(qtbot, w, *CRACK)
    K = world_template.K
    with api.open_entry(world_template.cache, world_template.keys[CRACK]) as entry:
        focus_timeline(qtbot, w)
        qtbot.keyClick(w.timeline, Qt.Key.Key_Home)
        wait_for_frame(qtbot, w, 1)
        for n in range(1, K + 1):
            assert_frame_is_step(w, entry, n)
            if n < K:
                qtbot.keyClick(w.timeline, Qt.Key.Key_Right)
                wait_for_frame(qtbot, w, n + 1)
        qtbot.keyClick(w.timeline, Qt.Key.Key_Right)  # past the end: stays at K
        assert w.timeline_state.step == K
        qtbot.keyClick(w.timeline, Qt.Key.Key_Left)
        wait_for_frame(qtbot, w, K - 1)
        qtbot.keyClick(w.timeline, Qt.Key.Key_Home)
        wait_for_frame(qtbot, w, 1)
        qtbot.keyClick(w.timeline, Qt.Key.Key_End)
        wait_for_frame(qtbot, w, K)
        assert_frame_is_step(w, entry, K)
        for n in list(range(1, K + 1)) + [2]:
            w.timeline.scrubber.slider.setValue(n)
            wait_for_frame(qtbot, w, n)
            assert_frame_is_step(w, entry, n)
        # levels stay fixed across steps: the 1-99 % of the whole entry
        lo, hi = w.timeline_state.levels["R"]
        assert (lo, hi) == pytest.approx(tuple(np.percentile(entry.read_all("R"), [1, 99])))
        assert w.timeline.grid.panels["R"].image.getLevels() == pytest.approx((lo, hi))
        # Space plays (and loops), Space again pauses
        w.timeline_state.set_fps(60)
        qtbot.keyClick(w.timeline, Qt.Key.Key_Space)
        assert w.timeline_state.playing
        seen = set()
        qtbot.waitUntil(lambda: seen.add(w.timeline_state.step) or len(seen) == K, timeout=5000)
        qtbot.keyClick(w.timeline, Qt.Key.Key_Space)
        assert not w.timeline_state.playing
    assert "step" in w.timeline.scrubber.step_label.text()


def test_every_overlay_toggles_and_shows_the_right_map(make_window, world_template, qtbot, tmp_path):
    w = make_window(world_template)
    sample = select(qtbot, w, *CRACK)
    s, grid, c = w.timeline_state, w.timeline.grid, w.controller
    assert s.overlays_available == {"E", "NS", "DV", "contour"}  # no anomaly map yet
    assert not w.timeline.overlays.checks["A"].isEnabled()
    with api.open_entry(world_template.cache, world_template.keys[CRACK]) as entry:
        expected = api.overlay_maps(entry)
        amap = np.random.default_rng(0).random((entry.H, entry.W)).astype(np.float32)
    np.save(tmp_path / "amap.npy", amap)
    expected["A"] = amap
    expected["contour"] = contour_rgba(read_mask_at(sample.mask_path, amap.shape))
    c.set_detector_map(str(tmp_path / "amap.npy"))
    qtbot.waitUntil(lambda: "A" in c.overlay_data, timeout=15000)
    w.timeline.overlays.checks["A"].setChecked(False)
    for name in OVERLAYS:
        check = w.timeline.overlays.checks[name]
        assert check.isEnabled(), name
        check.setChecked(True)
        qtbot.waitUntil(lambda n=name: grid.overlay_items[n].isVisible(), timeout=15000)
        np.testing.assert_allclose(grid.overlay_items[name].image, expected[name], rtol=1e-6, err_msg=name)
        assert w.overlay_actions[name].isChecked()
        if name != "contour":
            assert grid.active_overlay == name
            assert name in grid.panels["image"].title.text
            w.timeline.overlays.sliders[name].setValue(30)
            assert grid.overlay_items[name].opacity() == pytest.approx(0.3)
        w.overlay_actions[name].trigger()  # the menu action switches it off again
        assert not grid.overlay_items[name].isVisible() and not check.isChecked()
    # the relayout for the overlay's colour bar kept the image fitted in the views
    (x0, x1), (y0, y1) = grid.panels["image"].vb.viewRange()
    H, W = amap.shape
    assert x0 <= 0.5 and x1 >= W - 0.5 and min(x1 - x0, y1 - y0) < 1.5 * max(H, W)
    # pan/zoom is linked: zooming the Q view zooms the image view too
    grid.panels["Q"].vb.setRange(xRange=(4, 12), yRange=(4, 12), padding=0)
    (x0, x1), _ = grid.panels["image"].vb.viewRange()
    assert x1 - x0 < W / 2
    grid.reset_zoom()
    # legends say which way is anomalous
    assert "↓ anomalous" in w.timeline.overlays.checks["NS"].text()
    assert "↓ anomalous" in w.timeline.overlays.checks["DV"].text()
    assert "↑ anomalous" in w.timeline.overlays.checks["E"].text()
    assert "↑ anomalous" in grid.panels["R"].title.text


def test_click_a_pixel_plots_its_cached_series_with_a_band(make_window, world_template, qtbot):
    w = make_window(world_template)
    select(qtbot, w, *CRACK)
    grid, plot = w.timeline.grid, w.timeline.probe_plot
    w.timeline_state.set_step(3)
    wait_for_frame(qtbot, w, 3)
    view_pos = grid.mapFromScene(grid.pixel_to_scene("R", 5, 7))
    qtbot.mouseClick(grid.viewport(), Qt.MouseButton.LeftButton, pos=view_pos)
    qtbot.waitUntil(lambda: w.probe.probe == Probe(5, 7, 6, 8), timeout=5000)
    with api.open_entry(world_template.cache, world_template.keys[CRACK]) as entry:
        expected = entry.read_pixel(5, 7)
        qtbot.waitUntil(lambda: plot.series("R").size == entry.K, timeout=5000)
        for name in ("R", "M", "Q"):
            np.testing.assert_array_equal(plot.series(name), expected[name].astype(np.float64))
        assert plot.cursors["R"].value() == 3
        qtbot.waitUntil(lambda: "2 cached normal image" in plot.band_label.text(), timeout=10000)
        assert "pixel (y=5, x=7)" in plot.caption.text()
        # the cursor follows the step
        w.timeline_state.set_step(1)
        assert plot.cursors["Q"].value() == 1
        # the status bar shows the values of every visible view under the cursor
        qtbot.mouseMove(grid.viewport(), grid.mapFromScene(grid.pixel_to_scene("M", 5, 7)))
        qtbot.waitUntil(lambda: w.status.cursor_label.text() == "y 5, x 7", timeout=3000)
        wait_for_frame(qtbot, w, 1)
        w.status.update_values()
        text = w.status.values_label.text()
        assert f"R {entry.read_step('R', 1)[5, 7]:.4g}" in text and "Q " in text and "image (" in text
        # a region probe: the mean over the box
        # off the images, the status bar shows the probed pixel
        w.status.set_cursor(-1, -1)
        assert (
            w.status.cursor_label.text() == "probe y 5, x 7"
            and f"R {entry.read_step('R', 1)[5, 7]:.4g}" in w.status.values_label.text()
        )
        w.actions["roi"].trigger()
        qtbot.waitUntil(lambda: w.probe.probe is not None and not w.probe.probe.is_pixel, timeout=3000)
        p = w.probe.probe
        roi = api.read_roi_series(entry, None, p.y0, p.x0, p.y1, p.x1)
        qtbot.waitUntil(lambda: np.allclose(plot.series("R"), roi["R"]), timeout=5000)
        w.actions["roi"].trigger()
        assert w.probe.probe is None and grid.roi is None


def test_export_png_and_gif_of_the_scrub(make_window, world_template, qtbot, tmp_path):
    w = make_window(world_template)
    select(qtbot, w, *CRACK)
    png = w.export_png(tmp_path / "view.png")
    assert png.is_file() and iio.imread(png).shape[0] > 100
    gif = w.export_gif(tmp_path / "scrub.gif")
    frames = iio.imread(gif, index=None)
    assert frames.shape[0] == world_template.K
    assert not np.array_equal(frames[0], frames[-1])  # the steps differ
    assert w.timeline_state.step == 1  # the scrub position is restored
    assert "Saved" in w.results.status.text()
    mp4 = w.results.mp4_button
    if not mp4.isEnabled():
        assert "imageio-ffmpeg" in mp4.toolTip()


def test_uncached_image_is_computed_and_fills_in_step_by_step(make_window, world, qtbot):
    w = make_window(world)
    c = w.controller
    arrived = []
    c.frame_ready.connect(lambda n, _f: arrived.append((n, c.source)))
    progress = []
    c.progress.connect(lambda n, K: progress.append(n))
    sample = next(s for s in w.dataset.samples["target_texture"] if s.label == 1)
    w.selection.select(sample)
    qtbot.waitUntil(lambda: c.source == "cache" and c.frame_step > 0, timeout=30000)
    assert [n for n, src in arrived if src == "stream"] == list(range(1, world.K + 1))
    assert set(range(1, world.K + 1)) <= set(progress) and progress[-1] == -1  # bar shown, then hidden
    assert w.timeline.progress.isHidden()
    key = api.find_cached(api.list_cached(world.cache), sample.image_id, "target_texture").key
    with api.open_entry(world.cache, key) as entry:
        wait_for_frame(qtbot, w, w.timeline_state.step)
        assert_frame_is_step(w, entry, w.timeline_state.step)
    assert "cached" in w.timeline.title.text()


def test_closing_while_a_computation_runs_cancels_it_cleanly(
    make_window, world, qtbot, monkeypatch, capfd, qtlog
):
    real = api.stream_fields

    def slow(*args, **kwargs):
        for step in real(*args, **kwargs):
            time.sleep(0.4)
            yield step

    monkeypatch.setattr(api, "stream_fields", slow)
    w = make_window(world)
    c = w.controller
    sample = next(s for s in w.dataset.samples["target_texture"] if s.label == 0)
    w.selection.select(sample)
    qtbot.waitUntil(lambda: c.is_computing() and bool(c.stream_frames), timeout=30000)
    assert any(name.startswith("compute") for name in w.workers.job_names())
    assert "compute" in w.status.jobs_label.text()
    worker = c.compute_worker
    t0 = time.monotonic()
    w.close()
    assert time.monotonic() - t0 < 10
    assert worker.is_done and not c.frames.isRunning() and not c.analysis.isRunning()
    assert api.find_cached(api.list_cached(world.cache), sample.image_id, "target_texture") is None
    qtbot.wait(50)
    err = capfd.readouterr().err
    assert "QThread: Destroyed while thread is still running" not in err
    assert not [r.message for r in qtlog.records if "QThread" in r.message]


def test_a_folder_that_is_no_dataset_gets_a_message_and_the_app_keeps_working(
    make_window, world_template, qtbot, tmp_path
):
    w = make_window(world_template)
    bad = tmp_path / "holiday_photos"
    (bad / "misc").mkdir(parents=True)
    (bad / "misc" / "notes.txt").write_text("nothing here")
    w.open_dataset(bad)
    qtbot.waitUntil(lambda: w.dataset.error is not None, timeout=5000)
    banner = w.browser.banner
    assert banner.isVisible() and "Expected one of" in banner.message() and "train/good" in banner.message()
    assert "Cannot open" in w.log_panel.text()
    assert w.dataset.root == world_template.root  # the previous dataset is still there
    select(qtbot, w, *CRACK)  # and usable


def test_an_unreadable_image_is_listed_with_its_reason_and_skipped(make_window, world, qtbot):
    bad = world.root / "source_texture" / "train" / "good" / "003.png"
    bad.write_bytes(bad.read_bytes()[:60])  # truncated PNG
    w = make_window(world)
    qtbot.waitUntil(lambda: str(bad) in w.dataset.unreadable, timeout=10000)
    assert "truncated" in w.dataset.unreadable[str(bad)]
    listing = w.browser.unreadable_tree
    assert listing.isVisible() and listing.topLevelItem(0).text(0) == "003.png"
    assert "truncated" in listing.topLevelItem(0).text(1)
    assert str(bad) not in w.browser._items
    assert w.browser.tree.topLevelItem(0).text(1) == "10 (3 bad)"
    select(qtbot, w, *CRACK)


def test_a_cache_entry_from_another_version_is_reported(make_window, world, qtbot):
    import h5py

    key = world.keys[CRACK]
    with h5py.File(next(world.cache.glob(f"*/{key}.h5")), "r+") as f:
        f.attrs["format_version"] = 99
    w = make_window(world, checkpoint=None)
    w.selection.select(w.dataset.find(*CRACK))
    banner = w.timeline.banner
    qtbot.waitUntil(lambda: "format version 99" in banner.message(), timeout=10000)
    assert banner.level == "error"
    assert "format version 99" in w.log_panel.text()
    qtbot.wait(300)  # the cache is listed again: the error stays on screen
    assert "format version 99" in banner.message()
    assert w.show_image("test/scratch/000", "source_texture")  # other images still open
    qtbot.waitUntil(lambda: w.controller.source == "cache" and w.controller.frame_step > 0, timeout=10000)
    assert not w.show_image("test/nothing/999")


def test_a_missing_checkpoint_is_reported(make_window, world, qtbot, tmp_path):
    missing = tmp_path / "no_such_checkpoint.pth"
    w = make_window(world, checkpoint=missing)
    banner = w.timeline.banner
    assert "Checkpoint not found" in banner.message()  # said at start-up
    banner.clear()
    sample = next(s for s in w.dataset.samples["target_texture"] if s.label == 1)
    w.selection.select(sample)  # and again when it is needed
    qtbot.waitUntil(lambda: "Checkpoint not found" in banner.message(), timeout=10000)
    assert str(missing) in banner.message() and "Checkpoint not found" in w.log_panel.text()
    assert not w.controller.is_computing()
    select(qtbot, w, *CRACK)
    # a checkpoint chosen later computes it
    w.set_checkpoint(world.checkpoint)
    w.selection.select(sample)
    qtbot.waitUntil(lambda: w.controller.source == "cache" and w.controller.sample is sample, timeout=30000)


def test_settings_persist_in_the_given_file(make_window, world_template, qtbot, settings):
    w = make_window(world_template)
    w.timeline_state.set_fps(13)
    w.timeline_state.set_colormap("R", "viridis")
    w.timeline_state.set_loop(False)
    w.close()
    assert settings.get_int("fps", 0) == 13
    assert settings.get_dict("colormaps")["R"] == "viridis"
    assert settings.get_str("last_root") == str(world_template.root)
    assert settings.get_str("last_cache") == str(world_template.cache)
    w2 = make_window(world_template, open_root=False)
    assert w2.timeline_state.fps == 13 and w2.timeline_state.colormaps["R"] == "viridis"
    assert w2.timeline_state.loop is False and not w2.actions["loop"].isChecked()
    assert w2.colormap_actions[("R", "viridis")].isChecked()


def test_training_panel_slot_and_menus(make_window, world_template, qtbot):
    from refcfa_gui.widgets.training_panel import TrainingPanel

    w = make_window(world_template, open_root=False)
    # the window installs the Training / CFA panel in the slot (set_training_panel)
    assert isinstance(w.docks["training"].widget(), TrainingPanel) and w.training_placeholder is None
    docks = {name: w.dockWidgetArea(d) for name, d in w.docks.items()}
    assert docks == {
        "dataset": Qt.DockWidgetArea.LeftDockWidgetArea,
        "training": Qt.DockWidgetArea.RightDockWidgetArea,
        "results": Qt.DockWidgetArea.BottomDockWidgetArea,
        "log": Qt.DockWidgetArea.BottomDockWidgetArea,
    }
    assert w.tabifiedDockWidgets(w.docks["results"]) == [w.docks["log"]]
    tabs = w.results_tabs  # and the evaluation as the first tab of the Results dock (add_results_panel)
    assert [tabs.tabText(i) for i in range(tabs.count())] == [
        "Evaluation",
        "Export",
    ] and tabs.currentWidget() is w.evaluation
    menus = [a.text().replace("&", "") for a in w.menuBar().actions()]
    assert menus == ["File", "View", "Dataset", "Timeline", "Overlays", "Training", "Help"]
    for name in (
        "open",
        "open_cache",
        "export_png",
        "export_gif",
        "play",
        "next_step",
        "prev_step",
        "first_step",
        "last_step",
        "compute",
        "roi",
        "next_image",
    ):
        assert not w.actions[name].shortcut().isEmpty(), name
    w.view_actions["M"].trigger()
    assert "M" not in w.timeline_state.visible and "M" not in w.timeline.grid.visible_views
    assert w.status.device_label.text() in ("Device: CPU", "Device: GPU")
    logging.getLogger("refcfa.test").warning("hello from the library")
    qtbot.waitUntil(lambda: "hello from the library" in w.log_panel.text(), timeout=2000)


def test_theme_follows_a_dark_palette(qtbot):
    from PySide6.QtGui import QPalette
    from PySide6.QtWidgets import QApplication

    from refcfa_gui import theme

    app = QApplication.instance()
    try:
        assert theme.apply_theme(app, dark=True) is True
        assert app.palette().color(QPalette.ColorRole.Window).lightness() < 128
        assert theme.plot_colors(True)[0] == "#1e1e20"
    finally:
        theme.apply_theme(app, dark=False)


def test_a_cache_folder_that_is_a_file_is_reported(make_window, world_template, qtbot, tmp_path):
    w = make_window(world_template, open_root=False)
    not_a_dir = tmp_path / "cache.txt"
    not_a_dir.write_text("oops")
    w.open_cache(not_a_dir)
    banner = w.timeline.banner
    qtbot.waitUntil(lambda: "Reading the cache folder failed" in banner.message(), timeout=5000)
    assert "is a file" in banner.message() and "is a file" in w.log_panel.text()
    w.open_cache(world_template.cache)  # a good folder works again
    w.open_dataset(world_template.root)
    qtbot.waitUntil(lambda: w.dataset.root is not None and bool(w.controller.cached), timeout=10000)
    select(qtbot, w, *CRACK)
