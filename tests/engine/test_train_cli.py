"""`refcfa train` / `scripts/train_net.py`: a run, bad inputs, and a SIGKILL in the middle."""

from __future__ import annotations

import os
import random
import runpy
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from refcfa.cli import main
from refcfa.engine import checkpoint as ck

REPO = Path(__file__).resolve().parents[2]


def _args(quick_cfg_path, synthetic_root, out, *more):
    return [
        "train",
        "--config-file",
        str(quick_cfg_path),
        "--set",
        f"output_dir={out}",
        f"source.root={synthetic_root}",
        f"target.root={synthetic_root}",
        "device=cpu",
        *more,
    ]


def test_train_prints_checkpoint_and_seed_script_works(
    quick_cfg_path, synthetic_root, tmp_path, capsys, monkeypatch
):
    assert main(_args(quick_cfg_path, synthetic_root, tmp_path / "a", "--stage", "target")) == 0
    out = capsys.readouterr()
    line = out.out.strip().splitlines()[-1]
    # T1: 11 train + 10 unlabelled test images, batch 4 -> 6 steps per epoch: step 6 ends epoch 1
    assert line == f"checkpoint: {tmp_path / 'a' / 'Quick_Target' / 'checkpoint_epoch_1.pth'}"
    assert "training the target score network (T1)" in out.err and "transductive" in out.err
    assert ck.load_checkpoint(line.split(": ", 1)[1])["domain"] == "target"

    # the seed's command: `python scripts/train_net.py --config-file configs/...` (--config: the alias)
    monkeypatch.chdir(REPO)
    monkeypatch.setattr(
        sys,
        "argv",
        [
            "train_net.py",
            "--config-file",
            "configs/quick/quick.yaml",
            "--set",
            f"output_dir={tmp_path / 'b'}",
            f"source.root={synthetic_root}",
            "train.max_steps=2",
            "--device",
            "cpu",
        ],
    )
    with pytest.raises(SystemExit) as info:
        runpy.run_path(str(REPO / "scripts" / "train_net.py"), run_name="__main__")
    assert info.value.code == 0
    assert ck.load_checkpoint(tmp_path / "b" / "Quick_Source")["step"] == 2


class _Custom:
    pass


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing_config", r"config file not found: .*nope\.yaml"),
        ("missing_root", r"dataset root not found: .*does_not_exist.*source\.root"),
        ("unknown_key", r"unknown config key `model\.foo`"),
        ("foreign_checkpoint", r"checkpoint_epoch_1\.pth is not a refcfa checkpoint"),
        ("pickled_checkpoint", r"checkpoint_epoch_1\.pth contains pickled Python objects.*weights_only"),
    ],
)
def test_bad_inputs_give_one_line_errors(case, message, quick_cfg_path, synthetic_root, tmp_path, capsys):
    out = tmp_path / "out"
    args = _args(quick_cfg_path, synthetic_root, out)
    if case == "missing_config":
        args[2] = str(tmp_path / "nope.yaml")
    elif case == "missing_root":
        args.append(f"source.root={tmp_path / 'does_not_exist'}")
    elif case == "unknown_key":
        args.append("model.foo=1")
    else:
        exp = out / "Quick_Source"
        exp.mkdir(parents=True)
        obj = (
            {"w": torch.zeros(3)}
            if case == "foreign_checkpoint"
            else {"kind": "score_network", "x": _Custom()}
        )
        torch.save(obj, exp / "checkpoint_epoch_1.pth")
        args.append("--resume")
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ")
    assert "Traceback" not in "\n".join(err)
    import re

    assert re.search(message, err[-1]), err[-1]


def test_sigkill_leaves_loadable_checkpoints_and_resume_finishes(
    quick_cfg_path, synthetic_root, tmp_path, capsys
):
    out = tmp_path / "out"
    exp = out / "Quick_Source"
    cmd = [
        sys.executable,
        "-m",
        "refcfa",
        *_args(
            quick_cfg_path,
            synthetic_root,
            out,
            "train.max_steps=100000",
            "train.checkpoint_every=2",
            "train.log_every=1000",
            "train.val_fraction=0.0",
        ),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    log = tmp_path / "train.log"  # a file, not a pipe: a full pipe would stall the child
    with open(log, "wb") as err:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err)
        try:
            deadline = time.monotonic() + 120
            # 12 images, batch 4: 3 steps per epoch; saves every 2 steps -> epoch 3 by step 8
            while not (exp / "checkpoint_epoch_3.pth").exists():
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "no checkpoint appeared"
                time.sleep(0.05)
            time.sleep(random.uniform(0.0, 0.3))  # somewhere in the middle of a step or a save
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == -signal.SIGKILL
    pth = sorted(exp.glob("*.pth"))
    assert len(pth) >= 3
    for p in pth:  # no half-written checkpoint under a final name
        assert ck.load_checkpoint(p)["kind"] == "score_network"
    last = ck.find_last_checkpoint(exp)
    step = ck.load_checkpoint(last)["step"]
    assert step >= 6 and step % 2 == 0  # `last` may still name the previous save if killed in between

    assert (
        main(
            _args(
                quick_cfg_path,
                synthetic_root,
                out,
                f"train.max_steps={step + 3}",
                "train.val_fraction=0.0",
                "--resume",
            )
        )
        == 0
    )
    captured = capsys.readouterr()
    assert f"resumed from {last} at step {step}" in captured.err
    final = Path(captured.out.strip().splitlines()[-1].split(": ", 1)[1])
    assert ck.load_checkpoint(final)["step"] == step + 3
    assert not [p for p in exp.iterdir() if ".tmp-" in p.name]  # stale temp files cleaned up
