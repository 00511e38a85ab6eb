"""Score-network checkpoints: atomic writes, a `last` pointer, safe (`weights_only`) loads.

Layout (the seed's naming)::

    <output_dir>/<ExpName>/checkpoint_epoch_X.pth   X = the epoch of the step saved (1-based)
    <output_dir>/<ExpName>/last                     text: the file name of the newest checkpoint

Epochs are passes over the training set: with `E` steps per epoch, step `s` (1-based) belongs to
epoch `ceil(s / E)`, so the checkpoint written at the last step of epoch X holds X full passes.
Each save writes `checkpoint_epoch_{epoch}.pth`; two saves in the same epoch replace the file
(atomically), so the newest state of every epoch is kept and `last` always names the newest.

Writes are atomic: the payload goes to a hidden temp file in the same directory
(`.checkpoint_epoch_X.pth.tmp-<pid>`, never named `*.pth`), is fsynced, then `os.replace`d onto the
final name; the `last` pointer is replaced the same way afterwards. A process killed at any
instant leaves every `*.pth` complete and `last` naming a complete file.

Contents: only tensors, primitives, lists and dicts, so `torch.load(weights_only=True)` reads
them (see `SCORE_NETWORK_KEYS`). RNG states are uint8/int64 tensors, the config a nested dict.
"""

from __future__ import annotations

import os
import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from refcfa.errors import CheckpointError
from refcfa.fileio import atomic_write

if TYPE_CHECKING:  # pragma: no cover
    import torch

FORMAT_VERSION = 1
KIND_SCORE_NETWORK = "score_network"
LAST_POINTER = "last"
CHECKPOINT_PATTERN = re.compile(r"^checkpoint_epoch_(\d+)\.pth$")

SCORE_NETWORK_KEYS = (
    "kind",  # "score_network"
    "format_version",  # int, FORMAT_VERSION
    "refcfa_version",  # str
    "domain",  # "source" | "target"
    "transductive",  # bool: T1 saw the target test images (without labels)
    "step",  # int: optimizer steps taken
    "epoch",  # int: epoch of that step (1-based; 0 before the first step)
    "steps_per_epoch",  # int
    "global_batch_size",  # int
    "world_size",  # int
    "architecture",  # dict: refcfa.diffusion.model.architecture_signature
    "config",  # dict: Config.to_dict()
    "model",  # state dict: the trained weights
    "ema",  # state dict: EMA weights (used for inference)
    "ema_updates",  # int
    "optimizer",  # AdamW state dict
    "lr_scheduler",  # LambdaLR state dict
    "grad_scaler",  # GradScaler state dict or {} (CUDA mixed precision only)
    "rng",  # {"torch": uint8, "cuda": [uint8], "numpy": {...}, "python": int64}
    "train_image_ids",  # list[str]: images the network was trained on
    "val_image_ids",  # list[str]: held-out normals for the validation loss
    "val_loss",  # float | None: last validation loss
    "init_from",  # str | None: source checkpoint T1 started from
)


def capture_rng_state(device: torch.device) -> dict:
    """The process's RNG states as tensors and primitives (torch CPU, this CUDA device, numpy, random)."""
    import random

    import numpy as np
    import torch

    np_state = np.random.get_state()
    py_state = random.getstate()
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else torch.zeros(0, dtype=torch.uint8)
    return {
        "torch": torch.get_rng_state(),
        "cuda": cuda,
        "numpy": {
            "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": {
            "version": int(py_state[0]),
            "state": torch.tensor(py_state[1], dtype=torch.int64),
            "gauss": py_state[2],
        },
    }


def restore_rng_state(state: dict, device: torch.device) -> None:
    """Undo `capture_rng_state` (an empty dict does nothing)."""
    import random

    import numpy as np
    import torch

    if not state:
        return
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and state.get("cuda") is not None and state["cuda"].numel():
        torch.cuda.set_rng_state(state["cuda"], device)
    npst = state.get("numpy")
    if npst:
        np.random.set_state(
            (
                "MT19937",
                npst["keys"].numpy().astype(np.uint32),
                npst["pos"],
                npst["has_gauss"],
                npst["cached_gaussian"],
            )
        )
    pyst = state.get("python")
    if pyst:
        random.setstate((pyst["version"], tuple(int(v) for v in pyst["state"].tolist()), pyst["gauss"]))


def checkpoint_name(epoch: int) -> str:
    """`checkpoint_epoch_{epoch}.pth`."""
    return f"checkpoint_epoch_{int(epoch)}.pth"


def _temp_path(path: Path) -> Path:
    # hidden, same directory (same file system for os.replace), never matching *.pth
    return path.parent / f".{path.name}.tmp-{os.getpid()}"


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write `data` to `path` atomically (temp file in the same directory, fsync, rename)."""
    path = Path(path)
    return atomic_write(path, lambda fh: fh.write(data), tmp=_temp_path(path))


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """`torch.save(obj, path)` atomically: a reader never sees a half-written file."""
    import torch

    path = Path(path)
    return atomic_write(path, lambda fh: torch.save(obj, fh), tmp=_temp_path(path))


def save_checkpoint(payload: Mapping[str, Any], exp_dir: str | Path, epoch: int) -> Path:
    """Write `payload` as `<exp_dir>/checkpoint_epoch_{epoch}.pth`, then point `last` at it."""
    exp_dir = Path(exp_dir)
    path = atomic_torch_save(dict(payload), exp_dir / checkpoint_name(epoch))
    atomic_write_bytes(exp_dir / LAST_POINTER, (path.name + "\n").encode())
    return path


def save_initial_checkpoint(cfg: Any, exp_dir: str | Path, in_channels: int, seed: int = 0) -> Path:
    """A score-network checkpoint of ``cfg.model`` at ``cfg.data.image_size``, randomly initialised
    (torch seeded with ``seed``; step 0): what the app's figures and tests use before any training."""
    import torch

    from refcfa.diffusion.model import architecture_signature, build_score_network

    size = cfg.data.image_size
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = build_score_network(cfg.model, in_channels, size)
    payload = {
        "kind": KIND_SCORE_NETWORK,
        "format_version": FORMAT_VERSION,
        "domain": "source",
        "architecture": architecture_signature(cfg.model, in_channels, size),
        "config": cfg.to_dict(),
        "model": unet.state_dict(),
        "ema": unet.state_dict(),
        "step": 0,
        "epoch": 0,
    }
    return save_checkpoint(payload, exp_dir, epoch=1)


def remove_stale_temp_files(exp_dir: str | Path) -> list[Path]:
    """Delete temp files left by a killed writer (`.*.tmp-<pid>` in `exp_dir`)."""
    exp_dir = Path(exp_dir)
    removed = []
    if exp_dir.is_dir():
        for p in exp_dir.glob(".*.tmp-*"):
            try:
                p.unlink()
                removed.append(p)
            except OSError:  # pragma: no cover - another writer's file
                pass
    return removed


def list_checkpoints(exp_dir: str | Path) -> list[Path]:
    """`checkpoint_epoch_X.pth` files of `exp_dir`, by epoch."""
    exp_dir = Path(exp_dir)
    if not exp_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in exp_dir.iterdir() if (m := CHECKPOINT_PATTERN.match(p.name))]
    return [p for _, p in sorted(found)]


def find_last_checkpoint(exp_dir: str | Path) -> Path | None:
    """The newest checkpoint of an experiment directory, or None.

    Follows the `last` pointer; without one (or if it names a missing file) falls back to the
    highest `checkpoint_epoch_X.pth`. `exp_dir` may also be the `last` file itself.
    """
    exp_dir = Path(exp_dir)
    if exp_dir.name == LAST_POINTER and exp_dir.is_file():
        exp_dir = exp_dir.parent
    pointer = exp_dir / LAST_POINTER
    if pointer.is_file():
        name = pointer.read_text(encoding="utf-8").strip()
        if name and "/" not in name and (exp_dir / name).is_file():
            return exp_dir / name
    found = list_checkpoints(exp_dir)
    return found[-1] if found else None


def _describe_diff(expected: Mapping, found: Mapping) -> str:
    keys = sorted(set(expected) | set(found))
    diffs = [
        f"{k}: expected {expected.get(k)!r}, checkpoint has {found.get(k)!r}"
        for k in keys
        if expected.get(k) != found.get(k)
    ]
    return "; ".join(diffs)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def load_checkpoint(
    path: str | Path,
    expected_arch: Mapping[str, Any] | None = None,
    kind: str = KIND_SCORE_NETWORK,
) -> dict[str, Any]:
    """Load a refcfa checkpoint safely (`torch.load(..., map_location="cpu", weights_only=True)`).

    `path` may be a checkpoint file, an experiment directory or its `last` pointer (both resolve
    to the newest checkpoint).

    Raises:
        FileNotFoundError: `path` does not exist (or a directory holds no checkpoint).
        CheckpointError: the file holds pickled Python objects (refused), is unreadable, is not a
            refcfa checkpoint of `kind`, has a newer format, or its architecture differs from
            `expected_arch`.
    """
    import torch

    path = Path(path)
    if path.is_dir() or (path.name == LAST_POINTER and path.is_file()):
        found = find_last_checkpoint(path)
        if found is None:
            raise FileNotFoundError(
                f"no checkpoint in {path} (expected checkpoint_epoch_X.pth files; train one with `refcfa train`)"
            )
        path = found
    if not path.exists():
        raise FileNotFoundError(
            f"checkpoint not found: {path} (pass an existing .pth file or experiment directory)"
        )
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        if "Weights only load failed" in text or "Unsupported global" in text:
            found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
            what = f": {found.group(1)}" if found else ""
            raise CheckpointError(
                f"checkpoint {path} contains pickled Python objects{what}; refcfa only loads tensor "
                "checkpoints (weights_only) — it may be from another program"
            ) from None
        raise CheckpointError(
            f"checkpoint {path} is not a readable torch file ({_first_line(exc)})"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, IndexError, TypeError) as exc:
        raise CheckpointError(
            f"checkpoint {path} is unreadable (truncated, corrupt or not a torch file): {_first_line(exc)}"
        ) from None
    if not isinstance(ckpt, dict) or "kind" not in ckpt or "format_version" not in ckpt:
        raise CheckpointError(
            f"{path} is not a refcfa checkpoint (it has no `kind`/`format_version` entries); "
            "pass a checkpoint written by `refcfa train`"
        )
    if ckpt["kind"] != kind:
        raise CheckpointError(
            f"{path} is a refcfa {ckpt['kind']!r} checkpoint, expected a {kind!r} checkpoint"
        )
    version = ckpt["format_version"]
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format version {version!r}; this refcfa reads up to {FORMAT_VERSION} "
            "(upgrade refcfa)"
        )
    if expected_arch is not None:
        found_arch = ckpt.get("architecture")
        if dict(found_arch or {}) != dict(expected_arch):
            raise CheckpointError(
                f"checkpoint {path} was trained with another network architecture: checkpoint "
                f"{found_arch!r} vs configured {dict(expected_arch)!r} "
                f"({_describe_diff(expected_arch, found_arch or {})}); use the config it was trained with"
            )
    ckpt["path"] = str(path)
    return ckpt


def load_score_network(
    path: str | Path, device: str | torch.device = "cpu", use_ema: bool = True
) -> tuple[torch.nn.Module, dict[str, Any], dict[str, Any]]:
    """A trained score network for inference: `(unet, config_dict, meta)`.

    The network is rebuilt from the checkpoint's architecture signature, gets the EMA weights
    (`use_ema=True`, the inference weights) or the raw ones, is put on `device` in eval mode with
    gradients off. `meta` holds the checkpoint's other scalar entries (`step`, `epoch`, `domain`,
    `transductive`, `architecture`, `path`, ...), without the state dicts.
    """
    import torch

    from refcfa.diffusion.model import architecture_signature, build_score_network

    ckpt = load_checkpoint(path)
    arch = ckpt.get("architecture") or {}
    from refcfa.config.schema import ModelConfig

    try:
        mcfg = ModelConfig(
            block_out_channels=list(arch["block_out_channels"]),
            layers_per_block=int(arch["layers_per_block"]),
            attention_levels=[t.startswith("Attn") for t in arch["down_block_types"]],
            attention_head_dim=int(arch["attention_head_dim"]),
            norm_num_groups=int(arch["norm_num_groups"]),
        )
        in_ch, size = int(arch["in_channels"]), int(arch["sample_size"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {path} has an incomplete architecture signature ({exc})") from None
    if architecture_signature(mcfg, in_ch, size) != dict(arch):
        raise CheckpointError(f"checkpoint {path}: architecture {arch!r} cannot be rebuilt by this refcfa")
    unet = build_score_network(mcfg, in_ch, size)
    state = ckpt["ema"] if use_ema and ckpt.get("ema") else ckpt["model"]
    try:
        unet.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"checkpoint {path}: weights do not fit the architecture ({exc})") from None
    unet.to(torch.device(device) if isinstance(device, str) else device).eval().requires_grad_(False)
    meta = {
        k: v
        for k, v in ckpt.items()
        if k not in ("model", "ema", "optimizer", "lr_scheduler", "grad_scaler", "rng", "config")
    }
    return unet, dict(ckpt.get("config") or {}), meta


__all__ = [
    "CHECKPOINT_PATTERN",
    "capture_rng_state",
    "restore_rng_state",
    "FORMAT_VERSION",
    "KIND_SCORE_NETWORK",
    "LAST_POINTER",
    "SCORE_NETWORK_KEYS",
    "atomic_torch_save",
    "atomic_write_bytes",
    "checkpoint_name",
    "find_last_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "load_score_network",
    "remove_stale_temp_files",
    "save_checkpoint",
    "save_initial_checkpoint",
]
