"""The Dataset browser dock: open a root, see its format and tree, filter, assign roles, pick an image.

The widget is a view over :class:`~refcfa_gui.state.DatasetState` and
:class:`~refcfa_gui.state.SelectionState`. Reading the root (:func:`refcfa.api.open_dataset`)
and making thumbnails (:func:`refcfa_gui.imaging.iter_thumbnails`) run on worker threads.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QMimeData, QSize, Qt, Signal
from PySide6.QtGui import QAction, QBrush, QColor, QIcon, QImage, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QMenu,
    QPushButton,
    QSplitter,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from refcfa_gui.state import DatasetState, SelectionState
from refcfa_gui.state.dataset import ROLES, count
from refcfa_gui.widgets.banner import MessageBanner
from refcfa_gui.workers.generator_worker import GeneratorWorker, WorkerManager

log = logging.getLogger(__name__)

CATEGORY_MIME = "application/x-refcfa-category"
ITEM_ROLE = Qt.ItemDataRole.UserRole
THUMB_BOX = 64
FORMAT_NAMES = {"mvtec": "MVTec AD", "visa": "VisA", "dagm": "DAGM 2007", "folder": "image folder"}
ROLE_COLORS = {"source": "#2e7d32", "target": "#1565c0"}


def numpy_to_qimage(rgb: np.ndarray) -> QImage:
    """uint8 ``(H, W, 3)`` → a QImage that owns a copy of the pixels."""
    rgb = np.ascontiguousarray(rgb)
    h, w = rgb.shape[:2]
    return QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


class CategoryTree(QTreeWidget):
    """The tree; dragging a category carries its name (dropped on a role slot to assign it)."""

    def mimeData(self, items: list[QTreeWidgetItem]) -> QMimeData:  # noqa: N802 - Qt override
        mime = QMimeData()
        for item in items:
            data = item.data(0, ITEM_ROLE)
            if data and data[0] == "category":
                mime.setData(CATEGORY_MIME, data[1].encode())
                mime.setText(data[1])
                break
        return mime

    def mimeTypes(self) -> list[str]:  # noqa: N802 - Qt override
        return [CATEGORY_MIME]


class RoleSlot(QLabel):
    """Shows which category has a role; accepts a category dragged from the tree."""

    dropped = Signal(str, str)  # category, role

    def __init__(self, role: str, parent=None) -> None:
        super().__init__(parent)
        self.role = role
        self.setAcceptDrops(True)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setToolTip(f"Drag a category here (or right-click it in the tree) to make it the {role} domain")
        self.setMinimumHeight(24)
        self.set_category(None)

    def set_category(self, category: str | None) -> None:
        color = ROLE_COLORS[self.role]
        name = category or "— drop a category —"
        self.setText(f'<b style="color:{color}">{self.role.title()}:</b> {name}')

    def dragEnterEvent(self, event) -> None:  # noqa: N802 - Qt override
        if event.mimeData().hasFormat(CATEGORY_MIME):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802 - Qt override
        data = event.mimeData()
        if data.hasFormat(CATEGORY_MIME):
            self.dropped.emit(bytes(data.data(CATEGORY_MIME)).decode(), self.role)
            event.acceptProposedAction()


class DatasetBrowser(QWidget):
    """Open a dataset root and browse it. Signals: ``root_opened(str)`` after a successful load."""

    root_opened = Signal(str)

    def __init__(
        self,
        dataset: DatasetState,
        selection: SelectionState,
        workers: WorkerManager,
        parent=None,
    ) -> None:
        super().__init__(parent)
        self.dataset = dataset
        self.selection = selection
        self.workers = workers
        self.last_dir = ""
        self.cached_ids: set[tuple[str, str]] = set()
        self._icons: dict[str, QIcon] = {}
        self._items: dict[str, QTreeWidgetItem] = {}
        self._thumb_worker: GeneratorWorker | None = None
        self._open_worker: GeneratorWorker | None = None
        self._build()
        dataset.events.loaded.connect(self._on_loaded)
        dataset.events.error.connect(self._on_error)
        dataset.events.filter.connect(lambda _mode: self._rebuild_tree())
        dataset.events.roles.connect(self._on_roles)
        dataset.events.unreadable.connect(self._on_unreadable)
        selection.events.current.connect(self._on_selection)

    # -- layout ----------------------------------------------------------------------------------
    def _build(self) -> None:
        self.open_button = QPushButton("Open…")
        self.open_button.setToolTip("Open a dataset root (MVTec AD, VisA, DAGM or an image folder) — Ctrl+O")
        self.open_button.clicked.connect(self.choose_root)
        self.root_label = QLabel("No dataset open")
        self.root_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.root_label.setWordWrap(True)
        self.format_label = QLabel("Format: —")
        self.format_label.setObjectName("FormatLabel")
        self.filter_combo = QComboBox()
        self.filter_combo.addItems(["All images", "Good only", "Defective only"])
        self.filter_combo.setToolTip("Show all images, only normal (good) ones, or only defective ones")
        self.filter_combo.currentIndexChanged.connect(
            lambda i: self.dataset.set_filter(("all", "good", "defective")[i])
        )
        self.banner = MessageBanner()
        self.slots = {role: RoleSlot(role) for role in ROLES}
        for slot in self.slots.values():
            slot.dropped.connect(lambda cat, role: self.dataset.assign_role(cat, role))

        self.tree = CategoryTree()
        self.tree.setObjectName("DatasetTree")
        self.tree.setHeaderLabels(["Name", "Images", ""])
        self.tree.setColumnCount(3)
        self.tree.setIconSize(QSize(40, 40))
        self.tree.setUniformRowHeights(False)
        self.tree.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.tree.customContextMenuRequested.connect(self._context_menu)
        self.tree.currentItemChanged.connect(self._on_current_item)
        self.tree.setDragEnabled(True)
        self.tree.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)
        self.tree.header().setStretchLastSection(False)
        self.tree.setColumnWidth(0, 190)
        self.tree.setColumnWidth(1, 90)
        self.tree.setColumnWidth(2, 60)

        self.unreadable_tree = QTreeWidget()
        self.unreadable_tree.setObjectName("UnreadableList")
        self.unreadable_tree.setHeaderLabels(["Unreadable image (skipped)", "Reason"])
        self.unreadable_tree.setRootIsDecorated(False)
        self.unreadable_tree.hide()

        top = QHBoxLayout()
        top.addWidget(self.open_button)
        top.addWidget(self.format_label, 1)
        roles = QHBoxLayout()
        for slot in self.slots.values():
            roles.addWidget(slot, 1)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.tree)
        split.addWidget(self.unreadable_tree)
        split.setStretchFactor(0, 4)
        split.setStretchFactor(1, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(top)
        layout.addWidget(self.root_label)
        layout.addWidget(self.banner)
        layout.addWidget(self.filter_combo)
        layout.addLayout(roles)
        layout.addWidget(split, 1)

        self.role_actions: dict[str, QAction] = {}
        for role in ROLES:
            action = QAction(f"Make Selected Category the {role.title()} Domain", self)
            action.triggered.connect(lambda _=False, r=role: self.assign_current(r))
            self.role_actions[role] = action

    # -- opening ---------------------------------------------------------------------------------
    def choose_root(self) -> None:
        start = self.last_dir or str(self.dataset.root or Path.cwd())
        path = QFileDialog.getExistingDirectory(self, "Open dataset root", start)
        if path:
            self.open_root(path)

    def open_root(self, root: str | Path) -> GeneratorWorker:
        """Read ``root`` on a worker; the state (and this view) update when it is done."""
        from refcfa import api

        root = Path(root)
        self.last_dir = str(root.parent)
        self.root_label.setText(f"Opening {root} …")
        if self._open_worker is not None:
            self._open_worker.quit()
        worker = GeneratorWorker(api.open_dataset, root, name=f"open {root.name}")
        worker.returned.connect(lambda info, w=worker: self._opened(w, info))
        worker.errored.connect(lambda exc, r=root, w=worker: self._open_failed(w, r, exc))
        self._open_worker = worker
        return self.workers.start(worker, visible=True)

    def _opened(self, worker: GeneratorWorker, info: Any) -> None:
        if worker is not self._open_worker:
            return
        self.dataset.load(info.root, info.format, info.samples, info.layout)
        for category, message in info.errors.items():
            log.warning("category %s skipped: %s", category, message)
        if info.errors:
            self.banner.show_message(
                "Some categories could not be read and are skipped: "
                + "; ".join(f"{c}: {m}" for c, m in info.errors.items()),
                "warning",
            )
        log.info("opened %s (%s, %d categories)", info.root, info.format, len(info.categories))
        self.root_opened.emit(str(info.root))

    def _open_failed(self, worker: GeneratorWorker, root: Path, exc: Exception) -> None:
        if worker is not self._open_worker:
            return
        message = f"Cannot open {root} as a dataset. {exc}"
        log.error("%s", message)
        self.root_label.setText(str(self.dataset.root) if self.dataset.root else "No dataset open")
        self.dataset.set_error(message)

    # -- state → view ----------------------------------------------------------------------------
    def _on_loaded(self, state: DatasetState) -> None:
        self.root_label.setText(str(state.root))
        fmt = state.format or "?"
        self.format_label.setText(f"Format: <b>{FORMAT_NAMES.get(fmt, fmt)}</b>")
        self.format_label.setToolTip(f"Detected layout: {state.layout}")
        self.unreadable_tree.clear()
        self.unreadable_tree.hide()
        self._icons.clear()
        self._rebuild_tree()
        self._start_thumbnails()

    def _on_error(self, message: str | None) -> None:
        if message:
            self.banner.show_message(message, "error")
        elif self.banner.level == "error":
            self.banner.clear()

    def _on_roles(self, roles: dict) -> None:
        for role, slot in self.slots.items():
            slot.set_category(roles.get(role))
        for i in range(self.tree.topLevelItemCount()):
            item = self.tree.topLevelItem(i)
            self._decorate_category(item, item.data(0, ITEM_ROLE)[1])

    def _on_unreadable(self, unreadable: dict[str, str]) -> None:
        self.unreadable_tree.clear()
        for path, reason in sorted(unreadable.items()):
            row = QTreeWidgetItem([Path(path).name, reason])
            row.setToolTip(0, path)
            row.setToolTip(1, reason)
            row.setForeground(0, QBrush(QColor("#d04040")))
            self.unreadable_tree.addTopLevelItem(row)
        self.unreadable_tree.setHeaderLabels([f"Unreadable images, skipped ({len(unreadable)})", "Reason"])
        self.unreadable_tree.setVisible(bool(unreadable))
        for path in unreadable:
            item = self._items.pop(path, None)
            if item is not None and item.parent() is not None:
                parent = item.parent()
                parent.removeChild(item)
                self._refresh_counts(parent)

    def _on_selection(self, sample: Any) -> None:
        if sample is None:
            return
        item = self._items.get(str(sample.path))
        if item is not None and self.tree.currentItem() is not item:
            self.tree.setCurrentItem(item)

    # -- the tree --------------------------------------------------------------------------------
    def _rebuild_tree(self) -> None:
        current = self.selection.current
        expanded = self._expanded_keys()
        self.tree.blockSignals(True)
        self.tree.clear()
        self._items.clear()
        for category, splits in self.dataset.tree().items():
            cat_item = QTreeWidgetItem([category, ""])
            cat_item.setData(0, ITEM_ROLE, ("category", category))
            cat_item.setFlags(cat_item.flags() | Qt.ItemFlag.ItemIsDragEnabled)
            self.tree.addTopLevelItem(cat_item)
            for split, defects in splits.items():
                split_item = QTreeWidgetItem([split, ""])
                split_item.setData(0, ITEM_ROLE, ("split", category, split))
                split_item.setFlags(split_item.flags() & ~Qt.ItemFlag.ItemIsDragEnabled)
                cat_item.addChild(split_item)
                for defect, samples in defects.items():
                    defect_item = QTreeWidgetItem([defect, ""])
                    defect_item.setData(0, ITEM_ROLE, ("defect", category, split, defect))
                    defect_item.setFlags(defect_item.flags() & ~Qt.ItemFlag.ItemIsDragEnabled)
                    if defect != "good":
                        defect_item.setForeground(0, QBrush(QColor("#d04040")))
                    split_item.addChild(defect_item)
                    for sample in samples:
                        defect_item.addChild(self._image_item(sample))
                    self._refresh_counts(defect_item)
            self._decorate_category(cat_item, category)
        for key in expanded:
            item = self._find_node(key)
            if item is not None:
                item.setExpanded(True)
        if not expanded:
            for i in range(self.tree.topLevelItemCount()):
                self.tree.topLevelItem(i).setExpanded(True)
        if current is not None and str(current.path) in self._items:
            self.tree.setCurrentItem(self._items[str(current.path)])
        self.tree.blockSignals(False)

    def _image_item(self, sample: Any) -> QTreeWidgetItem:
        item = QTreeWidgetItem([Path(sample.path).name, "", ""])
        item.setData(0, ITEM_ROLE, ("image", sample))
        item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsDragEnabled)
        tip = [
            str(sample.path),
            f"id: {sample.image_id}",
            "label: " + ("defective" if sample.label else "good"),
        ]
        if sample.mask_path:
            tip.append(f"mask: {sample.mask_path} (drawn in red)")
        item.setToolTip(0, "\n".join(tip))
        icon = self._icons.get(str(sample.path))
        if icon is not None:
            item.setIcon(0, icon)
        if (sample.category, sample.image_id) in self.cached_ids:
            item.setText(2, "cached")
            item.setToolTip(2, "Fields of this image are in the trajectory cache")
        self._items[str(sample.path)] = item
        return item

    def _refresh_counts(self, item: QTreeWidgetItem) -> None:
        """Recount ``item`` and its ancestors from the image leaves below them."""
        while item is not None:
            samples = list(self._leaf_samples(item))
            c = count(samples)
            kind = item.data(0, ITEM_ROLE)[0]
            item.setText(1, str(c.total) if kind == "defect" else f"{c.total} ({c.defective} bad)")
            item.setToolTip(1, f"{c.total} images: {c.good} good, {c.defective} defective")
            item = item.parent()

    def _leaf_samples(self, item: QTreeWidgetItem):
        data = item.data(0, ITEM_ROLE)
        if data and data[0] == "image":
            yield data[1]
            return
        for i in range(item.childCount()):
            yield from self._leaf_samples(item.child(i))

    def _decorate_category(self, item: QTreeWidgetItem, category: str) -> None:
        role = self.dataset.role_of(category)
        if item.childCount():
            self._refresh_counts(item)
        else:
            item.setText(1, "0")
        item.setText(2, role or "")
        if role:
            item.setForeground(2, QBrush(QColor(ROLE_COLORS[role])))
            item.setToolTip(2, f"{category} is the {role} domain")
        font = item.font(0)
        font.setBold(True)
        item.setFont(0, font)

    def _node_key(self, item: QTreeWidgetItem) -> tuple:
        data = item.data(0, ITEM_ROLE)
        return tuple(data) if data and data[0] != "image" else ()

    def _expanded_keys(self) -> list[tuple]:
        keys = []

        def walk(item: QTreeWidgetItem) -> None:
            if item.isExpanded() and self._node_key(item):
                keys.append(self._node_key(item))
            for i in range(item.childCount()):
                walk(item.child(i))

        for i in range(self.tree.topLevelItemCount()):
            walk(self.tree.topLevelItem(i))
        return keys

    def _find_node(self, key: tuple) -> QTreeWidgetItem | None:
        def walk(item: QTreeWidgetItem):
            if self._node_key(item) == key:
                return item
            for i in range(item.childCount()):
                found = walk(item.child(i))
                if found is not None:
                    return found
            return None

        for i in range(self.tree.topLevelItemCount()):
            found = walk(self.tree.topLevelItem(i))
            if found is not None:
                return found
        return None

    def set_cached(self, ids: set[tuple[str, str]]) -> None:
        """Mark the images whose fields are cached (``(category, image_id)`` pairs)."""
        self.cached_ids = set(ids)
        for item in self._items.values():
            sample = item.data(0, ITEM_ROLE)[1]
            item.setText(2, "cached" if (sample.category, sample.image_id) in self.cached_ids else "")

    # -- thumbnails ------------------------------------------------------------------------------
    def _start_thumbnails(self) -> None:
        from refcfa_gui.imaging import iter_thumbnails

        if self._thumb_worker is not None:
            self._thumb_worker.quit()
        samples = [s for cat in self.dataset.categories for s in self.dataset.samples[cat]]
        worker = GeneratorWorker(iter_thumbnails, samples, THUMB_BOX, name="thumbnails")
        worker.yielded.connect(lambda result, w=worker: self._thumbnail_ready(w, *result))
        worker.finished.connect(lambda w=worker: self._thumbnails_finished(w))
        self._thumb_worker = worker
        self._thumbs_done = False
        self.workers.start(worker, visible=False)

    def _thumbnail_ready(
        self, worker: GeneratorWorker, path: str, rgb: np.ndarray | None, reason: str
    ) -> None:
        if worker is not self._thumb_worker:
            return
        if rgb is None:
            log.warning("unreadable image skipped: %s (%s)", path, reason)
            self.dataset.mark_unreadable(path, reason)
            return
        icon = QIcon(QPixmap.fromImage(numpy_to_qimage(rgb)))
        self._icons[path] = icon
        item = self._items.get(path)
        if item is not None:
            item.setIcon(0, icon)

    def _thumbnails_finished(self, worker: GeneratorWorker) -> None:
        if worker is self._thumb_worker:
            self._thumbs_done = True

    def thumbnails_done(self) -> bool:
        """Every thumbnail of the current dataset delivered (or none started)."""
        return self._thumb_worker is None or self._thumbs_done

    # -- interaction -----------------------------------------------------------------------------
    def _on_current_item(self, item: QTreeWidgetItem | None, _previous=None) -> None:
        if item is None:
            return
        data = item.data(0, ITEM_ROLE)
        if data and data[0] == "image":
            self.selection.select(data[1])

    def current_category(self) -> str | None:
        item = self.tree.currentItem()
        while item is not None and item.parent() is not None:
            item = item.parent()
        return item.data(0, ITEM_ROLE)[1] if item is not None else None

    def assign_current(self, role: str | None) -> None:
        category = self.current_category()
        if category is not None:
            self.dataset.assign_role(category, role)

    def _context_menu(self, pos) -> None:
        item = self.tree.itemAt(pos)
        if item is None:
            return
        self.tree.setCurrentItem(item)
        category = self.current_category()
        menu = QMenu(self)
        for role in ROLES:
            action = menu.addAction(f"Use {category} as {role}")
            action.setCheckable(True)
            action.setChecked(self.dataset.roles.get(role) == category)
            action.triggered.connect(lambda _=False, r=role, c=category: self.dataset.assign_role(c, r))
        clear = menu.addAction("Clear role")
        clear.setEnabled(self.dataset.role_of(category) is not None)
        clear.triggered.connect(lambda _=False, c=category: self.dataset.assign_role(c, None))
        menu.exec(self.tree.viewport().mapToGlobal(pos))

    def select_relative(self, delta: int) -> None:
        """Select the next (``+1``) or previous (``-1``) image in tree order."""
        items = [it for it in self._iter_image_items()]
        if not items:
            return
        current = self.tree.currentItem()
        index = items.index(current) if current in items else -1
        self.tree.setCurrentItem(items[(index + delta) % len(items)])

    def _iter_image_items(self):
        def walk(item: QTreeWidgetItem):
            data = item.data(0, ITEM_ROLE)
            if data and data[0] == "image":
                yield item
            for i in range(item.childCount()):
                yield from walk(item.child(i))

        for i in range(self.tree.topLevelItemCount()):
            yield from walk(self.tree.topLevelItem(i))
