"""The supervised field detector: ``g_φ`` + statistics + ``f_ψ`` (DESIGN.md sections 4 and 5).

``FieldDetector`` maps a batch of Residual-Evolution Fields to anomaly logits:

1. ``g_φ`` (`FieldTransformer`) gives each pixel's step weights ``a_n(u)`` and embedding ``h(u)``;
2. `adaptive_statistics` gives ``E``, ``NS``, ``DV`` under those weights;
3. the head input ``[log(E+δ), NS, DV, log(mean_n M_n + δ), log(Q_K + δ)]`` is standardised and
   concatenated with a 1×1 projection of ``h`` (``h_proj`` channels);
4. ``f_ψ`` (`DetectorHead`) turns it into one logit map; ``A(u) = sigmoid``.

Input normalisation (a choice DESIGN.md leaves open): no BatchNorm. `FieldDetector.fit_normalization`
is fitted once on the source training fields before S2 and stored as buffers (so it travels in the
checkpoint): the token logs ``log(R+δ), log(M+δ), log(Q+δ)`` get a per-feature mean/std; the five
statistic channels get a robust centre/scale (median, IQR/1.349) computed on the *reference*
(uniform-weight) statistics, which do not depend on the still-training ``g_φ``; standardised
statistic channels are clipped to ±10 (NS has a heavy tail where ``E`` is tiny).

Training (`train_detector`) is a generator of event dataclasses: `DetectorTrainStarted`, one
`DetectorEpoch` per epoch, and a final `DetectorTrained` carrying the model.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from refcfa.config.schema import DetectorConfig, TransformerConfig
from refcfa.engine.devices import resolve_device
from refcfa.field.head import DetectorHead, class_balance_pos_weight, detector_loss
from refcfa.field.statistics import adaptive_statistics
from refcfa.field.transformer import FieldTransformer

N_STAT_CHANNELS = 5  # log E, NS, DV, log mean_n M_n, log Q_K
STAT_CHANNEL_NAMES = ("log_E", "NS", "DV", "log_mean_M", "log_Q_K")
STAT_CLIP = 10.0


class FieldArrays(Protocol):
    """What the detector reads from a field set (`refcfa.alignment.fields.FieldSet` fits).

    ``R, M, Q``: ``(N, K, H, W)``; ``d``: ``(N, K, C, H, W)``; ``timesteps``: ``(K,)``.
    """

    R: np.ndarray
    M: np.ndarray
    Q: np.ndarray
    d: np.ndarray
    timesteps: np.ndarray | None


# ---------------------------------------------------------------------------------------------
# model


class FieldDetector(nn.Module):
    """``g_φ`` + adaptive statistics + ``f_ψ``.

    Args:
        transformer_cfg: the Field Transformer's settings.
        K: reverse steps per field; C: image channels of ``d``.
        hidden: the head's channels; h_proj: channels of the 1×1 projection of ``h`` (0: none).
        num_train_timesteps: the diffusion's ``T``; delta: ``δ`` in logs and NS.
    """

    def __init__(
        self,
        transformer_cfg: TransformerConfig,
        K: int,
        C: int,
        *,
        hidden: int = 32,
        h_proj: int = 4,
        norm: str = "channel",
        num_train_timesteps: int = 1000,
        delta: float = 1e-6,
    ) -> None:
        super().__init__()
        self.transformer_cfg = TransformerConfig(**vars(transformer_cfg))
        self.K, self.C = int(K), int(C)
        self.hidden, self.h_proj_ch, self.norm = int(hidden), int(h_proj), str(norm)
        self.num_train_timesteps, self.delta = int(num_train_timesteps), float(delta)
        self.transformer = FieldTransformer(transformer_cfg, K, C, num_train_timesteps, delta)
        self.h_proj = nn.Conv2d(transformer_cfg.d_model, h_proj, 1) if h_proj > 0 else None
        self.head = DetectorHead(N_STAT_CHANNELS + max(h_proj, 0), hidden, norm)
        self.register_buffer("stat_center", torch.zeros(N_STAT_CHANNELS))
        self.register_buffer("stat_scale", torch.ones(N_STAT_CHANNELS))
        self.register_buffer("norm_fitted", torch.tensor(False))

    @classmethod
    def from_config(
        cls,
        transformer_cfg: TransformerConfig,
        detector_cfg: DetectorConfig,
        K: int,
        C: int,
        *,
        num_train_timesteps: int = 1000,
        delta: float = 1e-6,
    ) -> FieldDetector:
        return cls(
            transformer_cfg,
            K,
            C,
            hidden=detector_cfg.hidden,
            h_proj=detector_cfg.h_proj,
            norm=detector_cfg.norm,
            num_train_timesteps=num_train_timesteps,
            delta=delta,
        )

    @property
    def arch(self) -> dict[str, Any]:
        """Primitive description of the architecture (stored in checkpoints)."""
        return {
            "K": self.K,
            "C": self.C,
            "hidden": self.hidden,
            "h_proj": self.h_proj_ch,
            "norm": self.norm,
            "num_train_timesteps": self.num_train_timesteps,
            "delta": self.delta,
            "transformer": dict(vars(self.transformer_cfg)),
        }

    @classmethod
    def from_arch(cls, arch: dict[str, Any]) -> FieldDetector:
        return cls(
            TransformerConfig(**arch["transformer"]),
            arch["K"],
            arch["C"],
            hidden=arch["hidden"],
            h_proj=arch["h_proj"],
            norm=arch.get("norm", "group"),  # segmenters written before the option had GroupNorm
            num_train_timesteps=arch["num_train_timesteps"],
            delta=arch["delta"],
        )

    # -- normalisation ---------------------------------------------------------------------------

    @torch.no_grad()
    def fit_normalization(
        self,
        R: np.ndarray,
        M: np.ndarray,
        Q: np.ndarray,
        d: np.ndarray,
        max_pixels: int = 200_000,
        seed: int = 0,
    ) -> FieldDetector:
        """Fit the input standardisation on (source training) fields; returns ``self``.

        Args:
            R, M, Q: ``(N, K, H, W)``; d: ``(N, K, C, H, W)`` (numpy, any float dtype).
            max_pixels: pixels sampled (uniformly, seeded) to bound time and memory.
        """
        N, K, H, W = R.shape
        rng = np.random.default_rng(seed)
        total = N * H * W
        flat = (
            np.arange(total) if total <= max_pixels else np.sort(rng.choice(total, max_pixels, replace=False))
        )
        n, rem = np.divmod(flat, H * W)
        y, x = np.divmod(rem, W)

        def take(arr: np.ndarray) -> torch.Tensor:  # (P, K[, C]) -> (P, K[, C], 1, 1)
            vals = np.asarray(arr)[n, :, ..., y, x] if arr.ndim == 5 else np.asarray(arr)[n, :, y, x]
            return torch.from_numpy(np.ascontiguousarray(vals, dtype=np.float32))[..., None, None]

        Rs, Ms, Qs, ds = take(R), take(M), take(Q), take(d)
        logs = torch.stack([torch.log(t.clamp_min(0) + self.delta) for t in (Rs, Ms, Qs)])  # (3,P,K,1,1)
        mean = logs.flatten(1).mean(1)
        std = logs.flatten(1).std(1).clamp_min(1e-3)
        self.transformer.set_normalization(mean, std)

        stats, _ = self._stat_channels(Rs, Ms, Qs, ds, a=None)  # (P, 5, 1, 1)
        flat_stats = stats.flatten(2).squeeze(-1).double()  # (P, 5)
        q25, center, q75 = torch.quantile(
            flat_stats, torch.tensor([0.25, 0.5, 0.75], dtype=flat_stats.dtype), dim=0
        )
        scale = (q75 - q25) / 1.349
        fallback = flat_stats.std(0)
        scale = torch.where(scale > 1e-6, scale, fallback)
        scale = torch.where(scale > 1e-6, scale, torch.ones_like(scale))
        self.stat_center.copy_(center.float())
        self.stat_scale.copy_(scale.float())
        self.norm_fitted.fill_(True)
        return self

    # -- forward ---------------------------------------------------------------------------------

    def _stat_channels(
        self, R: torch.Tensor, M: torch.Tensor, Q: torch.Tensor, d: torch.Tensor, a: torch.Tensor | None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Raw statistic channels ``(B, 5, H, W)`` ``[log E, NS, DV, log mean_n M_n, log Q_K]``
        under step weights ``a`` (``None``: uniform), and the ``E/NS/DV`` dict."""
        st = adaptive_statistics(R, d, a, self.delta)
        raw = torch.stack(
            [
                torch.log(st["E"] + self.delta),
                st["NS"],
                st["DV"],
                torch.log(M.float().mean(1).clamp_min(0) + self.delta),
                torch.log(Q[:, -1].float().clamp_min(0) + self.delta),
            ],
            dim=1,
        )
        return raw, st

    def _run(
        self,
        R: torch.Tensor,
        M: torch.Tensor,
        Q: torch.Tensor,
        d: torch.Tensor,
        timesteps: torch.Tensor,
        out_size: tuple[int, int] | None,
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        R, M, Q, d = R.float(), M.float(), Q.float(), d.float()
        h, a = self.transformer(R, M, Q, d, timesteps)
        raw, st = self._stat_channels(R, M, Q, d, a)
        x = (raw - self.stat_center.view(1, -1, 1, 1)) / self.stat_scale.view(1, -1, 1, 1)
        x = x.clamp(-STAT_CLIP, STAT_CLIP)
        if self.h_proj is not None:
            x = torch.cat([x, self.h_proj(h)], dim=1)
        logits = self.head(x, out_size).squeeze(1)
        return logits, a, st

    def forward(
        self,
        R: torch.Tensor,
        M: torch.Tensor,
        Q: torch.Tensor,
        d: torch.Tensor,
        timesteps: torch.Tensor,
        out_size: tuple[int, int] | None = None,
    ) -> torch.Tensor:
        """Anomaly logits ``(B, H', W')`` (``out_size``, default the field size ``(H, W)``).

        Args:
            R, M, Q: ``(B, K, H, W)``; d: ``(B, K, C, H, W)``; timesteps: ``(K,)`` or ``(B, K)``.
        """
        return self._run(R, M, Q, d, timesteps, out_size)[0]

    def maps(
        self,
        R: torch.Tensor,
        M: torch.Tensor,
        Q: torch.Tensor,
        d: torch.Tensor,
        timesteps: torch.Tensor,
        out_size: tuple[int, int] | None = None,
    ) -> dict[str, torch.Tensor]:
        """Anomaly map and intermediates, for figures and GUI overlays.

        Returns:
            ``A`` (sigmoid) and ``logits`` ``(B, H', W')``; adaptive ``E``, ``NS``, ``DV``
            ``(B, H, W)``; step weights ``a`` ``(B, K, H, W)``; the reference (uniform-weight)
            ``E_ref``, ``NS_ref``, ``DV_ref`` ``(B, H, W)``.
        """
        logits, a, st = self._run(R, M, Q, d, timesteps, out_size)
        ref = adaptive_statistics(R, d, None, self.delta)
        out = {"A": torch.sigmoid(logits), "logits": logits, "a": a, **st}
        out.update({f"{k}_ref": v for k, v in ref.items()})
        return out


# ---------------------------------------------------------------------------------------------
# training


@dataclass
class DetectorTrainStarted:
    n_train: int
    n_val: int
    epochs: int
    steps_per_epoch: int
    pos_weight: float
    n_params: int
    device: str


@dataclass
class DetectorEpoch:
    epoch: int  # 1-based
    epochs: int
    loss: float  # mean training loss over the epoch's batches
    val_loss: float | None
    val_auroc: float | None  # pixel AUROC on the validation fields
    lr: float
    elapsed_s: float


@dataclass
class DetectorTrained:
    model: FieldDetector  # in eval mode; the best-val_loss epoch's weights when val was given
    epochs_run: int
    best_epoch: int
    best_val_loss: float | None
    cancelled: bool
    history: list[DetectorEpoch] = field(default_factory=list)


DetectorEvent = DetectorTrainStarted | DetectorEpoch | DetectorTrained


def _is_cancelled(cancel: Any) -> bool:
    if cancel is None:
        return False
    if callable(cancel):
        return bool(cancel())
    if hasattr(cancel, "is_set"):
        return bool(cancel.is_set())
    return bool(getattr(cancel, "cancelled", False))


def _check_fields(fields: FieldArrays, name: str, masks: np.ndarray | None = None) -> None:
    for attr in ("R", "M", "Q", "d"):
        if not hasattr(fields, attr):
            raise TypeError(f"{name}: expected a FieldSet with R, M, Q, d (and timesteps); missing {attr!r}")
    R = fields.R
    if R.ndim != 4:
        raise ValueError(f"{name}.R: expected shape (N, K, H, W), got {R.shape}")
    for attr in ("M", "Q"):
        if getattr(fields, attr).shape != R.shape:
            raise ValueError(
                f"{name}.{attr}: expected shape {R.shape} (like R), got {getattr(fields, attr).shape}"
            )
    N, K, H, W = R.shape
    if fields.d.ndim != 5 or fields.d.shape[:2] != (N, K) or fields.d.shape[3:] != (H, W):
        raise ValueError(f"{name}.d: expected shape ({N}, {K}, C, {H}, {W}), got {fields.d.shape}")
    if masks is not None and masks.shape != (N, H, W):
        raise ValueError(f"{name} masks: expected shape ({N}, {H}, {W}), got {masks.shape}")


def _timesteps(fields: FieldArrays, timesteps: np.ndarray | None, device: torch.device) -> torch.Tensor:
    """The ``(K,)`` timesteps: ``timesteps`` if given, else ``fields.timesteps``."""
    K = fields.R.shape[1]
    ts = timesteps if timesteps is not None else getattr(fields, "timesteps", None)
    if ts is None:
        raise ValueError(
            "timesteps: the fields carry no timesteps (FieldSet.timesteps is None); pass the "
            f"trajectory's s_1..s_K ({K} values)"
        )
    ts = np.asarray(ts)
    if ts.shape != (K,):
        raise ValueError(f"timesteps: expected shape ({K},) for fields with K={K}, got {ts.shape}")
    return torch.as_tensor(ts.astype(np.float32), device=device)


CROP_ORIGINS = ("clamped", "uniform")


def _crop_origins(size: int, crop: int, n: int, gen: torch.Generator, kind: str = "clamped") -> np.ndarray:
    """``n`` crop origins in ``[0, size - crop]``.

    ``"clamped"`` (default): drawn uniformly from ``[-crop/2, size - crop/2]`` and clamped, so crops
    touch the image border far more often than ``"uniform"`` origins (uniform on ``[0, size - crop]``).

    With uniform origins a border row lies in 1 of ``size - crop + 1`` crops (1/33 for 32-px crops
    of 64-px fields) against every crop for the centre: the detector then hardly sees the image
    border, whose fields differ (the UNet's padding), and fires there on whole images — on a
    held-out draw that was where nearly every normal image's maximum sat (README).
    """
    if kind not in CROP_ORIGINS:
        raise ValueError(f"detector.crop_origins: expected one of {', '.join(CROP_ORIGINS)}, got {kind!r}")
    half = crop // 2 if kind == "clamped" else 0
    o = torch.randint(-half, size - crop + half + 1, (n,), generator=gen).numpy()
    return np.clip(o, 0, size - crop)


def _take(a: np.ndarray, idx: np.ndarray, window: tuple[np.ndarray, np.ndarray, int] | None) -> np.ndarray:
    """``a[idx]``, or per-sample crops ``a[i, ..., y:y+c, x:x+c]`` for ``window = (ys, xs, c)``."""
    if window is None:
        return a[idx]
    ys, xs, c = window
    return np.stack([a[i, ..., y : y + c, x : x + c] for i, y, x in zip(idx, ys, xs, strict=True)])


def _batch(
    fields: FieldArrays,
    idx: np.ndarray,
    device: torch.device,
    window: tuple[np.ndarray, np.ndarray, int] | None = None,
) -> tuple[torch.Tensor, ...]:
    def t(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(_take(a, idx, window), dtype=np.float32)).to(device)

    return t(fields.R), t(fields.M), t(fields.Q), t(fields.d)


def _flip(x: torch.Tensor, sel: torch.Tensor, dim: int) -> torch.Tensor:
    """Flip the samples ``sel`` (``(B,)`` bool) of ``x`` along ``dim``."""
    shape = (-1,) + (1,) * (x.ndim - 1)
    return torch.where(sel.view(shape), x.flip(dim), x)


def _pixel_auroc(scores: np.ndarray, labels: np.ndarray, max_pixels: int = 500_000) -> float | None:
    labels = labels.reshape(-1).astype(bool)
    scores = scores.reshape(-1)
    if labels.all() or not labels.any():
        return None
    if labels.size > max_pixels:
        sel = np.random.default_rng(0).choice(labels.size, max_pixels, replace=False)
        labels, scores = labels[sel], scores[sel]
        if labels.all() or not labels.any():
            return None
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, scores))


@torch.no_grad()
def _evaluate(
    model: FieldDetector,
    fields: FieldArrays,
    masks: np.ndarray,
    timesteps: torch.Tensor,
    batch_size: int,
    pos_weight: float,
    dice_weight: float,
    device: torch.device,
) -> tuple[float, float | None]:
    model.eval()
    N = fields.R.shape[0]
    total, probs = 0.0, []
    for i in range(0, N, batch_size):
        idx = np.arange(i, min(i + batch_size, N))
        R, M, Q, d = _batch(fields, idx, device)
        y = torch.from_numpy(np.ascontiguousarray(masks[idx])).to(device)
        logits = model(R, M, Q, d, timesteps)
        total += float(detector_loss(logits, y, pos_weight, dice_weight)) * len(idx)
        probs.append(torch.sigmoid(logits).cpu().numpy())
    return total / N, _pixel_auroc(np.concatenate(probs), np.asarray(masks))


def train_detector(
    train: FieldArrays,
    masks: np.ndarray,
    cfg: DetectorConfig,
    transformer_cfg: TransformerConfig,
    timesteps: np.ndarray | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    val: tuple[FieldArrays, np.ndarray] | None = None,
    cancel: Callable[[], bool] | Any | None = None,
    *,
    num_train_timesteps: int = 1000,
    delta: float = 1e-6,
    augment: bool = True,
    crop_size: int | None = None,
    norm_max_pixels: int = 200_000,
) -> Iterator[DetectorEvent]:
    """Train ``g_φ`` + ``f_ψ`` on labelled source fields (stage S2); a generator of events.

    Args:
        train: fields ``R, M, Q (N, K, H, W)``, ``d (N, K, C, H, W)``.
        masks: ``(N, H, W)`` bool ground truth of ``train``.
        cfg: epochs, batch_size, lr, weight_decay, hidden, h_proj, pos_weight (0: from the class
            balance of ``masks``), dice_weight.
        transformer_cfg: the Field Transformer's settings.
        timesteps: ``(K,)`` DDIM timesteps ``s_n`` (default ``train.timesteps``; validation fields
            use the same ones).
        seed: seeds the initialisation, the batch order and the flips (deterministic on CPU).
        val: optional ``(fields, masks)``; each epoch reports its loss and pixel AUROC, and the
            final model is the epoch with the lowest validation loss.
        cancel: ``None``, a callable returning True, or an object with ``is_set()`` /
            ``cancelled``; checked before every batch. A cancelled run still ends with
            `DetectorTrained` (``cancelled=True``) carrying the weights so far.
        augment: random horizontal/vertical flips per sample (fields and masks alike; ``d``'s
            channels are colour channels, so a flip leaves them unchanged).
        crop_size: train on random ``crop_size × crop_size`` crops of each field (one per sample
            and batch): the Field Transformer's cost is linear in the pixels, so 32×32 crops of
            64×64 fields make an S2 step ~4× cheaper on a CPU; validation uses whole fields.
            ``cfg.crop_origins``: ``"clamped"`` (default) so that image borders are well
            represented, or ``"uniform"`` (`_crop_origins`).
            ``None`` (or ≥ the field size) trains on whole fields.

    Yields:
        `DetectorTrainStarted`, then `DetectorEpoch` per epoch, then `DetectorTrained`.
    """
    masks = np.asarray(masks).astype(bool)
    _check_fields(train, "train", masks)
    if val is not None:
        _check_fields(val[0], "val", np.asarray(val[1]))
    if cfg.epochs < 1 or cfg.batch_size < 1:
        raise ValueError(
            f"detector.epochs and detector.batch_size must be ≥ 1, got {cfg.epochs}, {cfg.batch_size}"
        )
    N, K, H, W = train.R.shape
    C = train.d.shape[2]
    if crop_size is not None and crop_size < 1:
        raise ValueError(f"crop_size: expected a positive number of pixels or None, got {crop_size}")
    crop = crop_size if crop_size is not None and crop_size < min(H, W) else None
    dev = resolve_device(device)
    ts = _timesteps(train, timesteps, dev)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = FieldDetector.from_config(
            transformer_cfg, cfg, K, C, num_train_timesteps=num_train_timesteps, delta=delta
        )
    model.fit_normalization(train.R, train.M, train.Q, train.d, max_pixels=norm_max_pixels, seed=seed)
    model.to(dev)
    pos_weight = float(cfg.pos_weight) if cfg.pos_weight > 0 else class_balance_pos_weight(masks)

    gen = torch.Generator().manual_seed(seed)
    steps_per_epoch = math.ceil(N / cfg.batch_size)
    total_steps = steps_per_epoch * cfg.epochs
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_steps, eta_min=0.05 * cfg.lr)
    yield DetectorTrainStarted(
        n_train=N,
        n_val=0 if val is None else int(val[0].R.shape[0]),
        epochs=cfg.epochs,
        steps_per_epoch=steps_per_epoch,
        pos_weight=pos_weight,
        n_params=sum(p.numel() for p in model.parameters()),
        device=str(dev),
    )

    history: list[DetectorEpoch] = []
    best_state, best_epoch, best_val = None, 0, None
    cancelled = False
    t_start = time.perf_counter()
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        perm = torch.randperm(N, generator=gen).numpy()
        losses: list[float] = []
        for i in range(0, N, cfg.batch_size):
            if _is_cancelled(cancel):
                cancelled = True
                break
            idx = perm[i : i + cfg.batch_size]
            window = None
            if crop:
                window = (
                    _crop_origins(H, crop, len(idx), gen, cfg.crop_origins),
                    _crop_origins(W, crop, len(idx), gen, cfg.crop_origins),
                    crop,
                )
            R, M, Q, d = _batch(train, idx, dev, window)
            y = torch.from_numpy(np.ascontiguousarray(_take(masks, idx, window))).to(dev)
            if augment:
                B = len(idx)
                fh, fv = (torch.rand(2, B, generator=gen) < 0.5).to(dev)
                R, M, Q, y = (_flip(_flip(t, fh, -1), fv, -2) for t in (R, M, Q, y))
                d = _flip(_flip(d, fh, -1), fv, -2)
            logits = model(R, M, Q, d, ts)
            loss = detector_loss(logits, y, pos_weight, cfg.dice_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            losses.append(loss.item())
        if cancelled and not losses:
            break
        val_loss = val_auroc = None
        if val is not None:
            val_loss, val_auroc = _evaluate(
                model,
                val[0],
                np.asarray(val[1]).astype(bool),
                ts,
                cfg.batch_size,
                pos_weight,
                cfg.dice_weight,
                dev,
            )
            if best_val is None or val_loss < best_val:
                best_val, best_epoch = val_loss, epoch
                best_state = copy.deepcopy(model.state_dict())
        else:
            best_epoch = epoch
        ev = DetectorEpoch(
            epoch=epoch,
            epochs=cfg.epochs,
            loss=float(np.mean(losses)),
            val_loss=val_loss,
            val_auroc=val_auroc,
            lr=float(opt.param_groups[0]["lr"]),
            elapsed_s=time.perf_counter() - t_start,
        )
        history.append(ev)
        yield ev
        if cancelled:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    yield DetectorTrained(
        model=model,
        epochs_run=len(history),
        best_epoch=best_epoch,
        best_val_loss=best_val,
        cancelled=cancelled,
        history=history,
    )


# ---------------------------------------------------------------------------------------------
# inference


@torch.no_grad()
def predict_outputs(
    model: FieldDetector,
    fields: FieldArrays,
    batch_size: int = 8,
    device: str | torch.device = "cpu",
    timesteps: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """All of `FieldDetector.maps` for every image, as float32 numpy arrays.

    Returns:
        ``A``, ``logits``, ``E``, ``NS``, ``DV``, ``E_ref``, ``NS_ref``, ``DV_ref``: ``(N, H, W)``;
        ``a``: ``(N, K, H, W)``.
    """
    _check_fields(fields, "fields")
    dev = resolve_device(device)
    model = model.to(dev).eval()
    ts = _timesteps(fields, timesteps, dev)
    N = fields.R.shape[0]
    parts: dict[str, list[np.ndarray]] = {}
    for i in range(0, N, batch_size):
        idx = np.arange(i, min(i + batch_size, N))
        out = model.maps(*_batch(fields, idx, dev), ts)
        for k, v in out.items():
            parts.setdefault(k, []).append(v.float().cpu().numpy())
    return {k: np.concatenate(v) for k, v in parts.items()}


@torch.no_grad()
def predict_maps(
    model: FieldDetector,
    fields: FieldArrays,
    batch_size: int = 8,
    device: str | torch.device = "cpu",
    timesteps: np.ndarray | None = None,
) -> np.ndarray:
    """Anomaly maps ``A = sigmoid(f_ψ(...))`` as ``(N, H, W)`` float32.

    ``timesteps`` ``(K,)`` overrides ``fields.timesteps`` (needed when that is ``None``).
    """
    _check_fields(fields, "fields")
    dev = resolve_device(device)
    model = model.to(dev).eval()
    ts = _timesteps(fields, timesteps, dev)
    N = fields.R.shape[0]
    out = []
    for i in range(0, N, batch_size):
        idx = np.arange(i, min(i + batch_size, N))
        out.append(torch.sigmoid(model(*_batch(fields, idx, dev), ts)).cpu().numpy())
    return np.concatenate(out).astype(np.float32, copy=False)
