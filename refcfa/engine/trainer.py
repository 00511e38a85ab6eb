"""Stages S1 and T1: train a diffusion score network `ε_θ` per domain (DDPM, ε-prediction).

Loss (Ho et al. 2020, "simple" objective): for a clean batch `x_0 (B, C, H, W)` in `[-1, 1]`,
`t ~ U{0, …, T−1}`, `ε ~ N(0, I)` and `x_t = sqrt(ᾱ_t) x_0 + sqrt(1 − ᾱ_t) ε`, minimise
`mean (ε_θ(x_t, t) − ε)²`. AdamW, linear warm-up then cosine decay (or cosine with warm restarts,
the formula of torch's `CosineAnnealingWarmRestarts(T_0=restart_period)`, or constant), gradient
clipping, EMA of the weights with warm-up (`refcfa.engine.ema`), fp16 autocast + GradScaler on
CUDA only.

What each network sees, and the batches (a pure function of `(seed, step)`, so that a resumed
run continues exactly and ranks agree): `refcfa.engine.batches`.

Epochs are passes over the training set: `E = ceil(N / B)` steps each; step `s` (1-based) is in
epoch `ceil(s / E)`, the number in `checkpoint_epoch_X.pth` (`refcfa.engine.checkpoint`).

Distributed (`torchrun`, `refcfa.engine.distributed`): `train.batch_size` is the global batch;
every rank draws the whole global batch and keeps its slice `B / world_size`, so N ranks follow
the same trajectory as one process (DDP averages the gradients). Rank 0 writes checkpoints.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import math
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F

from refcfa import __version__
from refcfa.config.schema import Config
from refcfa.diffusion.model import (
    architecture_signature,
    build_score_network,
    count_parameters,
    resolve_in_channels,
)
from refcfa.diffusion.schedule import alphas_cumprod, build_scheduler
from refcfa.engine import checkpoint as ckpt_io
from refcfa.engine.batches import (
    STREAM_DROPOUT,
    BatchDrawer,
    FixedValidationSet,
    TrainingImages,
    derive_seed,
    load_image_bank,
    split_training_images,
)
from refcfa.engine.devices import resolve_device
from refcfa.engine.distributed import DistInfo, all_reduce_mean, current
from refcfa.engine.ema import EMA
from refcfa.engine.events import EpochEnd, LogEvent, TrainEvent, TrainFinished, TrainStarted
from refcfa.engine.hooks import (
    EarlyStopHook,
    EvalHook,
    HookBase,
    PeriodicCheckpointer,
    StepLogger,
    TimeBudgetHook,
)
from refcfa.engine.optim import build_optimizer, lr_factor_fn
from refcfa.errors import CheckpointError, ConfigError

Domain = Literal["source", "target"]

# stop reasons, ordered so that ranks agree on the most severe one (all-reduce MAX)
_STOP_REASONS = ("", "time_budget", "early_stop", "cancelled")
_BANK_ON_GPU_BYTES = 1 << 30


class CancelToken:
    """A thread-safe cancel flag (`threading.Event`-like) checked by the trainer before every step.

    Cancelling stops training cleanly: the current step finishes, a checkpoint is written and
    `TrainFinished(cancelled=True)` is the last event.
    """

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    set = cancel

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def is_set(self) -> bool:
        return self._event.is_set()


def check_train_config(cfg: Config) -> None:
    """Semantic checks of the `train` section (ConfigError naming the key)."""
    tc = cfg.train
    where = cfg.source_file or "the config"

    def need(cond: bool, key: str, what: str) -> None:
        if not cond:
            raise ConfigError(f"config key `{key}` in {where}: {what}")

    need(tc.lr > 0, "train.lr", f"must be > 0, got {tc.lr}")
    need(tc.weight_decay >= 0, "train.weight_decay", "must be ≥ 0")
    need(tc.warmup_steps >= 0, "train.warmup_steps", "must be ≥ 0")
    need(tc.restart_period >= 1, "train.restart_period", "must be ≥ 1")
    need(tc.grad_clip >= 0, "train.grad_clip", "must be ≥ 0 (0 = no clipping)")
    need(tc.checkpoint_every >= 0, "train.checkpoint_every", "must be ≥ 0 (0 = only at the end)")
    need(tc.log_every >= 1, "train.log_every", "must be ≥ 1")
    need(tc.eval_every >= 0, "train.eval_every", "must be ≥ 0 (0 = only at the end)")
    need(0.0 <= tc.val_fraction < 1.0, "train.val_fraction", "must be in [0, 1)")
    need(tc.max_time_s >= 0, "train.max_time_s", "must be ≥ 0 (0 = no budget)")
    need(tc.early_stop_patience >= 0, "train.early_stop_patience", "must be ≥ 0 (0 = off)")
    need(
        tc.early_stop_patience == 0 or tc.eval_every > 0,
        "train.early_stop_patience",
        "needs train.eval_every > 0 (early stopping watches the periodic validation loss)",
    )
    if tc.crop_size is not None:
        levels = 2 ** (len(cfg.model.block_out_channels) - 1)
        need(
            8 <= tc.crop_size <= cfg.data.image_size,
            "train.crop_size",
            f"must be between 8 and data.image_size={cfg.data.image_size} (or null)",
        )
        need(
            tc.crop_size % levels == 0,
            "train.crop_size",
            f"must be divisible by {levels} for the UNet's down-sampling",
        )


def build_default_hooks(cfg: Config, extra: Sequence[HookBase] = ()) -> list[HookBase]:
    """`StepLogger, EvalHook, [EarlyStopHook], [TimeBudgetHook], *extra, PeriodicCheckpointer`."""
    tc = cfg.train
    hooks: list[HookBase] = [StepLogger(tc.log_every), EvalHook(tc.eval_every)]
    if tc.early_stop_patience > 0:
        hooks.append(EarlyStopHook(tc.early_stop_patience))
    if tc.max_time_s > 0:
        hooks.append(TimeBudgetHook(tc.max_time_s))
    hooks.extend(extra)
    hooks.append(PeriodicCheckpointer(tc.checkpoint_every))
    return hooks


class DiffusionTrainer:
    """Train one domain's score network; `run()` is a generator of `refcfa.engine.events`.

    Args:
        cfg: The run's config.
        which: `"source"` (S1) or `"target"` (T1); default `cfg.stage`.
        device: Overrides `cfg.device` (`auto | cpu | cuda | cuda:N`).
        resume: Continue from the experiment's last checkpoint (`True`), or from a given path.
            With `True` and no checkpoint yet, training starts from scratch (a `LogEvent` says so).
        hooks: Extra hooks, run after the default ones and before the checkpointer.
        dist: The distributed view; default: the initialised process group, else one process.

    Usage::

        trainer = DiffusionTrainer(cfg, "source")
        for event in trainer.run(cancel_token):
            ...
    """

    def __init__(
        self,
        cfg: Config,
        which: Domain | None = None,
        device: str | torch.device | None = None,
        *,
        resume: bool | str | Path = False,
        hooks: Sequence[HookBase] = (),
        dist: DistInfo | None = None,
    ) -> None:
        which = which or cfg.stage
        if which not in ("source", "target"):
            raise ValueError(f"which={which!r}: expected 'source' (S1) or 'target' (T1)")
        check_train_config(cfg)
        self.cfg = cfg
        self.which: Domain = which
        self.device_spec = device if device is not None else cfg.device
        self.resume = resume
        self.exp_dir = Path(cfg.experiment_dir(which))
        self.max_steps = int(cfg.train.max_steps)
        if which == "target" and cfg.train.target_max_steps:
            self.max_steps = int(cfg.train.target_max_steps)
        self.step = 0
        self.cancelled = False
        self.stop_reason: str | None = None
        self.val_history: list[tuple[int, float]] = []
        self.last_checkpoint: Path | None = None
        self.resumed_from: str | None = None
        self.init_from: str | None = None
        self.hooks = build_default_hooks(cfg, hooks)
        self._extra_dist = dist
        self._pending: list[TrainEvent] = []
        self._stop_request: str | None = None
        self._is_setup = False

    # ------------------------------------------------------------------ setup
    def setup(self) -> None:
        """Read the images, build network, optimizer, schedules and EMA; resume or warm-start.

        Called by `run()`; idempotent. Raises the user errors (missing data, bad checkpoint).
        """
        if self._is_setup:
            return
        cfg, tc = self.cfg, self.cfg.train
        self.dist = self._extra_dist or current()
        self.device = resolve_device(
            self.device_spec, self.dist.local_rank if self.dist.distributed else None
        )
        world = self.dist.world_size
        if tc.batch_size % world:
            raise ConfigError(
                f"config key `train.batch_size` = {tc.batch_size} is the global batch and must be divisible by "
                f"the {world} ranks; set train.batch_size to a multiple of {world}"
            )
        self.global_batch_size = int(tc.batch_size)
        self.local_batch_size = self.global_batch_size // world

        images = split_training_images(cfg, self.which)
        self.images = images
        self.transductive = images.transductive
        from refcfa.data.torch_dataset import infer_channels

        self.channels = resolve_in_channels(cfg, infer_channels(images.train))
        size = cfg.data.image_size
        self.image_size = size
        self.train_size = tc.crop_size or size
        bank = load_image_bank(images.train, size, self.channels, cfg.data.num_workers)
        self.n_train = int(bank.shape[0])
        unknown = sorted(set(cfg.data.augment) - {"hflip", "vflip", "rot90"})
        if unknown:
            raise ConfigError(
                f"config key `data.augment` has unknown entries {unknown}; known: hflip, vflip, rot90"
            )
        # indices and random draws live where the bank is: on the GPU when it fits
        bank_on_gpu = self.device.type == "cuda" and bank.numel() < _BANK_ON_GPU_BYTES
        if self.device.type == "cuda" and not bank_on_gpu:
            bank = bank.pin_memory()
        draw_device = self.device if bank_on_gpu or self.device.type != "cuda" else torch.device("cpu")
        sched = build_scheduler(cfg.diffusion)
        ab = alphas_cumprod(sched).to(self.device)
        self.num_timesteps = int(ab.numel())
        self.sqrt_ab = ab.sqrt()
        self.sqrt_one_minus_ab = (1.0 - ab).sqrt()
        self.batches = BatchDrawer(
            bank.to(draw_device),
            seed=cfg.seed,
            global_batch=self.global_batch_size,
            num_timesteps=self.num_timesteps,
            rank=self.dist.rank,
            world=world,
            crop=tc.crop_size,
            augment=cfg.data.augment,
            device=self.device,
        )
        self.steps_per_epoch = self.batches.steps_per_epoch

        # the network: the same initialisation on every rank
        torch.manual_seed(cfg.seed)
        self.arch = architecture_signature(cfg.model, self.channels, size)
        self.model = build_score_network(cfg.model, self.channels, size).to(self.device)
        self.model.train()
        self.n_parameters = count_parameters(self.model)
        cuda = self.device.type == "cuda"
        self.optimizer = build_optimizer(self.model, tc, self.device)
        self._lr_factor = lr_factor_fn(tc, self.max_steps)
        self.lr_scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor)
        self.use_amp = bool(tc.amp and cuda)
        self.scaler = torch.amp.GradScaler("cuda", enabled=True) if self.use_amp else None
        self.ema = EMA(self.model, tc.ema_decay)
        self._params = [p for p in self.model.parameters() if p.requires_grad]

        self._loss_sum = torch.zeros((), device=self.device)
        self._loss_n = 0
        self._last_lr = float(self.optimizer.param_groups[0]["lr"])
        self._eval_model: torch.nn.Module | None = None
        self.val_set = None
        if images.val:
            val_bank = load_image_bank(images.val, size, self.channels, cfg.data.num_workers)
            self.val_set = FixedValidationSet(
                val_bank, seed=cfg.seed, num_timesteps=self.num_timesteps, device=self.device
            )

        path = None
        if self.resume:
            path = (
                Path(self.resume)
                if isinstance(self.resume, (str, Path))
                else ckpt_io.find_last_checkpoint(self.exp_dir)
            )
        if path is not None:
            self._load_training_state(path)
        elif self.which == "target" and tc.init_target_from_source:
            # also when asked to resume but nothing is there yet (the pipeline always resumes)
            self._init_from_source()
        elif self.resume:
            self.emit(LogEvent(f"no checkpoint to resume from in {self.exp_dir}; starting from scratch"))
        elif self.dist.is_main and ckpt_io.list_checkpoints(self.exp_dir):
            self.emit(
                LogEvent(
                    f"{self.exp_dir} already holds checkpoints; starting from scratch and replacing them "
                    "(pass --resume to continue instead)",
                    level="warning",
                )
            )

        self.ddp: torch.nn.Module = self.model
        if self.dist.distributed:
            from torch.nn.parallel import DistributedDataParallel

            self.ddp = DistributedDataParallel(self.model, device_ids=[self.device.index] if cuda else None)
        if self.dist.is_main:
            self.exp_dir.mkdir(parents=True, exist_ok=True)
            ckpt_io.remove_stale_temp_files(self.exp_dir)
        for hook in self.hooks:
            hook.trainer = self
        self._is_setup = True

    def _load_training_state(self, path: Path) -> None:
        ck = ckpt_io.load_checkpoint(path, expected_arch=self.arch)
        if ck.get("domain") != self.which:
            raise CheckpointError(
                f"checkpoint {path} is a {ck.get('domain')!r} network; resuming the {self.which!r} stage needs "
                f"one of {self.exp_dir}"
            )
        self.model.load_state_dict(ck["model"])
        self.ema.load_state_dict(ck["ema"], int(ck["ema_updates"]))
        self.optimizer.load_state_dict(ck["optimizer"])
        self.lr_scheduler.load_state_dict(ck["lr_scheduler"])
        if self.scaler is not None and ck.get("grad_scaler"):
            self.scaler.load_state_dict(ck["grad_scaler"])
        self.step = int(ck["step"])
        # the schedule is a function of the step: recompute it (also after max_steps changed)
        for group, base in zip(self.optimizer.param_groups, self.lr_scheduler.base_lrs, strict=True):
            group["lr"] = base * self._lr_factor(self.step)
        ckpt_io.restore_rng_state(ck.get("rng") or {}, self.device)
        if ck.get("val_loss") is not None:
            self.val_history.append((self.step, float(ck["val_loss"])))
        self.init_from = ck.get("init_from")
        if list(ck.get("train_image_ids") or []) != [s.image_id for s in self.images.train]:
            self.emit(
                LogEvent(
                    f"the training images differ from those of {path}; continuing with the current ones",
                    level="warning",
                )
            )
        if int(ck.get("global_batch_size", self.global_batch_size)) != self.global_batch_size:
            self.emit(
                LogEvent("train.batch_size differs from the checkpoint's; the data order changes", "warning")
            )
        self.resumed_from = str(path)
        self.last_checkpoint = Path(path)
        self.emit(LogEvent(f"resumed from {path} at step {self.step}"))

    def _init_from_source(self) -> None:
        src_dir = Path(self.cfg.experiment_dir("source"))
        path = ckpt_io.find_last_checkpoint(src_dir)
        if path is None:
            raise FileNotFoundError(
                f"train.init_target_from_source is true but {src_dir} holds no source checkpoint; train the source "
                "network first (refcfa train --stage source) or set train.init_target_from_source=false"
            )
        ck = ckpt_io.load_checkpoint(path, expected_arch=self.arch)
        if ck.get("domain") != "source":
            raise CheckpointError(
                f"{path} is a {ck.get('domain')!r} network; T1 warm-starts from the source network"
            )
        self.model.load_state_dict(ck["ema"] or ck["model"])
        self.ema = EMA(self.model, self.cfg.train.ema_decay)
        self.init_from = str(path)
        self.emit(LogEvent(f"T1 starts from the source network {path} (its EMA weights)"))

    # ------------------------------------------------------------------ state for hooks
    @property
    def epoch(self) -> int:
        """The 1-based epoch of the last step taken (0 before the first step)."""
        return math.ceil(self.step / self.steps_per_epoch) if self._is_setup else 0

    @property
    def lr(self) -> float:
        """Learning rate used by the last step."""
        return self._last_lr

    def emit(self, event: TrainEvent) -> None:
        """Queue an event; `run()` yields it after the current phase."""
        self._pending.append(event)

    def request_stop(self, reason: str, message: str = "") -> None:
        """Ask the loop to stop before the next step (`reason` in time_budget, early_stop, cancelled)."""
        if self._stop_request is None:
            self._stop_request = reason
            if message:
                self.emit(LogEvent(message))

    def pop_window_loss(self) -> float:
        """Mean training loss since the last call (over all ranks); one host sync."""
        n = max(1, self._loss_n)
        value = all_reduce_mean(self._loss_sum / n, self.dist)
        self._loss_sum.zero_()
        self._loss_n = 0
        return float(value.item())

    # ------------------------------------------------------------------ the step
    def draw_batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """This rank's `(x_0 (b, C, h, w), t (b,), ε (b, C, h, w))` for 0-based step `step`."""
        return self.batches.draw(step)

    def _autocast(self):
        if self.use_amp:
            return torch.autocast(device_type="cuda", dtype=torch.float16)
        return contextlib.nullcontext()

    def run_step(self) -> None:
        """One optimisation step: forward, ε-MSE, backward, clip, AdamW, lr schedule, EMA."""
        tc = self.cfg.train
        if self.cfg.model.dropout > 0:  # dropout masks as a function of (seed, step, rank)
            torch.manual_seed(derive_seed(self.cfg.seed, STREAM_DROPOUT, self.step, self.dist.rank))
        x0, t, noise = self.draw_batch(self.step)
        x_t = self.sqrt_ab[t].view(-1, 1, 1, 1) * x0 + self.sqrt_one_minus_ab[t].view(-1, 1, 1, 1) * noise
        with self._autocast():
            eps_hat = self.ddp(x_t, t, return_dict=False)[0]
        loss = F.mse_loss(eps_hat.float(), noise)
        self.optimizer.zero_grad(set_to_none=True)
        self._last_lr = float(self.optimizer.param_groups[0]["lr"])
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            if tc.grad_clip > 0:
                self.scaler.unscale_(self.optimizer)
                torch.nn.utils.clip_grad_norm_(self._params, tc.grad_clip, foreach=True)
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            if tc.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(self._params, tc.grad_clip, foreach=True)
            self.optimizer.step()
        self.lr_scheduler.step()
        self.ema.update(self.model)
        self._loss_sum += loss.detach()
        self._loss_n += 1

    def train_one_step(self) -> None:
        """`before_step` hooks, `run_step`, `after_step` hooks (events are queued, see `emit`)."""
        for hook in self.hooks:
            hook.before_step()
        self.run_step()
        self.step += 1
        if self.step % self.steps_per_epoch == 0:
            self.emit(EpochEnd(epoch=self.epoch, step=self.step))
        for hook in self.hooks:
            hook.after_step()

    # ------------------------------------------------------------------ validation and checkpoints
    def validate(self) -> float | None:
        """EMA network's denoising MSE on the held-out images (fixed seeded t and ε); None without."""
        if self.val_set is None:
            return None
        if self._eval_model is None:
            self._eval_model = copy.deepcopy(self.model).eval().requires_grad_(False)
        self.ema.copy_to(self._eval_model)
        chunk = max(16, self.local_batch_size)
        return self.val_set.loss(self._eval_model, self.sqrt_ab, self.sqrt_one_minus_ab, chunk)

    def zero_predictor_val_loss(self) -> float | None:
        """Validation loss of the data-independent predictor `ε̂ = 0` (≈ 1): the bar to beat."""
        return None if self.val_set is None else self.val_set.zero_predictor_loss()

    def state_payload(self) -> dict:
        """The checkpoint dictionary (see `refcfa.engine.checkpoint.SCORE_NETWORK_KEYS`)."""
        return {
            "kind": ckpt_io.KIND_SCORE_NETWORK,
            "format_version": ckpt_io.FORMAT_VERSION,
            "refcfa_version": __version__,
            "domain": self.which,
            "transductive": bool(self.transductive),
            "step": int(self.step),
            "epoch": int(self.epoch),
            "steps_per_epoch": int(self.steps_per_epoch),
            "global_batch_size": int(self.global_batch_size),
            "world_size": int(self.dist.world_size),
            "architecture": dict(self.arch),
            "config": self.cfg.to_dict(),
            "model": {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()},
            "ema": self.ema.state_dict(self.model),
            "ema_updates": int(self.ema.updates),
            "optimizer": self.optimizer.state_dict(),
            "lr_scheduler": self.lr_scheduler.state_dict(),
            "grad_scaler": self.scaler.state_dict() if self.scaler is not None else {},
            "rng": ckpt_io.capture_rng_state(self.device),
            "train_image_ids": [s.image_id for s in self.images.train],
            "val_image_ids": [s.image_id for s in self.images.val],
            "val_loss": self.val_history[-1][1] if self.val_history else None,
            "init_from": self.init_from,
        }

    def save_checkpoint(self) -> Path:
        """Rank 0 writes `checkpoint_epoch_{epoch}.pth` and updates `last`; returns the path."""
        path = self.exp_dir / ckpt_io.checkpoint_name(self.epoch)
        if self.dist.is_main:
            path = ckpt_io.save_checkpoint(self.state_payload(), self.exp_dir, self.epoch)
        self.last_checkpoint = path
        return path

    def weights_digest(self) -> str:
        """sha256 of the raw and EMA weights (ranks must agree)."""
        h = hashlib.sha256()
        for v in list(self.model.state_dict().values()) + list(self.ema.shadow):
            h.update(v.detach().float().cpu().numpy().tobytes())
        return h.hexdigest()

    # ------------------------------------------------------------------ the loop
    def _drain(self) -> Iterator[TrainEvent]:
        while self._pending:
            yield self._pending.pop(0)

    def _should_stop(self, cancel: CancelToken) -> bool:
        if cancel.cancelled:
            self.request_stop("cancelled", "cancelled: stopping and writing a checkpoint")
        local = _STOP_REASONS.index(self._stop_request) if self._stop_request in _STOP_REASONS else 0
        if self.dist.distributed:
            if self.step % self.cfg.train.log_every:
                return False
            import torch.distributed as tdist

            flag = torch.tensor([float(local)], device=self.device)
            tdist.all_reduce(flag, op=tdist.ReduceOp.MAX)
            local = int(flag.item())
        if local:
            self.stop_reason = _STOP_REASONS[local]
            return True
        return False

    def run(self, cancel: CancelToken | None = None) -> Iterator[TrainEvent]:
        """Train to `train.max_steps` (or a stop), yielding events; the last is `TrainFinished`."""
        cancel = cancel or CancelToken()
        self.setup()
        yield from self._drain()
        yield TrainStarted(
            total_steps=self.max_steps,
            start_step=self.step,
            domain=self.which,
            experiment_dir=str(self.exp_dir),
            device=str(self.device),
            world_size=self.dist.world_size,
            n_train=self.n_train,
            n_val=0 if self.val_set is None else self.val_set.n_images,
            steps_per_epoch=self.steps_per_epoch,
            global_batch_size=self.global_batch_size,
            n_parameters=self.n_parameters,
            transductive=self.transductive,
            resumed_from=self.resumed_from,
            init_from=self.init_from,
        )
        if self.step >= self.max_steps:
            yield LogEvent(
                f"already at step {self.step} ≥ train.max_steps={self.max_steps}: nothing to train"
            )
            yield TrainFinished(
                step=self.step,
                checkpoint=str(self.last_checkpoint) if self.last_checkpoint else None,
                val_loss=self.val_history[-1][1] if self.val_history else None,
                reason="already_done",
            )
            return
        for hook in self.hooks:
            hook.before_train()
        yield from self._drain()
        while self.step < self.max_steps:
            if self._should_stop(cancel):
                break
            self.train_one_step()
            yield from self._drain()
        self.cancelled = self.stop_reason == "cancelled"
        for hook in self.hooks:
            hook.after_train()
        yield from self._drain()
        extra = (
            {"weights_sha256": self.weights_digest(), "rank": self.dist.rank} if self.dist.distributed else {}
        )
        yield TrainFinished(
            step=self.step,
            checkpoint=str(self.last_checkpoint) if self.last_checkpoint else None,
            cancelled=self.cancelled,
            val_loss=self.val_history[-1][1] if self.val_history else None,
            reason=self.stop_reason or "max_steps",
            extra=extra,
        )


def train_score_network(
    cfg: Config,
    which: Domain | None = None,
    *,
    device: str | None = None,
    resume: bool | str | Path = False,
    cancel: CancelToken | None = None,
    on_event: Callable[[TrainEvent], None] | None = None,
) -> Path:
    """Train (S1 or T1) to the end and return the last checkpoint's path."""
    trainer = DiffusionTrainer(cfg, which, device, resume=resume)
    final: TrainFinished | None = None
    for event in trainer.run(cancel):
        if on_event is not None:
            on_event(event)
        if isinstance(event, TrainFinished):
            final = event
    if final is None or final.checkpoint is None:  # pragma: no cover - run() always ends with one
        raise RuntimeError("training ended without a checkpoint")
    return Path(final.checkpoint)


__all__ = [
    "CancelToken",
    "DiffusionTrainer",
    "TrainingImages",
    "build_default_hooks",
    "check_train_config",
    "split_training_images",
    "train_score_network",
]
