"""Fill the trajectory cache: the REF of each image under a frozen score network.

An image's entry key hashes (checkpoint file digest, field-config digest, image digest), where the
image digest is that of the resized `uint8` array the network sees — so a changed checkpoint,
field setting, image file or image size is a miss, never a stale hit (DESIGN.md section 9).
Images are processed in batches of `field.batch_size` under `torch.inference_mode()`; under
`torchrun` each rank takes the shard `items[rank::world_size]` and computes what of it is missing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from refcfa.config import Config
from refcfa.errors import DatasetError
from refcfa.field.cache import FieldRecord, TrajectoryCache, array_digest, entry_key, file_digest

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from refcfa.engine.trainer import CancelToken


@dataclass
class ImageItem:
    """One image to extract: a stable id, the resized `uint8 (H, W, C)` array, metadata."""

    image_id: str
    image: np.ndarray
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        return array_digest(np.ascontiguousarray(self.image))


@dataclass
class ExtractProgress:
    """Progress of an extraction: `done` of `total` images (cached ones count as done)."""

    done: int
    total: int
    image_id: str
    computed: bool


def field_config_digest(cfg: Config) -> str:
    """Digest of every setting that changes a cached field (not batch sizes or paths)."""
    data = cfg.to_dict()
    fcfg = dict(data["field"])
    fcfg.pop("batch_size", None)
    return config_digest_of({"field": fcfg, "diffusion": data["diffusion"], "seed": data["seed"],
                             "image_size": data["data"]["image_size"]})


def config_digest_of(data: Mapping) -> str:
    import hashlib
    import json

    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def items_from_samples(samples, image_size: int, channels: int, extra: Mapping | None = None) -> list[ImageItem]:
    """`ImageItem`s of dataset samples, resized as the score network sees them.

    Only the label-free metadata (id, split, category, path, defect name is *not* included) goes into
    the cache attributes: a target image's label must not leak before evaluation.
    """
    from refcfa.data.torch_dataset import ImageDataset

    ds = ImageDataset(list(samples), image_size, channels)
    items = []
    for i, s in enumerate(samples):
        attrs = {"split": s.split, "category": s.category, "path": str(s.path)}
        attrs.update(extra or {})
        items.append(ImageItem(f"{s.category}/{s.image_id}", ds.load(i), attrs))
    return items


class FieldExtractor:
    """Computes and caches REF entries for one frozen score network.

    Args:
        checkpoint: a score-network checkpoint (`refcfa train` output).
        cfg: the config whose `field`, `diffusion`, `data.image_size` and `seed` define the fields.
        cache: the trajectory cache to fill.
        device: `auto`, `cpu`, `cuda`, …
    """

    def __init__(self, checkpoint: str | Path, cfg: Config, cache: TrajectoryCache, device: str = "auto"):
        from refcfa.diffusion.schedule import alphas_cumprod, build_scheduler
        from refcfa.engine.checkpoint import load_score_network
        from refcfa.engine.devices import resolve_device

        self.cfg = cfg
        self.cache = cache
        self.checkpoint = Path(checkpoint)
        self.device = resolve_device(device)
        self.unet, _, self.meta = load_score_network(self.checkpoint, self.device)
        arch = self.meta.get("architecture", {})
        self.channels = int(arch.get("in_channels", 3))
        self.image_size = int(arch.get("sample_size", cfg.data.image_size))
        if self.image_size != cfg.data.image_size:
            raise DatasetError(
                f"checkpoint {self.checkpoint} was trained on {self.image_size}px images but the config "
                f"{cfg.source_file} asks for data.image_size={cfg.data.image_size}; use the same size "
                f"(--set data.image_size={self.image_size}) or retrain"
            )
        self.alphas = alphas_cumprod(build_scheduler(cfg.diffusion))
        self.ckpt_digest = file_digest(self.checkpoint)
        self.cfg_digest = field_config_digest(cfg)

    def key_for(self, item: ImageItem) -> str:
        return entry_key(self.ckpt_digest, self.cfg_digest, item.digest)

    def _check(self, item: ImageItem) -> None:
        img = item.image
        if img.ndim != 3 or img.shape[:2] != (self.image_size, self.image_size) or img.shape[2] != self.channels:
            raise DatasetError(
                f"image {item.image_id}: shape {img.shape} does not match the network's input "
                f"({self.image_size}, {self.image_size}, {self.channels}); resize it to data.image_size"
            )

    def stream(self, item: ImageItem) -> Iterator[Any]:
        """Compute one image step by step (yields `FieldStep`s) and cache it at the end."""
        self._check(item)
        steps = []
        for step in self._compute([item]):
            steps.append(step)
            yield step
        self._put(item, steps, 0)

    def _compute(self, batch: Sequence[ImageItem]) -> Iterator[Any]:
        import torch

        from refcfa.field.primitives import compute_fields

        x = torch.from_numpy(np.stack([it.image for it in batch])).permute(0, 3, 1, 2).float()
        x = (x / 127.5 - 1.0).to(self.device)
        fcfg = self.cfg.field
        score_fn = _score_fn(self.unet)
        yield from compute_fields(score_fn, self.alphas.to(self.device), x, [it.image_id for it in batch],
                                  fcfg.t0, fcfg.K, self.cfg.seed, patch=fcfg.patch,
                                  guidance_w=fcfg.guidance_w, eps=fcfg.delta)

    def _put(self, item: ImageItem, steps: list, index: int) -> str:
        key = self.key_for(item)
        self.cache.put(key, self._record(item, steps, index))
        return key

    def _record(self, item: ImageItem, steps: list, index: int) -> FieldRecord:
        attrs = {
            "checkpoint_digest": self.ckpt_digest,
            "config_digest": self.cfg_digest,
            "image_digest": item.digest,
            "image_id": item.image_id,
            "checkpoint": str(self.checkpoint),
            **item.attrs,
        }
        image_chw = np.ascontiguousarray(item.image.transpose(2, 0, 1))
        return FieldRecord.from_steps(steps, image_chw, attrs, index=index)

    def extract(
        self, items: Sequence[ImageItem], cancel: CancelToken | None = None, shard: bool = True
    ) -> Iterator[ExtractProgress]:
        """Cache every item missing from the cache; yields progress. Under torchrun, shard by rank."""
        for it in items:
            self._check(it)
        if shard:  # shard the full list, not the missing ones: ranks may look at the cache at different times
            rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
            items = list(items)[rank::world]
        todo = [it for it in items if not self.cache.has(self.key_for(it))]
        done = len(items) - len(todo)
        total = len(items)
        if done:
            yield ExtractProgress(done, total, "", computed=False)
        bs = max(1, self.cfg.field.batch_size)
        for start in range(0, len(todo), bs):
            if cancel is not None and cancel.cancelled:
                return
            batch = todo[start : start + bs]
            steps = list(self._compute(batch))
            # one index update per batch (the index rewrite is O(entries))
            self.cache.put_many((self.key_for(it), self._record(it, steps, i)) for i, it in enumerate(batch))
            for it in batch:
                done += 1
                yield ExtractProgress(done, total, it.image_id, computed=True)

    def keys(self, items: Sequence[ImageItem]) -> list[str]:
        return [self.key_for(it) for it in items]


def _score_fn(unet: torch.nn.Module):
    from refcfa.diffusion.trajectory import as_score_fn

    return as_score_fn(unet)


def load_fieldset(cache: TrajectoryCache, keys: Sequence[str]):
    """Read cached entries into a `FieldSet` (`R, M, Q: (N, K, H, W)`, `d: (N, K, C, H, W)` float32).

    Also returns the inputs `(N, C, H, W)` and the last clean estimates `x0_hat_K` `(N, C, H, W)`,
    both in `[-1, 1]`, for the reconstruction-residual baseline.
    """
    from refcfa.alignment.fields import FieldSet
    from refcfa.errors import CacheError
    from refcfa.field.cache import decode_uint8

    R, M, Q, d, images, x0_last = [], [], [], [], [], []
    timesteps = None
    for key in keys:
        entry = cache.get(key)
        if entry is None:
            raise CacheError(f"cache entry {key} is missing from {cache.root}; run `refcfa extract` again")
        with entry:
            R.append(entry.read_all("R"))
            M.append(entry.read_all("M"))
            Q.append(entry.read_all("Q"))
            d.append(entry.read_all("d"))
            x0_last.append(entry.read_step("x0_hat", entry.K))
            images.append(decode_uint8(entry.read_image()))
            timesteps = entry.timesteps if timesteps is None else timesteps
    fs = FieldSet(R=np.stack(R), M=np.stack(M), Q=np.stack(Q), d=np.stack(d), timesteps=timesteps)
    return fs, np.stack(images).astype(np.float32), np.stack(x0_last).astype(np.float32)
