"""DiffusionTrainer: reproducibility, resume, cancel, events, what T1 sees, warm start, hooks."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from refcfa.engine import checkpoint as ck
from refcfa.engine.batches import load_image_bank, split_training_images
from refcfa.engine.distributed import DistInfo
from refcfa.engine.ema import EMA
from refcfa.engine.events import (
    CheckpointSaved,
    EpochEnd,
    LogEvent,
    StepEvent,
    TrainFinished,
    TrainStarted,
    ValidationEvent,
)
from refcfa.engine.optim import lr_factor_fn
from refcfa.engine.trainer import DiffusionTrainer, train_score_network
from refcfa.errors import CheckpointError, ConfigError

from .helpers import drain


def _states_equal(a: dict, b: dict, atol: float = 0.0) -> bool:
    assert a.keys() == b.keys()
    return all(torch.allclose(a[k].float(), b[k].float(), rtol=0, atol=atol) for k in a)


def test_same_seed_same_weights_twice(make_cfg, tmp_path):
    paths = [
        train_score_network(make_cfg("train.max_steps=3", out=tmp_path / f"run{i}"), "source")
        for i in range(2)
    ]
    a, b = (ck.load_checkpoint(p) for p in paths)
    assert a["step"] == b["step"] == 3
    assert _states_equal(a["model"], b["model"]) and _states_equal(a["ema"], b["ema"])
    first = ck.load_checkpoint(paths[0])
    init = DiffusionTrainer(make_cfg("train.max_steps=3", out=tmp_path / "init"), "source")
    init.setup()
    assert not _states_equal(first["model"], {k: v.cpu() for k, v in init.model.state_dict().items()})
    # another seed trains differently
    other = ck.load_checkpoint(
        train_score_network(make_cfg("train.max_steps=3", "seed=1", out=tmp_path / "s1"))
    )
    assert not _states_equal(a["model"], other["model"])


def test_resume_continues_exactly(make_cfg, tmp_path):
    full = DiffusionTrainer(make_cfg(out=tmp_path / "full"), "source")
    events_full = drain(full)
    ref = ck.load_checkpoint(full.last_checkpoint)

    cfg = make_cfg(out=tmp_path / "split")
    first = DiffusionTrainer(cfg, "source")
    events = drain(first, cancel_at=2)  # cancelled before step 3: stops at 2, checkpoint written
    finished = events[-1]
    assert isinstance(finished, TrainFinished) and finished.cancelled and finished.step == 2
    assert finished.reason == "cancelled"
    stopped = ck.load_checkpoint(finished.checkpoint)
    assert stopped["step"] == 2 and stopped["epoch"] == 1

    second = DiffusionTrainer(cfg, "source", resume=True)
    events2 = drain(second)
    started = next(e for e in events2 if isinstance(e, TrainStarted))
    assert started.start_step == 2 and started.resumed_from == finished.checkpoint
    assert [e.step for e in events2 if isinstance(e, StepEvent)] == [3, 4, 5, 6]
    out = ck.load_checkpoint(second.last_checkpoint)
    assert out["step"] == 6
    assert _states_equal(out["model"], ref["model"], atol=1e-6)
    assert _states_equal(out["ema"], ref["ema"], atol=1e-6)
    losses_full = [e.loss for e in events_full if isinstance(e, StepEvent)]
    losses_split = [e.loss for e in events if isinstance(e, StepEvent)] + [
        e.loss for e in events2 if isinstance(e, StepEvent)
    ]
    assert losses_split == pytest.approx(losses_full, abs=1e-6)
    assert out["val_loss"] == pytest.approx(ref["val_loss"], abs=1e-6)
    # resuming a finished run does nothing
    again = drain(DiffusionTrainer(cfg, "source", resume=True))
    assert again[-1].reason == "already_done" and again[-1].step == 6


def test_resume_without_checkpoint_starts_from_scratch(make_cfg):
    events = drain(DiffusionTrainer(make_cfg("train.max_steps=1"), "source", resume=True))
    assert any(isinstance(e, LogEvent) and "no checkpoint to resume from" in e.message for e in events)
    assert events[-1].step == 1 and next(e for e in events if isinstance(e, TrainStarted)).start_step == 0


def test_events_epochs_and_checkpoint_names(make_cfg):
    trainer = DiffusionTrainer(make_cfg("train.eval_every=2"), "source")
    events = drain(trainer)
    assert isinstance(events[0], TrainStarted) and isinstance(events[-1], TrainFinished)
    started = events[0]
    # 12 train normals, 1 held out (val_fraction 0.1), batch 4 -> ceil(11 / 4) = 3 steps per epoch
    assert (started.n_train, started.n_val, started.steps_per_epoch, started.total_steps) == (11, 1, 3, 6)
    steps = [e for e in events if isinstance(e, StepEvent)]
    assert [e.step for e in steps] == [1, 2, 3, 4, 5, 6]
    assert [e.epoch for e in steps] == [1, 1, 1, 2, 2, 2]
    assert all(math.isfinite(e.loss) and e.throughput > 0 and e.eta_s >= 0 for e in steps)
    assert steps[0].lr == pytest.approx(1e-4) and steps[1].lr == pytest.approx(2e-4)  # warm-up of 2 steps
    assert [(e.epoch, e.step) for e in events if isinstance(e, EpochEnd)] == [(1, 3), (2, 6)]
    assert [e.step for e in events if isinstance(e, ValidationEvent)] == [2, 4, 6]
    saved = [e for e in events if isinstance(e, CheckpointSaved)]
    assert [(e.step, e.path.rsplit("/", 1)[-1]) for e in saved] == [
        (3, "checkpoint_epoch_1.pth"),
        (6, "checkpoint_epoch_2.pth"),
    ]
    final = events[-1]
    assert final.reason == "max_steps" and not final.cancelled and final.checkpoint == saved[-1].path
    assert final.val_loss == pytest.approx(
        next(e for e in reversed(events) if isinstance(e, ValidationEvent)).val_loss
    )
    payload = ck.load_checkpoint(final.checkpoint)
    for key in ck.SCORE_NETWORK_KEYS:
        assert key in payload, key
    assert payload["domain"] == "source" and payload["transductive"] is False
    assert payload["config"]["train"]["max_steps"] == 6
    assert payload["rng"]["torch"].dtype == torch.uint8
    assert set(payload["val_image_ids"]).isdisjoint(payload["train_image_ids"])


def test_load_score_network_gives_ema_weights_for_inference(make_cfg):
    path = train_score_network(make_cfg(), "source")
    unet, cfg_dict, meta = ck.load_score_network(path, "cpu")
    payload = ck.load_checkpoint(path)
    assert not unet.training and not any(p.requires_grad for p in unet.parameters())
    assert _states_equal({k: v for k, v in unet.state_dict().items()}, payload["ema"])
    assert not _states_equal(payload["ema"], payload["model"])
    assert meta["step"] == 6 and meta["domain"] == "source" and "model" not in meta
    assert cfg_dict["data"]["image_size"] == 16
    raw, _, _ = ck.load_score_network(path, "cpu", use_ema=False)
    assert _states_equal(raw.state_dict(), payload["model"])


def test_target_mixture_is_transductive_and_never_reads_labels(make_cfg, monkeypatch):
    cfg = make_cfg()
    images = split_training_images(cfg, "target")
    ids = [s.image_id for s in images.train]
    assert images.transductive
    assert sum(i.startswith("test/") for i in ids) == 10  # 4 good + 6 defective, unlabelled
    assert all(s.split == "train" for s in images.val)
    inductive = split_training_images(make_cfg("data.transductive=false"), "target")
    assert not inductive.transductive and all(s.split == "train" for s in inductive.train)
    source = split_training_images(cfg, "source")
    assert all(s.split == "train" and s.label == 0 for s in source.train + source.val)

    class Poison:
        def _boom(self, *args):
            raise AssertionError("T1 read a target label, defect or mask")

        __bool__ = __int__ = __index__ = __float__ = __eq__ = __lt__ = __gt__ = __hash__ = __str__ = _boom

    import refcfa.engine.batches as batches_mod

    real = batches_mod.make_samples

    def poisoned(root, fmt, category):
        return [
            replace(s, label=Poison(), defect=Poison(), mask_path=Poison()) for s in real(root, fmt, category)
        ]

    monkeypatch.setattr(batches_mod, "make_samples", poisoned)
    trainer = DiffusionTrainer(make_cfg("train.max_steps=2"), "target")
    events = drain(trainer)
    assert events[-1].step == 2
    payload = ck.load_checkpoint(events[-1].checkpoint)
    assert payload["domain"] == "target" and payload["transductive"] is True
    assert sum(i.startswith("test/") for i in payload["train_image_ids"]) == 10


def test_target_warm_start_from_source(make_cfg):
    cfg = make_cfg("train.init_target_from_source=true")
    with pytest.raises(FileNotFoundError, match="no source checkpoint.*refcfa train --stage source"):
        DiffusionTrainer(cfg, "target").setup()
    src = train_score_network(cfg, "source")
    t1 = DiffusionTrainer(cfg, "target")
    t1.setup()
    source_ema = ck.load_checkpoint(src)["ema"]
    assert _states_equal({k: v.cpu() for k, v in t1.model.state_dict().items()}, source_ema)
    events = drain(t1)
    assert next(e for e in events if isinstance(e, TrainStarted)).init_from == str(src)
    assert ck.load_checkpoint(events[-1].checkpoint)["init_from"] == str(src)
    # an architecture change is refused, naming both signatures
    bad = make_cfg("train.init_target_from_source=true", "model.block_out_channels=[4, 8]")
    with pytest.raises(CheckpointError, match="another network architecture"):
        DiffusionTrainer(bad, "target").setup()


def test_resume_with_another_architecture_is_refused(make_cfg):
    train_score_network(make_cfg("train.max_steps=1"), "source")
    bad = make_cfg("model.block_out_channels=[4, 8]")
    with pytest.raises(CheckpointError, match=r"block_out_channels.*\[8, 16\].*\[4, 8\]"):
        DiffusionTrainer(bad, "source", resume=True).setup()


def test_time_budget_and_early_stop_hooks_stop_with_a_checkpoint(make_cfg, monkeypatch):
    events = drain(DiffusionTrainer(make_cfg("train.max_time_s=1.0e-9", "train.max_steps=50"), "source"))
    assert events[-1].reason == "time_budget" and events[-1].step == 1
    assert ck.load_checkpoint(events[-1].checkpoint)["step"] == 1

    trainer = DiffusionTrainer(
        make_cfg("train.eval_every=1", "train.early_stop_patience=2", "train.max_steps=50"), "source"
    )
    monkeypatch.setattr(trainer, "validate", lambda: 0.5)  # never improves after the first
    events = drain(trainer)
    assert events[-1].reason == "early_stop" and events[-1].step == 3
    assert ck.load_checkpoint(events[-1].checkpoint)["step"] == 3


def test_config_checks(make_cfg):
    with pytest.raises(ConfigError, match="train.early_stop_patience"):
        DiffusionTrainer(make_cfg("train.early_stop_patience=2"), "source")
    with pytest.raises(ConfigError, match="train.crop_size"):
        DiffusionTrainer(make_cfg("train.crop_size=9"), "source")  # not divisible by 2
    with pytest.raises(ConfigError, match="train.crop_size"):
        DiffusionTrainer(make_cfg("train.crop_size=32"), "source")  # larger than the images
    with pytest.raises(ConfigError, match="train.batch_size.*3 ranks"):
        DiffusionTrainer(make_cfg(), "source", dist=DistInfo(rank=0, world_size=3)).setup()
    with pytest.raises(ValueError, match="which='middle'"):
        DiffusionTrainer(make_cfg(), "middle")


def test_random_crops_and_augmentation_draws(make_cfg):
    trainer = DiffusionTrainer(
        make_cfg("train.crop_size=8", "data.augment={hflip: true, rot90: true}"), "source"
    )
    trainer.setup()
    x, t, noise = trainer.draw_batch(0)
    assert x.shape == noise.shape == (4, trainer.channels, 8, 8) and t.shape == (4,)
    assert float(x.min()) >= -1.0 and float(x.max()) <= 1.0
    x2, t2, n2 = trainer.draw_batch(0)  # a pure function of the step
    assert torch.equal(x, x2) and torch.equal(t, t2) and torch.equal(noise, n2)
    assert not torch.equal(trainer.draw_batch(1)[2], noise)
    events = drain(trainer)
    assert events[-1].step == 6
    # the bank holds exactly the pixels ImageDataset serves; threads read the same
    from refcfa.data.torch_dataset import ImageDataset

    samples = trainer.images.train
    bank = load_image_bank(samples, 16, trainer.channels)
    assert torch.equal(load_image_bank(samples, 16, trainer.channels, workers=3), bank)
    item = ImageDataset(samples, 16, trainer.channels)[4]["image"]
    assert torch.allclose(bank[4].float() / 127.5 - 1.0, item)


def test_lr_schedules():
    from refcfa.config.schema import TrainConfig

    f = lr_factor_fn(TrainConfig(max_steps=110, warmup_steps=10, scheduler="cosine"))
    assert [f(0), f(9)] == pytest.approx([0.1, 1.0])
    assert (
        f(10) == pytest.approx(1.0)
        and f(60) == pytest.approx(0.5)
        and f(110) == pytest.approx(0.0, abs=1e-12)
    )
    g = lr_factor_fn(TrainConfig(warmup_steps=0, scheduler="cosine_restarts", restart_period=20))
    # torch's CosineAnnealingWarmRestarts(T_0=20), eta_min=0
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    ref = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=20)
    for s in range(45):
        assert g(s) == pytest.approx(opt.param_groups[0]["lr"], abs=1e-9), s
        opt.step()
        ref.step()
    h = lr_factor_fn(TrainConfig(warmup_steps=0, scheduler="constant"))
    assert h(0) == h(1000) == 1.0


def test_ema_warmup_decay():
    net = torch.nn.Linear(2, 1, bias=False)
    ema = EMA(net, decay=0.999)
    assert ema.current_decay() == pytest.approx(0.1)
    with torch.no_grad():
        net.weight.fill_(1.0)
    start = ema.shadow[0].clone()
    ema.update(net)
    assert torch.allclose(ema.shadow[0], 0.1 * start + 0.9)
    assert ema.current_decay() == pytest.approx(2 / 11)
    ema.updates = 10_000
    assert ema.current_decay() == pytest.approx(0.999)
