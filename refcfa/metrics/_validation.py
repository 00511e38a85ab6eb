"""Input checks shared by the metrics.

Every check raises ``TypeError``/``ValueError`` whose message names the metric, the argument,
what was expected and how to fix it.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def as_scores(x: ArrayLike, name: str, func: str) -> np.ndarray:
    """Return ``x`` as a finite real array (floating dtypes kept, others cast to float64)."""
    arr = np.asarray(x)
    if arr.dtype == np.bool_:
        arr = arr.astype(np.float64)
    elif not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise TypeError(f"{func}: {name} must be a real numeric array, got dtype {arr.dtype}")
    elif not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float64)
    if arr.size == 0:
        raise ValueError(f"{func}: {name} is empty; pass at least one score")
    if not np.isfinite(arr).all():
        n_nan = int(np.isnan(arr).sum())
        n_inf = int(np.isinf(arr).sum())
        raise ValueError(
            f"{func}: {name} contain {n_nan} NaN and {n_inf} infinite value(s); scores must be finite "
            "(replace them, e.g. with np.nan_to_num, or fix the computation that produced them)"
        )
    return arr


def as_binary(x: ArrayLike, name: str, func: str) -> np.ndarray:
    """Return ``x`` as a bool array; accepts bool or numbers that are all 0 or 1."""
    arr = np.asarray(x)
    if arr.dtype == np.bool_:
        return arr
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise TypeError(f"{func}: {name} must be bool or 0/1 numbers, got dtype {arr.dtype}")
    is_zero = arr == 0
    if not (is_zero | (arr == 1)).all():
        bad = arr[~(is_zero | (arr == 1))].ravel()[0]
        raise ValueError(
            f"{func}: {name} must hold only 0/1 (or False/True), found the value {bad!r}; "
            f"binarise it first, e.g. {name} > 0"
        )
    return ~is_zero


def check_same_shape(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str, func: str) -> None:
    if a.shape != b.shape:
        raise ValueError(
            f"{func}: {name_a} has shape {a.shape} but {name_b} has shape {b.shape}; "
            "they must match element for element"
        )


def check_ndim(a: np.ndarray, ndim: int, name: str, func: str, layout: str, fix: str) -> None:
    if a.ndim != ndim:
        raise ValueError(f"{func}: {name} must have shape {layout}, got shape {a.shape}; {fix}")


def check_both_classes(labels: np.ndarray, name: str, func: str, unit: str) -> None:
    """Refuse labels of a single class (the ranking metrics are undefined then)."""
    n_pos = int(np.count_nonzero(labels))
    if n_pos == 0 or n_pos == labels.size:
        if name == "masks":
            only = "False (no anomalous pixel)" if n_pos == 0 else "True (no normal pixel)"
        else:
            only = "0" if n_pos == 0 else "1"
        raise ValueError(
            f"{func} needs both normal and anomalous {unit}; {name} contain only {only}. "
            f"Evaluate on a set that holds at least one normal and one anomalous {unit[:-1]}"
        )
