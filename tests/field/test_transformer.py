"""Field Transformer g_φ: shapes, pooling weights, per-pixel independence."""

from __future__ import annotations

import pytest
import torch

from refcfa.config.schema import TransformerConfig
from refcfa.field.transformer import FieldTransformer, timestep_embedding

CFG = TransformerConfig(d_model=16, layers=2, heads=4)


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """These models are tiny: one thread is as fast, and immune to a busy machine's contention."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _fields(B=2, K=5, C=3, H=4, W=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    R, M, Q = (torch.rand(B, K, H, W, generator=g) for _ in range(3))
    d = torch.randn(B, K, C, H, W, generator=g)
    d = d / d.norm(dim=2, keepdim=True)
    ts = torch.linspace(100, 10, K).round()
    return R, M, Q, d, ts


def _model(K=5, C=3, **kw):
    torch.manual_seed(0)
    return FieldTransformer(CFG, K=K, C=C, **kw).eval()


@pytest.mark.parametrize("C", [1, 3])
def test_shapes_and_weights_sum_to_one(C):
    R, M, Q, d, ts = _fields(C=C)
    with torch.no_grad():
        h, a = _model(C=C)(R, M, Q, d, ts)
    assert h.shape == (2, 16, 4, 6)
    assert a.shape == (2, 5, 4, 6)
    assert torch.all(a >= 0)
    assert torch.allclose(a.sum(1), torch.ones(2, 4, 6), atol=1e-5)


def test_pixels_are_independent_sequences():
    R, M, Q, d, ts = _fields(B=1, H=3, W=5)
    perm = torch.randperm(15, generator=torch.Generator().manual_seed(1))

    def shuffle(x):  # permute the H*W pixels, keep the leading axes
        flat = x.flatten(-2)
        return flat[..., perm].view(x.shape)

    model = _model()
    with torch.no_grad():
        h, a = model(R, M, Q, d, ts)
        h2, a2 = model(shuffle(R), shuffle(M), shuffle(Q), shuffle(d), ts)
    assert torch.allclose(shuffle(h), h2, atol=1e-5)
    assert torch.allclose(shuffle(a), a2, atol=1e-6)
    # and one pixel's output depends on that pixel only
    R3 = R.clone()
    R3[0, :, 0, 0] *= 5
    with torch.no_grad():
        h3, _ = model(R3, M, Q, d, ts)
    changed = (h3 - h).abs().amax(1)[0] > 1e-6
    assert changed[0, 0] and changed.sum() == 1


def test_chunking_and_per_image_timesteps_match():
    R, M, Q, d, ts = _fields()
    with torch.no_grad():
        h, a = _model()(R, M, Q, d, ts)
        h2, a2 = _model(chunk_size=7)(R, M, Q, d, ts.expand(2, -1))
    assert torch.allclose(h, h2, atol=1e-5)
    assert torch.allclose(a, a2, atol=1e-6)


def test_timestep_embedding_is_sinusoidal():
    emb = timestep_embedding(torch.tensor([0, 100]), dim=8)
    assert emb.shape == (2, 8)
    assert torch.allclose(emb[0], torch.tensor([0.0] * 4 + [1.0] * 4))
    assert emb[1, 0].item() == pytest.approx(torch.sin(torch.tensor(100.0)).item(), abs=1e-5)


def test_gradients_reach_all_parameters():
    R, M, Q, d, ts = _fields()
    model = _model().train()
    h, a = model(R, M, Q, d, ts)
    (h.square().mean() + (a * R).sum()).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def test_bad_inputs_are_refused():
    R, M, Q, d, ts = _fields(K=5)
    with pytest.raises(ValueError, match="K=5"):
        _model(K=4)(R, M, Q, d, ts[:4])
    with pytest.raises(ValueError, match="timesteps"):
        _model()(R, M, Q, d, ts[:3])
    with pytest.raises(ValueError, match="d: expected"):
        _model(C=1)(R, M, Q, d, ts)
    with pytest.raises(ValueError, match="divisible"):
        FieldTransformer(TransformerConfig(d_model=10, heads=4), K=5, C=3)


def test_chunked_training_gives_the_same_gradients():
    R, M, Q, d, ts = _fields()
    grads = []
    for chunk in (65536, 10):
        model = _model(chunk_size=chunk).train()
        h, a = model(R, M, Q, d, ts)
        (h.square().mean() + (a * R).sum()).backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    assert torch.allclose(grads[0], grads[1], atol=1e-5)
