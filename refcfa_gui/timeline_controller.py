"""Feeds the timeline from the trajectory cache (or a running computation). No widgets here.

On a selection it finds the image's cache entry (:func:`refcfa.api.find_cached`), opens it and
computes the fixed levels on a worker thread, then asks for frames as the step changes: frames
come from a :class:`~refcfa_gui.workers.latest.LatestRequestThread` of their own, so the newest
step wins and stale reads are dropped. Probes, reference bands and overlays go through a second
such thread. An image that is not cached is computed by :func:`refcfa.api.stream_fields` on a
generator worker; its steps fill the viewer as they arrive, and the finished entry replaces them.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Signal

from refcfa import api
from refcfa_gui.imaging import contour_rgba, read_mask_at
from refcfa_gui.state import DatasetState, ProbeState, SelectionState, TimelineState
from refcfa_gui.state.probe import Probe
from refcfa_gui.state.timeline import SCALAR_FIELDS
from refcfa_gui.workers.generator_worker import GeneratorWorker, WorkerManager
from refcfa_gui.workers.latest import LatestRequestThread

log = logging.getLogger(__name__)

MAX_BAND_IMAGES = 16
WHAT_FAILED = {
    "list": "Reading the cache folder",
    "preview": "Reading the image",
    "frame": "Reading the step",
    "series": "Reading the probed pixel",
    "overlays": "Computing the overlays",
}
LEVEL_PERCENTILES = (1.0, 99.0)


def _open_cached(cache_dir: str, key: str, mask_path: str | None) -> dict[str, Any]:
    """Worker: open an entry, read its image, fixed levels of R/M/Q over all steps, and the mask."""
    entry = api.open_entry(cache_dir, key)
    try:
        levels = {f: api.field_levels(entry, None, f, LEVEL_PERCENTILES) for f in SCALAR_FIELDS}
        image = api.read_image(entry)
        mask_path = mask_path or entry.attrs.get("mask_path") or None
        mask = read_mask_at(mask_path, (entry.H, entry.W)) if mask_path else None
    except BaseException:
        entry.close()
        raise
    return {"entry": entry, "levels": levels, "image": image, "mask": mask}


def _preview(sample: Any) -> dict[str, Any]:
    """Worker: the image from disk (and its mask) while nothing is cached for it."""
    from refcfa.data import read_image

    image = read_image(sample.path)
    image = image[:, :, 0] if image.shape[2] == 1 else image
    mask = read_mask_at(sample.mask_path, image.shape[:2]) if sample.mask_path else None
    return {"image": image, "mask": mask}


def _series(entry: Any, probe: Probe) -> dict[str, np.ndarray]:
    if probe.is_pixel:
        return api.read_pixel_series(entry, None, probe.y0, probe.x0)
    return api.read_roi_series(entry, None, probe.y0, probe.x0, probe.y1, probe.x1)


def _bands(cache_dir: str, keys: list[str], entry: Any, mask: np.ndarray | None) -> dict[str, Any]:
    """Worker: reference bands of R/M/Q over cached normals (``keys``), else outside ``mask``."""
    opened = []
    try:
        for key in keys:
            try:
                opened.append(api.open_entry(cache_dir, key))
            except Exception as exc:  # noqa: BLE001 - a bad normal entry is skipped
                log.warning("normal reference: skipped entry %s (%s)", key, exc)
        opened = [e for e in opened if e.K == entry.K]
        if opened:
            return {f: api.normal_reference_band(opened, f) for f in SCALAR_FIELDS}
        if mask is not None and mask.any() and not mask.all():
            return {f: api.normal_reference_band([entry], f, mask=mask) for f in SCALAR_FIELDS}
        return {}
    finally:
        for e in opened:
            e.close()


def _overlays(entry: Any, detector_map: Any) -> dict[str, Any]:
    maps = api.overlay_maps(entry, detector_map)
    levels = {name: api._levels(arr, LEVEL_PERCENTILES) for name, arr in maps.items()}
    return {"maps": maps, "levels": levels}


def _cache_listing(cache_dir: str, checkpoint: str | None) -> dict[str, Any]:
    from refcfa.field.cache import file_digest

    digest = ""
    if checkpoint and Path(checkpoint).is_file():
        digest = file_digest(checkpoint)
    return {"cached": api.list_cached(cache_dir), "checkpoint_digest": digest}


class TimelineController(QObject):
    """Signals to the views (all on the GUI thread):

    ``image_ready(image, mask)``, ``frame_ready(n, frame)``, ``overlays_ready(maps)``,
    ``series_ready(probe, series)``, ``bands_ready(bands)``, ``band_message(str)``,
    ``message(text, level)`` (``""`` clears), ``progress(n, K)`` (``-1, -1`` hides),
    ``cache_listed(list)``, ``device_changed(str)``, ``computing(bool)``.
    """

    image_ready = Signal(object, object)
    frame_ready = Signal(int, object)
    overlays_ready = Signal(object)
    series_ready = Signal(object, object)
    bands_ready = Signal(object)
    band_message = Signal(str)
    message = Signal(str, str)
    progress = Signal(int, int)
    cache_listed = Signal(list)
    device_changed = Signal(str)
    computing = Signal(bool)

    def __init__(
        self,
        timeline: TimelineState,
        selection: SelectionState,
        probe: ProbeState,
        dataset: DatasetState,
        workers: WorkerManager,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.timeline, self.selection, self.probe, self.dataset = timeline, selection, probe, dataset
        self.workers = workers
        self.frames = LatestRequestThread("frame-loader", self)
        self.analysis = LatestRequestThread("analysis", self)
        self.frames.done.connect(self._on_done)
        self.frames.failed.connect(self._on_failed)
        self.analysis.done.connect(self._on_done)
        self.analysis.failed.connect(self._on_failed)

        self.cache_dir: str = ""
        self.checkpoint: str | None = None
        self.checkpoint_digest = ""
        self.device = "auto"
        self.cached: list[api.CachedImage] = []
        self.sample: Any | None = None
        self.entry: Any | None = None
        self.source: str | None = None  # "cache" | "stream" | None
        self.stream_frames: dict[int, dict[str, np.ndarray]] = {}
        self.frame: dict[str, np.ndarray] = {}
        self.frame_step = 0
        self.image: np.ndarray | None = None
        self.mask: np.ndarray | None = None
        self.overlay_data: dict[str, np.ndarray] = {}
        self.detector_maps: dict[str, str] = {}  # sample path -> anomaly map file
        self.compute_worker: GeneratorWorker | None = None
        self._follow_stream = True
        self._closing = False
        self._listed = False  # the cache listing has arrived
        self._pending_sample: Any | None = None  # selected before it did

        timeline.events.step.connect(self.request_frame)
        timeline.events.overlay.connect(self._on_overlay_toggled)
        selection.events.current.connect(self.show_sample)
        probe.events.changed.connect(self.request_series)

    # -- configuration ---------------------------------------------------------------------------
    def set_cache_dir(self, path: str | os.PathLike[str]) -> None:
        """Read from the cache at ``path``; the current image is shown again once it is listed."""
        self.cache_dir = str(path)
        self._listed = False
        self._pending_sample = self.sample
        self.refresh_cache()

    def set_checkpoint(self, path: str | os.PathLike[str] | None) -> None:
        self.checkpoint = str(path) if path else None
        self.refresh_cache()

    def refresh_cache(self) -> None:
        """List the cache (and hash the checkpoint) on the analysis thread."""
        if self.cache_dir:
            self.analysis.submit("list", _cache_listing, self.cache_dir, self.checkpoint)

    # -- results ---------------------------------------------------------------------------------
    def _on_done(self, channel: str, rid: int, result: Any) -> None:
        thread = self.frames if channel == "frame" else self.analysis
        if self._closing or not thread.is_current(channel, rid):
            if channel == "entry" and result and result.get("entry") is not None:
                result["entry"].close()
            return
        getattr(self, f"_got_{channel}")(result)

    def _on_failed(self, channel: str, rid: int, exc: Exception) -> None:
        thread = self.frames if channel == "frame" else self.analysis
        if self._closing or not thread.is_current(channel, rid):
            return
        if channel == "entry":
            self._entry_failed(exc)
            return
        log.error("%s failed: %s", channel, exc)
        if channel == "band":
            self.band_message.emit(f"no reference band: {exc}")
            return
        self.message.emit(f"{WHAT_FAILED.get(channel, channel)} failed: {exc}", "error")
        if channel == "list":  # no usable cache: images are computed (or reported) instead
            self._got_list({"cached": [], "checkpoint_digest": self.checkpoint_digest})

    def _got_list(self, result: dict[str, Any]) -> None:
        self.cached = result["cached"]
        self.checkpoint_digest = result["checkpoint_digest"]
        self._listed = True
        self.cache_listed.emit(self.cached)
        pending, self._pending_sample = self._pending_sample, None
        if pending is not None and pending is self.sample:
            self.show_sample(pending)

    # -- selecting an image ----------------------------------------------------------------------
    def show_sample(self, sample: Any) -> None:
        """Show ``sample``: from the cache when it is there, else computed (with a checkpoint)."""
        if sample is not self.sample:
            self.cancel_compute()
        self.sample = sample
        self._reset_view()
        if sample is None:
            self.timeline.clear()
            return
        if not self._listed and self.cache_dir:  # wait for the listing, show the image meanwhile
            self._pending_sample = sample
            self.analysis.submit("preview", _preview, sample)
            return
        found = api.find_cached(
            self.cached, sample.image_id, sample.category, sample.path, self.checkpoint_digest
        )
        if found is not None:
            self.message.emit("", "")
            mask_path = str(sample.mask_path) if sample.mask_path else None
            self.analysis.submit("entry", _open_cached, self.cache_dir, found.key, mask_path)
            return
        self.analysis.submit("preview", _preview, sample)
        self._not_cached(sample)

    def _reset_view(self) -> None:
        for channel in ("entry", "preview"):  # a late answer for the previous image is stale
            self.analysis.cancel(channel)
        self.analysis.cancel("band")
        self.analysis.cancel("overlays")
        self.analysis.cancel("series")
        self.frames.cancel("frame")
        self.entry = None  # closed by the garbage collector once no request uses it
        self.source = None
        self.stream_frames = {}
        self.frame = {}
        self.frame_step = 0
        self.overlay_data = {}
        self.mask = None
        self.timeline.set_overlays_available(set())

    def _not_cached(self, sample: Any) -> None:
        self.timeline.set_entry(None, 0)
        if self.checkpoint:
            self.compute(sample)
        else:
            self.message.emit(
                f"{sample.image_id} is not in the trajectory cache ({self.cache_dir or 'no cache folder'}) and no "
                "checkpoint is set to compute it: pass --checkpoint, choose one (File ▸ Choose Checkpoint…), "
                "or train one with `refcfa pipeline`.",
                "warning",
            )

    def _got_preview(self, result: dict[str, Any]) -> None:
        if self.source is not None:
            return
        self.image, self.mask = result["image"], result["mask"]
        self.probe.set_shape(self.image.shape[:2])
        self.image_ready.emit(self.image, self.mask)
        self._set_contour()

    def _got_entry(self, result: dict[str, Any]) -> None:
        entry = result["entry"]
        self.entry, self.source = entry, "cache"
        self.image, self.mask = result["image"], result["mask"]
        self.stream_frames = {}
        self.probe.set_shape((entry.H, entry.W))
        self.image_ready.emit(self.image, self.mask)
        available = {"E", "NS", "DV"}
        if self._detector_map() is not None:
            available.add("A")
        self.overlay_data = {}
        self._set_contour()
        if self.mask is not None:
            available.add("contour")
        self.timeline.set_overlays_available(available)
        self.timeline.set_entry(entry.key, entry.K, result["levels"], timesteps=entry.timesteps)
        self._request_overlays()
        self._request_bands()
        self.request_series(self.probe.probe)
        log.info("showing %s (cache entry %s, K=%d)", entry.attrs.get("image_id", "?"), entry.key, entry.K)

    def _entry_failed(self, exc: Exception) -> None:
        sample = self.sample
        log.error("cache entry of %s: %s", getattr(sample, "image_id", "?"), exc)
        self.message.emit(f"Cannot read the cached fields: {exc}", "error")
        self.refresh_cache()
        if sample is not None:
            self.analysis.submit("preview", _preview, sample)
            self.timeline.set_entry(None, 0)
            if self.checkpoint:
                self.compute(sample, keep_message=True)

    def _set_contour(self) -> None:
        if self.mask is not None:
            self.overlay_data["contour"] = contour_rgba(self.mask)
            self.timeline.set_overlays_available(self.timeline.overlays_available | {"contour"})
            self.overlays_ready.emit({"contour": self.overlay_data["contour"]})

    # -- frames ----------------------------------------------------------------------------------
    def request_frame(self, n: int) -> None:
        """Ask for step ``n``: from memory while streaming, else from the cache on the loader thread."""
        if n <= 0:
            return
        if self.source == "stream":
            frame = self.stream_frames.get(n)
            if frame is not None:
                self._got_frame((n, frame))
        elif self.source == "cache" and self.entry is not None:
            self.frames.submit("frame", self._read_frame, self.entry, n)

    @staticmethod
    def _read_frame(entry: Any, n: int) -> tuple[int, dict[str, np.ndarray]]:
        return n, api.read_frame(entry, n)

    def _got_frame(self, result: tuple[int, dict[str, np.ndarray]]) -> None:
        n, frame = result
        self.frame, self.frame_step = frame, n
        self.frame_ready.emit(n, frame)

    def read_frame_now(self, n: int) -> dict[str, np.ndarray] | None:
        """Step ``n`` read on the calling thread (exports)."""
        if self.source == "stream":
            return self.stream_frames.get(n)
        if self.source == "cache" and self.entry is not None:
            return api.read_frame(self.entry, n)
        return None

    # -- probe, bands, overlays ------------------------------------------------------------------
    def request_series(self, probe: Probe | None) -> None:
        if probe is None:
            self.analysis.cancel("series")
            self.series_ready.emit(None, None)
            return
        if self.source == "cache" and self.entry is not None:
            self.analysis.submit("series", lambda e=self.entry, p=probe: (p, _series(e, p)))
        elif self.source == "stream" and self.stream_frames:
            steps = [self.stream_frames[n] for n in sorted(self.stream_frames)]
            series = {
                f: np.asarray(
                    [s[f][probe.y0 : probe.y1, probe.x0 : probe.x1].mean() for s in steps], dtype=np.float32
                )
                for f in SCALAR_FIELDS
            }
            self.series_ready.emit(probe, series)

    def _got_series(self, result) -> None:
        probe, series = result
        self.series_ready.emit(probe, series)

    def _request_bands(self) -> None:
        entry, sample = self.entry, self.sample
        if entry is None:
            return
        attrs = entry.attrs
        keys = [
            c.key
            for c in self.cached
            if c.compatible
            and self._label(c) == 0
            and c.K == entry.K
            and c.category == attrs.get("category", c.category)
            and c.checkpoint_digest == attrs.get("checkpoint_digest")
            and c.config_digest == attrs.get("config_digest")
        ][:MAX_BAND_IMAGES]
        mask = self.mask
        if not keys and mask is None and sample is not None and sample.label == 0:
            keys = [entry.key]
        self.analysis.submit("band", _bands, self.cache_dir, keys, entry, mask)

    def _label(self, cached: api.CachedImage) -> int | None:
        """A cached image's label: from the open dataset (the pipeline keeps labels out of the cache)."""
        sample = self.dataset.find(cached.category, cached.image_id) if cached.category else None
        if sample is None and not cached.category:
            sample = self.dataset.find_image(cached.image_id)
        return sample.label if sample is not None else cached.label

    def _got_band(self, bands: dict[str, Any]) -> None:
        if bands:
            self.bands_ready.emit(bands)
        else:
            self.bands_ready.emit(None)
            self.band_message.emit(
                "No normal reference band: no normal image of this category is cached and this image has no mask."
            )

    def _on_overlay_toggled(self, _item) -> None:
        self._request_overlays()

    def _request_overlays(self) -> None:
        wanted = [n for n in ("E", "NS", "DV", "A") if self.timeline.overlays[n].visible]
        missing = [n for n in wanted if n not in self.overlay_data and n in self.timeline.overlays_available]
        if missing and self.source == "cache" and self.entry is not None:
            self.analysis.submit("overlays", _overlays, self.entry, self._detector_map())

    def _got_overlays(self, result: dict[str, Any]) -> None:
        for name, (lo, hi) in result["levels"].items():
            self.timeline.set_levels(name, lo, hi)
        self.overlay_data.update(result["maps"])
        self.overlays_ready.emit(result["maps"])

    def _detector_map(self) -> str | None:
        if self.sample is not None and str(self.sample.path) in self.detector_maps:
            return self.detector_maps[str(self.sample.path)]
        if self.entry is not None and self.entry.attrs.get("anomaly_map"):
            return str(self.entry.attrs["anomaly_map"])
        return None

    def set_detector_map(self, path: str) -> None:
        """Use the anomaly map file ``path`` for the current image (overlay ``A``)."""
        if self.sample is None:
            self.message.emit("Select an image before loading its anomaly map.", "warning")
            return
        self.detector_maps[str(self.sample.path)] = str(path)
        self.overlay_data.pop("A", None)
        if self.source == "cache":
            self.timeline.set_overlays_available(self.timeline.overlays_available | {"A"})
            self.timeline.set_overlay("A", visible=True)
            self.analysis.submit("overlays", _overlays, self.entry, path)

    # -- computing -------------------------------------------------------------------------------
    def is_computing(self) -> bool:
        return self.compute_worker is not None and not self.compute_worker.is_done

    def compute(self, sample: Any | None = None, keep_message: bool = False) -> GeneratorWorker | None:
        """Compute the fields of ``sample`` (default: the current image) on a worker."""
        sample = sample or self.sample
        if sample is None:
            return None
        if not self.checkpoint:
            self.message.emit(
                "No checkpoint to compute the fields with: pass --checkpoint or choose one (File ▸ Choose Checkpoint…).",
                "error",
            )
            return None
        if not Path(self.checkpoint).exists():
            text = (
                f"Checkpoint not found: {self.checkpoint}. Choose an existing checkpoint (File ▸ Choose Checkpoint…) "
                "or train one with `refcfa pipeline`."
            )
            log.error("%s", text)
            self.message.emit(text, "error")
            return None
        if not self.cache_dir:
            self.message.emit("No cache folder: choose one (File ▸ Open Cache Folder…).", "error")
            return None
        self.cancel_compute()
        if not keep_message:
            self.message.emit(f"Computing the fields of {sample.image_id} …", "info")
        self.stream_frames = {}
        self._follow_stream = True
        worker = GeneratorWorker(
            api.stream_fields,
            self.checkpoint,
            None,
            sample.path,
            self.cache_dir,
            sample=sample,
            device=self.device,
            name=f"compute {sample.image_id}",
        )
        worker.yielded.connect(lambda step, w=worker, s=sample: self._on_streamed(w, s, step))
        worker.errored.connect(lambda exc, w=worker: self._compute_failed(w, exc))
        worker.finished.connect(lambda w=worker: self._compute_finished(w))
        self.compute_worker = worker
        self.computing.emit(True)
        self.progress.emit(0, 0)
        log.info("computing %s with %s", sample.image_id, self.checkpoint)
        return self.workers.start(worker, visible=True)

    def cancel_compute(self) -> None:
        if self.compute_worker is not None and not self.compute_worker.is_done:
            log.info("cancelled %s", self.compute_worker.name)
            self.compute_worker.quit()
        self.compute_worker = None
        self.progress.emit(-1, -1)
        self.computing.emit(False)

    def _on_streamed(self, worker: GeneratorWorker, sample: Any, step: api.StreamedStep) -> None:
        if worker is not self.compute_worker or sample is not self.sample or self._closing:
            return
        self.device_changed.emit(step.device)
        frame = {"R": step.R, "M": step.M, "Q": step.Q, "x0_hat": step.x0_hat}
        first = not self.stream_frames
        self.stream_frames[step.n] = frame
        self.progress.emit(step.n, step.K)
        if first:
            self.source = "stream"
            self.image = step.image
            self.probe.set_shape(step.image.shape[:2])
            if self.mask is not None and self.mask.shape != step.image.shape[:2]:
                self.mask = read_mask_at(sample.mask_path, step.image.shape[:2])
            self.image_ready.emit(self.image, self.mask)
            self._set_contour()
            self.timeline.set_entry(None, step.K, self._stream_levels(), available=0, step=1)
        else:
            for name, (lo, hi) in self._stream_levels().items():
                self.timeline.set_levels(name, lo, hi)
        timesteps = list(self.timeline.timesteps) + [step.timestep]
        self.timeline.timesteps = tuple(timesteps)
        follow = self._follow_stream and self.timeline.step == self.timeline.available
        self.timeline.set_available(step.n)
        if follow:
            self.timeline.set_step(step.n)
        elif self.timeline.step == step.n:
            self.request_frame(step.n)
        if self.probe.probe is not None:
            self.request_series(self.probe.probe)
        if step.cached:
            self.message.emit(f"Computed {sample.image_id}; its fields are now cached.", "info")
            log.info("cached %s as %s", sample.image_id, step.key)
            self._switch_to_cache(step.key)

    def _stream_levels(self) -> dict[str, tuple[float, float]]:
        out = {}
        for name in SCALAR_FIELDS:
            values = np.stack([f[name] for f in self.stream_frames.values()])
            out[name] = api._levels(values, LEVEL_PERCENTILES)
        return out

    def _switch_to_cache(self, key: str) -> None:
        """The computed entry is written: read it from the cache from now on (same step)."""
        self.cached = api.list_cached(self.cache_dir)
        self.cache_listed.emit(self.cached)
        mask_path = str(self.sample.mask_path) if self.sample is not None and self.sample.mask_path else None
        self.analysis.submit("entry", _open_cached, self.cache_dir, key, mask_path)

    def _compute_failed(self, worker: GeneratorWorker, exc: Exception) -> None:
        if worker is not self.compute_worker or self._closing:
            return
        text = f"Computing the fields failed: {exc}"
        log.error("%s", text)
        self.message.emit(text, "error")

    def _compute_finished(self, worker: GeneratorWorker) -> None:
        if worker is self.compute_worker and not self._closing:
            self.compute_worker = None
            self.progress.emit(-1, -1)
            self.computing.emit(False)

    # -- shutdown --------------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Stop the loader threads (the worker pool is shut down by the window)."""
        self._closing = True
        if self.compute_worker is not None:
            self.compute_worker.quit()
        self.frames.stop()
        self.analysis.stop()
        if self.entry is not None:
            self.entry.close()
            self.entry = None
