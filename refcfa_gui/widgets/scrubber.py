"""The step scrubber: first / previous / play / next / last, a slider, fps, loop.

A view over :class:`~refcfa_gui.state.TimelineState`: widgets write to the state, the state's
events update the widgets (signals blocked, so there is no feedback loop). Playback is a QTimer
calling ``state.advance()``; a frame the loader has not drawn yet is simply replaced by the next.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QSlider, QSpinBox, QToolButton, QWidget

from refcfa_gui.state import TimelineState
from refcfa_gui.state.timeline import FPS_RANGE

PLAY, PAUSE = "▶ Play", "❚❚ Pause"


class Scrubber(QWidget):
    def __init__(self, state: TimelineState, parent=None) -> None:
        super().__init__(parent)
        self.state = state
        self.timer = QTimer(self)
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.timeout.connect(state.advance)

        def button(text: str, tip: str, slot) -> QToolButton:
            # text glyphs (not the style's media icons) so both palettes draw them in the text colour
            b = QToolButton()
            b.setText(text)
            b.setMinimumWidth(30)
            b.setToolTip(tip)
            b.setAutoRaise(True)
            b.clicked.connect(slot)
            return b

        self.first_button = button("|◀", "First step (Home)", state.first)
        self.prev_button = button("◀", "Previous step (←)", state.prev_step)
        self.play_button = button(PLAY, "Play / pause (Space)", state.toggle_playing)
        self.play_button.setObjectName("PlayButton")
        self.next_button = button("▶", "Next step (→)", state.next_step)
        self.last_button = button("▶|", "Last step (End)", state.last)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setObjectName("StepSlider")
        self.slider.setToolTip("Reverse diffusion step n (1 = the noisiest, K = the last)")
        self.slider.setPageStep(1)
        self.slider.setTracking(True)
        self.slider.valueChanged.connect(state.set_step)
        self.step_label = QLabel()
        self.step_label.setObjectName("StepLabel")
        self.step_label.setMinimumWidth(150)
        self.fps_spin = QSpinBox()
        self.fps_spin.setRange(*FPS_RANGE)
        self.fps_spin.setSuffix(" fps")
        self.fps_spin.setToolTip("Playback speed in steps per second ([ and ] change it)")
        self.fps_spin.valueChanged.connect(state.set_fps)
        self.loop_check = QCheckBox("Loop")
        self.loop_check.setToolTip("Start again at step 1 after the last step (L)")
        self.loop_check.toggled.connect(state.set_loop)

        layout = QHBoxLayout(self)
        layout.setContentsMargins(2, 0, 2, 0)
        for w in (self.first_button, self.prev_button, self.play_button, self.next_button, self.last_button):
            layout.addWidget(w)
        layout.addWidget(self.slider, 1)
        layout.addWidget(self.step_label)
        layout.addWidget(self.fps_spin)
        layout.addWidget(self.loop_check)

        state.events.entry.connect(lambda _s: self._sync_range())
        state.events.available.connect(lambda _n: self._sync_range())
        state.events.step.connect(self._on_step)
        state.events.playing.connect(self._on_playing)
        state.events.fps.connect(self._on_fps)
        state.events.loop.connect(self._on_loop)
        self._sync_range()
        self._on_fps(state.fps)
        self._on_loop(state.loop)
        self._on_playing(state.playing)

    def _sync_range(self) -> None:
        s = self.state
        self.slider.blockSignals(True)
        self.slider.setRange(1 if s.available else 0, max(s.available, 0))
        self.slider.setValue(s.step)
        self.slider.blockSignals(False)
        enabled = s.available > 0
        for w in (
            self.first_button,
            self.prev_button,
            self.play_button,
            self.next_button,
            self.last_button,
            self.slider,
        ):
            w.setEnabled(enabled)
        self._on_step(s.step)

    def _on_step(self, n: int) -> None:
        s = self.state
        self.slider.blockSignals(True)
        self.slider.setValue(n)
        self.slider.blockSignals(False)
        if s.K == 0:
            self.step_label.setText("no trajectory")
            return
        text = f"step {n} / {s.K}"
        if 0 < n <= len(s.timesteps):
            text += f"  (s = {s.timesteps[n - 1]})"
        if s.available < s.K:
            text += f"  [{s.available} ready]"
        self.step_label.setText(text)

    def _on_playing(self, playing: bool) -> None:
        self.play_button.setText(PAUSE if playing else PLAY)
        if playing:
            self.timer.start(round(1000 / self.state.fps))
        else:
            self.timer.stop()

    def _on_fps(self, fps: int) -> None:
        self.fps_spin.blockSignals(True)
        self.fps_spin.setValue(fps)
        self.fps_spin.blockSignals(False)
        if self.timer.isActive():
            self.timer.setInterval(round(1000 / fps))

    def _on_loop(self, loop: bool) -> None:
        self.loop_check.blockSignals(True)
        self.loop_check.setChecked(loop)
        self.loop_check.blockSignals(False)
