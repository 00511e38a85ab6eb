"""Residual-Evolution Field (REF) primitives, DESIGN.md section 3, computed per step and pixel.

Notation map (DESIGN symbol -> code):

=========================  ==========================================================
DESIGN                     code
=========================  ==========================================================
``delta_n``, ``v_n``, ``r_n``  ``StepRecord.delta``, ``.v``, ``.r``  ``(B, C, H, W)``
``R_n(u)``                 :func:`gradient_residual` → ``FieldStep.R`` ``(B, H, W)``
``M_n(u)``                 :func:`directional_offset` → ``FieldStep.M`` ``(B, H, W)``
``Q_n(u)``                 :class:`RefAccumulator` → ``FieldStep.Q`` ``(B, H, W)``
``d_n(u)``                 :func:`residual_direction` → ``FieldStep.d`` ``(B, C, H, W)``
``w_m``                    ``RefAccumulator.weights`` (:func:`~refcfa.diffusion.trajectory.step_weights`)
``P``                      ``patch`` (3)
``δ``                      ``eps`` (1e-6)
=========================  ==========================================================

Formulas (implemented exactly):

* ``R_n(u) = sqrt( mean_c delta_n(c, u)^2 )``
* ``M_n(u) = ‖a − (a·b / (b·b + δ)) b‖ / sqrt(C P²)`` with ``a = delta_n[nbhd(u)]``,
  ``b = v_n[nbhd(u)]`` the ``P×P×C`` neighbourhood vectors under reflect padding.
* ``Q_n(u) = sqrt( mean_c ( Σ_{m≤n} w_m r_m(c, u) )^2 )``, ``w_m = (s_m − s_{m+1}) / t0``.
* ``d_n(u) = r_n(·, u) / (‖r_n(·, u)‖ + δ)`` (L2 norm over channels; the sign when ``C = 1``).

Documented choice: ``M`` is vectorised through the expansion
``‖a − αb‖² = a·a − 2α a·b + α² b·b`` (clamped at 0), where the three neighbourhood sums are
sum-pools (``avg_pool2d · P²``) of the channel-summed products on reflect-padded maps. The
expansion cancels catastrophically when ``a ∥ b``, so the products and pools are accumulated in
float64 (on CPU/CUDA; other devices keep the input dtype) and the result is cast back.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from refcfa.diffusion.trajectory import ScoreFn, StepRecord, reverse_trajectory, step_weights, timestep_grid

__all__ = [
    "FieldStep",
    "RefAccumulator",
    "compute_fields",
    "directional_offset",
    "gradient_residual",
    "residual_direction",
]

DEFAULT_EPS = 1e-6


@dataclass
class FieldStep:
    """REF primitives of step ``n`` (1-based) at ``timestep = s_n``.

    ``R, M, Q: (B, H, W)``; ``d, x0_hat: (B, C, H, W)`` (``x0_hat`` passed through from the step).
    """

    n: int
    timestep: int
    R: torch.Tensor
    M: torch.Tensor
    Q: torch.Tensor
    d: torch.Tensor
    x0_hat: torch.Tensor


def _check_4d(name: str, t: torch.Tensor) -> None:
    if not isinstance(t, torch.Tensor) or t.ndim != 4:
        raise ValueError(
            f"{name}: expected a torch tensor (B, C, H, W), got {type(t).__name__} {tuple(getattr(t, 'shape', ()))}"
        )


def gradient_residual(delta: torch.Tensor) -> torch.Tensor:
    """``R(u) = sqrt(mean_c delta(c, u)^2)``: ``(B, C, H, W) -> (B, H, W)``."""
    _check_4d("delta", delta)
    return delta.square().mean(dim=1).sqrt()


def _sum_pool(t: torch.Tensor, patch: int) -> torch.Tensor:
    """Sum of ``t (B, 1, H, W)`` over each ``patch × patch`` neighbourhood, reflect padding."""
    p = patch // 2
    if p:
        t = F.pad(t, (p, p, p, p), mode="reflect")
    return F.avg_pool2d(t, kernel_size=patch, stride=1) * float(patch * patch)


def directional_offset(
    delta: torch.Tensor, v: torch.Tensor, patch: int = 3, eps: float = DEFAULT_EPS
) -> torch.Tensor:
    """``M(u) = ‖a − (a·b/(b·b+δ)) b‖ / sqrt(C P²)``, ``a = delta[nbhd(u)]``, ``b = v[nbhd(u)]``.

    Args:
        delta: score residual ``(B, C, H, W)``.
        v: reverse-step displacement ``(B, C, H, W)``.
        patch: odd neighbourhood size ``P``; reflect padding needs ``P // 2 < min(H, W)``.
        eps: ``δ`` in the projection coefficient.

    Returns:
        ``(B, H, W)`` in ``delta``'s dtype.
    """
    _check_4d("delta", delta)
    _check_4d("v", v)
    if delta.shape != v.shape:
        raise ValueError(f"delta {tuple(delta.shape)} and v {tuple(v.shape)}: expected the same shape")
    patch = int(patch)
    B, C, H, W = delta.shape
    if patch < 1 or patch % 2 == 0:
        raise ValueError(f"patch = {patch}: expected an odd neighbourhood size >= 1 (field.patch, default 3)")
    if patch // 2 >= min(H, W):
        raise ValueError(
            f"patch = {patch} is too large for a {H}x{W} field (reflect padding needs patch // 2 < min(H, W))"
        )
    acc = torch.float64 if delta.device.type in ("cpu", "cuda") else delta.dtype
    a = delta.to(acc)
    b = v.to(acc)
    aa = _sum_pool((a * a).sum(1, keepdim=True), patch)
    ab = _sum_pool((a * b).sum(1, keepdim=True), patch)
    bb = _sum_pool((b * b).sum(1, keepdim=True), patch)
    alpha = ab / (bb + eps)
    sq = (aa - 2.0 * alpha * ab + alpha * alpha * bb).clamp_min(0.0)
    return (sq.sqrt() / float(np.sqrt(C * patch * patch))).squeeze(1).to(delta.dtype)


def residual_direction(r: torch.Tensor, eps: float = DEFAULT_EPS) -> torch.Tensor:
    """``d(u) = r(·, u) / (‖r(·, u)‖₂ + δ)`` over channels: ``(B, C, H, W) -> (B, C, H, W)``."""
    _check_4d("r", r)
    return r / (r.square().sum(dim=1, keepdim=True).sqrt() + eps)


class RefAccumulator:
    """Streaming REF: feed the steps of one trajectory in order, get a :class:`FieldStep` each.

    Holds one running sum ``Σ_{m≤n} w_m r_m`` (``(B, C, H, W)``) whatever ``K`` is: memory is
    O(1) in the number of steps.

    Args:
        weights: ``w_m``, ``m = 1..K`` (:func:`~refcfa.diffusion.trajectory.step_weights`).
        patch: ``P`` for :func:`directional_offset`.
        eps: ``δ``.
    """

    def __init__(self, weights: Sequence[float] | np.ndarray, patch: int = 3, eps: float = DEFAULT_EPS):
        w = np.asarray(weights, dtype=np.float64)
        if w.ndim != 1 or w.size < 1:
            raise ValueError(f"weights: expected a 1-D sequence of K >= 1 step weights, got shape {w.shape}")
        self.weights = tuple(float(x) for x in w)
        self.patch = int(patch)
        self.eps = float(eps)
        self.n = 0
        self.drift_sum: torch.Tensor | None = None

    @property
    def K(self) -> int:
        return len(self.weights)

    @torch.inference_mode()
    def update(self, rec: StepRecord) -> FieldStep:
        """Primitives of step ``rec.n``; steps must arrive in order ``1, 2, …, K``."""
        if rec.n != self.n + 1 or rec.n > self.K:
            raise ValueError(
                f"step n = {rec.n} arrived after step {self.n} of K = {self.K}: "
                "feed the steps of one trajectory in order (a new trajectory needs a new RefAccumulator)"
            )
        w = self.weights[rec.n - 1]
        # Out of place: rec tensors are inference tensors.
        self.drift_sum = w * rec.r if self.drift_sum is None else self.drift_sum + w * rec.r
        self.n = rec.n
        return FieldStep(
            n=rec.n,
            timestep=rec.timestep,
            R=gradient_residual(rec.delta),
            M=directional_offset(rec.delta, rec.v, self.patch, self.eps),
            Q=self.drift_sum.square().mean(dim=1).sqrt(),
            d=residual_direction(rec.r, self.eps),
            x0_hat=rec.x0_hat,
        )


def compute_fields(
    score_fn: ScoreFn,
    alphas_cumprod: torch.Tensor | np.ndarray,
    x: torch.Tensor,
    image_ids: Sequence[str],
    t0: int,
    K: int,
    seed: int,
    patch: int = 3,
    guidance_w: float = 0.0,
    eps: float = DEFAULT_EPS,
) -> Iterator[FieldStep]:
    """Run :func:`~refcfa.diffusion.trajectory.reverse_trajectory` and yield the REF of each step.

    Same arguments as ``reverse_trajectory`` plus ``patch`` (``P``) and ``eps`` (``δ``); yields
    ``K`` :class:`FieldStep` (batched, ``(B, …)``).
    """
    T = len(alphas_cumprod)
    acc = RefAccumulator(step_weights(timestep_grid(t0, K, num_train_timesteps=T)), patch=patch, eps=eps)
    for rec in reverse_trajectory(score_fn, alphas_cumprod, x, image_ids, t0, K, seed, guidance_w=guidance_w):
        yield acc.update(rec)
