"""FieldDetector (g_φ + statistics + f_ψ), its training generator and supervised_segmenter.pth."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from refcfa.alignment.fields import FieldSet
from refcfa.config.schema import DetectorConfig, TransformerConfig
from refcfa.errors import CheckpointError
from refcfa.field.detector import (
    DetectorEpoch,
    DetectorTrained,
    DetectorTrainStarted,
    FieldDetector,
    predict_maps,
    predict_outputs,
    train_detector,
)
from refcfa.field.head import DetectorHead, class_balance_pos_weight, detector_loss
from refcfa.field.segmenter_io import FILENAME, load_segmenter, save_segmenter

TCFG = TransformerConfig(d_model=16, layers=1, heads=2)
DCFG = DetectorConfig(epochs=8, batch_size=4, lr=5e-3, hidden=16, h_proj=4)


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """These models are tiny: one thread is as fast, and immune to a busy machine's contention."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make_toy_fields(n: int, seed: int, K: int = 6, C: int = 3, H: int = 16, W: int = 16):
    """A toy REF problem.

    Normal pixels: stationary log-normal R, directions drawn afresh each step (DV ~ 1), so the
    path-integrated drift Q stays small. Anomalous pixels (1-2 random rectangles per image): R
    rising over the later steps, one persistent direction, so Q grows. A random gain per image
    makes magnitude alone an ambiguous cue (mean R gives pixel AUROC ~0.7).
    """
    rng = np.random.default_rng(seed)
    masks = np.zeros((n, H, W), bool)
    for i in range(n):
        for _ in range(rng.integers(1, 3)):
            h, w = rng.integers(3, 7, size=2)
            y, x = rng.integers(0, H - h), rng.integers(0, W - w)
            masks[i, y : y + h, x : x + w] = True
    steps = (np.arange(K) + 1) / K
    gain = np.exp(0.6 * rng.standard_normal((n, 1, 1, 1)))
    amp = 0.3 * gain * np.exp(0.35 * rng.standard_normal((n, K, H, W)))
    R = np.where(masks[:, None], amp * (1.0 + 0.8 * steps[None, :, None, None] ** 2), amp)
    flipping = rng.standard_normal((n, K, C, H, W))
    persistent = rng.standard_normal((n, 1, C, H, W)) + 0.5 * rng.standard_normal((n, K, C, H, W))
    d = np.where(masks[:, None, None], persistent, flipping)
    d /= np.linalg.norm(d, axis=2, keepdims=True)
    M = 0.1 * np.exp(0.35 * rng.standard_normal((n, K, H, W)))
    r = R[:, :, None] * d * np.sqrt(C)  # clean-space residual with |r|/sqrt(C) = R
    Q = np.sqrt((np.cumsum(r / K, axis=1) ** 2).mean(axis=2))  # uniform weights w_m = 1/K
    timesteps = np.linspace(100, 100 / K, K).round()
    return FieldSet(R=R, M=M, Q=Q, d=d, timesteps=timesteps), masks


@pytest.fixture(scope="module")
def toy():
    return make_toy_fields(16, seed=0), make_toy_fields(6, seed=1), make_toy_fields(8, seed=2)


@pytest.fixture(scope="module")
def trained(toy):
    (train, mtrain), val, _ = toy
    events = list(train_detector(train, mtrain, DCFG, TCFG, seed=0, val=val))
    return events


def _signature(K=6, C=3):
    return {"K": K, "C": C, "t0": 100, "patch": 3, "image_size": 16, "timesteps": [100, 83, 67, 50, 33, 17]}


# -- model ----------------------------------------------------------------------------------------


def test_forward_and_maps_shapes():
    fields, _ = make_toy_fields(2, seed=3, C=1, H=12, W=10)
    torch.manual_seed(0)
    model = FieldDetector(TCFG, K=6, C=1, hidden=8, h_proj=2).eval()
    model.fit_normalization(fields.R, fields.M, fields.Q, fields.d)
    args = [torch.from_numpy(x) for x in (fields.R, fields.M, fields.Q, fields.d, fields.timesteps)]
    with torch.no_grad():
        logits = model(*args)
        up = model(*args, out_size=(24, 20))
        maps = model.maps(*args)
    assert logits.shape == (2, 12, 10) and up.shape == (2, 24, 20)
    assert torch.allclose(maps["A"], torch.sigmoid(logits))
    for k in ("E", "NS", "DV", "E_ref", "NS_ref", "DV_ref"):
        assert maps[k].shape == (2, 12, 10)
    assert maps["a"].shape == (2, 6, 12, 10)
    assert torch.allclose(maps["a"].sum(1), torch.ones(2, 12, 10), atol=1e-5)


def test_normalization_is_fitted_and_standardises():
    fields, _ = make_toy_fields(4, seed=4)
    model = FieldDetector(TCFG, K=6, C=3)
    assert not bool(model.norm_fitted)
    model.fit_normalization(fields.R, fields.M, fields.Q, fields.d, max_pixels=10_000)  # all pixels
    assert bool(model.norm_fitted)
    logR = np.log(fields.R + 1e-6)
    assert model.transformer.feat_mean[0].item() == pytest.approx(logR.mean(), abs=1e-4)
    assert model.transformer.feat_std[0].item() == pytest.approx(logR.std(), rel=1e-3)
    # statistic channels: median / (IQR / 1.349) of the reference (uniform-weight) statistics
    logE = np.log((fields.R**2).mean(1) + 1e-6)
    q25, q50, q75 = np.quantile(logE, [0.25, 0.5, 0.75])
    assert model.stat_center[0].item() == pytest.approx(q50, abs=1e-4)
    assert model.stat_scale[0].item() == pytest.approx((q75 - q25) / 1.349, rel=1e-3)
    logQK = np.log(fields.Q[:, -1] + 1e-6)
    assert model.stat_center[4].item() == pytest.approx(np.median(logQK), abs=1e-4)
    assert torch.all(model.stat_scale > 0)
    # a pixel sample gives nearly the same normalisation
    sampled = FieldDetector(TCFG, K=6, C=3).fit_normalization(
        fields.R, fields.M, fields.Q, fields.d, max_pixels=600, seed=1
    )
    # (log E is bimodal over these 4 images, each with its own gain: its median is not compared)
    assert torch.allclose(sampled.stat_center[1:], model.stat_center[1:], atol=0.1)


def test_head_dilations_grow_context_and_upsample():
    head = DetectorHead(in_ch=3, hidden=8).eval()
    convs = [m for m in head.body if isinstance(m, torch.nn.Conv2d)]
    assert [c.dilation for c in convs] == [(1, 1), (2, 2), (4, 4)]
    # receptive field of the conv chain alone
    x = torch.zeros(1, 3, 31, 31, requires_grad=True)
    y = x
    for conv in convs:
        y = conv(y)
    y[0, 0, 15, 15].backward()
    reach = (x.grad.abs().sum(1)[0] > 0).nonzero()
    extent = (reach.max(0).values - reach.min(0).values + 1).tolist()
    assert extent == [15, 15]  # 1 + 2 * (1 + 2 + 4)
    assert head(torch.rand(2, 3, 8, 8), out_size=(16, 16)).shape == (2, 1, 16, 16)


def test_default_head_is_local_so_crops_and_whole_images_agree():
    """The default ("channel") head's logit at a pixel depends on its 15×15 neighbourhood only:
    a 32-px training crop and the whole image give the same logits inside the crop. GroupNorm
    (image-wide statistics) does not — which is why it is not the default."""
    torch.manual_seed(0)
    x = torch.randn(1, 3, 48, 48)
    x[..., 30:40, 30:40] += 3.0  # an 'anomaly' outside the crop shifts GroupNorm's statistics
    crop = (slice(None), slice(None), slice(4, 36), slice(4, 36))
    inner = (slice(None), slice(None), slice(11, 21), slice(11, 21))  # ≥ 7 px from the crop's edges
    for norm, local in (("channel", True), ("none", True), ("group", False)):
        torch.manual_seed(1)
        head = DetectorHead(in_ch=3, hidden=8, norm=norm).eval()
        with torch.no_grad():
            whole = head(x)[crop][inner]
            cropped = head(x[crop])[inner]
        assert torch.allclose(whole, cropped, atol=1e-5) is local, norm
    with pytest.raises(ValueError, match="detector.norm"):
        DetectorHead(in_ch=3, hidden=8, norm="batch")


def test_segmenters_written_before_the_norm_option_load_with_groupnorm():
    model = FieldDetector(TCFG, K=6, C=3)
    arch = {k: v for k, v in model.arch.items() if k != "norm"}
    old = FieldDetector.from_arch(arch)
    assert isinstance(old.head.body[1], torch.nn.GroupNorm)
    assert model.arch["norm"] == "channel" and not isinstance(model.head.body[1], torch.nn.GroupNorm)


def test_loss_and_pos_weight():
    masks = np.zeros((2, 4, 4), bool)
    masks[0, :2, :2] = True  # 4 of 32 pixels
    assert class_balance_pos_weight(masks) == pytest.approx(28 / 4)
    with pytest.raises(ValueError, match="no anomalous pixel"):
        class_balance_pos_weight(np.zeros((1, 4, 4), bool))
    target = torch.from_numpy(masks).float()
    good = detector_loss(torch.where(target > 0, 8.0, -8.0), target, 7.0)
    bad = detector_loss(torch.where(target > 0, -8.0, 8.0), target, 7.0)
    assert good.item() < 0.01 < 1.0 < bad.item()


# -- training -------------------------------------------------------------------------------------


def test_detector_learns_toy_problem_on_held_out_fields(toy, trained):
    _, _, (test, mtest) = toy
    assert isinstance(trained[0], DetectorTrainStarted)
    assert [type(e) for e in trained[1:-1]] == [DetectorEpoch] * DCFG.epochs
    assert isinstance(trained[-1], DetectorTrained) and not trained[-1].cancelled
    losses = [e.loss for e in trained[1:-1]]
    assert losses[-1] < 0.7 * losses[0]
    maps = predict_maps(trained[-1].model, test, batch_size=3)
    assert maps.shape == (8, 16, 16) and maps.dtype == np.float32
    auroc = roc_auc_score(mtest.ravel(), maps.ravel())
    baseline = roc_auc_score(mtest.ravel(), test.R.mean(1).ravel())
    assert auroc >= 0.9
    assert auroc > baseline + 0.1


def test_best_validation_epoch_is_kept(trained):
    done = trained[-1]
    vals = [e.val_loss for e in done.history]
    assert done.best_epoch == int(np.argmin(vals)) + 1
    assert done.best_val_loss == pytest.approx(min(vals))
    assert all(e.val_auroc is not None and 0.5 < e.val_auroc <= 1 for e in done.history)


def test_training_is_deterministic_and_cancellable(toy):
    (train, mtrain), _, _ = toy
    cfg = DetectorConfig(epochs=2, batch_size=8, lr=5e-3, hidden=8, h_proj=2)
    runs = [list(train_detector(train, mtrain, cfg, TCFG, seed=3)) for _ in range(2)]
    assert [e.loss for e in runs[0][1:-1]] == [e.loss for e in runs[1][1:-1]]
    other = list(train_detector(train, mtrain, cfg, TCFG, seed=4))
    assert [e.loss for e in other[1:-1]] != [e.loss for e in runs[0][1:-1]]

    calls = {"n": 0}

    def cancel():
        calls["n"] += 1
        return calls["n"] > 1  # after one batch

    events = list(train_detector(train, mtrain, cfg, TCFG, seed=3, cancel=cancel))
    assert isinstance(events[-1], DetectorTrained) and events[-1].cancelled
    assert events[-1].epochs_run == 1


def test_training_refuses_bad_inputs(toy):
    (train, mtrain), _, _ = toy
    with pytest.raises(ValueError, match="masks"):
        next(train_detector(train, mtrain[:, :8], DCFG, TCFG))
    with pytest.raises(ValueError, match="no anomalous pixel"):
        next(train_detector(train, np.zeros_like(mtrain), DCFG, TCFG))
    no_ts = FieldSet(R=train.R, M=train.M, Q=train.Q, d=train.d)
    with pytest.raises(ValueError, match="timesteps"):
        next(train_detector(no_ts, mtrain, DCFG, TCFG))


# -- supervised_segmenter.pth --------------------------------------------------------------------


def test_segmenter_round_trip_gives_identical_outputs(tmp_path, toy, trained):
    _, _, (test, _) = toy
    model = trained[-1].model
    stats = {"mu": np.arange(6, dtype=np.float32), "k": 3, "nested": {"B": np.eye(2)}}
    path = save_segmenter(
        tmp_path,
        model,
        config_dict={"name": "toy", "field": {"K": 6}},
        source_stats=stats,
        field_signature=_signature(),
        extra={"history": [e.loss for e in trained[-1].history], "shape": (16, 16)},
    )
    assert path == tmp_path / FILENAME
    assert [p.name for p in tmp_path.iterdir()] == [FILENAME]  # no temporary left behind
    loaded, meta = load_segmenter(path, expected_signature=_signature())
    assert not loaded.training
    np.testing.assert_array_equal(predict_maps(loaded, test), predict_maps(model, test))
    full_a, full_b = predict_outputs(loaded, test), predict_outputs(model, test)
    np.testing.assert_array_equal(full_a["a"], full_b["a"])
    assert meta["kind"] == "supervised_segmenter" and meta["format_version"] == 1
    np.testing.assert_array_equal(meta["source_stats"]["mu"], stats["mu"])
    np.testing.assert_array_equal(meta["source_stats"]["nested"]["B"], np.eye(2))
    assert meta["config"]["name"] == "toy" and meta["extra"]["shape"] == [16, 16]
    assert meta["field_signature"]["timesteps"] == _signature()["timesteps"]


def test_segmenter_from_another_field_configuration_is_refused(tmp_path, trained):
    save_segmenter(tmp_path, trained[-1].model, config_dict={}, source_stats={}, field_signature=_signature())
    with pytest.raises(CheckpointError) as err:
        load_segmenter(tmp_path, expected_signature={**_signature(), "K": 10, "t0": 250})
    msg = str(err.value)
    assert "K=6" in msg and "K=10" in msg and "t0" in msg and "re-run S2" in msg
    with pytest.raises(ValueError, match="disagrees with the model"):
        save_segmenter(
            tmp_path, trained[-1].model, config_dict={}, source_stats={}, field_signature=_signature(K=5)
        )


class _Payload:
    def __reduce__(self):
        return (os.getcwd, ())


def test_unsafe_foreign_and_missing_files_are_refused(tmp_path):
    evil = tmp_path / "evil.pth"
    torch.save({"kind": "supervised_segmenter", "format_version": 1, "x": _Payload()}, evil)
    with pytest.raises(CheckpointError, match="refused"):
        load_segmenter(evil)
    other = tmp_path / "other.pth"
    torch.save({"model": {"w": torch.zeros(2)}}, other)
    with pytest.raises(CheckpointError, match="not a refcfa supervised segmenter"):
        load_segmenter(other)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError):
        load_segmenter(garbage)
    with pytest.raises(FileNotFoundError, match="S2"):
        load_segmenter(tmp_path / "missing.pth")
    with pytest.raises(TypeError, match="source_stats.obj"):
        save_segmenter(
            tmp_path / "x.pth",
            FieldDetector(TCFG, K=6, C=3),
            config_dict={},
            source_stats={"obj": object()},
            field_signature=_signature(),
        )


def test_crop_origins_reach_the_image_border_often():
    """Uniform origins put a border row in 1 of 33 crops (32 of 64 px); the clamped draw in ~1/4,
    so the detector learns what the border's fields look like."""
    from refcfa.field.detector import _crop_origins

    o = _crop_origins(64, 32, 20_000, torch.Generator().manual_seed(0))
    assert o.min() == 0 and o.max() == 32
    assert 0.2 < np.mean(o == 0) < 0.32 and 0.2 < np.mean(o == 32) < 0.32
    assert np.mean((o > 0) & (o < 32)) > 0.4  # interior positions are still drawn
    u = _crop_origins(64, 32, 20_000, torch.Generator().manual_seed(0), "uniform")
    assert u.min() == 0 and u.max() == 32 and np.mean(u == 0) < 0.05
    with pytest.raises(ValueError, match="detector.crop_origins"):
        _crop_origins(64, 32, 4, torch.Generator(), "edge")


def test_training_on_random_crops(toy):
    (train, mtrain), (val, mval), _ = toy
    cfg = DetectorConfig(epochs=5, batch_size=4, lr=5e-3, hidden=8, h_proj=2)
    events = list(train_detector(train, mtrain, cfg, TCFG, seed=0, val=(val, mval), crop_size=10))
    done = events[-1]
    assert done.epochs_run == 5 and done.history[-1].val_auroc > 0.8  # whole-field validation
    with pytest.raises(ValueError, match="crop_size"):
        next(train_detector(train, mtrain, cfg, TCFG, crop_size=0))
