"""The score network `ε_θ(x_t, t)`: a diffusers `UNet2DModel` built from `ModelConfig`.

The network is always built from the config (never downloaded). Level `i` of the UNet has
`block_out_channels[i]` channels and is a `DownBlock2D` or, where `attention_levels[i]` is true,
an `AttnDownBlock2D`; the up path mirrors it (`UpBlock2D` / `AttnUpBlock2D`, deepest level first).
Input and output channels are the image channels `C ∈ {1, 3}` (ε-prediction has the shape of `x`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from refcfa.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from diffusers import UNet2DModel

    from refcfa.config.schema import Config, ModelConfig

ARCHITECTURE_CLASS = "diffusers.UNet2DModel"


def resolve_in_channels(cfg: Config, data_channels: int | None = None) -> int:
    """The network's input channels: `model.in_channels` or `data.channels`, else the data's.

    Args:
        cfg: The run's config.
        data_channels: Channels the images have on disk (`refcfa.data.torch_dataset.infer_channels`).
    """
    mc, dc = cfg.model.in_channels, cfg.data.channels
    if mc is not None and dc is not None and mc != dc:
        raise ConfigError(
            f"config keys `model.in_channels` = {mc} and `data.channels` = {dc} disagree: the network reads the "
            "images as loaded; set one of them (or both to the same value)"
        )
    for key, value in (("model.in_channels", mc), ("data.channels", dc)):
        if value is not None:
            if value not in (1, 3):
                raise ConfigError(f"config key `{key}` is {value!r}; expected 1, 3 or null (follow the data)")
            return int(value)
    if data_channels is None:
        raise ConfigError(
            "cannot tell the image channels: set `data.channels` (1 or 3) or give images to infer them from"
        )
    return int(data_channels)


def _block_types(model_cfg: ModelConfig) -> tuple[tuple[str, ...], tuple[str, ...]]:
    levels = list(model_cfg.attention_levels)
    if len(levels) != len(model_cfg.block_out_channels):
        raise ConfigError(
            f"config key `model.attention_levels` has {len(levels)} entries but `model.block_out_channels` "
            f"has {len(model_cfg.block_out_channels)}; give one true/false per level"
        )
    down = tuple("AttnDownBlock2D" if a else "DownBlock2D" for a in levels)
    up = tuple("AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(levels))
    return down, up


def architecture_signature(model_cfg: ModelConfig, in_channels: int, image_size: int) -> dict[str, Any]:
    """Everything that fixes the network's parameter shapes, as plain Python values.

    Stored in every checkpoint; a checkpoint is only loaded into a network whose signature is
    equal (`refcfa.engine.checkpoint.load_checkpoint(path, expected_arch=...)`).
    """
    down, up = _block_types(model_cfg)
    return {
        "class": ARCHITECTURE_CLASS,
        "sample_size": int(image_size),
        "in_channels": int(in_channels),
        "out_channels": int(in_channels),
        "block_out_channels": [int(c) for c in model_cfg.block_out_channels],
        "layers_per_block": int(model_cfg.layers_per_block),
        "down_block_types": list(down),
        "up_block_types": list(up),
        "attention_head_dim": int(model_cfg.attention_head_dim),
        "norm_num_groups": int(model_cfg.norm_num_groups),
    }


def build_score_network(model_cfg: ModelConfig, in_channels: int, image_size: int) -> UNet2DModel:
    """Build `ε_θ`: `forward(x_t (B, C, H, W), t (B,) long).sample -> eps_hat (B, C, H, W)`.

    Randomly initialised with the global torch RNG (seed it first for a reproducible start).
    `dropout` is not part of the architecture signature: it changes training, not the weights' shapes.
    """
    from diffusers import UNet2DModel

    sig = architecture_signature(model_cfg, in_channels, image_size)
    return UNet2DModel(
        sample_size=sig["sample_size"],
        in_channels=sig["in_channels"],
        out_channels=sig["out_channels"],
        block_out_channels=tuple(sig["block_out_channels"]),
        layers_per_block=sig["layers_per_block"],
        down_block_types=tuple(sig["down_block_types"]),
        up_block_types=tuple(sig["up_block_types"]),
        attention_head_dim=sig["attention_head_dim"],
        norm_num_groups=sig["norm_num_groups"],
        dropout=float(model_cfg.dropout),
    )


def count_parameters(module) -> int:
    """Number of trainable parameters of a module."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


__all__ = ["architecture_signature", "build_score_network", "count_parameters", "resolve_in_channels"]
