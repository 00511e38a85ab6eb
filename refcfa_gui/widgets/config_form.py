"""The stage settings of the Training / CFA panel: one group per stage, each with its Run button.

A view over :class:`~refcfa_gui.state.training.TrainingSettings`: every widget edits one dotted
config key (``train.max_steps``, ``cfa.coral`` …) through ``settings.set`` and shows the model's
value back when a file is opened. Groups: the data and run settings (source/target root, format,
category; output folder; device), S1/T1 (score networks), S2 (REF + detector), T2 (CFA).

Signals: ``run_requested(str)`` — a stage's Run button (``S1``, ``T1``, ``S2``, ``T2``, ``all``);
``edited(str)`` — a key the user changed.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from refcfa_gui.state.training import DEVICES, FORMATS, TrainingSettings

INT_RANGES = {
    "train.max_steps": (1, 10_000_000),
    "train.batch_size": (1, 4096),
    "field.t0": (1, 999),
    "field.K": (1, 999),
    "detector.epochs": (1, 100_000),
}
STAGES = ("S1", "T1", "S2", "T2")


class ConfigForm(QWidget):
    """See the module docstring. ``fields[key]`` is the widget of a dotted key."""

    run_requested = Signal(str)
    edited = Signal(str)

    def __init__(self, settings: TrainingSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        self.dialog_parent: QWidget | None = self
        self.fields: dict[str, QWidget] = {}
        self.stage_labels: dict[str, QLabel] = {}
        self.run_buttons: dict[str, QPushButton] = {}
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)
        layout.addWidget(self._data_box())
        layout.addWidget(self._networks_box())
        layout.addWidget(self._s2_box())
        layout.addWidget(self._t2_box())
        self.run_all_button = QPushButton("▶  Run all  (S1 → T2)")
        self.run_all_button.setObjectName("RunAllButton")
        self.run_all_button.setToolTip(
            "The whole chain — S1, T1, REF extraction, S2, T2 and the metrics — as `refcfa pipeline --config` runs it"
        )
        f = self.run_all_button.font()
        f.setBold(True)
        self.run_all_button.setFont(f)
        self.run_all_button.setMinimumHeight(30)
        self.run_all_button.clicked.connect(lambda: self.run_requested.emit("all"))
        self.run_buttons["all"] = self.run_all_button
        layout.addWidget(self.run_all_button)
        layout.addStretch(1)
        settings.events.changed.connect(self._on_changed)
        settings.events.error.connect(self._on_error)
        self.update_device_note()

    # == widgets ===================================================================================
    def _path_field(self, key: str, tip: str) -> QWidget:
        box = QWidget()
        row = QHBoxLayout(box)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(2)
        edit = QLineEdit()
        edit.setToolTip(tip)
        edit.setObjectName(f"field_{key}")
        browse = QToolButton()
        browse.setText("…")
        browse.setToolTip(f"Choose the folder ({key})")
        browse.clicked.connect(lambda _c=False, k=key: self.browse(k))
        edit.editingFinished.connect(lambda k=key, e=edit: self._edited(k, e.text().strip()))
        row.addWidget(edit, 1)
        row.addWidget(browse)
        self.fields[key] = edit
        return box

    def _combo(self, key: str, items: tuple[str, ...], editable: bool = False, tip: str = "") -> QComboBox:
        combo = QComboBox()
        combo.setObjectName(f"field_{key}")
        combo.addItems(items)
        combo.setEditable(editable)
        combo.setToolTip(tip)
        combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        combo.setMinimumContentsLength(3)
        if editable:
            combo.lineEdit().editingFinished.connect(
                lambda k=key, c=combo: self._edited(k, c.currentText().strip())
            )
            combo.activated.connect(lambda _i, k=key, c=combo: self._edited(k, c.currentText().strip()))
        else:
            combo.currentTextChanged.connect(lambda text, k=key: self._edited(k, text))
        self.fields[key] = combo
        return combo

    def _spin(self, key: str, tip: str) -> QSpinBox:
        spin = QSpinBox()
        spin.setObjectName(f"field_{key}")
        spin.setRange(*INT_RANGES[key])
        spin.setKeyboardTracking(False)
        spin.setToolTip(tip)
        spin.setGroupSeparatorShown(True)
        spin.valueChanged.connect(lambda v, k=key: self._edited(k, int(v)))
        self.fields[key] = spin
        return spin

    def _check(self, key: str, text: str, tip: str) -> QCheckBox:
        box = QCheckBox(text)
        box.setObjectName(f"field_{key}")
        box.setToolTip(tip)
        box.toggled.connect(lambda on, k=key: self._edited(k, bool(on)))
        self.fields[key] = box
        return box

    def _stage_row(self, stage: str, tip: str) -> QHBoxLayout:
        button = QPushButton(f"Run {stage}")
        button.setObjectName(f"run_{stage}")
        button.setToolTip(tip)
        button.clicked.connect(lambda _c=False, s=stage: self.run_requested.emit(s))
        self.run_buttons[stage] = button
        label = QLabel("")
        label.setObjectName(f"status_{stage}")
        label.setWordWrap(True)
        label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.stage_labels[stage] = label
        row = QHBoxLayout()
        row.addWidget(button)
        row.addWidget(label, 1)
        return row

    @staticmethod
    def _form() -> QFormLayout:
        form = QFormLayout()
        form.setContentsMargins(6, 4, 6, 4)
        form.setSpacing(4)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)  # labels above fields when narrow
        return form

    def _domain_row(self, which: str) -> QWidget:
        box = QWidget()
        grid = QGridLayout(box)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setSpacing(2)
        grid.addWidget(self._path_field(f"{which}.root", f"Dataset root of the {which} domain"), 0, 0, 1, 2)
        grid.addWidget(self._combo(f"{which}.format", FORMATS, tip="Dataset layout (auto detects it)"), 1, 0)
        grid.addWidget(
            self._combo(
                f"{which}.category", (), editable=True, tip=f"Category of the {which} domain inside its root"
            ),
            1,
            1,
        )
        grid.setColumnStretch(0, 1)
        grid.setColumnStretch(1, 2)
        return box

    def _data_box(self) -> QGroupBox:
        box = QGroupBox("Data and run")
        form = self._form()
        form.addRow("Source", self._domain_row("source"))
        form.addRow("Target", self._domain_row("target"))
        form.addRow("Output", self._path_field("output_dir", "Where checkpoints, cache, maps and metrics go"))
        row = QHBoxLayout()
        row.addWidget(
            self._combo(
                "device",
                DEVICES,
                tip="auto: the GPU when CUDA is available, else the CPU; or force cpu / cuda",
            )
        )
        self.device_label = QLabel("")
        self.device_label.setObjectName("DeviceResolved")
        self.device_label.setWordWrap(True)
        row.addWidget(self.device_label, 1)
        form.addRow("Device", row)
        box.setLayout(form)
        return box

    def _networks_box(self) -> QGroupBox:
        box = QGroupBox("S1 / T1 · score networks")
        form = self._form()
        form.addRow(
            "Max steps", self._spin("train.max_steps", "train.max_steps: optimizer steps per network")
        )
        form.addRow("Batch size", self._spin("train.batch_size", "train.batch_size"))
        form.addRow(
            self._stage_row("S1", "Train the source score network (resumes from its last checkpoint)")
        )
        form.addRow(
            self._stage_row("T1", "Train the target score network (resumes from its last checkpoint)")
        )
        box.setLayout(form)
        return box

    def _s2_box(self) -> QGroupBox:
        box = QGroupBox("S2 · REF + detector")
        form = self._form()
        t0_k = QHBoxLayout()
        t0_k.addWidget(
            self._spin("field.t0", "field.t0: the timestep the partial reverse trajectory starts at")
        )
        t0_k.addWidget(QLabel("K"))
        t0_k.addWidget(self._spin("field.K", "field.K: reverse steps recorded"))
        form.addRow("t0", t0_k)
        form.addRow("Epochs", self._spin("detector.epochs", "detector.epochs"))
        form.addRow(self._stage_row("S2", "Source fields under the S1 network, then the detector (needs S1)"))
        box.setLayout(form)
        return box

    def _t2_box(self) -> QGroupBox:
        box = QGroupBox("T2 · CFA + detection")
        form = self._form()
        switches = QHBoxLayout()
        switches.addWidget(self._check("cfa.temporal", "TA", "cfa.temporal: temporal alignment (DTW)"))
        switches.addWidget(self._check("cfa.coral", "SOA", "cfa.coral: second-order (CORAL) alignment"))
        switches.addWidget(self._check("cfa.subspace", "DSA", "cfa.subspace: directional subspace alignment"))
        switches.addStretch(1)
        form.addRow("CFA", switches)
        form.addRow(
            self._stage_row(
                "T2", "Target fields, CFA, the source detector and the metrics (needs S1, T1, S2)"
            )
        )
        box.setLayout(form)
        return box

    # == model ↔ widgets ===========================================================================
    def _edited(self, key: str, value: Any) -> None:
        if self.settings.cfg is None:
            return
        if key in ("source.root", "target.root", "output_dir") and value == "":
            self.show_value(key)  # an empty path is not a setting: show the current one again
            return
        self.settings.set(key, value)
        if key.endswith(".root") or key.endswith(".format"):
            self.fill_categories(key.split(".")[0])
        if key == "device":
            self.update_device_note()
        self.edited.emit(key)

    def browse(self, key: str) -> None:
        current = str(self.settings.get(key, "") or "")
        path = QFileDialog.getExistingDirectory(
            self.dialog_parent, f"Choose {key}", current or str(Path.cwd())
        )
        if path:
            self.fields[key].setText(path)
            self._edited(key, path)

    def _on_changed(self, item: tuple[str, Any]) -> None:
        key, _value = item
        if key == "":  # a file was opened: every field from the model
            for k in self.fields:
                self.show_value(k)
            for which in ("source", "target"):
                self.fill_categories(which)
            self.update_device_note()
        elif key in self.fields:
            self.show_value(key)
            if key.endswith(".root") or key.endswith(".format"):  # set programmatically: offer its categories
                self.fill_categories(key.split(".")[0])

    def show_value(self, key: str) -> None:
        w = self.fields[key]
        value = self.settings.get(key)
        w.blockSignals(True)
        try:
            if isinstance(w, QLineEdit):
                w.setText("" if value is None else str(value))
            elif isinstance(w, QSpinBox):
                w.setValue(int(value) if isinstance(value, int) else w.minimum())
            elif isinstance(w, QCheckBox):
                w.setChecked(bool(value))
            elif isinstance(w, QComboBox):
                text = "" if value is None else str(value)
                if text and w.findText(text) < 0:
                    w.addItem(text)
                if w.isEditable():
                    w.setEditText(text)
                w.setCurrentIndex(w.findText(text))
                if w.isEditable():
                    w.lineEdit().setCursorPosition(0)  # a narrow field shows the start of the name
        finally:
            w.blockSignals(False)

    def fill_categories(self, which: str) -> None:
        """Offer the categories found under the domain's root (a directory listing)."""
        from refcfa.data import list_categories

        combo = self.fields[f"{which}.category"]
        root, fmt = self.settings.get(f"{which}.root"), self.settings.get(f"{which}.format") or "auto"
        try:
            cats = list_categories(root, fmt) if root and Path(root).is_dir() else []
        except (OSError, ValueError):
            cats = []
        current = str(self.settings.get(f"{which}.category") or "")
        combo.blockSignals(True)
        combo.clear()
        combo.addItems(sorted(set(cats) | ({current} if current else set())))
        combo.setEditText(current)
        combo.setCurrentIndex(combo.findText(current))
        combo.lineEdit().setCursorPosition(0)
        combo.blockSignals(False)

    def _on_error(self, message: str | None) -> None:
        for button in self.run_buttons.values():
            button.setEnabled(message is None)

    def update_device_note(self, resolved: str | None = None) -> None:
        """Next to the device combo: what ``auto`` resolves to (known once torch is loaded)."""
        spec = str(self.settings.get("device") or "auto")
        if spec != "auto":
            self.device_label.setText("")
            self.device_label.setToolTip("")
        elif resolved:
            self.device_label.setText(f"→ {resolved}")
            self.device_label.setToolTip("what auto resolved to for the last job")
        elif "torch" in sys.modules:
            torch = sys.modules["torch"]
            self.device_label.setText("→ cuda" if torch.cuda.is_available() else "→ cpu")
            self.device_label.setToolTip("what auto resolves to on this machine")
        elif not self.device_label.text():
            self.device_label.setText("→ on the first job")
            self.device_label.setToolTip(
                "auto uses the GPU when CUDA is available, else the CPU (torch loads with the first job)"
            )

    def set_stage_status(self, stage: str, html: str, tip: str = "") -> None:
        self.stage_labels[stage].setText(html)
        self.stage_labels[stage].setToolTip(tip)


__all__ = ["ConfigForm"]
