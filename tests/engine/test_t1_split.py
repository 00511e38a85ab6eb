"""Which target images T1 trains on: `data.transductive` and its T1-only override."""

from __future__ import annotations

import pytest

from refcfa.config import load_config
from refcfa.engine.batches import split_training_images


@pytest.mark.parametrize(
    ("overrides", "with_test"),
    [
        ([], True),  # default: transductive
        (["data.transductive=false"], False),
        (["data.t1_transductive=false"], False),  # CFA stays transductive, T1 does not
        (["data.transductive=false", "data.t1_transductive=true"], True),
    ],
)
def test_t1_sees_the_test_images_only_when_asked(synthetic_root, quick_cfg_path, overrides, with_test):
    cfg = load_config(quick_cfg_path, [f"source.root={synthetic_root}", f"target.root={synthetic_root}",
                                       *overrides])
    images = split_training_images(cfg, "target")
    splits = {s.split for s in images.train}
    assert ("test" in splits) is with_test
    assert images.transductive is with_test
    assert cfg.t1_transductive() is with_test
    # the source network never trains on test images, whatever the setting
    assert {s.split for s in split_training_images(cfg, "source").train} == {"train"}


def test_pipeline_style_resume_still_warm_starts_t1(synthetic_root, quick_cfg_path, tmp_path):
    """`resume=True` with no target checkpoint yet must still start T1 from S1 (the pipeline resumes)."""
    from refcfa.engine.trainer import DiffusionTrainer, train_score_network

    cfg = load_config(quick_cfg_path, [f"source.root={synthetic_root}", f"target.root={synthetic_root}",
                                       f"output_dir={tmp_path}", "train.init_target_from_source=true",
                                       "train.max_steps=2"])
    train_score_network(cfg, "source", device="cpu")
    t1 = DiffusionTrainer(cfg, "target", "cpu", resume=True)
    t1.setup()
    assert t1.init_from is not None and "Quick_Source" in t1.init_from
