"""The settings the Training / CFA panel edits, and what an output folder already holds (no Qt).

:class:`TrainingSettings` wraps the same YAML configs the CLI uses: :meth:`open` reads a file
with its ``_base_`` chain (``refcfa.config.load_yaml_tree``), :meth:`set` changes one dotted key
(``train.max_steps``) in that merged mapping and re-validates it into a ``Config`` (an invalid
value keeps the last valid config and reports the ``ConfigError`` message in :attr:`error`),
and :meth:`save` writes a self-contained YAML with ``refcfa.config.save_config`` that
``refcfa pipeline --config`` runs unchanged.

:func:`scan_outputs` lists what earlier runs left in ``cfg.output_dir`` (score-network
checkpoints, detectors, the trajectory cache, metrics), so a reopened app shows what was trained.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from refcfa_gui.state.signals import Events

#: the settings the panel shows: (dotted key, label, kind); kinds: str, path, format, int, bool, device
EDITABLE: tuple[tuple[str, str, str], ...] = (
    ("source.root", "Source root", "path"),
    ("source.format", "Source format", "format"),
    ("source.category", "Source category", "str"),
    ("target.root", "Target root", "path"),
    ("target.format", "Target format", "format"),
    ("target.category", "Target category", "str"),
    ("output_dir", "Output folder", "path"),
    ("device", "Device", "device"),
    ("train.max_steps", "Max steps", "int"),
    ("train.batch_size", "Batch size", "int"),
    ("field.t0", "t0 (start step)", "int"),
    ("field.K", "K (steps)", "int"),
    ("detector.epochs", "Detector epochs", "int"),
    ("cfa.temporal", "Temporal alignment (TA)", "bool"),
    ("cfa.coral", "CORAL (SOA)", "bool"),
    ("cfa.subspace", "Subspace (DSA)", "bool"),
)
FORMATS = ("auto", "mvtec", "visa", "dagm", "folder")
DEVICES = ("auto", "cpu", "cuda")


def get_dotted(data: dict, key: str, default: Any = None) -> Any:
    node: Any = data
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def set_dotted(data: dict, key: str, value: Any) -> None:
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[parts[-1]] = value


class TrainingSettings:
    """The config the panel runs (see the module docstring).

    Events: ``opened`` (the path), ``changed`` (``(key, value)``; ``key`` is ``""`` after open),
    ``error`` (the ``ConfigError`` message, or ``None`` when the settings are valid again).
    """

    def __init__(self) -> None:
        self.events = Events("opened", "changed", "error")
        self.path: Path | None = None
        self.data: dict = {}
        self.cfg: Any = None  # refcfa.config.Config of the last valid state
        self.error: str | None = None
        self.edited: dict[str, Any] = {}  # keys changed since open/save

    def open(self, path: str | os.PathLike[str]) -> Any:
        """Read ``path`` (with its ``_base_`` chain); raises ``FileNotFoundError``/``ConfigError``."""
        from refcfa.config import load_yaml_tree, resolve_config_path, validate

        resolved = resolve_config_path(path)
        data = load_yaml_tree(resolved)
        cfg = validate(copy.deepcopy(data), str(resolved))
        self.path, self.data, self.cfg = resolved, data, cfg
        self.edited = {}
        self._set_error(None)
        self.events.opened.emit(resolved)
        self.events.changed.emit(("", None))
        return cfg

    def get(self, key: str, default: Any = None) -> Any:
        """The current (possibly edited) value of a dotted key; schema defaults for absent keys."""
        value = get_dotted(self.data, key, _MISSING)
        if value is _MISSING and self.cfg is not None:
            node: Any = self.cfg
            for part in key.split("."):
                node = getattr(node, part, None)
            return default if node is None else node
        return default if value is _MISSING else value

    def set(self, key: str, value: Any) -> bool:
        """Change one dotted key and re-validate; returns True when the settings are valid."""
        if self.get(key) == value and key not in self.edited:
            return self.error is None
        set_dotted(self.data, key, value)
        self.edited[key] = value
        ok = self._revalidate()
        self.events.changed.emit((key, value))
        return ok

    def _revalidate(self) -> bool:
        from refcfa.config import validate
        from refcfa.errors import ConfigError

        where = f"{self.path or '<settings>'} (edited in the panel)"
        try:
            self.cfg = validate(copy.deepcopy(self.data), where)
        except ConfigError as exc:
            self._set_error(str(exc))
            return False
        self._set_error(None)
        return True

    def _set_error(self, message: str | None) -> None:
        if message != self.error:
            self.error = message
            self.events.error.emit(message)

    def config(self) -> Any:
        """The validated ``Config``; raises ``ConfigError`` while an edit is invalid."""
        from refcfa.errors import ConfigError

        if self.error is not None:
            raise ConfigError(self.error)
        if self.cfg is None:
            raise ConfigError(
                "no config is open: open a YAML config (e.g. resources/configs/quick/quick.yaml)"
            )
        return self.cfg

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the current config as a self-contained YAML (no ``_base_``) and make it the open file."""
        from refcfa.config import save_config

        out = save_config(self.config(), path)
        self.path = Path(out)
        self.edited = {}
        self.events.opened.emit(self.path)
        return out

    @property
    def is_edited(self) -> bool:
        return bool(self.edited)


_MISSING = object()


@dataclass
class Outputs:
    """What ``output_dir`` holds. Paths are strings; ``stages[S] = description`` when done."""

    output_dir: str
    checkpoints: dict[str, list[str]] = field(default_factory=dict)  # experiment folder -> *.pth
    segmenters: list[str] = field(default_factory=list)
    cache_entries: int = 0
    cache_bytes: int = 0
    cache_dir: str = ""
    metrics: list[str] = field(default_factory=list)  # newest first
    stages: dict[str, str] = field(default_factory=dict)

    @property
    def latest_metrics(self) -> str | None:
        return self.metrics[0] if self.metrics else None

    @property
    def empty(self) -> bool:
        return not (self.checkpoints or self.segmenters or self.cache_entries or self.metrics)


def _mtime(p: Path) -> float:
    try:
        return p.stat().st_mtime
    except OSError:
        return 0.0


def scan_outputs(cfg: Any) -> Outputs:
    """List the outputs of earlier runs of ``cfg`` (``Config``) under ``cfg.output_dir``.

    Looks for ``*/checkpoint_epoch_*.pth`` (score networks, per experiment folder),
    ``*/supervised_segmenter.pth`` (S2), the trajectory cache (``*.h5`` entries) and
    ``metrics.json`` (the chain's, then T2's under ``vis_supervised/*/``). ``stages`` says which of
    S1, T1, S2, T2 of *this* config are done.
    """
    from refcfa.engine.checkpoint import find_last_checkpoint, list_checkpoints

    root = Path(cfg.output_dir)
    out = Outputs(str(root))
    if root.is_dir():
        for sub in sorted(p for p in root.iterdir() if p.is_dir()):
            ckpts = list_checkpoints(sub)
            if ckpts:
                out.checkpoints[sub.name] = [str(p) for p in ckpts]
            seg = sub / "supervised_segmenter.pth"
            if seg.is_file():
                out.segmenters.append(str(seg))
        metrics = [root / "metrics.json"] if (root / "metrics.json").is_file() else []
        vis = root / "vis_supervised"
        if vis.is_dir():
            metrics += [p / "metrics.json" for p in vis.iterdir() if (p / "metrics.json").is_file()]
        out.metrics = [str(p) for p in sorted(metrics, key=_mtime, reverse=True)]
    cache = Path(cfg.cache_dir())
    out.cache_dir = str(cache)
    if cache.is_dir():
        for dirpath, _dirs, files in os.walk(cache):
            for name in files:
                if name.endswith(".h5"):
                    out.cache_entries += 1
                    out.cache_bytes += _size(Path(dirpath) / name)
    for stage, which in (("S1", "source"), ("T1", "target")):
        ckpt = find_last_checkpoint(cfg.experiment_dir(which))
        if ckpt is not None:
            out.stages[stage] = f"{Path(ckpt).parent.name}/{Path(ckpt).name}"
    src = find_last_checkpoint(cfg.experiment_dir("source"))
    seg = (Path(src).parent if src else Path(cfg.experiment_dir("source"))) / "supervised_segmenter.pth"
    if seg.is_file():
        out.stages["S2"] = f"{seg.parent.name}/{seg.name}"
    maps = root / "vis_supervised" / cfg.target.category / "maps.npz"
    if maps.is_file():
        out.stages["T2"] = str(maps.relative_to(root))
    return out


def _size(p: Path) -> int:
    try:
        return p.stat().st_size
    except OSError:
        return 0


def format_bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


__all__ = ["DEVICES", "EDITABLE", "FORMATS", "Outputs", "TrainingSettings", "format_bytes", "scan_outputs"]
