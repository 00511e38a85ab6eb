"""Containers of REF fields for alignment: a stack of images (:class:`FieldSet`) and a bag of
pixels (:class:`PixelFields`).

Notation (DESIGN.md section 3): for image ``i``, step ``n`` and pixel ``u``,
``R[i, n, u]`` gradient residual, ``M[i, n, u]`` directional offset, ``Q[i, n, u]`` path-integrated
drift (all >= 0), ``d[i, n, :, u]`` residual direction (unit vector in ``R^C``, or ~0).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["FieldSet", "PixelFields", "map_pixels"]

#: pixels handed to an aligner at once by :func:`map_pixels` (whole images; at least one image)
CHUNK_PIXELS = 1 << 16

RngLike = np.random.Generator | int | None


@dataclass(frozen=True, eq=False)
class PixelFields:
    """Field sequences of ``P`` pixels (samples or a chunk of images), step axis second.

    Attributes:
        R, M, Q: ``(P, K)`` float32.
        d: ``(P, K, C)`` float32.
    """

    R: np.ndarray
    M: np.ndarray
    Q: np.ndarray
    d: np.ndarray

    @property
    def P(self) -> int:
        return int(self.R.shape[0])

    @property
    def K(self) -> int:
        return int(self.R.shape[1])

    @property
    def C(self) -> int:
        return int(self.d.shape[2])


def _as_field_array(value: Any, name: str, ndim: int, layout: str) -> np.ndarray:
    arr = np.asarray(value)
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(f"FieldSet: {name} must be a real numeric array {layout}, got dtype {arr.dtype}")
    if arr.ndim != ndim:
        raise ValueError(
            f"FieldSet: {name} must have shape {layout}, got shape {arr.shape}; "
            "stack per-image arrays along a new first axis (FieldSet.stack does this)"
        )
    arr = arr.astype(np.float32, copy=False)
    if not np.isfinite(arr).all():
        raise ValueError(
            f"FieldSet: {name} contains {int(np.sum(~np.isfinite(arr)))} NaN/infinite value(s); "
            "the fields must be finite (re-extract the trajectory or check the cache entry)"
        )
    return arr


@dataclass(frozen=True, eq=False)
class FieldSet:
    """REF fields of ``N`` images, ``K`` steps, ``C`` channels, ``H x W`` pixels.

    Any real dtype is accepted (e.g. the cache's float16) and stored as float32.

    Attributes:
        R, M, Q: ``(N, K, H, W)`` float32, finite, >= 0.
        d: ``(N, K, C, H, W)`` float32, finite.
        timesteps: ``(K,)`` diffusion timesteps ``s_1 > ... > s_K`` of the steps, or ``None``.
    """

    R: np.ndarray
    M: np.ndarray
    Q: np.ndarray
    d: np.ndarray
    timesteps: np.ndarray | None = None

    def __post_init__(self) -> None:
        layout = "(N, K, H, W)"
        for name in ("R", "M", "Q"):
            arr = _as_field_array(getattr(self, name), name, 4, layout)
            if arr.size and arr.min() < 0:
                raise ValueError(
                    f"FieldSet: {name} has negative values (min {arr.min():g}); R, M and Q are norms and "
                    "must be >= 0 — pass the fields themselves, not their logarithms"
                )
            object.__setattr__(self, name, arr)
        d = _as_field_array(self.d, "d", 5, "(N, K, C, H, W)")
        object.__setattr__(self, "d", d)
        shape = self.R.shape
        for name in ("M", "Q"):
            if getattr(self, name).shape != shape:
                raise ValueError(
                    f"FieldSet: R has shape {shape} but {name} has shape {getattr(self, name).shape}; "
                    "R, M and Q must all be (N, K, H, W) of the same images"
                )
        n, k, h, w = shape
        if d.shape[:2] != (n, k) or d.shape[3:] != (h, w):
            raise ValueError(
                f"FieldSet: R has shape {shape} so d must have shape ({n}, {k}, C, {h}, {w}), got {d.shape}"
            )
        if min(n, k, h, w, d.shape[2]) < 1:
            raise ValueError(
                f"FieldSet: every axis needs at least one element, got R {shape} and d {d.shape}"
            )
        if self.timesteps is not None:
            ts = np.asarray(self.timesteps)
            if ts.shape != (k,) or not np.issubdtype(ts.dtype, np.number):
                raise ValueError(
                    f"FieldSet: timesteps must be a numeric array of shape (K,) = ({k},), got {ts.shape}; "
                    "pass the timesteps s_1..s_K of the trajectory, or None"
                )
            object.__setattr__(self, "timesteps", ts)

    # -- shape -------------------------------------------------------------------------------
    @property
    def N(self) -> int:
        return int(self.R.shape[0])

    @property
    def K(self) -> int:
        return int(self.R.shape[1])

    @property
    def C(self) -> int:
        return int(self.d.shape[2])

    @property
    def H(self) -> int:
        return int(self.R.shape[2])

    @property
    def W(self) -> int:
        return int(self.R.shape[3])

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def stack(cls, records: Sequence[Any], timesteps: np.ndarray | None = None) -> FieldSet:
        """Stack per-image records (anything with ``R, M, Q: (K, H, W)`` and ``d: (K, C, H, W)``
        attributes, e.g. the cache's ``FieldRecord``) into a set.

        ``timesteps`` defaults to the first record's ``timesteps`` attribute, if it has one.
        """
        if len(records) == 0:
            raise ValueError("FieldSet.stack: records is empty; pass at least one image's fields")
        if timesteps is None:
            timesteps = getattr(records[0], "timesteps", None)
        arrays = {
            name: np.stack([np.asarray(getattr(r, name), dtype=np.float32) for r in records])
            for name in ("R", "M", "Q", "d")
        }
        return cls(timesteps=timesteps, **arrays)

    @classmethod
    def from_pixels(
        cls, pixels: PixelFields, n_images: int, height: int, width: int, timesteps: np.ndarray | None = None
    ) -> FieldSet:
        """Inverse of :meth:`pixels` over whole images: ``P = n_images * height * width``."""
        k, c = pixels.K, pixels.C
        shape = (n_images, height, width)

        def image_layout(x: np.ndarray, tail: tuple[int, ...]) -> np.ndarray:
            return np.moveaxis(x.reshape(*shape, k, *tail), 3, 1)

        return cls(
            R=image_layout(pixels.R, ()),
            M=image_layout(pixels.M, ()),
            Q=image_layout(pixels.Q, ()),
            d=np.moveaxis(pixels.d.reshape(*shape, k, c), (3, 4), (1, 2)),
            timesteps=timesteps,
        )

    # -- pixel views -------------------------------------------------------------------------
    def pixels(self, images: slice = slice(None)) -> PixelFields:
        """All pixels of ``images`` as ``(P, K)`` / ``(P, K, C)`` arrays (image-major, then row, column)."""
        r = self.R[images]
        k, c = self.K, self.C

        def pixel_layout(x: np.ndarray) -> np.ndarray:
            return np.moveaxis(x, 1, 3).reshape(-1, k)

        return PixelFields(
            R=pixel_layout(r),
            M=pixel_layout(self.M[images]),
            Q=pixel_layout(self.Q[images]),
            d=np.moveaxis(self.d[images], (1, 2), (3, 4)).reshape(-1, k, c),
        )

    def pixel_index(self, max_pixels: int | None, rng: RngLike = None) -> np.ndarray:
        """Flat indices into the ``N * H * W`` pixels: all of them if ``max_pixels`` is ``None`` or
        not smaller, else ``max_pixels`` drawn uniformly without replacement (sorted)."""
        total = self.N * self.H * self.W
        if max_pixels is not None and (
            isinstance(max_pixels, bool) or not isinstance(max_pixels, (int, np.integer)) or max_pixels < 1
        ):
            raise ValueError(f"FieldSet: max_pixels must be a positive int or None, got {max_pixels!r}")
        if max_pixels is None or max_pixels >= total:
            return np.arange(total)
        return np.sort(np.random.default_rng(rng).choice(total, size=int(max_pixels), replace=False))

    def sample_pixels(self, max_pixels: int | None, rng: RngLike = None) -> PixelFields:
        """A random sample of at most ``max_pixels`` pixels (all when ``None``) over all images.

        Args:
            max_pixels: sample size; ``None`` or ``>= N*H*W`` takes every pixel.
            rng: a ``numpy.random.Generator`` or a seed.

        Returns:
            :class:`PixelFields` with ``R, M, Q: (P, K)``, ``d: (P, K, C)``.
        """
        n, y, x = np.unravel_index(self.pixel_index(max_pixels, rng), (self.N, self.H, self.W))
        # advanced indices split by slices: the pixel axis comes first -> (P, K) and (P, K, C)
        return PixelFields(
            R=self.R[n, :, y, x], M=self.M[n, :, y, x], Q=self.Q[n, :, y, x], d=self.d[n, :, :, y, x]
        )


def map_pixels(
    fields: FieldSet,
    fn: Callable[[PixelFields], PixelFields],
    timesteps: np.ndarray | None,
    chunk_pixels: int = CHUNK_PIXELS,
) -> FieldSet:
    """Apply a per-pixel transform to every pixel of ``fields``, a few whole images at a time.

    ``fn`` maps ``(P, K_in)`` pixels to ``(P, K_out)`` pixels (it may change ``K`` but not ``C``).
    """
    per_chunk = max(1, chunk_pixels // (fields.H * fields.W))
    parts: dict[str, np.ndarray] = {}
    for start in range(0, fields.N, per_chunk):
        stop = min(start + per_chunk, fields.N)
        out = FieldSet.from_pixels(fn(fields.pixels(slice(start, stop))), stop - start, fields.H, fields.W)
        if not parts:
            parts = {
                name: np.empty((fields.N, *getattr(out, name).shape[1:]), dtype=np.float32)
                for name in ("R", "M", "Q", "d")
            }
        for name, dest in parts.items():
            dest[start:stop] = getattr(out, name)
    return FieldSet(timesteps=timesteps, **parts)
