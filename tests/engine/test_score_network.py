"""Score network builder and noise schedule."""

from __future__ import annotations

import math

import pytest
import torch

from refcfa.config import load_config
from refcfa.config.schema import DiffusionConfig, ModelConfig
from refcfa.diffusion.model import architecture_signature, build_score_network, resolve_in_channels
from refcfa.diffusion.schedule import alphas_cumprod, build_scheduler
from refcfa.errors import ConfigError


def test_network_follows_config_and_predicts_noise_shape():
    mcfg = ModelConfig(
        block_out_channels=[8, 16, 16],
        attention_levels=[False, True, False],
        attention_head_dim=4,
        norm_num_groups=4,
        layers_per_block=1,
    )
    torch.manual_seed(0)
    unet = build_score_network(mcfg, in_channels=1, image_size=16)
    assert [type(b).__name__ for b in unet.down_blocks] == ["DownBlock2D", "AttnDownBlock2D", "DownBlock2D"]
    assert [type(b).__name__ for b in unet.up_blocks] == ["UpBlock2D", "AttnUpBlock2D", "UpBlock2D"]
    x = torch.randn(2, 1, 16, 16)
    out = unet(x, torch.tensor([0, 999])).sample
    assert out.shape == (2, 1, 16, 16)
    sig = architecture_signature(mcfg, 1, 16)
    assert sig["down_block_types"] == ["DownBlock2D", "AttnDownBlock2D", "DownBlock2D"]
    assert sig["in_channels"] == sig["out_channels"] == 1 and sig["sample_size"] == 16
    # the signature holds only plain values (it goes into weights_only checkpoints)
    assert all(isinstance(v, (str, int, list)) for v in sig.values())
    # same seed, same initial weights
    torch.manual_seed(0)
    again = build_score_network(mcfg, in_channels=1, image_size=16)
    assert all(
        torch.equal(a, b)
        for a, b in zip(unet.state_dict().values(), again.state_dict().values(), strict=True)
    )


def test_in_channels_follow_data_unless_configured(quick_cfg_path):
    cfg = load_config(quick_cfg_path)
    assert resolve_in_channels(cfg, 1) == 1
    assert resolve_in_channels(cfg, 3) == 3
    cfg = load_config(quick_cfg_path, ["data.channels=1"])
    assert resolve_in_channels(cfg, 3) == 1
    cfg = load_config(quick_cfg_path, ["model.in_channels=3"])
    assert resolve_in_channels(cfg, 1) == 3  # grayscale images are loaded as 3 channels
    cfg = load_config(quick_cfg_path, ["data.channels=1", "model.in_channels=3"])
    with pytest.raises(ConfigError, match="disagree"):
        resolve_in_channels(cfg, 1)
    cfg = load_config(quick_cfg_path, ["model.in_channels=2"])
    with pytest.raises(ConfigError, match="model.in_channels"):
        resolve_in_channels(cfg, 3)


def test_linear_schedule_endpoints_and_alphas_cumprod():
    sched = build_scheduler(DiffusionConfig())
    assert sched.config.num_train_timesteps == 1000
    assert sched.config.prediction_type == "epsilon"
    assert float(sched.betas[0]) == pytest.approx(1e-4)
    assert float(sched.betas[-1]) == pytest.approx(0.02)
    ab = alphas_cumprod(sched)
    assert ab.shape == (1000,) and ab.dtype == torch.float32
    expected = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64), 0)
    assert torch.allclose(ab.double(), expected, rtol=1e-5, atol=1e-7)
    assert bool((ab[1:] < ab[:-1]).all())


def test_cosine_schedule_is_squaredcos_cap_v2():
    sched = build_scheduler(DiffusionConfig(beta_schedule="squaredcos_cap_v2"))
    ab = alphas_cumprod(sched).double()

    def f(t):  # Nichol & Dhariwal (2021), s = 0.008
        return math.cos((t / 1000 + 0.008) / 1.008 * math.pi / 2) ** 2

    for t in (0, 100, 500, 900):
        assert ab[t].item() == pytest.approx(f(t + 1) / f(0), rel=1e-3)
