"""The plain-Python state models, without Qt."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from refcfa_gui.state import DatasetState, Events, ProbeState, SelectionState, Signal, TimelineState
from refcfa_gui.state.probe import Probe


@dataclass(frozen=True)
class S:  # the attributes of refcfa.data.Sample the state uses
    image_id: str
    path: Path
    split: str
    label: int
    defect: str
    mask_path: Path | None
    category: str


def samples(category: str) -> list[S]:
    out = [
        S(
            f"train/good/{i:03d}",
            Path(f"/d/{category}/train/good/{i:03d}.png"),
            "train",
            0,
            "good",
            None,
            category,
        )
        for i in range(3)
    ]
    out += [S("test/good/000", Path(f"/d/{category}/test/good/000.png"), "test", 0, "good", None, category)]
    out += [
        S(
            f"test/{d}/000",
            Path(f"/d/{category}/test/{d}/000.png"),
            "test",
            1,
            d,
            Path(f"/m/{d}.png"),
            category,
        )
        for d in ("scratch", "crack")
    ]
    return out


def recorder(signal: Signal) -> list:
    seen = []
    signal.connect(lambda *args: seen.append(args[0] if len(args) == 1 else args))
    return seen


def test_state_layer_imports_neither_qt_nor_torch():
    code = (
        "import sys, refcfa_gui.state; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('PySide6', 'pyqtgraph', 'torch')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_signal_connect_emit_disconnect_block():
    sig = Signal("x")
    seen = recorder(sig)
    sig.emit(1)
    with sig.blocked():
        sig.emit(2)
    sig.emit(3)
    assert seen == [1, 3]
    sig.disconnect()
    sig.emit(4)
    assert seen == [1, 3] and len(sig) == 0
    events = Events("a", "b")
    got = recorder(events.a)
    with events.blocked():
        events.a.emit("hidden")
    events.a.emit("shown")
    assert got == ["shown"] and events.names == ("a", "b")


def test_dataset_load_tree_counts_and_filter():
    ds = DatasetState()
    loaded = recorder(ds.events.loaded)
    roles = recorder(ds.events.roles)
    ds.load(
        "/d",
        "mvtec",
        {"target_texture": samples("target_texture"), "source_texture": samples("source_texture")},
    )
    assert loaded == [ds] and ds.categories == ["source_texture", "target_texture"]
    # roles default from the category names
    assert roles[-1] == {"source": "source_texture", "target": "target_texture"}
    tree = ds.tree()
    assert list(tree["source_texture"]) == ["train", "test"]
    assert list(tree["source_texture"]["test"]) == ["good", "crack", "scratch"]  # good first, then by name
    c = ds.counts("source_texture")
    assert (c.total, c.good, c.defective) == (6, 4, 2)

    filters = recorder(ds.events.filter)
    ds.set_filter("defective")
    assert filters == ["defective"]
    assert list(ds.tree()["source_texture"]) == ["test"]
    assert all(s.label == 1 for s in ds.tree()["source_texture"]["test"]["crack"])
    ds.set_filter("good")
    assert "crack" not in ds.tree()["source_texture"].get("test", {})
    ds.set_filter("good")  # no change, no event
    assert filters == ["defective", "good"]
    with pytest.raises(ValueError, match="expected one of"):
        ds.set_filter("bad")


def test_dataset_roles_are_exclusive():
    ds = DatasetState()
    ds.load("/d", "mvtec", {"a": samples("a"), "b": samples("b")})
    assert ds.roles == {"source": None, "target": None}  # names say nothing
    seen = recorder(ds.events.roles)
    ds.assign_role("a", "source")
    ds.assign_role("b", "target")
    ds.assign_role("b", "source")  # b moves to source, a loses it, target is empty
    assert ds.roles == {"source": "b", "target": None}
    assert ds.role_of("a") is None and ds.role_of("b") == "source"
    ds.assign_role("b", None)
    assert ds.roles == {"source": None, "target": None}
    assert len(seen) == 4
    with pytest.raises(ValueError, match="not in the opened dataset"):
        ds.assign_role("zzz", "source")
    with pytest.raises(ValueError, match="expected 'source' or 'target'"):
        ds.assign_role("a", "middle")


def test_dataset_unreadable_images_are_listed_and_skipped():
    ds = DatasetState()
    ds.load("/d", "mvtec", {"a": samples("a")})
    bad = samples("a")[0]
    seen = recorder(ds.events.unreadable)
    ds.mark_unreadable(bad.path, "cannot decode image: the PNG is truncated")
    assert seen == [{str(bad.path): "cannot decode image: the PNG is truncated"}]
    assert bad not in ds.tree()["a"]["train"]["good"]
    assert ds.counts("a").total == 5
    errors = recorder(ds.events.error)
    ds.set_error("no layout")
    ds.set_error("no layout")
    assert errors == ["no layout"] and ds.error == "no layout"
    assert ds.find_image("test/crack/000").defect == "crack"
    assert ds.find("a", "nope") is None


def test_selection_emits_on_change_only():
    sel = SelectionState()
    seen = recorder(sel.events.current)
    a, b = samples("a")[:2]
    sel.select(a)
    sel.select(a)
    sel.select(b)
    sel.clear()
    assert seen == [a, b, None]


def test_timeline_steps_are_clamped_and_one_based():
    tl = TimelineState()
    steps = recorder(tl.events.step)
    tl.set_entry("k", 5, {"R": (0.0, 2.0)}, timesteps=[100, 80, 60, 40, 20])
    assert (tl.step, tl.K, tl.available) == (1, 5, 5)
    tl.set_step(99)
    assert tl.step == 5
    tl.set_step(-3)
    assert tl.step == 1
    tl.next_step()
    tl.next_step()
    tl.prev_step()
    assert tl.step == 2
    tl.last()
    tl.first()
    assert steps == [1, 5, 1, 2, 3, 2, 5, 1]
    # a new entry keeps the step when it still exists
    tl.set_step(4)
    tl.set_entry("k2", 6)
    assert tl.step == 4
    tl.set_entry("k3", 3)
    assert tl.step == 3
    tl.clear()
    assert (tl.step, tl.K) == (0, 0)


def test_timeline_playback_loops_or_stops():
    tl = TimelineState()
    tl.set_entry("k", 3)
    playing = recorder(tl.events.playing)
    tl.set_playing(True)
    visited = []
    for _ in range(5):
        tl.advance()
        visited.append(tl.step)
    assert visited == [2, 3, 1, 2, 3]  # loop
    tl.set_loop(False)
    tl.advance()
    assert tl.playing is False and tl.step == 3  # stopped at the end
    tl.set_playing(True)  # playing again from the end restarts at 1
    assert tl.step == 1 and playing == [True, False, True]
    tl.set_fps(1000)
    assert tl.fps == 60
    tl.set_fps(0)
    assert tl.fps == 1
    tl.clear()
    assert tl.playing is False


def test_timeline_streaming_availability():
    tl = TimelineState()
    tl.set_entry(None, 4, available=0)
    assert tl.step == 0
    tl.set_available(1)
    assert tl.step == 1
    tl.set_available(3)
    tl.set_step(4)
    assert tl.step == 3  # not computed yet
    tl.set_loop(True)
    tl.set_playing(True)
    tl.advance()
    assert tl.step == 1  # loops inside what exists


def test_timeline_overlays_levels_colormaps():
    tl = TimelineState()
    seen = recorder(tl.events.overlay)
    tl.set_overlay("E", visible=True)
    tl.set_overlay("E", opacity=2.0)
    assert tl.overlays["E"].visible and tl.overlays["E"].opacity == 1.0
    assert len(seen) == 2
    assert tl.visible_overlays() == []  # E not available for this image
    tl.set_overlays_available({"E", "contour", "bogus"})
    assert tl.overlays_available == {"E", "contour"}
    assert tl.visible_overlays() == ["E", "contour"]  # the contour is on by default
    tl.set_overlay("contour", visible=False)
    assert tl.visible_overlays() == ["E"]
    with pytest.raises(ValueError, match="expected one of"):
        tl.set_overlay("X", visible=True)
    levels = recorder(tl.events.levels)
    tl.set_levels("R", 3.0, 1.0)
    tl.set_levels("R", 1.0, 3.0)
    tl.set_levels("M", 2.0, 2.0)
    assert tl.levels["R"] == (1.0, 3.0) and tl.levels["M"][1] > 2.0
    assert len(levels) == 2
    tl.set_colormap("R", "viridis")
    assert tl.colormaps["R"] == "viridis"
    tl.set_visible("M", False)
    assert "M" not in tl.visible
    with pytest.raises(ValueError):
        tl.set_visible("nope", True)


def test_probe_pixel_roi_and_clipping():
    p = ProbeState()
    seen = recorder(p.events.changed)
    p.set_shape((32, 40))
    p.set_pixel(3, 5)
    assert p.probe == Probe(3, 5, 4, 6) and p.probe.is_pixel
    p.set_roi(10, 12, 4, 2)  # corners in any order
    assert p.probe == Probe(4, 2, 10, 12) and not p.probe.is_pixel
    assert "ROI" in p.probe.label()
    p.set_roi(30, 38, 50, 60)  # clipped to the image
    assert p.probe == Probe(30, 38, 32, 40)
    p.set_pixel(100, 100)  # outside: cleared
    assert p.probe is None
    p.set_pixel(31, 39)
    p.set_shape((16, 16))  # the new image is smaller: the probe no longer fits
    assert p.probe is None
    assert [x is None for x in seen] == [False, False, False, True, False, True]
