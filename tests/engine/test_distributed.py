"""torchrun + DDP (gloo, 2 ranks on the CPU) follows the same training as one process."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import torch

from refcfa.engine import checkpoint as ck
from refcfa.engine.trainer import train_score_network


@pytest.mark.slow
def test_two_ranks_on_cpu_match_one_process(quick_cfg_path, synthetic_root, tmp_path, make_cfg):
    out = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "refcfa",
        "train",
        "--config-file",
        str(quick_cfg_path),
        "--set",
        f"output_dir={out}",
        f"source.root={synthetic_root}",
        "device=cpu",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    digests = dict(re.findall(r"rank (\d)/2 weights sha256 ([0-9a-f]{64})", proc.stderr))
    assert set(digests) == {"0", "1"} and digests["0"] == digests["1"]  # the ranks agree
    printed = [ln for ln in proc.stdout.splitlines() if ln.startswith("checkpoint: ")]
    assert len(printed) == 1  # rank 0 reports
    ddp = ck.load_checkpoint(printed[0].split(": ", 1)[1])
    assert ddp["world_size"] == 2 and ddp["global_batch_size"] == 4 and ddp["step"] == 6

    # the global batch is split over the ranks: one process takes the same steps
    single = ck.load_checkpoint(train_score_network(make_cfg(out=tmp_path / "single"), "source"))
    for key in single["model"]:
        assert torch.allclose(ddp["model"][key], single["model"][key], rtol=0, atol=1e-5), key
    assert ddp["val_loss"] == pytest.approx(single["val_loss"], abs=1e-5)
