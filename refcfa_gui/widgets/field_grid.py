"""The image, ``R_t``, ``M_t``, ``Q_t`` and ``x0_hat_t`` side by side: one pyqtgraph scene.

Composition of small graphics items (pyqtgraph's ImageView idea, without its per-frame
histogram): per view a title, a ``ViewBox`` (pan/zoom linked to the others) holding an
``ImageItem``, and for the scalar fields a ``ColorBarItem`` whose levels are fixed for the whole
entry (``setImage(..., autoLevels=False)``: nothing is recomputed per frame). The image view
also carries the overlays (E, NS, DV, A with opacity; the ground-truth contour) and their colour bar.

Signals: ``hovered(y, x)`` (``-1, -1`` outside), ``clicked(y, x)``, ``roi_changed(y0, x0, y1, x1)``,
``levels_edited(field, lo, hi)``, ``colormap_edited(field, name)``.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QPen
from PySide6.QtWidgets import QGraphicsItem, QGraphicsRectItem

from refcfa.api import ANOMALY_DIRECTION
from refcfa_gui.state.timeline import OVERLAYS, SCALAR_FIELDS, VIEWS

TITLES = {
    "image": ("input", "image"),
    "R": ("R<sub>t</sub>", "gradient residual"),
    "M": ("M<sub>t</sub>", "directional offset"),
    "Q": ("Q<sub>t</sub>", "path-integrated drift"),
    "x0_hat": ("x̂<sub>0,t</sub>", "clean estimate"),
}
OVERLAY_NAMES = {
    "E": "E energy",
    "NS": "NS non-stationarity",
    "DV": "DV directional variability",
    "A": "A(u) anomaly map",
    "contour": "ground-truth contour",
}
ARROW = {"higher": "↑", "lower": "↓"}


def direction_text(name: str) -> str:
    """``"↑ anomalous"`` / ``"↓ anomalous"``: which way the field moves on anomalous pixels."""
    direction = ANOMALY_DIRECTION.get(name)
    return f"{ARROW[direction]} anomalous" if direction else ""


CACHED = QGraphicsItem.CacheMode.DeviceCoordinateCache


def cache_static(*items) -> None:
    """Paint slow, rarely changing items (axes with text, titles) once into a pixmap.

    pyqtgraph replays an axis's QPicture (tick labels) on every repaint of any region it spans;
    scrubbing repaints the images every frame, so the axes and titles are cached instead.
    """
    for item in items:
        item.setCacheMode(CACHED)


def lut(colormap: str) -> np.ndarray:
    return pg.colormap.get(colormap).getLookupTable(nPts=256, alpha=False)


class FieldColorBar(pg.ColorBarItem):
    """A colour bar that reports the colormap chosen from its menu."""

    def __init__(self, owner: FieldGrid, field: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self._owner = owner
        self._field = field
        self._name = None

    def set_named_colormap(self, name: str) -> None:
        self._name = name
        super().setColorMap(pg.colormap.get(name))

    def setColorMap(self, colorMap) -> None:  # noqa: N802 - pyqtgraph override
        super().setColorMap(colorMap)
        name = getattr(colorMap, "name", None) or (colorMap if isinstance(colorMap, str) else None)
        if name and name != self._name:
            self._name = name
            self._owner.colormap_edited.emit(self._field, name)


class Panel:
    """One view: title, ViewBox, ImageItem, probe marker, optional colour bar."""

    def __init__(self, grid: FieldGrid, view: str) -> None:
        self.view = view
        self.title = pg.LabelItem(justify="center", size="10pt")
        cache_static(self.title)
        self.vb = pg.ViewBox(lockAspect=True, invertY=True, enableMenu=True, name=f"view_{view}")
        self.vb.setDefaultPadding(0.0)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.vb.addItem(self.image)
        pen = QPen(pg.mkColor("#00e5ff"))
        pen.setCosmetic(True)
        pen.setWidth(2)
        self.marker = QGraphicsRectItem()
        self.marker.setPen(pen)
        self.marker.setZValue(100)
        self.marker.hide()
        self.vb.addItem(self.marker, ignoreBounds=True)
        self.bar: FieldColorBar | None = None
        if view in SCALAR_FIELDS:
            self.bar = FieldColorBar(grid, view, values=(0, 1), width=14, interactive=True, rounding=1e-6)
            self.bar.setImageItem(self.image)
            cache_static(*(self.bar.getAxis(k) for k in ("left", "right", "top", "bottom")))
            self.bar.sigLevelsChangeFinished.connect(
                lambda bar, f=view: grid.levels_edited.emit(f, *map(float, bar.levels()))
            )


class FieldGrid(pg.GraphicsLayoutWidget):
    """See the module docstring."""

    hovered = Signal(int, int)
    clicked = Signal(int, int)
    roi_changed = Signal(int, int, int, int)
    levels_edited = Signal(str, float, float)
    colormap_edited = Signal(str, str)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("FieldGrid")
        self.ci.layout.setSpacing(4)
        self.ci.setContentsMargins(2, 2, 2, 2)
        self.panels: dict[str, Panel] = {v: Panel(self, v) for v in VIEWS}
        master = self.panels["image"].vb
        for panel in self.panels.values():
            if panel.vb is not master:
                panel.vb.setXLink(master)
                panel.vb.setYLink(master)
        self.panels["x0_hat"].image.setLevels((0, 255))
        # overlays on the image view
        image_vb = master
        self.overlay_items: dict[str, pg.ImageItem] = {}
        for z, name in enumerate(OVERLAYS):
            item = pg.ImageItem(axisOrder="row-major")
            item.setZValue(10 + z)
            item.hide()
            image_vb.addItem(item)
            self.overlay_items[name] = item
        self.overlay_levels: dict[str, tuple[float, float]] = {}
        self.overlay_bar = FieldColorBar(
            self, "overlay", values=(0, 1), width=14, interactive=False, rounding=1e-6
        )
        self.overlay_bar.setMenuEnabled(False)
        cache_static(*(self.overlay_bar.getAxis(k) for k in ("left", "right", "top", "bottom")))
        self.overlay_bar.colorMapMenu = False
        self.active_overlay: str | None = None
        self.visible_views: set[str] = set(VIEWS)
        self.shape: tuple[int, int] | None = None
        self.colormaps: dict[str, str] = {}
        self.roi: pg.RectROI | None = None
        self._relayout()
        self.scene().sigMouseMoved.connect(self._mouse_moved)
        self.scene().sigMouseClicked.connect(self._mouse_clicked)

    # -- layout ----------------------------------------------------------------------------------
    def _relayout(self) -> None:
        """Re-add the visible views (and colour bars) to the layout, keeping the zoom.

        While items leave and re-enter the layout their sizes pass through odd values, and
        aspect-locked linked views would carry that into the shared range; the image view's
        range is put back once the layout has settled.
        """
        master = self.panels["image"].vb
        keep = QRectF(master.targetRect()) if self.shape is not None else None
        fit = self.shape is not None and all(master.autoRangeEnabled())
        self.ci.clear()
        col = 0
        for view in VIEWS:
            if view not in self.visible_views:
                continue
            panel = self.panels[view]
            bar = panel.bar if view != "image" else (self.overlay_bar if self.active_overlay else None)
            span = 2 if bar is not None else 1
            self.ci.addItem(panel.title, row=0, col=col, colspan=span)
            self.ci.addItem(panel.vb, row=1, col=col)
            if bar is not None:
                self.ci.addItem(bar, row=1, col=col + 1)
            col += span
        self._update_titles()
        if keep is not None:
            restore = self.reset_zoom if fit else (lambda: master.setRange(keep, padding=0.0))
            restore()
            QTimer.singleShot(0, restore)

    def set_visible_views(self, views: set[str]) -> None:
        views = {v for v in views if v in VIEWS}
        if views != self.visible_views:
            self.visible_views = views
            self._relayout()

    def _update_titles(self) -> None:
        for view, panel in self.panels.items():
            symbol, meaning = TITLES[view]
            arrow = direction_text(view)
            text = f"<b>{symbol}</b>"
            if arrow:
                text += f' <span style="color:#e07b00">{arrow}</span>'
            text += f'<br/><span style="font-size:8pt">{meaning}</span>'
            if view == "image" and self.active_overlay:
                name = self.active_overlay
                text = f"<b>input</b> + <b>{name}</b>"
                if direction_text(name):
                    text += f' <span style="color:#e07b00">{direction_text(name)}</span>'
                text += f'<br/><span style="font-size:8pt">overlay: {OVERLAY_NAMES[name]}</span>'
            panel.title.setText(text)

    # -- data ------------------------------------------------------------------------------------
    def set_base_image(self, image: np.ndarray | None) -> None:
        """The input image (uint8 ``(H, W)`` or ``(H, W, 3)``); ``None`` clears every view."""
        panel = self.panels["image"]
        if image is None:
            for p in self.panels.values():
                p.image.clear()
            for item in self.overlay_items.values():
                item.clear()
            self.shape = None
            return
        shape = image.shape[:2]
        panel.image.setImage(image, autoLevels=False, levels=(0, 255))
        if shape != self.shape:
            self.shape = shape
            self.reset_zoom()

    def set_frame(self, frame: dict[str, np.ndarray], levels: dict[str, tuple[float, float]]) -> None:
        """Show one step: ``R``, ``M``, ``Q`` float32 ``(H, W)`` at the fixed ``levels``, ``x0_hat`` uint8."""
        for name in SCALAR_FIELDS:
            data = frame.get(name)
            if data is not None:
                self.panels[name].image.setImage(data, autoLevels=False, levels=levels.get(name, (0.0, 1.0)))
        x0 = frame.get("x0_hat")
        if x0 is not None:
            self.panels["x0_hat"].image.setImage(x0, autoLevels=False, levels=(0, 255))

    def clear_frame(self) -> None:
        for name in ("R", "M", "Q", "x0_hat"):
            self.panels[name].image.clear()

    def frame_data(self, view: str) -> np.ndarray | None:
        return self.panels[view].image.image

    def set_levels(self, field: str, lo: float, hi: float) -> None:
        if field in SCALAR_FIELDS:
            panel = self.panels[field]
            bar = panel.bar
            bar.rounding = max((hi - lo) / 1000.0, 1e-12)
            bar.setLevels((lo, hi))
        elif field in self.overlay_items:
            self.overlay_levels[field] = (lo, hi)
            self.overlay_items[field].setLevels((lo, hi))
            if field == self.active_overlay:
                self.overlay_bar.setLevels((lo, hi))

    def set_colormap(self, field: str, name: str) -> None:
        self.colormaps[field] = name
        if field in SCALAR_FIELDS:
            self.panels[field].bar.set_named_colormap(name)
        elif field in self.overlay_items and field != "contour":
            self.overlay_items[field].setLookupTable(lut(name))
            if field == self.active_overlay:
                self.overlay_bar.set_named_colormap(name)

    # -- overlays --------------------------------------------------------------------------------
    def set_overlay_data(self, name: str, data: np.ndarray | None) -> None:
        item = self.overlay_items[name]
        if data is None:
            item.clear()
            return
        if name == "contour":
            item.setImage(data, autoLevels=False, levels=(0, 255))
        else:
            item.setImage(data, autoLevels=False, levels=self.overlay_levels.get(name, (0.0, 1.0)))

    def set_overlays(self, shown: list[str], opacity: dict[str, float]) -> None:
        """Show exactly the overlays in ``shown`` (drawing order), each at its ``opacity``."""
        for name, item in self.overlay_items.items():
            item.setVisible(name in shown)
            item.setOpacity(opacity.get(name, 0.5) if name != "contour" else 1.0)
        scalar = [n for n in shown if n != "contour"]
        active = scalar[-1] if scalar else None
        if active != self.active_overlay:
            self.active_overlay = active
            if active is not None:
                self.overlay_bar.set_named_colormap(self.colormaps.get(active, "viridis"))
                self.overlay_bar.setLevels(self.overlay_levels.get(active, (0.0, 1.0)))
                self.overlay_bar.getAxis("left").setLabel(f"{active} ({direction_text(active)})")
            self._relayout()

    # -- probe -----------------------------------------------------------------------------------
    def set_probe(self, box: tuple[int, int, int, int] | None) -> None:
        """Outline the probed pixel/box ``(y0, x0, y1, x1)`` on every view (``None`` hides it)."""
        for panel in self.panels.values():
            if box is None:
                panel.marker.hide()
            else:
                y0, x0, y1, x1 = box
                panel.marker.setRect(QRectF(x0, y0, x1 - x0, y1 - y0))
                panel.marker.show()

    def set_roi_mode(self, on: bool) -> None:
        """Add (or remove) a draggable rectangle on the image view that probes a region."""
        vb = self.panels["image"].vb
        if on and self.roi is None:
            h, w = self.shape or (32, 32)
            size = max(2, min(h, w) // 8)
            self.roi = pg.RectROI(
                [w // 2 - size // 2, h // 2 - size // 2],
                [size, size],
                pen=pg.mkPen("#00e5ff", width=2),
                snapSize=1.0,
                scaleSnap=True,
                translateSnap=True,
            )
            self.roi.setZValue(200)
            vb.addItem(self.roi)
            self.roi.sigRegionChangeFinished.connect(self._roi_moved)
            self._roi_moved()
        elif not on and self.roi is not None:
            vb.removeItem(self.roi)
            self.roi = None

    def _roi_moved(self, *_args) -> None:
        if self.roi is None:
            return
        pos, size = self.roi.pos(), self.roi.size()
        x0, y0 = round(pos.x()), round(pos.y())
        x1, y1 = x0 + max(1, round(size.x())), y0 + max(1, round(size.y()))
        self.roi_changed.emit(y0, x0, y1, x1)

    # -- view ------------------------------------------------------------------------------------
    def reset_zoom(self) -> None:
        """Fit the image to the views, and keep fitting on resizes until the user pans or zooms."""
        if self.shape is not None:
            vb = self.panels["image"].vb
            vb.autoRange(padding=0.0)
            vb.enableAutoRange()

    def _pixel_at(self, scene_pos) -> tuple[int, int] | None:
        if self.shape is None:
            return None
        for view in self.visible_views:
            vb = self.panels[view].vb
            if vb.sceneBoundingRect().contains(scene_pos):
                p = vb.mapSceneToView(scene_pos)
                y, x = math.floor(p.y()), math.floor(p.x())
                h, w = self.shape
                if 0 <= y < h and 0 <= x < w:
                    return y, x
                return None
        return None

    def pixel_to_scene(self, view: str, y: int, x: int):
        """Scene position of pixel ``(y, x)``'s centre in ``view`` (tests click there)."""
        return self.panels[view].vb.mapViewToScene(pg.Point(x + 0.5, y + 0.5))

    def _mouse_moved(self, scene_pos) -> None:
        pixel = self._pixel_at(scene_pos)
        self.hovered.emit(*(pixel if pixel is not None else (-1, -1)))

    def _mouse_clicked(self, event) -> None:
        if event.button() != Qt.MouseButton.LeftButton or event.double():
            return
        pixel = self._pixel_at(event.scenePos())
        if pixel is not None:
            self.clicked.emit(*pixel)

    def set_plot_colors(self, background: str, foreground: str) -> None:
        self.setBackground(background)
