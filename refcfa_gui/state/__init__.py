"""Plain-Python state models (no Qt) that the widgets subscribe to; tested without Qt."""

from refcfa_gui.state.dataset import DatasetState
from refcfa_gui.state.probe import Probe, ProbeState
from refcfa_gui.state.selection import SelectionState
from refcfa_gui.state.signals import Events, Signal
from refcfa_gui.state.timeline import FIELDS, OVERLAYS, VIEWS, Overlay, TimelineState

__all__ = [
    "FIELDS",
    "OVERLAYS",
    "VIEWS",
    "DatasetState",
    "Events",
    "Overlay",
    "Probe",
    "ProbeState",
    "SelectionState",
    "Signal",
    "TimelineState",
]
