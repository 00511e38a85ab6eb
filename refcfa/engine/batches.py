"""What a score network trains on, and every step's batch as a pure function of `(seed, step)`.

What each network sees (`split_training_images`):
- S1 (`which="source"`): the source `train` split, normals only (`label == 0`).
- T1 (`which="target"`): the unlabelled target mixture — the target `train` split plus, when
  `data.transductive` (default; `data.t1_transductive` overrides it for T1), the target `test` images. Labels, defect names and masks of the
  target are never read (not even to drop anomalies); the choice is recorded in the checkpoint.
- Both hold out `train.val_fraction` of their `train` split (seeded) for the validation loss
  (`FixedValidationSet`): the denoising MSE at fixed seeded timesteps, stratified over
  `0 … T−1` (`VAL_DRAWS` per image), and fixed noise, identical at every evaluation.

Batches (`BatchDrawer`): the images are read once into a uint8 bank. Epoch `e` (0-based here)
visits them in the order `randperm(N)` seeded by `(seed, e)`; step `s` (0-based) takes the global
batch at positions `(j B + 0 … B−1) mod N` of its epoch's order, `j = s mod E`, with
`E = ceil(N / B)` steps per epoch (the last batch of an epoch wraps round to the epoch's first
images). The step's timesteps, flips, rotations, crop offsets and noise come from a generator
seeded by `(seed, s)`, drawn in a fixed order whatever is enabled. Nothing depends on history, so
a run resumed at step `s` continues exactly as if it had not stopped, and every rank of a
distributed run draws the same global batch and keeps its slice `[r b, (r + 1) b)`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch

from refcfa.data import Sample, make_samples
from refcfa.errors import DatasetError

if TYPE_CHECKING:  # pragma: no cover
    from refcfa.config.schema import Config

VAL_DRAWS = 8
"""(timestep, noise) draws per validation image; timesteps stratified over `0 … T−1`."""

# independent random streams derived from the global seed
STREAM_PERM, STREAM_STEP, STREAM_VAL_SPLIT, STREAM_VAL_NOISE, STREAM_DROPOUT = range(5)


def derive_seed(*parts: int) -> int:
    """A 63-bit seed from integers (numpy `SeedSequence`): independent streams per purpose/step."""
    state = np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts]).generate_state(1, np.uint64)
    return int(state[0] >> 1)


@dataclass(frozen=True)
class TrainingImages:
    """The images a score network trains on, and its held-out validation normals."""

    train: list[Sample]
    val: list[Sample]
    transductive: bool = False


def split_training_images(cfg: Config, which: Literal["source", "target"]) -> TrainingImages:
    """Choose S1's / T1's training images and the held-out validation images (module docstring).

    For the target only `Sample.split`, `image_id` and `path` are read.

    Raises:
        FileNotFoundError: the domain's root is missing (the message names the config key).
        DatasetError: no training images.
    """
    dom = cfg.domain(which)
    try:
        samples = make_samples(dom.root, dom.format, dom.category)
    except FileNotFoundError as exc:
        raise FileNotFoundError(
            f"{exc} [config key `{which}.root` = {dom.root!r} in {cfg.source_file or 'the config'}; "
            f"fix it or pass --set {which}.root=PATH]"
        ) from None
    if which == "source":
        pool = [s for s in samples if s.split == "train" and s.label == 0]
        extra: list[Sample] = []
    else:
        pool = [s for s in samples if s.split == "train"]
        extra = [s for s in samples if s.split == "test"] if cfg.t1_transductive() else []
    if not pool:
        raise DatasetError(
            f"{which} category {dom.category!r} in {dom.root} has no training images (its `train` split "
            f"is empty{' of normals' if which == 'source' else ''}); check `{which}.root`, "
            f"`{which}.category` and `{which}.format`"
        )
    pool = sorted(pool, key=lambda s: s.image_id)
    n_val = 0
    if cfg.train.val_fraction > 0 and len(pool) >= 2:
        n_val = min(len(pool) - 1, max(1, round(cfg.train.val_fraction * len(pool))))
    order = np.random.default_rng(derive_seed(cfg.seed, STREAM_VAL_SPLIT)).permutation(len(pool))
    held_out = set(order[:n_val].tolist())
    val = [s for i, s in enumerate(pool) if i in held_out]
    train = [s for i, s in enumerate(pool) if i not in held_out] + sorted(extra, key=lambda s: s.image_id)
    return TrainingImages(train=train, val=val, transductive=which == "target" and cfg.t1_transductive())


def load_image_bank(
    samples: Sequence[Sample], image_size: int, channels: int, workers: int = 0
) -> torch.Tensor:
    """All images of `samples` as one `uint8 (N, C, H, W)` tensor, read and resized once.

    Exactly the pixels `ImageDataset` serves (it maps them by `x = u8 / 127.5 − 1`); `workers > 1`
    reads with that many threads (`data.num_workers`).
    """
    from refcfa.data.torch_dataset import ImageDataset

    ds = ImageDataset(samples, image_size, channels)
    if workers > 1 and len(ds) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=workers) as pool:
            arrays = list(pool.map(ds.load, range(len(ds))))
    else:
        arrays = [ds.load(i) for i in range(len(ds))]
    if not arrays:
        return torch.zeros((0, channels, image_size, image_size), dtype=torch.uint8)
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def to_unit_range(images_u8: torch.Tensor) -> torch.Tensor:
    """`uint8` images to float32 in `[-1, 1]` (`x / 127.5 − 1`)."""
    return images_u8.float().mul_(1.0 / 127.5).sub_(1.0)


class BatchDrawer:
    """This rank's slice of step `s`'s global batch: `draw(s) -> (x_0, t, ε)` (module docstring).

    Args:
        bank: `uint8 (N, C, H, W)` training images, on `draw_device` (where indices and random
            draws are made; the batch is then moved to `device`).
        seed: The run's seed.
        global_batch: `B`; `rank`/`world` slice it into `b = B / world` images.
        num_timesteps: `T`.
        crop: Side of the random crops (`None`: whole images).
        augment: `{"hflip", "vflip", "rot90"}` switches (flips with probability 1/2; rotation by
            `k · 90°`, `k` uniform in 0..3).
    """

    def __init__(
        self,
        bank: torch.Tensor,
        *,
        seed: int,
        global_batch: int,
        num_timesteps: int,
        rank: int = 0,
        world: int = 1,
        crop: int | None = None,
        augment: Mapping[str, bool] | None = None,
        device: torch.device | None = None,
    ) -> None:
        if bank.ndim != 4 or bank.shape[0] == 0:
            raise ValueError(f"bank of shape {tuple(bank.shape)}: expected uint8 (N ≥ 1, C, H, W)")
        self.bank = bank
        self.seed = int(seed)
        self.global_batch = int(global_batch)
        self.local_batch = self.global_batch // world
        self.rank = int(rank)
        self.num_timesteps = int(num_timesteps)
        self.size = int(bank.shape[-1])
        self.crop = int(crop or self.size)
        self.augment = {k: bool((augment or {}).get(k, False)) for k in ("hflip", "vflip", "rot90")}
        self.draw_device = bank.device
        self.device = device or bank.device
        self.n = int(bank.shape[0])
        self.steps_per_epoch = math.ceil(self.n / self.global_batch)
        self._gen = torch.Generator(device=self.draw_device)
        self._order: tuple[int, torch.Tensor] | None = None
        self._arange = torch.arange(self.global_batch, device=self.draw_device)

    def epoch_order(self, epoch0: int) -> torch.Tensor:
        """`randperm(N)` seeded by `(seed, epoch0)` (cached for the current epoch)."""
        if self._order is None or self._order[0] != epoch0:
            gen = torch.Generator().manual_seed(derive_seed(self.seed, STREAM_PERM, epoch0))
            self._order = (epoch0, torch.randperm(self.n, generator=gen).to(self.draw_device))
        return self._order[1]

    def indices(self, step: int) -> torch.Tensor:
        """Bank indices of step `step`'s whole global batch, `(B,)`."""
        epoch0, j = divmod(step, self.steps_per_epoch)
        return self.epoch_order(epoch0)[(self._arange + j * self.global_batch) % self.n]

    def draw(self, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """`x_0 (b, C, h, w)` in `[-1, 1]`, `t (b,)` long, `ε (b, C, h, w)`, on `device`."""
        B, b, dev = self.global_batch, self.local_batch, self.draw_device
        idx = self.indices(step)
        gen = self._gen.manual_seed(derive_seed(self.seed, STREAM_STEP, step))
        t = torch.randint(0, self.num_timesteps, (B,), generator=gen, device=dev)
        flips = torch.rand((2, B), generator=gen, device=dev) < 0.5
        rot = torch.randint(0, 4, (B,), generator=gen, device=dev)
        offsets = torch.randint(0, self.size - self.crop + 1, (2, B), generator=gen, device=dev)
        noise = torch.randn((B, self.bank.shape[1], self.crop, self.crop), generator=gen, device=dev)
        sl = slice(self.rank * b, (self.rank + 1) * b)
        x = self.bank[idx[sl]]
        if self.crop != self.size:
            ar = torch.arange(self.crop, device=dev)
            rows = (offsets[0, sl, None] + ar)[:, :, None]
            cols = (offsets[1, sl, None] + ar)[:, None, :]
            # (b, crop, crop, C) by advanced indexing, back to channels first
            x = x[torch.arange(b, device=dev)[:, None, None], :, rows, cols].permute(0, 3, 1, 2)
        x = to_unit_range(x.to(self.device, non_blocking=True))
        if self.augment["hflip"]:
            x = torch.where(flips[0, sl].to(self.device).view(-1, 1, 1, 1), x.flip(-1), x)
        if self.augment["vflip"]:
            x = torch.where(flips[1, sl].to(self.device).view(-1, 1, 1, 1), x.flip(-2), x)
        if self.augment["rot90"]:
            k = rot[sl].to(self.device).view(-1, 1, 1, 1)
            for quarter in (1, 2, 3):
                x = torch.where(k == quarter, torch.rot90(x, quarter, (-2, -1)), x)
        return x.contiguous(), t[sl].to(self.device), noise[sl].to(self.device)


class FixedValidationSet:
    """Held-out images with fixed seeded `(t, ε)` draws: a validation loss comparable over time.

    Image `i` gets `VAL_DRAWS` timesteps `floor((j + u_ij) T / VAL_DRAWS)`, `j = 0 … VAL_DRAWS−1`,
    and noise, all from a CPU generator seeded by `(seed, STREAM_VAL_NOISE)` (the same on every
    device).
    """

    def __init__(self, bank: torch.Tensor, *, seed: int, num_timesteps: int, device: torch.device) -> None:
        n, c, h, w = bank.shape
        gen = torch.Generator().manual_seed(derive_seed(seed, STREAM_VAL_NOISE))
        strata = torch.arange(VAL_DRAWS, dtype=torch.float64).repeat(n)
        u = torch.rand(n * VAL_DRAWS, generator=gen, dtype=torch.float64)
        t = ((strata + u) * num_timesteps / VAL_DRAWS).long().clamp_(0, num_timesteps - 1)
        self.n_images = int(n)
        self.x0 = to_unit_range(bank.to(device))
        self.index = torch.arange(n).repeat_interleave(VAL_DRAWS).to(device)
        self.t = t.to(device)
        self.noise = torch.randn((n * VAL_DRAWS, c, h, w), generator=gen).to(device)

    @torch.no_grad()
    def loss(
        self,
        model: torch.nn.Module,
        sqrt_ab: torch.Tensor,
        sqrt_one_minus_ab: torch.Tensor,
        chunk: int = 16,
    ) -> float:
        """`mean (ε_θ(x_t, t) − ε)²` over all draws (one host sync)."""
        total = torch.zeros((), device=self.x0.device, dtype=torch.float64)
        for i in range(0, self.t.numel(), chunk):
            t, noise = self.t[i : i + chunk], self.noise[i : i + chunk]
            x0 = self.x0[self.index[i : i + chunk]]
            x_t = sqrt_ab[t].view(-1, 1, 1, 1) * x0 + sqrt_one_minus_ab[t].view(-1, 1, 1, 1) * noise
            eps_hat = model(x_t, t, return_dict=False)[0].float()
            total += (eps_hat - noise).double().pow(2).sum()
        return float(total.item() / self.noise.numel())

    def zero_predictor_loss(self) -> float:
        """The loss of the data-independent predictor `ε̂ = 0` (≈ 1): the bar to beat."""
        return float(self.noise.double().pow(2).mean().item())


__all__ = [
    "VAL_DRAWS",
    "BatchDrawer",
    "FixedValidationSet",
    "TrainingImages",
    "derive_seed",
    "load_image_bank",
    "split_training_images",
    "to_unit_range",
]
