"""The main window's menus: every panel action, with a shortcut where it makes sense.

The timeline's keys (←/→, Space, Home/End, L, [ and ]) are window-wide menu entries whose shortcuts
only fire while the timeline has the focus (``WidgetWithChildrenShortcut``), so arrow keys still
move through the dataset tree when it has the focus.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QWidget

from refcfa_gui.state.timeline import OVERLAYS, SCALAR_FIELDS, VIEWS
from refcfa_gui.widgets.field_grid import OVERLAY_NAMES

if TYPE_CHECKING:  # pragma: no cover
    from refcfa_gui.main_window import MainWindow

COLORMAP_CHOICES = ("inferno", "magma", "viridis", "plasma", "cividis", "turbo", "CET-L1")
VIEW_LABELS = {
    "image": "Input Image",
    "R": "R (gradient residual)",
    "M": "M (directional offset)",
    "Q": "Q (path-integrated drift)",
    "x0_hat": "x̂0 (clean estimate)",
}


def _action(
    window: MainWindow,
    menu,
    text: str,
    slot,
    shortcut=None,
    tip: str = "",
    checkable: bool = False,
    context: Qt.ShortcutContext | None = None,
    widget: QWidget | None = None,
) -> QAction:
    action = QAction(text, window)
    if shortcut is not None:
        action.setShortcut(QKeySequence(shortcut))
    if tip:
        action.setStatusTip(tip)
        action.setToolTip(tip)
    action.setCheckable(checkable)
    if checkable:
        action.toggled.connect(slot)
    else:
        action.triggered.connect(lambda _checked=False: slot())
    if context is not None:
        action.setShortcutContext(context)
    (widget or window).addAction(action)
    menu.addAction(action)
    return action


def build_menus(window: MainWindow) -> None:
    """The menu bar: every panel action, with its shortcut (stored in ``window.actions`` & co.)."""
    mb = window.menuBar()
    window.actions: dict[str, QAction] = {}
    a = window.actions
    file_menu = mb.addMenu("&File")
    a["open"] = _action(
        window,
        file_menu,
        "&Open Dataset…",
        window.browser.choose_root,
        QKeySequence.StandardKey.Open,
        "Open a dataset root",
    )
    a["open_demo"] = _action(
        window,
        file_menu,
        "Open &Demo Dataset",
        window.open_demo,
        None,
        "Open (or generate) the synthetic demo dataset in data/synthetic",
    )
    a["open_cache"] = _action(
        window,
        file_menu,
        "Open &Cache Folder…",
        window.choose_cache,
        "Ctrl+Shift+O",
        "Choose the trajectory cache folder",
    )
    a["checkpoint"] = _action(
        window,
        file_menu,
        "Choose C&heckpoint…",
        window.choose_checkpoint,
        "Ctrl+Shift+K",
        "Choose the score-network checkpoint used to compute uncached images",
    )
    file_menu.addSeparator()
    a["export_png"] = _action(window, file_menu, "Export View as &PNG…", window.export_png, "Ctrl+E")
    a["export_gif"] = _action(window, file_menu, "Export Scrub as &GIF…", window.export_gif, "Ctrl+Shift+E")
    a["export_mp4"] = _action(window, file_menu, "Export Scrub as &MP4…", window.export_mp4, None)
    a["export_mp4"].setEnabled(window.results.mp4_button.isEnabled())
    a["export_mp4"].setToolTip(window.results.mp4_button.toolTip())
    file_menu.addSeparator()
    a["quit"] = _action(window, file_menu, "&Quit", window.close, QKeySequence.StandardKey.Quit)

    view_menu = mb.addMenu("&View")
    for name in ("dataset", "training", "results", "log"):
        toggle = window.docks[name].toggleViewAction()
        view_menu.addAction(toggle)
        a[f"dock_{name}"] = toggle
    view_menu.addSeparator()
    window.view_actions: dict[str, QAction] = {}
    for i, view in enumerate(VIEWS, start=1):
        act = _action(
            window,
            view_menu,
            f"Show {VIEW_LABELS[view]}",
            lambda on, v=view: window.timeline_state.set_visible(v, on),
            f"Alt+{i}",
            checkable=True,
        )
        act.setChecked(view in window.timeline_state.visible)
        window.view_actions[view] = act
    view_menu.addSeparator()
    a["reset_zoom"] = _action(window, view_menu, "&Reset Zoom", window.timeline.reset_zoom, "Ctrl+0")
    cmap_menu = view_menu.addMenu("&Colormaps")
    window.colormap_actions: dict[tuple[str, str], QAction] = {}
    for field in (*SCALAR_FIELDS, "E", "NS", "DV", "A"):
        sub = cmap_menu.addMenu(field)
        group = QActionGroup(window)
        for name in COLORMAP_CHOICES:
            act = sub.addAction(name)
            act.setCheckable(True)
            act.setChecked(window.timeline_state.colormaps.get(field) == name)
            act.triggered.connect(lambda _c=False, f=field, n=name: window.timeline_state.set_colormap(f, n))
            group.addAction(act)
            window.colormap_actions[(field, name)] = act

    data_menu = mb.addMenu("&Dataset")
    filter_group = QActionGroup(window)
    for key, label, mode in (
        ("1", "Show &All Images", "all"),
        ("2", "Show &Good Only", "good"),
        ("3", "Show &Defective Only", "defective"),
    ):
        act = _action(
            window,
            data_menu,
            label,
            lambda on, m=mode: on and window.dataset.set_filter(m),
            f"Ctrl+{key}",
            checkable=True,
        )
        act.setChecked(window.dataset.filter == mode)
        filter_group.addAction(act)
        a[f"filter_{mode}"] = act
    data_menu.addSeparator()
    a["role_source"] = _action(
        window,
        data_menu,
        "Use Category as &Source",
        lambda: window.browser.assign_current("source"),
        "Ctrl+Shift+S",
    )
    a["role_target"] = _action(
        window,
        data_menu,
        "Use Category as &Target",
        lambda: window.browser.assign_current("target"),
        "Ctrl+Shift+T",
    )
    a["role_clear"] = _action(
        window, data_menu, "&Clear Category Role", lambda: window.browser.assign_current(None)
    )
    data_menu.addSeparator()
    a["next_image"] = _action(
        window, data_menu, "&Next Image", lambda: window.browser.select_relative(1), "Ctrl+Down"
    )
    a["prev_image"] = _action(
        window, data_menu, "&Previous Image", lambda: window.browser.select_relative(-1), "Ctrl+Up"
    )

    tl = mb.addMenu("&Timeline")
    ctx, tw = Qt.ShortcutContext.WidgetWithChildrenShortcut, window.timeline
    s = window.timeline_state
    a["play"] = _action(
        window, tl, "&Play / Pause", s.toggle_playing, Qt.Key.Key_Space, context=ctx, widget=tw
    )
    a["next_step"] = _action(window, tl, "&Next Step", s.next_step, Qt.Key.Key_Right, context=ctx, widget=tw)
    a["prev_step"] = _action(
        window, tl, "P&revious Step", s.prev_step, Qt.Key.Key_Left, context=ctx, widget=tw
    )
    a["first_step"] = _action(window, tl, "&First Step", s.first, Qt.Key.Key_Home, context=ctx, widget=tw)
    a["last_step"] = _action(window, tl, "&Last Step", s.last, Qt.Key.Key_End, context=ctx, widget=tw)
    tl.addSeparator()
    a["loop"] = _action(window, tl, "L&oop", s.set_loop, "L", checkable=True, context=ctx, widget=tw)
    a["loop"].setChecked(s.loop)
    a["faster"] = _action(window, tl, "Faster", lambda: s.set_fps(s.fps + 1), "]", context=ctx, widget=tw)
    a["slower"] = _action(window, tl, "Slower", lambda: s.set_fps(s.fps - 1), "[", context=ctx, widget=tw)
    tl.addSeparator()
    a["compute"] = _action(
        window, tl, "&Compute Current Image", lambda: window.controller.compute(), "Ctrl+R"
    )
    a["cancel"] = _action(window, tl, "Cancel Computation", window.controller.cancel_compute, "Ctrl+.")
    device_menu = tl.addMenu("Compute &Device")
    device_group = QActionGroup(window)
    for spec, label in (("auto", "Automatic (GPU when present)"), ("cpu", "CPU"), ("cuda", "GPU (CUDA)")):
        act = device_menu.addAction(label)
        act.setCheckable(True)
        act.setChecked(window.controller.device == spec)
        act.triggered.connect(lambda _c=False, d=spec: setattr(window.controller, "device", d))
        device_group.addAction(act)
        a[f"device_{spec}"] = act

    ov = mb.addMenu("&Overlays")
    window.overlay_actions: dict[str, QAction] = {}
    for i, name in enumerate(OVERLAYS, start=1):
        act = _action(
            window,
            ov,
            f"Show {OVERLAY_NAMES[name]}",
            lambda on, n=name: window.timeline_state.set_overlay(n, visible=on),
            f"Ctrl+Alt+{i}",
            checkable=True,
        )
        act.setChecked(window.timeline_state.overlays[name].visible)
        window.overlay_actions[name] = act
    ov.addSeparator()
    a["load_map"] = _action(window, ov, "Load &Anomaly Map…", window.choose_anomaly_map, "Ctrl+M")
    a["roi"] = _action(
        window, ov, "Probe a &Region (ROI)", window.timeline.set_roi_mode, "Ctrl+I", checkable=True
    )
    a["clear_probe"] = _action(window, ov, "&Clear Probe", window.probe.clear, "Ctrl+Backspace")

    help_menu = mb.addMenu("&Help")
    a["shortcuts"] = _action(window, help_menu, "&Keyboard Shortcuts", window.show_shortcuts, "F1")
    a["about"] = _action(window, help_menu, "&About refcfa-gui", window.show_about)
