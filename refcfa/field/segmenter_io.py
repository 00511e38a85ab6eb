"""``supervised_segmenter.pth``: the S2 detector with everything T2 needs to reuse it (DESIGN.md 5).

The file is a plain dict of tensors and primitives (loadable with ``torch.load(weights_only=True)``):

=================  ===========================================================================
key                content
=================  ===========================================================================
``kind``           ``"supervised_segmenter"``
``format_version`` `FORMAT_VERSION`
``refcfa_version`` the library version that wrote it
``arch``           `FieldDetector.arch` (K, C, hidden, h_proj, T, δ, transformer settings)
``state_dict``     ``g_φ`` + ``f_ψ`` weights and the input-normalisation buffers
``field_signature`` the field configuration the detector was trained on
                   (``K, C, t0, patch, image_size, timesteps``, …)
``source_stats``   the source CFA statistics (`SourceFieldStats.to_dict()`)
``config``         the run's config dict
``extra``          anything else (metrics, history), primitives only
=================  ===========================================================================

Numpy arrays are stored as tensors; in the ``meta`` returned by `load_segmenter` every tensor
outside ``state_dict`` comes back as a numpy array. Writes go to a temporary file in the same
folder, then ``os.replace``: a killed writer never leaves a half-written segmenter.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from refcfa import __version__
from refcfa.engine.devices import resolve_device
from refcfa.errors import CheckpointError
from refcfa.field.detector import FieldDetector
from refcfa.fileio import atomic_write

KIND = "supervised_segmenter"
FORMAT_VERSION = 1
FILENAME = "supervised_segmenter.pth"
_META_KEYS = ("field_signature", "source_stats", "config", "extra")


def _resolve(path: str | os.PathLike) -> Path:
    p = Path(path)
    return p / FILENAME if p.is_dir() else p


def _to_storable(obj: Any, where: str) -> Any:
    """Tensors and primitives only: numpy → tensors, tuples → lists, paths → str."""
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(obj))
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, Mapping):
        out = {}
        for k, v in obj.items():
            if not isinstance(k, str):
                raise TypeError(f"{where}: keys must be str to be stored in a segmenter, got {k!r}")
            out[k] = _to_storable(v, f"{where}.{k}")
        return out
    if isinstance(obj, (list, tuple)):
        return [_to_storable(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    raise TypeError(
        f"{where}: {type(obj).__name__} cannot be stored in a segmenter (tensors, numpy arrays and "
        "primitives only); convert it (e.g. with to_dict()) first"
    )


def _to_meta(obj: Any) -> Any:
    """Tensors → numpy, recursively."""
    if isinstance(obj, torch.Tensor):
        return obj.numpy()
    if isinstance(obj, dict):
        return {k: _to_meta(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_meta(v) for v in obj]
    return obj


def _sig_value(v: Any) -> Any:
    if isinstance(v, (torch.Tensor, np.ndarray)):
        return [x.item() if hasattr(x, "item") else x for x in np.asarray(v).ravel()]
    if isinstance(v, (list, tuple)):
        return [_sig_value(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    return v


def _format_sig(sig: Mapping[str, Any]) -> str:
    return "{" + ", ".join(f"{k}={_sig_value(v)}" for k, v in sorted(sig.items())) + "}"


def signature_mismatches(stored: Mapping[str, Any], expected: Mapping[str, Any]) -> list[str]:
    """Keys of ``expected`` whose value differs from (or is missing in) ``stored``."""
    return [k for k in expected if k not in stored or _sig_value(stored[k]) != _sig_value(expected[k])]


def save_segmenter(
    path: str | os.PathLike,
    model: FieldDetector,
    *,
    config_dict: Mapping[str, Any],
    source_stats: Mapping[str, Any],
    field_signature: Mapping[str, Any],
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``supervised_segmenter.pth`` atomically; returns the path written.

    Args:
        path: the file, or a folder to write `FILENAME` into.
        model: the trained detector.
        config_dict: the run's config (`Config.to_dict()`).
        source_stats: the source CFA statistics (`SourceFieldStats.to_dict()`).
        field_signature: the field configuration the detector expects, at least ``K`` and ``C``
            (also ``t0, patch, image_size, timesteps``); checked against ``model.arch``.
        extra: other primitives to keep (metrics, history).
    """
    path = _resolve(path)
    for key in ("K", "C"):
        if key in field_signature and int(_sig_value(field_signature[key])) != model.arch[key]:
            raise ValueError(
                f"field_signature[{key!r}]={field_signature[key]} disagrees with the model "
                f"({key}={model.arch[key]}); pass the signature of the fields the model was trained on"
            )
    payload = {
        "kind": KIND,
        "format_version": FORMAT_VERSION,
        "refcfa_version": __version__,
        "arch": _to_storable(model.arch, "arch"),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "field_signature": _to_storable(dict(field_signature), "field_signature"),
        "source_stats": _to_storable(dict(source_stats), "source_stats"),
        "config": _to_storable(dict(config_dict), "config_dict"),
        "extra": _to_storable(dict(extra or {}), "extra"),
    }
    atomic_write(path, lambda fh: torch.save(payload, fh))
    return path


def load_segmenter(
    path: str | os.PathLike,
    expected_signature: Mapping[str, Any] | None = None,
    device: str | torch.device = "cpu",
) -> tuple[FieldDetector, dict[str, Any]]:
    """Load a segmenter written by `save_segmenter` (``weights_only=True``).

    Args:
        path: the file, or the experiment folder holding `FILENAME`.
        expected_signature: the field configuration about to be fed to it; every key given must
            match the stored ``field_signature``.
        device: where the model goes.

    Returns:
        ``(model in eval mode, meta)``; ``meta`` holds ``kind, format_version, refcfa_version,
        arch, field_signature, source_stats, config, extra`` (arrays as numpy) and ``path``.

    Raises:
        FileNotFoundError: no file at ``path``.
        CheckpointError: not a refcfa segmenter, unsafe content (pickled objects), a newer format,
            or a field signature other than ``expected_signature``.
    """
    path = _resolve(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no supervised segmenter here; train one with stage S2 "
            "(`analyze_net --train_localization`) first"
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError, AttributeError) as err:
        raise CheckpointError(
            f"{path}: not a refcfa supervised segmenter, or it holds objects other than tensors and "
            f"primitives, which are refused (weights_only load): {str(err).splitlines()[0] if str(err) else err!r}"
        ) from err
    if not isinstance(payload, dict) or payload.get("kind") != KIND:
        found = payload.get("kind") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(
            f"{path}: not a refcfa supervised segmenter (kind={found!r}, expected {KIND!r}); "
            "point to the supervised_segmenter.pth written by S2"
        )
    version = payload.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: segmenter format_version {version!r} is not readable by this refcfa "
            f"(reads up to {FORMAT_VERSION}); upgrade refcfa or re-run S2"
        )
    stored_sig = payload.get("field_signature", {})
    if expected_signature is not None:
        bad = signature_mismatches(stored_sig, expected_signature)
        if bad:
            raise CheckpointError(
                f"{path}: the segmenter was trained on another field configuration "
                f"(differs in {', '.join(bad)}): stored {_format_sig(stored_sig)}, "
                f"this config {_format_sig(expected_signature)}; re-run S2 with this config "
                "(`analyze_net --train_localization`) or use the config the segmenter was trained with"
            )
    try:
        model = FieldDetector.from_arch(payload["arch"])
        model.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, RuntimeError, ValueError) as err:
        raise CheckpointError(
            f"{path}: the segmenter's architecture does not match its weights ({err}); re-run S2"
        ) from err
    model.to(resolve_device(device)).eval()
    meta = {k: _to_meta(payload.get(k, {})) for k in _META_KEYS}
    meta.update(
        kind=KIND,
        format_version=version,
        refcfa_version=payload.get("refcfa_version"),
        arch=payload["arch"],
        path=str(path),
    )
    return model, meta
