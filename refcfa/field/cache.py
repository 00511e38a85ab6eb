"""HDF5 trajectory cache: the REF of each image computed once, reused everywhere (DESIGN.md section 9).

This is the only module of ``refcfa`` that imports ``h5py``; it does not import torch.

Layout under ``root``::

    root/.lock                     fcntl.flock'ed around every index update (several ranks may write)
    root/index.json                advisory listing, replaced atomically (temp + os.replace)
    root/<key[:2]>/<key>.h5        one HDF5 file per entry
    root/<key[:2]>/.<key>.*.tmp    an entry being written (never read; stale ones removed by rescan)

Entry file: datasets ``R, M, Q`` ``(K, H, W)`` float16 and ``d`` ``(K, C, H, W)`` float16,
``x0_hat`` ``(K, C, H, W)`` uint8, each chunked one step per chunk (``(1, H, W)`` /
``(1, C, H, W)``) and *uncompressed* (a one-step read is one chunk read, ~tens of µs; gzip would
add ~0.5 ms); ``timesteps`` ``(K,)`` int64; ``image`` ``(C, H, W)`` uint8 (the input, for
viewers); root attributes: ``checkpoint_digest``, ``config_digest``, ``image_digest``,
``image_id``, ``t0``, ``K``, ``format_version`` (:data:`CACHE_FORMAT_VERSION`) plus free
string/number metadata (``label``, ``split``, ``category``, ``path`` …).

Documented choices:

* **Keys.** :func:`entry_key` hashes (checkpoint digest, config digest, image digest): a changed
  checkpoint, config or image is a different key, i.e. a miss, never a stale hit. ``put`` refuses
  a record whose attributes do not hash to the key it is stored under.
* **Crash safety.** An entry is written through a file descriptor to a unique temporary name in
  its final directory (held under ``flock`` while written), flushed, closed, ``fsync``'ed, then
  ``os.replace``'d onto ``<key>.h5`` and the directory ``fsync``'ed. A writer killed at any instant
  leaves every earlier entry intact and the interrupted one invisible (a temp name is never read).
  :meth:`TrajectoryCache.rescan` deletes temp files whose writer is gone (their ``flock`` is free).
* **Bad entries.** A file that does not open, lacks a dataset, has inconsistent shapes or another
  format version is a miss: ``get`` warns (:class:`CacheWarning`), deletes it and returns ``None``,
  so a ``put`` recomputes it. It is never trusted.
* **Readers** open entries read-only with ``locking=False``: they may read while writers write
  (other entries, or a new version of the same entry, which replaces the name atomically).
* **Index.** ``index.json`` (``key → {image_id, size_bytes, created, last_access, attrs}``) lets
  listings avoid opening every file. It is advisory: :meth:`TrajectoryCache.rescan` adds entry
  files missing from it and drops entries whose file is gone.
* **LRU budget.** ``get`` records access times in memory; the first ``get`` of a
  ``TrajectoryCache`` object writes them to the index at once, later ones at most every
  ``access_flush_s`` seconds, and always before an eviction and on ``flush()``/``close()``. After
  each ``put`` the total size (from the index) is brought under ``budget_bytes`` by deleting the
  least recently used entries (``last_access``, then key). The entry just written is never evicted
  by its own ``put`` (nor a batch by its own ``put_many``), even when it alone exceeds the budget.
* The index is one JSON file rewritten on every update (O(entries), ~10 ms per 1,000 entries);
  batched writers use :meth:`TrajectoryCache.put_many` (one index update per batch).
* ``x0_hat`` and ``image`` are stored as ``uint8`` ``round((x + 1) · 127.5)`` clipped to
  ``[0, 255]`` (values outside ``[-1, 1]`` are clipped) and read back as ``u / 127.5 − 1``.
* Entry steps are numbered ``n = 1..K`` as in DESIGN (``read_step(field, n)`` is 1-based).
* Without ``fcntl`` (Windows) the cache works without inter-process locking.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
import uuid
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import h5py
import numpy as np

from refcfa.errors import CacheError
from refcfa.fileio import fsync_dir

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

if TYPE_CHECKING:  # pragma: no cover
    from refcfa.field.primitives import FieldStep

__all__ = [
    "CACHE_FORMAT_VERSION",
    "CacheEntry",
    "CacheWarning",
    "FieldName",
    "FieldRecord",
    "TrajectoryCache",
    "array_digest",
    "decode_uint8",
    "encode_uint8",
    "entry_key",
    "file_digest",
]

CACHE_FORMAT_VERSION = 1
FieldName = Literal["R", "M", "Q", "d", "x0_hat"]
FIELDS: tuple[str, ...] = ("R", "M", "Q", "d", "x0_hat")
REQUIRED_ATTRS: tuple[str, ...] = ("checkpoint_digest", "config_digest", "image_digest", "image_id")
_KEY_RE = re.compile(r"[0-9a-f]{32}")
_INDEX_NAME = "index.json"
_LOCK_NAME = ".lock"
_INDEX_HEAD_BYTES = 64  # '{"nonce":"<32 hex>",' identifies one write of the index
_READ_CACHE_BYTES = 8 * 1024 * 1024  # per-dataset chunk cache: K one-step chunks for read_pixel


class CacheWarning(UserWarning):
    """A cache entry or index was unusable and has been discarded (it will be recomputed)."""


class _UnusableEntry(Exception):
    """Internal: an entry file that must not be trusted."""


# ---------------------------------------------------------------------------------------------
# digests and keys


def entry_key(checkpoint_digest: str, config_digest: str, image_digest: str) -> str:
    """Cache key: first 32 hex chars of ``sha256(checkpoint ∥ config ∥ image digests)``."""
    parts = {
        "checkpoint_digest": checkpoint_digest,
        "config_digest": config_digest,
        "image_digest": image_digest,
    }
    for name, value in parts.items():
        if not isinstance(value, str) or not value:
            raise ValueError(
                f"{name} = {value!r}: expected a non-empty digest string (file_digest/array_digest)"
            )
    payload = "\0".join(("refcfa-cache", checkpoint_digest, config_digest, image_digest))
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def file_digest(path: str | os.PathLike[str]) -> str:
    """sha256 hex digest of a file's bytes (e.g. a checkpoint)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def array_digest(array: np.ndarray) -> str:
    """sha256 hex digest of an array's dtype, shape and C-ordered bytes (e.g. an input image)."""
    a = np.ascontiguousarray(array)
    h = hashlib.sha256(f"{a.dtype.str}|{a.shape}|".encode())
    h.update(a.tobytes())
    return h.hexdigest()


def encode_uint8(x: np.ndarray) -> np.ndarray:
    """``[-1, 1]`` floats → uint8 ``round((x + 1) · 127.5)`` clipped to ``[0, 255]``."""
    return np.clip(np.rint((np.asarray(x, dtype=np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def decode_uint8(u: np.ndarray) -> np.ndarray:
    """uint8 → float32 ``u / 127.5 − 1`` in ``[-1, 1]``."""
    return np.asarray(u, dtype=np.float32) / np.float32(127.5) - np.float32(1.0)


def _py_scalar(name: str, value: Any) -> str | int | float | bool:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, (str, bool, int, float)):
        return value
    raise TypeError(
        f"attrs[{name!r}] = {value!r} ({type(value).__name__}): expected a str, int, float or bool "
        "(store other metadata as a string)"
    )


# ---------------------------------------------------------------------------------------------
# record


@dataclass
class FieldRecord:
    """The cached REF of one image.

    Attributes:
        R, M, Q: ``(K, H, W)`` float16.
        d: ``(K, C, H, W)`` float16.
        x0_hat: ``(K, C, H, W)`` uint8 (:func:`encode_uint8` of the ``[-1, 1]`` estimate).
        timesteps: ``(K,)`` integer, ``s_1 … s_K``.
        image: ``(C, H, W)`` uint8, the input image.
        attrs: ``checkpoint_digest``, ``config_digest``, ``image_digest``, ``image_id`` (needed by
            ``put``), ``t0``/``K``/``format_version`` (filled in when missing, checked when given),
            plus free str/int/float/bool metadata.
    """

    R: np.ndarray
    M: np.ndarray
    Q: np.ndarray
    d: np.ndarray
    x0_hat: np.ndarray
    timesteps: np.ndarray
    image: np.ndarray
    attrs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        expected = {"R": np.float16, "M": np.float16, "Q": np.float16, "d": np.float16, "x0_hat": np.uint8}
        for name, dtype in expected.items():
            arr = getattr(self, name)
            if not isinstance(arr, np.ndarray) or arr.dtype != dtype:
                raise TypeError(
                    f"FieldRecord.{name}: expected a numpy {np.dtype(dtype).name} array, got "
                    f"{type(arr).__name__} {getattr(arr, 'dtype', '')} (use FieldRecord.from_steps)"
                )
        if self.R.ndim != 3:
            raise ValueError(f"FieldRecord.R: expected (K, H, W), got {self.R.shape}")
        K, H, W = self.R.shape
        for name in ("M", "Q"):
            if getattr(self, name).shape != (K, H, W):
                raise ValueError(
                    f"FieldRecord.{name}: expected {(K, H, W)} like R, got {getattr(self, name).shape}"
                )
        if self.d.ndim != 4 or self.d.shape[0] != K or self.d.shape[2:] != (H, W):
            raise ValueError(f"FieldRecord.d: expected (K={K}, C, H={H}, W={W}), got {self.d.shape}")
        C = self.d.shape[1]
        if self.x0_hat.shape != (K, C, H, W):
            raise ValueError(f"FieldRecord.x0_hat: expected {(K, C, H, W)}, got {self.x0_hat.shape}")
        ts = np.asarray(self.timesteps)
        if ts.shape != (K,) or not np.issubdtype(ts.dtype, np.integer):
            raise ValueError(f"FieldRecord.timesteps: expected {K} integers, got {ts.dtype} {ts.shape}")
        self.timesteps = ts.astype(np.int64)
        if (
            not isinstance(self.image, np.ndarray)
            or self.image.dtype != np.uint8
            or self.image.shape != (C, H, W)
        ):
            raise ValueError(
                f"FieldRecord.image: expected uint8 {(C, H, W)}, got "
                f"{getattr(self.image, 'dtype', type(self.image).__name__)} {getattr(self.image, 'shape', '')}"
            )
        attrs = {str(k): _py_scalar(str(k), v) for k, v in dict(self.attrs).items()}
        for name, value in (("t0", int(ts[0])), ("K", K), ("format_version", CACHE_FORMAT_VERSION)):
            if attrs.setdefault(name, value) != value:
                raise ValueError(
                    f"FieldRecord.attrs[{name!r}] = {attrs[name]!r} disagrees with the arrays ({value})"
                )
        self.attrs = attrs

    @property
    def K(self) -> int:
        return int(self.R.shape[0])

    @property
    def nbytes(self) -> int:
        return sum(int(getattr(self, n).nbytes) for n in (*FIELDS, "timesteps", "image"))

    @classmethod
    def from_steps(
        cls,
        steps: Sequence[FieldStep],
        image: Any,
        attrs: Mapping[str, Any] | None = None,
        index: int = 0,
    ) -> FieldRecord:
        """Build the record of batch element ``index`` from the ``K`` :class:`FieldStep` of a trajectory.

        Args:
            steps: the steps ``n = 1..K`` in order (batched tensors ``(B, …)``).
            image: the input ``(C, H, W)``: a float tensor/array in ``[-1, 1]`` or a uint8 array.
            attrs: metadata (see the class docstring); ``t0`` and ``K`` are filled in.
            index: which batch element.
        """
        steps = list(steps)
        if not steps or [s.n for s in steps] != list(range(1, len(steps) + 1)):
            raise ValueError(
                f"steps: expected the FieldSteps n = 1..K of one trajectory, got n = {[s.n for s in steps]}"
            )

        def np32(t: Any) -> np.ndarray:
            if hasattr(t, "detach"):
                t = t.detach().to("cpu").float().numpy()
            return np.asarray(t, dtype=np.float32)

        def stack(name: str) -> np.ndarray:
            return np.stack([np32(getattr(s, name)[index]) for s in steps])

        img = image.detach().to("cpu").numpy() if hasattr(image, "detach") else np.asarray(image)
        img = img if img.dtype == np.uint8 else encode_uint8(img)
        return cls(
            R=stack("R").astype(np.float16),
            M=stack("M").astype(np.float16),
            Q=stack("Q").astype(np.float16),
            d=stack("d").astype(np.float16),
            x0_hat=encode_uint8(stack("x0_hat")),
            timesteps=np.array([s.timestep for s in steps], dtype=np.int64),
            image=img,
            attrs=dict(attrs or {}),
        )


# ---------------------------------------------------------------------------------------------
# reading


class CacheEntry:
    """A read-only view of one cached entry (an open HDF5 file). Close it, or use ``with``."""

    def __init__(self, path: str | os.PathLike[str], key: str | None = None):
        self.path = Path(path)
        self.key = key if key is not None else self.path.stem
        try:
            self._f = h5py.File(
                self.path, "r", locking=False, rdcc_nbytes=_READ_CACHE_BYTES, rdcc_nslots=10007
            )
        except FileNotFoundError:
            raise
        except (OSError, ValueError) as exc:
            raise _UnusableEntry(f"not a readable HDF5 file ({exc})") from exc
        try:
            self._validate()
        except BaseException:
            self._f.close()
            raise

    def _validate(self) -> None:
        """Format version, datasets and shapes; the other attributes are read on first use (h5py
        attribute reads cost ~0.1 ms each)."""
        try:
            file_attrs = self._f.attrs
            version = _py_scalar("format_version", file_attrs.get("format_version", ""))
            if version != CACHE_FORMAT_VERSION:
                raise _UnusableEntry(f"format version {version!r}, expected {CACHE_FORMAT_VERSION}")
            found = {n: self._f.get(n) for n in (*FIELDS, "timesteps", "image")}
            missing = [n for n, obj in found.items() if not isinstance(obj, h5py.Dataset)]
            if missing:
                raise _UnusableEntry(f"missing datasets {missing}")
            self._ds = {n: found[n] for n in FIELDS}
            K, H, W = self._ds["R"].shape
            C = self._ds["d"].shape[1]
            shapes = {
                "R": (K, H, W),
                "M": (K, H, W),
                "Q": (K, H, W),
                "d": (K, C, H, W),
                "x0_hat": (K, C, H, W),
            }
            for n, shape in shapes.items():
                if self._ds[n].shape != shape:
                    raise _UnusableEntry(f"dataset {n} has shape {self._ds[n].shape}, expected {shape}")
            self.timesteps: np.ndarray = found["timesteps"][()].astype(np.int64)
            attr_K = _py_scalar("K", file_attrs.get("K", ""))
            if self.timesteps.shape != (K,) or attr_K != K:
                raise _UnusableEntry(
                    f"timesteps {self.timesteps.shape} / attrs K={attr_K!r} disagree with K={K}"
                )
            self._image_ds = found["image"]
        except (OSError, KeyError, ValueError, TypeError) as exc:
            raise _UnusableEntry(f"unreadable structure ({exc})") from exc
        self._attrs: dict[str, Any] | None = None
        self.K, self.C, self.H, self.W = int(K), int(C), int(H), int(W)

    @property
    def attrs(self) -> dict[str, Any]:
        """The entry's attributes (read on first access, which must happen while the entry is open)."""
        if self._attrs is None:
            if not self._f.id.valid:
                raise ValueError(f"cache entry {self.path} is closed: read .attrs before close()")
            self._attrs = {k: _py_scalar(k, v) for k, v in self._f.attrs.items()}
        return self._attrs

    def _check(self, field: str) -> h5py.Dataset:
        if field not in self._ds:
            raise ValueError(f"field {field!r}: expected one of {', '.join(FIELDS)}")
        return self._ds[field]

    def read_step(self, field: FieldName, n: int) -> np.ndarray:
        """Step ``n`` (1-based) of ``field`` as float32: ``(H, W)`` for R/M/Q, ``(C, H, W)`` for d/x0_hat."""
        ds = self._check(field)
        if not 1 <= int(n) <= self.K:
            raise ValueError(f"step n = {n}: expected 1 <= n <= K = {self.K} (steps are 1-based)")
        raw = ds[int(n) - 1]
        return decode_uint8(raw) if field == "x0_hat" else raw.astype(np.float32)

    def read_all(self, field: FieldName) -> np.ndarray:
        """All steps of ``field`` as float32 ``(K, …)`` (``x0_hat`` decoded to ``[-1, 1]``)."""
        raw = self._check(field)[()]
        return decode_uint8(raw) if field == "x0_hat" else raw.astype(np.float32)

    def read_pixel(self, y: int, x: int, fields: Sequence[str] = ("R", "M", "Q")) -> dict[str, np.ndarray]:
        """Series of pixel ``(y, x)`` over the ``K`` steps: ``{field: float32 (K,)}`` (``d``: ``(K, C)``)."""
        if not (0 <= int(y) < self.H and 0 <= int(x) < self.W):
            raise ValueError(f"pixel (y={y}, x={x}): expected 0 <= y < {self.H} and 0 <= x < {self.W}")
        out = {}
        for name in fields:
            ds = self._check(name)
            raw = ds[:, int(y), int(x)] if ds.ndim == 3 else ds[:, :, int(y), int(x)]
            out[name] = decode_uint8(raw) if name == "x0_hat" else raw.astype(np.float32)
        return out

    def read_image(self) -> np.ndarray:
        """The input image, uint8 ``(C, H, W)``."""
        return self._image_ds[()]

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> CacheEntry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"CacheEntry({str(self.path)!r}, K={self.K}, C={self.C}, H={self.H}, W={self.W})"


# ---------------------------------------------------------------------------------------------
# the cache


def _is_temp(name: str) -> bool:
    return name.startswith(".") and name.endswith(".tmp")


class TrajectoryCache:
    """Directory of per-image REF entries (see the module docstring for layout and guarantees).

    Args:
        root: cache directory (created if needed).
        budget_bytes: total size to stay under after each ``put`` (LRU eviction); ``None``: unbounded.
        access_flush_s: at most how often ``get`` writes access times to the index.

    Raises:
        CacheError: ``root`` cannot be created or written.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        budget_bytes: int | None = None,
        access_flush_s: float = 5.0,
    ):
        self.root = Path(root)
        if budget_bytes is not None and int(budget_bytes) < 0:
            raise ValueError(f"budget_bytes = {budget_bytes}: expected None or a size >= 0 in bytes")
        self.budget_bytes = None if budget_bytes is None else int(budget_bytes)
        self.access_flush_s = float(access_flush_s)
        self._index_path = self.root / _INDEX_NAME
        self._lock_path = self.root / _LOCK_NAME
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            os.close(os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o644))
            writable = os.access(self.root, os.W_OK | os.X_OK)
        except OSError as exc:
            raise CacheError(
                f"cache directory {self.root} is not writable ({exc.strerror or exc}); "
                "choose another --cache directory or fix its permissions"
            ) from exc
        if not writable:
            raise CacheError(
                f"cache directory {self.root} is not writable; choose another --cache directory or fix its permissions"
            )
        self._pending: dict[str, float] = {}
        self._last_flush = float("-inf")  # the first get() writes its access time at once
        self._index_sig: tuple[int, int, int, bytes] | None = None  # (inode, mtime_ns, size, head)
        self._index_entries: dict[str, dict[str, Any]] = {}
        if not self._index_path.exists():
            self.rescan()

    # -- paths and locking ------------------------------------------------------------------

    @staticmethod
    def _check_key(key: str) -> str:
        if not isinstance(key, str) or not _KEY_RE.fullmatch(key):
            raise ValueError(f"cache key {key!r}: expected 32 lowercase hex characters from entry_key(...)")
        return key

    def path_for(self, key: str) -> Path:
        """``root/<key[:2]>/<key>.h5``."""
        self._check_key(key)
        return self.root / key[:2] / f"{key}.h5"

    @contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        except BaseException:
            self._index_sig = None  # the parsed index may hold changes that were not written
            raise
        finally:
            os.close(fd)  # releases the flock

    # -- index ------------------------------------------------------------------------------

    def _read_index(self) -> dict[str, dict[str, Any]] | None:
        """Entries of ``index.json``; ``{}`` when absent, ``None`` when unreadable.

        The parsed index is kept and reused while the file is unchanged: same inode, mtime and
        size, and the same random ``nonce`` that every write puts first in the file (inode
        numbers are recycled and mtimes can be coarse, the nonce is not).
        """
        try:
            with open(self._index_path, "rb") as fh:
                st = os.fstat(fh.fileno())
                head = fh.read(_INDEX_HEAD_BYTES)
                sig = (st.st_ino, st.st_mtime_ns, st.st_size, head)
                if sig == self._index_sig:
                    return self._index_entries
                payload = json.loads(head + fh.read())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            return None
        if not isinstance(payload, dict) or payload.get("format_version") != CACHE_FORMAT_VERSION:
            return None
        entries = payload.get("entries")
        if not isinstance(entries, dict):
            return None
        self._index_sig, self._index_entries = sig, entries
        return entries

    def _load_index_locked(self) -> dict[str, dict[str, Any]]:
        entries = self._read_index()
        if entries is None:
            warnings.warn(
                f"cache index {self._index_path} is unreadable; rebuilding it from the entry files",
                CacheWarning,
                stacklevel=3,
            )
            entries = self._scan_locked({})[0]
        return entries

    def _write_index_locked(self, entries: dict[str, dict[str, Any]], durable: bool = True) -> None:
        """Replace ``index.json`` atomically; ``durable=False`` (access times only) skips the fsync."""
        tmp = self.root / f".index.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
        payload = {"nonce": uuid.uuid4().hex, "format_version": CACHE_FORMAT_VERSION, "entries": entries}
        text = json.dumps(payload, separators=(",", ":"), check_circular=False).encode()
        try:
            with open(tmp, "wb") as fh:
                fh.write(text)
                if durable:
                    fh.flush()
                    os.fsync(fh.fileno())
            os.replace(tmp, self._index_path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            self._index_sig = None
            raise
        st = os.stat(self._index_path)  # ours: every writer holds the lock
        sig = (st.st_ino, st.st_mtime_ns, st.st_size, text[:_INDEX_HEAD_BYTES])
        self._index_sig, self._index_entries = sig, entries

    def _apply_pending_locked(self, entries: dict[str, dict[str, Any]]) -> None:
        for key, t in self._pending.items():
            if key in entries:
                entries[key]["last_access"] = max(float(entries[key].get("last_access", 0.0)), t)
        self._pending.clear()
        self._last_flush = time.monotonic()

    @staticmethod
    def _index_info(attrs: Mapping[str, Any], size: int, when: float) -> dict[str, Any]:
        return {
            "image_id": attrs.get("image_id"),
            "size_bytes": int(size),
            "created": when,
            "last_access": when,
            "attrs": dict(attrs),
        }

    # -- public API -------------------------------------------------------------------------

    def has(self, key: str) -> bool:
        """Whether an entry file exists for ``key`` (cheap; ``get`` validates it)."""
        return self.path_for(key).is_file()

    def get(self, key: str) -> CacheEntry | None:
        """Open the entry of ``key`` read-only, or ``None`` on a miss.

        An unusable file (truncated, corrupt, another format version) is a miss: a
        :class:`CacheWarning` is issued and the file deleted, so that it is recomputed.
        """
        path = self.path_for(key)
        try:
            st = path.stat()
            entry = CacheEntry(path, key)
        except FileNotFoundError:
            return None
        except _UnusableEntry as exc:
            warnings.warn(
                f"cache entry {path} is unusable ({exc}); deleted, it will be recomputed",
                CacheWarning,
                stacklevel=2,
            )
            self._discard(key, path, st)
            return None
        self._pending[key] = time.time()
        if time.monotonic() - self._last_flush >= self.access_flush_s:
            self.flush()
        return entry

    def put(self, key: str, record: FieldRecord) -> Path:
        """Store ``record`` under ``key`` atomically (replacing any previous entry); returns its path.

        Raises:
            ValueError: the key is malformed, a required attribute is missing, or the record's
                digests do not hash to ``key``.
        """
        return self.put_many([(key, record)])[0]

    def put_many(self, items: Iterable[tuple[str, FieldRecord]]) -> list[Path]:
        """:meth:`put` for several entries with a single index update (the index rewrite is
        O(entries), so batched extraction should use this). Each entry file is written
        atomically on its own; the entries written before an error are still indexed.
        The budget never evicts entries of the same call.
        """
        items = list(items)
        for key, record in items:
            self._check_record(key, record)
        written: list[tuple[str, FieldRecord, Path, int]] = []
        try:
            for key, record in items:
                final = self.path_for(key)
                final.parent.mkdir(exist_ok=True)
                for attempt in range(3):
                    if self._write_entry(final, key, record):
                        break
                    if attempt == 2:  # pragma: no cover - a rescan racing this very write three times
                        raise CacheError(
                            f"could not write cache entry {final}: its temporary file kept disappearing"
                        )
                written.append((key, record, final, final.stat().st_size))
        finally:
            if written:
                now = time.time()
                with self._locked():
                    entries = self._load_index_locked()
                    self._apply_pending_locked(entries)
                    for key, record, _, size in written:
                        entries[key] = self._index_info(record.attrs, size, now)
                    if self.budget_bytes is not None:
                        self._evict_locked(entries, self.budget_bytes, protect={w[0] for w in written})
                    self._write_index_locked(entries)
        return [w[2] for w in written]

    def _check_record(self, key: str, record: FieldRecord) -> None:
        self._check_key(key)
        if not isinstance(record, FieldRecord):
            raise TypeError(f"record for key {key}: expected a FieldRecord, got {type(record).__name__}")
        missing = [a for a in REQUIRED_ATTRS if a not in record.attrs]
        if missing:
            raise ValueError(
                f"record for key {key} lacks attrs {missing}: set them before put (see FieldRecord)"
            )
        expected = entry_key(
            str(record.attrs["checkpoint_digest"]),
            str(record.attrs["config_digest"]),
            str(record.attrs["image_digest"]),
        )
        if expected != key:
            raise ValueError(
                f"key {key} does not match the record's digests (entry_key gives {expected}): "
                "store records under entry_key(checkpoint_digest, config_digest, image_digest)"
            )

    def _write_entry(self, final: Path, key: str, record: FieldRecord) -> bool:
        """Write to a locked temp file, fsync, rename onto ``final``. False if the temp file was lost."""
        tmp = final.parent / f".{key}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp"
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)  # marks the temp file as "being written" for rescan
            with os.fdopen(os.dup(fd), "r+b") as fobj:
                self._write_h5(fobj, record)
                fobj.flush()
            os.fsync(fd)
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(tmp))
            except FileNotFoundError:
                same = False
            if not same:  # a rescan judged it stale between O_EXCL and flock: write again
                return False
            os.replace(tmp, final)
        except BaseException:
            try:
                if os.path.samestat(os.fstat(fd), os.stat(tmp)):
                    os.unlink(tmp)
            except OSError:
                pass
            raise
        finally:
            os.close(fd)
        fsync_dir(final.parent)
        return True

    @staticmethod
    def _write_h5(fobj: Any, record: FieldRecord) -> None:
        K, H, W = record.R.shape
        C = record.d.shape[1]
        with h5py.File(fobj, "w") as f:
            for name in ("R", "M", "Q"):
                f.create_dataset(name, data=getattr(record, name), chunks=(1, H, W))
            f.create_dataset("d", data=record.d, chunks=(1, C, H, W))
            f.create_dataset("x0_hat", data=record.x0_hat, chunks=(1, C, H, W))
            f.create_dataset("timesteps", data=record.timesteps.astype(np.int64))
            f.create_dataset("image", data=record.image)
            for k, v in record.attrs.items():
                f.attrs[k] = v

    def _discard(self, key: str, path: Path, st: os.stat_result) -> None:
        with self._locked():
            try:
                if os.path.samestat(st, path.stat()):  # not replaced by a fresh write meanwhile
                    path.unlink()
            except FileNotFoundError:
                pass
            entries = self._load_index_locked()
            if key in entries and not path.exists():
                del entries[key]
                self._write_index_locked(entries)

    def delete(self, key: str) -> bool:
        """Remove the entry of ``key``; True if a file was removed."""
        path = self.path_for(key)
        with self._locked():
            try:
                path.unlink()
                removed = True
            except FileNotFoundError:
                removed = False
            entries = self._load_index_locked()
            if entries.pop(key, None) is not None:
                self._write_index_locked(entries)
        self._pending.pop(key, None)
        return removed

    def keys(self) -> list[str]:
        """Keys listed in the index (sorted)."""
        return sorted(self._read_index() or {})

    def list_entries(self) -> list[dict[str, Any]]:
        """Index entries as dicts (``key``, ``image_id``, ``size_bytes``, ``created``, ``last_access``, ``attrs``)."""
        entries = self._read_index() or {}
        out = []
        for key in sorted(entries):
            info = dict(entries[key], key=key)
            info["attrs"] = dict(info.get("attrs") or {})
            if key in self._pending:
                info["last_access"] = max(float(info.get("last_access", 0.0)), self._pending[key])
            out.append(info)
        return out

    def total_bytes(self) -> int:
        """Sum of ``size_bytes`` over the index."""
        return sum(int(e.get("size_bytes", 0)) for e in (self._read_index() or {}).values())

    def flush(self) -> None:
        """Write the access times recorded by ``get`` to the index."""
        if not self._pending:
            self._last_flush = time.monotonic()
            return
        with self._locked():
            entries = self._load_index_locked()
            self._apply_pending_locked(entries)
            self._write_index_locked(entries, durable=False)

    def evict(self, target_bytes: int | None = None) -> list[str]:
        """Delete least-recently-used entries until the total is ``<= target_bytes`` (default: the budget).

        Returns the evicted keys (none when there is neither a target nor a budget).
        """
        target = self.budget_bytes if target_bytes is None else int(target_bytes)
        if target is None:
            return []
        with self._locked():
            entries = self._load_index_locked()
            self._apply_pending_locked(entries)
            evicted = self._evict_locked(entries, target, protect=set())
            self._write_index_locked(entries)
        return evicted

    def _evict_locked(self, entries: dict[str, dict[str, Any]], target: int, protect: set[str]) -> list[str]:
        total = sum(int(e.get("size_bytes", 0)) for e in entries.values())
        order = sorted(
            (k for k in entries if k not in protect),
            key=lambda k: (float(entries[k].get("last_access", 0.0)), k),
        )
        evicted = []
        for key in order:
            if total <= target:
                break
            self.path_for(key).unlink(missing_ok=True)
            total -= int(entries.pop(key).get("size_bytes", 0))
            evicted.append(key)
        return evicted

    def rescan(self) -> dict[str, int]:
        """Reconcile the index with the disk.

        Adds entry files missing from the index (validated; unusable ones deleted), drops index
        entries without a file, deletes stale temp files (a writer that died: its ``flock`` is free)
        and stale index temp files. Returns counts: ``entries``, ``added``, ``dropped``,
        ``removed_temp``, ``removed_corrupt``.
        """
        with self._locked():
            old = self._read_index() or {}
            entries, counts = self._scan_locked(old)
            self._apply_pending_locked(entries)
            self._write_index_locked(entries)
        counts["dropped"] = len(set(old) - set(entries))
        counts["entries"] = len(entries)
        return counts

    def _scan_locked(
        self, old: dict[str, dict[str, Any]]
    ) -> tuple[dict[str, dict[str, Any]], dict[str, int]]:
        entries: dict[str, dict[str, Any]] = {}
        counts = {"added": 0, "removed_temp": 0, "removed_corrupt": 0}
        for p in self.root.glob(".index.*.tmp"):  # index temps are only written under the lock we hold
            p.unlink(missing_ok=True)
            counts["removed_temp"] += 1
        for sub in sorted(self.root.iterdir()):
            if not (sub.is_dir() and re.fullmatch(r"[0-9a-f]{2}", sub.name)):
                continue
            for p in sorted(sub.iterdir()):
                name = p.name
                if _is_temp(name):
                    counts["removed_temp"] += int(self._remove_if_stale(p))
                    continue
                key = name[:-3]
                if not (name.endswith(".h5") and _KEY_RE.fullmatch(key) and key[:2] == sub.name):
                    continue
                try:
                    st = p.stat()
                except FileNotFoundError:
                    continue
                if key in old and int(old[key].get("size_bytes", -1)) == st.st_size:
                    entries[key] = old[key]
                    continue
                try:
                    with CacheEntry(p, key) as entry:
                        entries[key] = self._index_info(entry.attrs, st.st_size, st.st_mtime)
                    counts["added"] += 1
                except FileNotFoundError:
                    continue
                except _UnusableEntry as exc:
                    warnings.warn(f"cache entry {p} is unusable ({exc}); deleted", CacheWarning, stacklevel=3)
                    p.unlink(missing_ok=True)
                    counts["removed_corrupt"] += 1
        return entries, counts

    @staticmethod
    def _remove_if_stale(path: Path) -> bool:
        """Delete a temp entry file whose writer is gone (its flock can be taken)."""
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return False  # a live writer holds it
            try:
                if not os.path.samestat(os.fstat(fd), path.stat()):
                    return False
                path.unlink()
            except FileNotFoundError:
                return False
            return True
        finally:
            os.close(fd)

    def close(self) -> None:
        """Flush pending access times."""
        self.flush()

    def __enter__(self) -> TrajectoryCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"TrajectoryCache({str(self.root)!r}, budget_bytes={self.budget_bytes})"
