"""Field Transformer ``g_φ`` (DESIGN.md section 4).

Each pixel ``u`` is an independent sequence of ``K`` tokens, one per reverse step ``n``:

``z_n(u) = [log(R_n+δ), log(M_n+δ), log(Q_n+δ), d_n(u) padded to 3 channels, temb(s_n)]``

where ``temb`` is the sinusoidal timestep embedding of the DDIM timestep ``s_n``. The three log
fields are standardised with a per-feature ``(mean, std)`` fitted on the source training fields
(buffers ``feat_mean``/``feat_std``, stored in the checkpoint; identity until fitted). Tokens are
projected to ``d_model``, a learned step embedding (``K`` positions) is added, ``L`` pre-norm
encoder layers run over the ``K`` tokens of each pixel, and attention pooling with a learned query
gives the step weights ``a_n(u)`` (softmax over ``n``) and the embedding ``h(u) = Σ_n a_n h_n(u)``.

Pixels never interact: the module reshapes ``(B, K, ·, H, W)`` to ``(B·H·W, K, F)`` and processes
the sequences in chunks of at most ``chunk_size`` (with activation checkpointing per chunk when
gradients are on, so training memory is bounded by one chunk).
"""

from __future__ import annotations

import math
from functools import partial

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from refcfa.config.schema import TransformerConfig

TIMESTEP_EMBED_DIM = 16
D_PAD = 3  # d_n is padded to 3 channels (C ∈ {1, 3})


def timestep_embedding(timesteps: torch.Tensor, dim: int = TIMESTEP_EMBED_DIM) -> torch.Tensor:
    """Sinusoidal embedding ``[sin(s·f_i), cos(s·f_i)]``, ``f_i = 10000^(−i/(dim/2))``.

    Args:
        timesteps: ``(...,)`` integer or float DDIM timesteps ``s_n``.

    Returns:
        ``(..., dim)`` float32.
    """
    half = dim // 2
    freqs = torch.exp(
        -math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=timesteps.device) / half
    )
    args = timesteps.float().unsqueeze(-1) * freqs
    return torch.cat([torch.sin(args), torch.cos(args)], dim=-1)


class FieldTransformer(nn.Module):
    """Per-pixel transformer over the ``K`` reverse steps of a Residual-Evolution Field.

    Args:
        cfg: ``d_model``, ``layers``, ``heads``, ``dropout``.
        K: number of reverse steps (sequence length; the learned step embedding has ``K`` slots).
        C: image channels of ``d`` (1 or 3).
        num_train_timesteps: the diffusion's ``T`` (kept for the architecture signature).
        delta: the ``δ`` inside the logs.
        chunk_size: most pixel sequences processed at once.
    """

    def __init__(
        self,
        cfg: TransformerConfig,
        K: int,
        C: int,
        num_train_timesteps: int = 1000,
        delta: float = 1e-6,
        chunk_size: int = 65536,
    ) -> None:
        super().__init__()
        if C < 1 or C > D_PAD:
            raise ValueError(f"C: expected 1..{D_PAD} image channels for d_n, got {C}")
        if K < 1:
            raise ValueError(f"K: expected at least one reverse step, got {K}")
        if cfg.d_model % cfg.heads != 0:
            raise ValueError(
                f"transformer.d_model={cfg.d_model} must be divisible by transformer.heads={cfg.heads}"
            )
        self.K = K
        self.C = C
        self.d_model = cfg.d_model
        self.num_train_timesteps = num_train_timesteps
        self.delta = delta
        self.chunk_size = chunk_size
        in_features = 3 + D_PAD + TIMESTEP_EMBED_DIM
        self.register_buffer("feat_mean", torch.zeros(3))
        self.register_buffer("feat_std", torch.ones(3))
        self.input_proj = nn.Linear(in_features, cfg.d_model)
        self.step_embed = nn.Parameter(torch.randn(K, cfg.d_model) * 0.02)
        layer = nn.TransformerEncoderLayer(
            d_model=cfg.d_model,
            nhead=cfg.heads,
            dim_feedforward=4 * cfg.d_model,
            dropout=cfg.dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(
            layer, num_layers=cfg.layers, norm=nn.LayerNorm(cfg.d_model), enable_nested_tensor=False
        )
        # attention pooling: score_n = <q, W_k h_n> / sqrt(d_model), a = softmax_n(score)
        self.pool_query = nn.Parameter(torch.randn(cfg.d_model) * 0.02)
        self.pool_key = nn.Linear(cfg.d_model, cfg.d_model, bias=False)

    def set_normalization(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Set the standardisation of ``[log(R+δ), log(M+δ), log(Q+δ)]`` (each ``(3,)``)."""
        self.feat_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.feat_std.copy_(torch.as_tensor(std, dtype=torch.float32))

    def tokens(
        self,
        R: torch.Tensor,
        M: torch.Tensor,
        Q: torch.Tensor,
        d: torch.Tensor,
        timesteps: torch.Tensor,
    ) -> torch.Tensor:
        """Token features ``z_n(u)`` as ``(B·H·W, K, F)``, pixels in ``(b, y, x)`` row-major order.

        Args:
            R, M, Q: ``(B, K, H, W)``; d: ``(B, K, C, H, W)``; timesteps: ``(K,)`` or ``(B, K)``.
        """
        B, K, H, W = R.shape
        if K != self.K:
            raise ValueError(f"fields have K={K} steps but the Field Transformer was built for K={self.K}")
        if d.shape != (B, K, self.C, H, W):
            raise ValueError(f"d: expected shape {(B, K, self.C, H, W)}, got {tuple(d.shape)}")
        for name, x in (("M", M), ("Q", Q)):
            if x.shape != R.shape:
                raise ValueError(f"{name}: expected shape {tuple(R.shape)} (like R), got {tuple(x.shape)}")
        logs = torch.stack(
            [torch.log(x.float().clamp_min(0) + self.delta) for x in (R, M, Q)], dim=2
        )  # (B, K, 3, H, W)
        logs = (logs - self.feat_mean.view(1, 1, 3, 1, 1)) / self.feat_std.view(1, 1, 3, 1, 1)
        dd = d.float()
        if self.C < D_PAD:
            dd = torch.cat([dd, dd.new_zeros(B, K, D_PAD - self.C, H, W)], dim=2)
        feats = torch.cat([logs, dd], dim=2)  # (B, K, 6, H, W)
        feats = feats.permute(0, 3, 4, 1, 2).reshape(B * H * W, K, 3 + D_PAD)
        ts = torch.as_tensor(timesteps, device=R.device)
        if ts.ndim == 1:
            if ts.shape[0] != K:
                raise ValueError(f"timesteps: expected {K} values (one per step), got {ts.shape[0]}")
            temb = timestep_embedding(ts).unsqueeze(0).expand(B * H * W, K, -1)
        elif ts.shape == (B, K):
            temb = timestep_embedding(ts)  # (B, K, T)
            temb = temb[:, None, None].expand(B, H, W, K, -1).reshape(B * H * W, K, -1)
        else:
            raise ValueError(f"timesteps: expected shape ({K},) or ({B}, {K}), got {tuple(ts.shape)}")
        return torch.cat([feats, temb], dim=-1)

    def encode(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode token sequences ``z`` ``(P, K, F)`` → ``(h (P, d_model), a (P, K))``."""
        x = self.input_proj(z) + self.step_embed
        x = self.encoder(x)  # (P, K, d_model), final LayerNorm included
        scores = self.pool_key(x) @ self.pool_query / math.sqrt(self.d_model)  # (P, K)
        a = torch.softmax(scores, dim=-1)
        h = torch.einsum("pk,pkd->pd", a, x)
        return h, a

    def forward(
        self,
        R: torch.Tensor,
        M: torch.Tensor,
        Q: torch.Tensor,
        d: torch.Tensor,
        timesteps: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Run ``g_φ`` on every pixel.

        Args:
            R, M, Q: ``(B, K, H, W)``; d: ``(B, K, C, H, W)``; timesteps: ``(K,)`` or ``(B, K)``.

        Returns:
            ``h``: ``(B, d_model, H, W)``; ``a``: ``(B, K, H, W)``, summing to 1 over ``K``.
        """
        B, K, H, W = R.shape
        z = self.tokens(R, M, Q, d, timesteps)
        P = z.shape[0]
        if P <= self.chunk_size:
            h, a = self.encode(z)
        else:
            # under autograd, recompute each chunk in the backward pass instead of keeping all
            # chunks' activations: memory stays at one chunk's worth, whatever B·H·W is
            encode = (
                partial(checkpoint, self.encode, use_reentrant=False)
                if torch.is_grad_enabled()
                else self.encode
            )
            outs = [encode(z[i : i + self.chunk_size]) for i in range(0, P, self.chunk_size)]
            h = torch.cat([o[0] for o in outs])
            a = torch.cat([o[1] for o in outs])
        h = h.view(B, H, W, self.d_model).permute(0, 3, 1, 2).contiguous()
        a = a.view(B, H, W, K).permute(0, 3, 1, 2).contiguous()
        return h, a
