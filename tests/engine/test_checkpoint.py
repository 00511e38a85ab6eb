"""Checkpoint files: atomic writes, the `last` pointer, and safe loading."""

from __future__ import annotations

import pytest
import torch

from refcfa.engine import checkpoint as ck
from refcfa.errors import CheckpointError


class _NotATensor:
    def __init__(self) -> None:
        self.payload = [1, 2, 3]


def _payload(step: int, arch: dict | None = None) -> dict:
    return {
        "kind": ck.KIND_SCORE_NETWORK,
        "format_version": ck.FORMAT_VERSION,
        "step": step,
        "architecture": arch or {"class": "x", "in_channels": 3},
        "model": {"w": torch.full((2,), float(step))},
    }


def test_save_writes_epoch_file_and_last_pointer(tmp_path):
    exp = tmp_path / "Exp"
    p1 = ck.save_checkpoint(_payload(3), exp, epoch=1)
    assert p1.name == "checkpoint_epoch_1.pth"
    assert (exp / "last").read_text().strip() == "checkpoint_epoch_1.pth"
    p2 = ck.save_checkpoint(_payload(6), exp, epoch=2)
    p2b = ck.save_checkpoint(_payload(7), exp, epoch=2)  # same epoch: replaced
    assert p2 == p2b
    assert ck.find_last_checkpoint(exp) == p2
    assert ck.load_checkpoint(exp)["step"] == 7  # a directory resolves through `last`
    assert ck.load_checkpoint(exp / "last")["step"] == 7
    assert [p.name for p in ck.list_checkpoints(exp)] == ["checkpoint_epoch_1.pth", "checkpoint_epoch_2.pth"]
    # no temp files left behind, and none would ever match *.pth
    assert sorted(p.name for p in exp.iterdir()) == [
        "checkpoint_epoch_1.pth",
        "checkpoint_epoch_2.pth",
        "last",
    ]
    assert not ck._temp_path(p1).name.endswith(".pth")


def test_find_last_falls_back_to_highest_epoch_without_pointer(tmp_path):
    ck.save_checkpoint(_payload(3), tmp_path, epoch=1)
    ck.save_checkpoint(_payload(30), tmp_path, epoch=10)
    (tmp_path / "last").unlink()
    assert ck.find_last_checkpoint(tmp_path).name == "checkpoint_epoch_10.pth"
    assert ck.find_last_checkpoint(tmp_path / "empty") is None


def test_failed_write_leaves_previous_file_and_no_temp(tmp_path, monkeypatch):
    path = ck.save_checkpoint(_payload(3), tmp_path, epoch=1)

    def boom(obj, fh):
        fh.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OSError, match="disk full"):
        ck.save_checkpoint(_payload(4), tmp_path, epoch=1)
    monkeypatch.undo()
    assert ck.load_checkpoint(path)["step"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint_epoch_1.pth", "last"]


def test_stale_temp_files_are_removed(tmp_path):
    (tmp_path / ".checkpoint_epoch_1.pth.tmp-123").write_bytes(b"half")
    removed = ck.remove_stale_temp_files(tmp_path)
    assert [p.name for p in removed] == [".checkpoint_epoch_1.pth.tmp-123"]


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint not found: .*nope.pth"):
        ck.load_checkpoint(tmp_path / "nope.pth")
    with pytest.raises(FileNotFoundError, match="no checkpoint in"):
        ck.load_checkpoint(tmp_path)


def test_plain_tensor_dict_is_not_ours(tmp_path):
    path = tmp_path / "foreign.pth"
    torch.save({"w": torch.zeros(2), "b": torch.ones(1)}, path)
    with pytest.raises(CheckpointError, match=r"foreign\.pth is not a refcfa checkpoint"):
        ck.load_checkpoint(path)


def test_pickled_object_is_refused(tmp_path):
    path = tmp_path / "pickled.pth"
    torch.save({**_payload(1), "extra": _NotATensor()}, path)
    with pytest.raises(CheckpointError, match=r"pickled\.pth contains pickled Python objects.*weights_only"):
        ck.load_checkpoint(path)


def test_garbage_and_truncated_files_are_checkpoint_errors(tmp_path):
    (tmp_path / "garbage.pth").write_bytes(b"this is not a torch file")
    with pytest.raises(CheckpointError, match="garbage.pth is unreadable"):
        ck.load_checkpoint(tmp_path / "garbage.pth")
    good = ck.save_checkpoint(_payload(1), tmp_path, epoch=1)
    data = good.read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cut.pth is unreadable"):
        ck.load_checkpoint(tmp_path / "cut.pth")


def test_other_kind_and_newer_format_are_refused(tmp_path):
    torch.save({**_payload(1), "kind": "supervised_segmenter"}, tmp_path / "a.pth")
    with pytest.raises(
        CheckpointError, match="'supervised_segmenter' checkpoint, expected a 'score_network'"
    ):
        ck.load_checkpoint(tmp_path / "a.pth")
    torch.save({**_payload(1), "format_version": ck.FORMAT_VERSION + 1}, tmp_path / "b.pth")
    with pytest.raises(CheckpointError, match="format version"):
        ck.load_checkpoint(tmp_path / "b.pth")


def test_architecture_mismatch_names_both_signatures(tmp_path):
    path = ck.save_checkpoint(_payload(1, {"class": "x", "in_channels": 3}), tmp_path, epoch=1)
    with pytest.raises(CheckpointError) as info:
        ck.load_checkpoint(path, expected_arch={"class": "x", "in_channels": 1})
    msg = str(info.value)
    assert "'in_channels': 3" in msg and "'in_channels': 1" in msg and str(path) in msg
    assert ck.load_checkpoint(path, expected_arch={"class": "x", "in_channels": 3})["step"] == 1


def test_initial_checkpoint_loads_as_a_score_network_and_is_seeded(tmp_path, quick_cfg_path):
    from refcfa.config import load_config

    cfg = load_config(quick_cfg_path)
    a = ck.save_initial_checkpoint(cfg, tmp_path / "a", in_channels=3, seed=1)
    b = ck.save_initial_checkpoint(cfg, tmp_path / "b", in_channels=3, seed=1)
    c = ck.save_initial_checkpoint(cfg, tmp_path / "c", in_channels=3, seed=2)
    unet_a, _, meta = ck.load_score_network(tmp_path / "a")
    unet_b, _, _ = ck.load_score_network(b)
    unet_c, _, _ = ck.load_score_network(c)
    assert a.name == "checkpoint_epoch_1.pth" and meta["step"] == 0
    assert meta["architecture"]["sample_size"] == cfg.data.image_size
    wa, wb, wc = (next(u.parameters()) for u in (unet_a, unet_b, unet_c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)
