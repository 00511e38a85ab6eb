"""Fixtures of the GUI tests: a tiny dataset, a random-init tiny score network, a filled cache.

Qt runs offscreen (set before any Qt import). Settings go to a temporary INI file, never the
user's. The cache is filled through the library (``compute_fields`` + ``TrajectoryCache.put``)
with a randomly initialised 2-level UNet: the numbers are meaningless, the plumbing is real.
"""

from __future__ import annotations

import os

os.environ["QT_QPA_PLATFORM"] = "offscreen"
os.environ.setdefault("REFCFA_GUI_THEME", "light")

from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
QUICK_CONFIG = REPO / "resources" / "configs" / "quick" / "quick.yaml"
IMAGE_SIZE = 32


@dataclass
class TinyWorld:
    """Everything a GUI test needs on disk."""

    root: Path  # dataset root (MVTec layout, two categories)
    cache: Path  # trajectory cache with a few entries
    checkpoint: Path  # random-init tiny score network
    keys: dict  # (category, image_id) -> cache key
    K: int


def _tiny_config():
    from refcfa.config import load_config

    return load_config(QUICK_CONFIG, [f"data.image_size={IMAGE_SIZE}"])


def write_checkpoint(out_dir: Path, seed: int = 0) -> Path:
    """A refcfa score-network checkpoint holding a random-init tiny UNet (``refcfa.engine.checkpoint`` format)."""
    from refcfa.engine.checkpoint import save_initial_checkpoint

    return save_initial_checkpoint(_tiny_config(), out_dir, in_channels=3, seed=seed)


def fill_cache(cache_dir: Path, checkpoint: Path, samples) -> dict:
    """Compute the REF of ``samples`` with the checkpoint's network and store them in the cache.

    Through the pipeline's extractor (``compute_fields`` then ``TrajectoryCache.put``), so the
    entries are exactly what ``refcfa extract`` writes.
    """
    from refcfa.field.cache import TrajectoryCache
    from refcfa.field.extract import FieldExtractor, items_from_samples

    extractor = FieldExtractor(checkpoint, _tiny_config(), TrajectoryCache(cache_dir), device="cpu")
    items = items_from_samples(samples, IMAGE_SIZE, 3)
    for _progress in extractor.extract(items, shard=False):
        pass
    return {(s.category, s.image_id): extractor.key_for(item) for s, item in zip(samples, items, strict=True)}


def build_world(base: Path, n_cached_normals: int = 2, n_cached_defects: int = 2) -> TinyWorld:
    from refcfa.data import make_samples, make_synthetic

    root = make_synthetic(base / "data", size=IMAGE_SIZE, seed=0, n_train=6, n_test_good=2, n_test_defect=3)
    checkpoint = write_checkpoint(base / "output" / "tiny_source")
    samples = make_samples(root, "mvtec", "source_texture")
    normals = [s for s in samples if s.label == 0][:n_cached_normals]
    defects = [s for s in samples if s.label == 1][:n_cached_defects]
    keys = fill_cache(base / "cache", checkpoint, normals + defects)
    return TinyWorld(root, base / "cache", checkpoint, keys, _tiny_config().field.K)


@pytest.fixture(scope="session")
def world_template(tmp_path_factory) -> TinyWorld:
    """Built once per session; tests that change files use :func:`world` (a copy)."""
    return build_world(tmp_path_factory.mktemp("gui_world"))


@pytest.fixture
def world(world_template, tmp_path) -> TinyWorld:
    """A private copy of the tiny world (tests may corrupt it)."""
    import shutil

    base = tmp_path / "world"
    shutil.copytree(world_template.root.parent, base)
    t = world_template
    return TinyWorld(
        base / "data", base / "cache", base / "output" / "tiny_source" / t.checkpoint.name, dict(t.keys), t.K
    )


@pytest.fixture
def settings(tmp_path):
    from refcfa_gui.settings import Settings, make_qsettings

    return Settings(make_qsettings(tmp_path / "settings.ini"))


@pytest.fixture
def make_window(qtbot, settings, monkeypatch, tmp_path):
    """``make_window(world, checkpoint=...)`` → a shown MainWindow on the world's data and cache."""
    from PySide6.QtWidgets import QMessageBox

    # modal dialogs would block a test: answer them and record what they said
    monkeypatch.setattr(
        QMessageBox, "information", staticmethod(lambda *a, **k: QMessageBox.StandardButton.Ok)
    )
    monkeypatch.setattr(QMessageBox, "about", staticmethod(lambda *a, **k: None))
    monkeypatch.chdir(tmp_path)  # output/, data/ relative paths land in the test's folder
    created = []

    def make(w: TinyWorld, checkpoint: Path | str | None = "world", open_root: bool = True):
        from refcfa_gui.main_window import MainWindow

        ckpt = w.checkpoint if checkpoint == "world" else checkpoint
        window = MainWindow(settings, cache_dir=w.cache, checkpoint=ckpt)
        qtbot.addWidget(window)
        window.resize(1400, 900)
        window.show()
        qtbot.waitExposed(window)
        created.append(window)
        if open_root:
            window.open_dataset(w.root)
            qtbot.waitUntil(lambda: window.dataset.root is not None, timeout=10000)
            qtbot.waitUntil(lambda: bool(window.controller.cached), timeout=10000)
        return window

    yield make
    for window in created:
        if window.isVisible():
            window.close()


def wait_for_frame(qtbot, window, n: int, timeout: int = 10000) -> None:
    c = window.controller
    qtbot.waitUntil(lambda: c.frame_step == n and window.timeline_state.step == n, timeout=timeout)


def select(qtbot, window, category: str, image_id: str, timeout: int = 15000):
    sample = window.dataset.find(category, image_id)
    assert sample is not None, f"{category}/{image_id} not in the dataset"
    window.selection.select(sample)
    qtbot.waitUntil(
        lambda: window.controller.source == "cache" and window.controller.frame_step > 0, timeout=timeout
    )
    return sample
