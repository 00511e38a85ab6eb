"""Detector head ``f_ψ`` (DESIGN.md section 5).

A small fully convolutional network with growing context: three 3×3 conv blocks with dilations
1, 2 and 4 (receptive field 15×15), each ``Conv → Norm → ReLU``, then a 1×1 conv to one logit
map, bilinearly upsampled to the image size when that differs. Replicate padding keeps the borders
free of the zero-padding artefacts a detector would otherwise learn.

The normalisation (``norm``, a choice DESIGN.md leaves open):

- ``"channel"`` (default): a LayerNorm over the channels of each pixel (`ChannelNorm`). It never
  looks across pixels, so a pixel's logit depends only on its 15×15 neighbourhood of fields — the
  same on a 32-px training crop as on the whole image, and the absolute field level is kept.
- ``"group"``: ``GroupNorm`` (8 groups), which normalises each image's feature maps by that image's
  own spatial statistics. It makes every map *relative to its image*: on a normal image the least
  regular spot is stretched until it fires, which costs image-level AUROC (measured in the README).
- ``"none"``: no normalisation (the inputs are already standardised on the source fields).

The training loss is BCE with positive weighting (by default the class balance ``n_neg / n_pos``
of the training masks, capped at `POS_WEIGHT_MAX`) plus a batch-global soft Dice.

Its input (assembled by `refcfa.field.detector.FieldDetector`) is, per pixel,
``[log E, NS, DV, log mean_n M_n, log Q_K]`` standardised, plus a 1×1 projection of ``h``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

DILATIONS = (1, 2, 4)
POS_WEIGHT_MAX = 100.0
DICE_SMOOTH = 1.0


def _groups(channels: int, max_groups: int = 8) -> int:
    """Largest group count ≤ ``max_groups`` dividing ``channels``."""
    return math.gcd(channels, max_groups)


NORMS = ("channel", "group", "none")


class ChannelNorm(nn.Module):
    """LayerNorm over the channel axis of ``(B, C, H, W)``, independently at every pixel."""

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def _norm_layer(kind: str, channels: int) -> nn.Module:
    if kind == "channel":
        return ChannelNorm(channels)
    if kind == "group":
        return nn.GroupNorm(_groups(channels), channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"detector.norm: expected one of {', '.join(NORMS)}, got {kind!r}")


class DetectorHead(nn.Module):
    """Fully convolutional logit head.

    Args:
        in_ch: input channels of the per-pixel map.
        hidden: channels of the three conv blocks.
        norm: ``"channel"``, ``"group"`` or ``"none"`` (see the module docstring).
    """

    def __init__(self, in_ch: int, hidden: int = 32, norm: str = "channel") -> None:
        super().__init__()
        if in_ch < 1 or hidden < 1:
            raise ValueError(f"DetectorHead: in_ch and hidden must be positive, got {in_ch}, {hidden}")
        blocks: list[nn.Module] = []
        ch = in_ch
        for dil in DILATIONS:
            blocks += [
                nn.Conv2d(ch, hidden, 3, padding=dil, dilation=dil, padding_mode="replicate"),
                _norm_layer(norm, hidden),
                nn.ReLU(inplace=True),
            ]
            ch = hidden
        self.body = nn.Sequential(*blocks)
        self.out = nn.Conv2d(hidden, 1, 1)

    def forward(self, x: torch.Tensor, out_size: tuple[int, int] | None = None) -> torch.Tensor:
        """Logits ``(B, 1, H', W')`` for an input map ``x`` ``(B, in_ch, H, W)``.

        ``out_size`` ``(H', W')`` (default: the input size) upsamples bilinearly.
        """
        y = self.out(self.body(x))
        if out_size is not None and tuple(out_size) != tuple(y.shape[-2:]):
            y = F.interpolate(y, size=tuple(out_size), mode="bilinear", align_corners=False)
        return y


def detector_loss(
    logits: torch.Tensor, target: torch.Tensor, pos_weight: float, dice_weight: float = 1.0
) -> torch.Tensor:
    """BCE with positive weighting + ``dice_weight`` × soft Dice (over the whole batch).

    Args:
        logits, target: ``(B, H, W)``; target in {0, 1}.
    """
    target = target.float()
    bce = F.binary_cross_entropy_with_logits(
        logits, target, pos_weight=torch.tensor(pos_weight, device=logits.device)
    )
    p = torch.sigmoid(logits)
    inter = (p * target).sum()
    dice = 1.0 - (2.0 * inter + DICE_SMOOTH) / (p.sum() + target.sum() + DICE_SMOOTH)
    return bce + dice_weight * dice


def class_balance_pos_weight(masks: np.ndarray) -> float:
    """``n_negative / n_positive`` over ``masks`` ``(N, H, W)``, capped at ``POS_WEIGHT_MAX``."""
    n_pos = int(np.count_nonzero(masks))
    if n_pos == 0:
        raise ValueError(
            "masks: the detector's training masks contain no anomalous pixel; S2 needs labelled "
            "anomalies or synthetic ones (detector.synthetic_anomalies=true)"
        )
    n_neg = int(masks.size) - n_pos
    return float(min(max(n_neg / n_pos, 1.0), POS_WEIGHT_MAX))
