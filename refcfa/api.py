"""The facade the GUI (and CLI) use: plain dataclasses and numpy in, plain dataclasses and numpy out.

No Qt here (``refcfa`` never imports Qt), and no module-level torch: the functions that need a
network (:func:`stream_fields`, :func:`overlay_maps`) import torch inside, so a viewer that only
reads the trajectory cache never loads it.

Reading the cache (DESIGN.md section 9; steps are 1-based, ``n = 1..K``):

* :func:`list_cached` — what the cache holds, from its index (no entry file opened);
* :func:`open_entry` / :func:`read_step` / :func:`read_frame` — one step of the fields;
* :func:`read_pixel_series` / :func:`read_roi_series` — a pixel's or a box's ``R, M, Q`` over the steps;
* :func:`field_levels` — fixed display levels of a field over the whole entry;
* :func:`normal_reference_band` — the median and 5–95 % of a field per step over normal pixels;
* :func:`overlay_maps` — ``E``, ``NS``, ``DV`` (uniform weights) and the anomaly map ``A``.

Computing: :func:`stream_fields` runs the reverse trajectory of one image step by step and writes
its cache entry at the end. Datasets: :func:`open_dataset` reads a root's format, categories and
samples, with per-category errors instead of an exception for the whole root.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from refcfa.errors import CacheError, CheckpointError, DatasetError

if TYPE_CHECKING:  # pragma: no cover
    from refcfa.config.schema import Config
    from refcfa.data.sample import Sample
    from refcfa.field.cache import CacheEntry

__all__ = [
    "ANOMALY_DIRECTION",
    "CachedImage",
    "DatasetInfo",
    "ReferenceBand",
    "StreamedStep",
    "field_levels",
    "find_cached",
    "find_checkpoint",
    "list_cached",
    "load_anomaly_map",
    "normal_reference_band",
    "open_dataset",
    "open_entry",
    "overlay_maps",
    "read_frame",
    "read_pixel_series",
    "read_roi_series",
    "read_step",
    "stream_fields",
]

SeriesField = Literal["R", "M", "Q"]
SERIES_FIELDS: tuple[str, ...] = ("R", "M", "Q")

ANOMALY_DIRECTION: dict[str, Literal["higher", "lower"]] = {
    "R": "higher",
    "M": "higher",
    "Q": "higher",
    "E": "higher",
    "NS": "lower",
    "DV": "lower",
    "A": "higher",
}
"""Which way each field moves on anomalous pixels (DESIGN.md section 11: NS and DV are *lower*)."""


# ---------------------------------------------------------------------------------------------
# datasets


@dataclass
class DatasetInfo:
    """A dataset root as the browser shows it.

    Attributes:
        root: The root folder.
        format: Detected (or given) format name.
        layout: The format's expected layout, for messages.
        categories: Category names that parsed.
        samples: ``{category: [Sample]}`` of those categories.
        errors: ``{category: message}`` for categories that did not parse (listed, not fatal).
    """

    root: Path
    format: str
    layout: str
    categories: list[str]
    samples: dict[str, list[Sample]]
    errors: dict[str, str] = field(default_factory=dict)


def open_dataset(root: str | os.PathLike[str], fmt: str = "auto") -> DatasetInfo:
    """Detect the format of ``root`` and parse every category.

    Raises:
        FileNotFoundError: ``root`` does not exist.
        DatasetError: ``root`` matches no known layout (the message says what is expected where),
            or no category parsed.
    """
    from refcfa.data import detect_format, get_format, list_categories, make_samples

    root = Path(root)
    name = detect_format(root) if fmt == "auto" else get_format(fmt).name
    layout = get_format(name).layout
    categories = list_categories(root, name)
    samples: dict[str, list[Sample]] = {}
    errors: dict[str, str] = {}
    for category in categories:
        try:
            samples[category] = make_samples(root, name, category)
        except (DatasetError, FileNotFoundError, ValueError) as exc:
            errors[category] = str(exc)
    if not samples:
        detail = "; ".join(f"{c}: {m}" for c, m in errors.items()) or "no category found"
        raise DatasetError(
            f"{root} looks like a {name} dataset but no category could be read ({detail}); expected {layout}"
        )
    return DatasetInfo(root, name, layout, sorted(samples), samples, errors)


# ---------------------------------------------------------------------------------------------
# the trajectory cache: listing and reading


@dataclass(frozen=True)
class CachedImage:
    """One cache entry as listed by :func:`list_cached` (from the index; no file opened).

    ``image_id`` is the dataset's id (the extractor stores ``"<category>/<image_id>"``; the
    category prefix is removed). ``label`` is ``None`` unless the entry records one: the
    pipeline keeps labels out of the cache, so take them from the dataset. ``compatible`` is false
    for entries written by another cache format version: they cannot be read (opening one raises
    :class:`~refcfa.errors.CacheError`) and will be recomputed.
    """

    key: str
    image_id: str
    category: str
    label: int | None
    split: str
    defect: str
    path: str
    mask_path: str
    K: int
    t0: int
    checkpoint_digest: str
    config_digest: str
    image_digest: str
    format_version: int | None
    compatible: bool
    created: float
    size_bytes: int
    attrs: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


def _cache(cache_dir: str | os.PathLike[str]):
    from refcfa.field.cache import TrajectoryCache

    path = Path(cache_dir)
    if path.exists() and not path.is_dir():
        raise CacheError(f"cache directory {path} is a file: expected a directory (pass another --cache)")
    return TrajectoryCache(path)


def list_cached(cache_dir: str | os.PathLike[str]) -> list[CachedImage]:
    """Entries of the cache at ``cache_dir`` (empty when the directory does not exist), by category and id.

    Raises:
        CacheError: ``cache_dir`` is a file, or not writable.
    """
    from refcfa.field.cache import CACHE_FORMAT_VERSION

    if not Path(cache_dir).exists():
        return []
    out = []
    for info in _cache(cache_dir).list_entries():
        attrs = dict(info.get("attrs") or {})
        label = attrs.get("label")
        category = str(attrs.get("category", ""))
        image_id = str(attrs.get("image_id", info.get("image_id", "")))
        if category and image_id.startswith(category + "/") and image_id.count("/") >= 3:
            image_id = image_id[len(category) + 1 :]  # the extractor's "<category>/<split>/<defect>/<stem>"
        version = attrs.get("format_version")
        out.append(
            CachedImage(
                key=str(info["key"]),
                image_id=image_id,
                category=category,
                label=None if label is None else int(label),
                split=str(attrs.get("split", "")),
                defect=str(attrs.get("defect", "")),
                path=str(attrs.get("path", "")),
                mask_path=str(attrs.get("mask_path", "")),
                K=int(attrs.get("K", 0)),
                t0=int(attrs.get("t0", 0)),
                checkpoint_digest=str(attrs.get("checkpoint_digest", "")),
                config_digest=str(attrs.get("config_digest", "")),
                image_digest=str(attrs.get("image_digest", "")),
                format_version=None if version is None else int(version),
                compatible=version == CACHE_FORMAT_VERSION,
                created=float(info.get("created", 0.0)),
                size_bytes=int(info.get("size_bytes", 0)),
                attrs=attrs,
            )
        )
    return sorted(out, key=lambda c: (c.category, c.image_id, -c.created))


def find_cached(
    cached: Sequence[CachedImage],
    image_id: str,
    category: str | None = None,
    path: str | os.PathLike[str] | None = None,
    checkpoint_digest: str | None = None,
) -> CachedImage | None:
    """The entry of an image among ``cached``: same ``image_id`` (and ``category`` when the entry
    records one). Several matches (other checkpoints, a moved dataset): prefer readable entries, then
    the ``checkpoint_digest`` given, then the same file ``path``, then the newest. Incompatible
    entries are returned only when nothing else matches (opening one says why it cannot be read).
    """
    raw = f"{category}/{image_id}" if category else None  # as the extractor stores it
    matches = [c for c in cached if c.image_id == image_id or (raw and c.attrs.get("image_id") == raw)]
    if category:
        matches = [c for c in matches if not c.category or c.category == category]
    if not matches:
        return None
    want = os.path.abspath(path) if path is not None else None

    def rank(c: CachedImage) -> tuple:
        same_path = want is not None and bool(c.path) and os.path.abspath(c.path) == want
        return (c.compatible, c.checkpoint_digest == checkpoint_digest, same_path, c.created)

    return max(matches, key=rank)


def open_entry(cache_dir: str | os.PathLike[str], key: str) -> CacheEntry:
    """Open the entry ``key`` read-only (close it, or use ``with``).

    Raises:
        CacheError: no such entry, or the entry is unusable — e.g. written by another cache
            format version. The cache discards unusable entries (they are recomputed); the message
            says why.
    """
    from refcfa.field.cache import CacheWarning

    cache = _cache(cache_dir)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CacheWarning)
        entry = cache.get(key)
    if entry is None:
        reasons = [str(w.message) for w in caught if issubclass(w.category, CacheWarning)]
        if reasons:
            raise CacheError(f"cache entry {key} in {cache_dir} cannot be read: {reasons[0]}")
        raise CacheError(
            f"no cache entry {key} in {cache_dir} (compute the image first, e.g. `refcfa extract`)"
        )
    return entry


def _entry(cache_dir_or_entry: Any, key: str | None) -> tuple[CacheEntry, bool]:
    """``(entry, opened_here)`` for a directory + key or an already open entry."""
    if hasattr(cache_dir_or_entry, "read_step"):
        return cache_dir_or_entry, False
    if key is None:
        raise ValueError("key: a cache key is needed when a cache directory (not an entry) is given")
    return open_entry(cache_dir_or_entry, key), True


def read_step(cache_dir_or_entry: Any, key: str | None, field: str, n: int) -> np.ndarray:
    """Step ``n`` (1-based) of ``field``: float32 ``(H, W)`` for R/M/Q, ``(C, H, W)`` in ``[-1, 1]`` for d/x0_hat."""
    entry, opened = _entry(cache_dir_or_entry, key)
    try:
        return entry.read_step(field, n)
    finally:
        if opened:
            entry.close()


def to_display(chw: np.ndarray) -> np.ndarray:
    """``(C, H, W)`` in ``[-1, 1]`` (or uint8) → uint8 ``(H, W)`` (gray) or ``(H, W, 3)`` for display."""
    arr = np.asarray(chw)
    if arr.dtype != np.uint8:
        arr = np.clip(np.rint((arr.astype(np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)
    if arr.shape[0] == 1:
        return np.ascontiguousarray(arr[0])
    return np.ascontiguousarray(np.moveaxis(arr, 0, -1))


def read_frame(
    entry: CacheEntry, n: int, fields: Sequence[str] = ("R", "M", "Q", "x0_hat")
) -> dict[str, np.ndarray]:
    """Everything a viewer draws at step ``n``: R/M/Q float32 ``(H, W)``, x0_hat uint8 ``(H, W[, 3])``."""
    out = {}
    for name in fields:
        arr = entry.read_step(name, n)
        out[name] = to_display(arr) if name == "x0_hat" else arr
    return out


def read_image(entry: CacheEntry) -> np.ndarray:
    """The entry's input image as uint8 ``(H, W)`` or ``(H, W, 3)``."""
    return to_display(entry.read_image())


def read_pixel_series(
    cache_dir_or_entry: Any, key: str | None, y: int, x: int, fields: Sequence[str] = SERIES_FIELDS
) -> dict[str, np.ndarray]:
    """``{field: float32 (K,)}`` of pixel ``(y, x)`` over the steps (exactly the cached values)."""
    entry, opened = _entry(cache_dir_or_entry, key)
    try:
        return entry.read_pixel(y, x, fields)
    finally:
        if opened:
            entry.close()


def read_roi_series(
    cache_dir_or_entry: Any,
    key: str | None,
    y0: int,
    x0: int,
    y1: int,
    x1: int,
    fields: Sequence[str] = SERIES_FIELDS,
) -> dict[str, np.ndarray]:
    """``{field: float32 (K,)}``: the mean of each field over the box ``[y0, y1) × [x0, x1)`` per step.

    Raises:
        ValueError: an empty box or one outside the image.
    """
    entry, opened = _entry(cache_dir_or_entry, key)
    try:
        if not (0 <= y0 < y1 <= entry.H and 0 <= x0 < x1 <= entry.W):
            raise ValueError(
                f"ROI y {y0}:{y1}, x {x0}:{x1}: expected a non-empty box inside the {entry.H}x{entry.W} image"
            )
        out = {}
        for name in fields:
            series = [
                entry.read_step(name, n)[y0:y1, x0:x1].mean(dtype=np.float64) for n in range(1, entry.K + 1)
            ]
            out[name] = np.asarray(series, dtype=np.float32)
        return out
    finally:
        if opened:
            entry.close()


def field_levels(
    cache_dir_or_entry: Any, key: str | None, field: str, percentiles: tuple[float, float] = (1.0, 99.0)
) -> tuple[float, float]:
    """Display levels of ``field`` fixed for the whole entry: the given percentiles over all steps.

    The same levels for every step make a scrub compare like with like. A constant field gets a
    small non-empty range.
    """
    entry, opened = _entry(cache_dir_or_entry, key)
    try:
        values = entry.read_all(field)
    finally:
        if opened:
            entry.close()
    return _levels(values, percentiles)


def _levels(values: np.ndarray, percentiles: tuple[float, float]) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return 0.0, 1.0
    lo, hi = (float(v) for v in np.percentile(finite, percentiles))
    if hi <= lo:
        hi = lo + (abs(lo) * 1e-3 or 1e-6)
    return lo, hi


@dataclass(frozen=True)
class ReferenceBand:
    """Per-step statistics of a field over normal pixels: ``median``, ``p5``, ``p95`` float32 ``(K,)``.

    ``source`` says which pixels: ``"normal_images"`` (all pixels of cached normal images) or
    ``"outside_mask"`` (the current image's pixels outside its ground-truth mask); ``description``
    is a sentence for a legend.
    """

    field: str
    median: np.ndarray
    p5: np.ndarray
    p95: np.ndarray
    source: Literal["normal_images", "outside_mask"]
    n_images: int
    n_pixels: int
    description: str


def normal_reference_band(
    entries: Sequence[Any],
    field: SeriesField,
    mask: np.ndarray | None = None,
    max_pixels_per_image: int = 4096,
    seed: int = 0,
) -> ReferenceBand:
    """The median and the 5–95 % range of ``field`` per step over normal pixels.

    Args:
        entries: Open cache entries of the same ``K``. Without ``mask`` they are normal images and
            every pixel counts.
        field: ``"R"``, ``"M"`` or ``"Q"``.
        mask: With one entry: its ground-truth mask ``bool (H, W)``; the band is then taken over
            the pixels *outside* the mask (the fallback when no normal image is cached).
        max_pixels_per_image: Pixels drawn per image (a fixed random subset, ``seed``), so the
            band costs the same for 256×256 and 1024×1024 images.

    Raises:
        ValueError: no entry, entries with different ``K``, several entries with a ``mask``, or a
            mask of the wrong shape / without a pixel outside it.
    """
    entries = list(entries)
    if not entries:
        raise ValueError("entries: expected at least one cache entry to build the reference band from")
    Ks = {int(e.K) for e in entries}
    if len(Ks) != 1:
        raise ValueError(
            f"entries have different numbers of steps K = {sorted(Ks)}: pass entries of one trajectory length"
        )
    if mask is not None and len(entries) != 1:
        raise ValueError("mask: give exactly one entry with a mask (its pixels outside the mask are used)")
    rng = np.random.default_rng(seed)
    columns = []
    for entry in entries:
        values = entry.read_all(field).reshape(entry.K, -1)  # (K, H*W)
        if mask is not None:
            m = np.asarray(mask, dtype=bool)
            if m.shape != (entry.H, entry.W):
                raise ValueError(f"mask shape {m.shape}: expected the entry's ({entry.H}, {entry.W})")
            idx = np.flatnonzero(~m.reshape(-1))
            if idx.size == 0:
                raise ValueError("mask covers the whole image: no normal pixel left for the reference band")
        else:
            idx = np.arange(values.shape[1])
        if idx.size > max_pixels_per_image:
            idx = np.sort(rng.choice(idx, size=max_pixels_per_image, replace=False))
        columns.append(values[:, idx])
    data = np.concatenate(columns, axis=1)
    p5, median, p95 = (np.percentile(data, q, axis=1).astype(np.float32) for q in (5, 50, 95))
    if mask is None:
        source = "normal_images"
        description = f"normal band: median and 5–95 % over {len(entries)} cached normal image(s)"
    else:
        source = "outside_mask"
        description = (
            "normal band: this image's pixels outside the ground-truth mask (no normal image cached)"
        )
    return ReferenceBand(field, median, p5, p95, source, len(entries), int(data.shape[1]), description)


# ---------------------------------------------------------------------------------------------
# overlays


def load_anomaly_map(source: Any, shape: tuple[int, int]) -> np.ndarray:
    """An anomaly map ``A(u)`` as float32 ``(H, W)`` from an array or a file (``.npy``, ``.npz``,
    or an image whose 0..255 is read as 0..1), resized (bilinear) to ``shape`` when needed.

    Raises:
        FileNotFoundError: the file is missing.
        ValueError: not a 2-D map (after dropping singleton axes).
    """
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise FileNotFoundError(f"anomaly map not found: {path}")
        suffix = path.suffix.lower()
        if suffix == ".npy":
            arr = np.load(path, allow_pickle=False)
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                arr = z[z.files[0]]
        else:
            from refcfa.data import read_image

            arr = read_image(path, channels=1)[..., 0].astype(np.float32) / 255.0
    else:
        arr = np.asarray(source)
    arr = np.squeeze(np.asarray(arr, dtype=np.float32))
    if arr.ndim != 2:
        raise ValueError(f"anomaly map: expected a 2-D (H, W) map, got shape {arr.shape}")
    if arr.shape != tuple(shape):
        import cv2

        arr = cv2.resize(arr, (int(shape[1]), int(shape[0])), interpolation=cv2.INTER_LINEAR)
    return arr


def overlay_maps(entry: CacheEntry, detector_map: Any = None, delta: float = 1e-6) -> dict[str, np.ndarray]:
    """Per-pixel overlays of an entry: ``E``, ``NS``, ``DV`` float32 ``(H, W)``, and ``A`` when known.

    ``E``, ``NS``, ``DV`` are :func:`refcfa.field.statistics.adaptive_statistics` of the cached
    ``R`` and ``d`` with uniform step weights ``a_n = 1/K`` (the reference statistics of DESIGN.md
    section 4; imports torch). ``A`` comes from ``detector_map`` (array or file, see
    :func:`load_anomaly_map`), else from an ``anomaly_map`` path in the entry's attributes.
    """
    import torch

    from refcfa.field.statistics import adaptive_statistics

    R = torch.from_numpy(entry.read_all("R"))[None]  # (1, K, H, W)
    d = torch.from_numpy(entry.read_all("d"))[None]  # (1, K, C, H, W)
    stats = adaptive_statistics(R, d, a=None, delta=delta)
    out = {name: stats[name][0].numpy().astype(np.float32) for name in ("E", "NS", "DV")}
    source = detector_map if detector_map is not None else (entry.attrs.get("anomaly_map") or None)
    if source is not None:
        out["A"] = load_anomaly_map(source, (entry.H, entry.W))
    return out


# ---------------------------------------------------------------------------------------------
# computing an uncached image


@dataclass
class StreamedStep:
    """One step of :func:`stream_fields`.

    Attributes:
        n, K: step (1-based) and number of steps.
        timestep: ``s_n``.
        R, M, Q: float32 ``(H, W)`` (rounded through float16, as the cache stores them).
        x0_hat: uint8 ``(H, W)`` or ``(H, W, 3)`` (display-ready, as :func:`read_frame`).
        image: the network's input as uint8 ``(H, W[, 3])`` (same on every step).
        key: the cache key the entry is (or will be) stored under.
        cached: true on the last step once the entry is written (or when it came from the cache).
        device: where the network ran (``"cpu"``, ``"cuda:0"``…).
    """

    n: int
    K: int
    timestep: int
    R: np.ndarray
    M: np.ndarray
    Q: np.ndarray
    x0_hat: np.ndarray
    image: np.ndarray
    key: str
    cached: bool = False
    device: str = "cpu"


def find_checkpoint(search: str | os.PathLike[str] = "output") -> Path | None:
    """The newest score-network checkpoint under ``search`` (a file, an experiment dir or a tree).

    Follows ``last`` pointers; prefers source networks' experiment folders (names with
    ``source``) since the viewer shows the source field space, else the most recent file.
    """
    from refcfa.engine.checkpoint import CHECKPOINT_PATTERN, find_last_checkpoint

    search = Path(search)
    if search.is_file():
        return search
    if not search.is_dir():
        return None
    direct = find_last_checkpoint(search)
    if direct is not None:
        return direct
    found = []
    for dirpath, _dirs, files in os.walk(search):
        if any(CHECKPOINT_PATTERN.match(f) for f in files):
            ckpt = find_last_checkpoint(dirpath)
            if ckpt is not None:
                found.append(ckpt)
    if not found:
        return None
    found.sort(key=lambda p: ("source" in p.parent.name.lower(), p.stat().st_mtime), reverse=True)
    return found[0]


def _load_config(config: Any, fallback: Mapping[str, Any]) -> Config:
    from refcfa.config import Config, config_from_dict, load_config

    if config is None:
        if not fallback:
            raise CheckpointError("the checkpoint stores no config: pass the config it was trained with")
        return config_from_dict(fallback, "<checkpoint config>")
    if isinstance(config, Config):
        return config
    if isinstance(config, Mapping):
        return config_from_dict(config)
    return load_config(config)


def stream_fields(
    checkpoint: str | os.PathLike[str],
    config: Config | str | os.PathLike[str] | Mapping[str, Any] | None,
    image_path: str | os.PathLike[str],
    cache_dir: str | os.PathLike[str],
    *,
    sample: Sample | None = None,
    device: str = "auto",
) -> Iterator[StreamedStep]:
    """Compute the REF of one image step by step, and write its cache entry after the last step.

    The work is :class:`refcfa.field.extract.FieldExtractor`'s (the one ``refcfa extract`` and the
    pipeline use): same resizing, noise seed (``"<category>/<image_id>"``), cache key and
    attributes, so an image computed here is a cache hit for the pipeline and vice versa.

    Args:
        checkpoint: Score network (file, experiment dir or ``last`` pointer).
        config: The run's config (object, YAML path or dict); ``None`` uses the checkpoint's.
        image_path: The image.
        cache_dir: Trajectory cache directory.
        sample: The dataset record of the image (its id and category seed the trajectory);
            default: a record named after the file (``test/good/<stem>`` in the folder's name).
        device: ``auto`` | ``cpu`` | ``cuda`` | ``cuda:N``.

    Yields:
        ``K`` :class:`StreamedStep`; the last has ``cached=True`` (the entry is written by then).
        When the entry already exists it is read from the cache instead (no network call).
        Closing the generator early writes nothing.

    Raises:
        FileNotFoundError: missing checkpoint or image.
        CheckpointError: unreadable checkpoint.
        DatasetError: the config's image size differs from the checkpoint's.
    """
    checkpoint = Path(checkpoint)
    if not checkpoint.exists():
        raise FileNotFoundError(
            f"checkpoint not found: {checkpoint} (pass --checkpoint with a .pth file or train one with `refcfa pipeline`)"
        )
    image_path = Path(image_path)
    if not image_path.is_file():
        raise FileNotFoundError(f"image not found: {image_path}")

    from refcfa.data.sample import Sample
    from refcfa.engine.checkpoint import find_last_checkpoint, load_checkpoint
    from refcfa.field.extract import FieldExtractor, items_from_samples

    if checkpoint.is_dir() or checkpoint.name == "last":
        found = find_last_checkpoint(checkpoint)
        if found is None:
            raise FileNotFoundError(f"no checkpoint in {checkpoint} (expected checkpoint_epoch_X.pth files)")
        checkpoint = found
    # the run's settings travel in the checkpoint (read twice: here for the config, then the weights)
    cfg = _load_config(config, (load_checkpoint(checkpoint).get("config") or {}) if config is None else {})
    if sample is None:
        sample = Sample(
            f"test/good/{image_path.stem}", image_path, "test", 0, "good", None, image_path.parent.name
        )
    cache = _cache(cache_dir)
    extractor = FieldExtractor(checkpoint, cfg, cache, device=device)
    item = items_from_samples([sample], extractor.image_size, extractor.channels)[0]
    key = extractor.key_for(item)
    image = to_display(np.moveaxis(item.image, -1, 0))
    dev = str(extractor.device)

    existing = cache.get(key)
    if existing is not None:
        with existing:
            for n in range(1, existing.K + 1):
                frame = read_frame(existing, n)
                yield StreamedStep(
                    n,
                    existing.K,
                    int(existing.timesteps[n - 1]),
                    frame["R"],
                    frame["M"],
                    frame["Q"],
                    frame["x0_hat"],
                    image,
                    key,
                    cached=n == existing.K,
                    device=dev,
                )
        return

    def streamed(step: Any, cached: bool) -> StreamedStep:
        # rounded through float16 like the cache, so a streamed frame equals the cached one
        R, M, Q = (
            getattr(step, n)[0].cpu().numpy().astype(np.float16).astype(np.float32) for n in ("R", "M", "Q")
        )
        x0 = to_display(step.x0_hat[0].float().cpu().numpy())
        return StreamedStep(
            step.n, cfg.field.K, int(step.timestep), R, M, Q, x0, image, key, cached=cached, device=dev
        )

    last = None
    for step in extractor.stream(item):  # the entry is written when this loop ends
        if step.n < cfg.field.K:
            yield streamed(step, cached=False)
        else:
            last = step
    if last is not None:
        yield streamed(last, cached=True)
