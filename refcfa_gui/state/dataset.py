"""What the dataset browser shows: the opened root, its categories and samples, roles, the filter.

Plain Python (no Qt, no IO): a worker reads the root through :func:`refcfa.api.open_dataset` and
hands the result to :meth:`DatasetState.load`; widgets subscribe to :attr:`DatasetState.events`.
Samples are :class:`refcfa.data.sample.Sample` records (only their attributes are used here).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from refcfa_gui.state.signals import Events

Role = Literal["source", "target"]
FilterMode = Literal["all", "good", "defective"]
ROLES: tuple[Role, ...] = ("source", "target")
FILTERS: tuple[FilterMode, ...] = ("all", "good", "defective")


@dataclass(frozen=True)
class Counts:
    """Image counts of a tree node: all, normal (``good``) and defective."""

    total: int
    good: int
    defective: int


def count(samples: Iterable[Any]) -> Counts:
    samples = list(samples)
    bad = sum(1 for s in samples if s.label == 1)
    return Counts(len(samples), len(samples) - bad, bad)


class DatasetState:
    """The opened dataset root.

    Events (callbacks get the new value): ``loaded`` (the state itself), ``error`` (message or
    ``None``), ``filter``, ``roles`` (``{"source": cat|None, "target": cat|None}``),
    ``unreadable`` (``{path: reason}``).
    """

    def __init__(self) -> None:
        self.events = Events("loaded", "error", "filter", "roles", "unreadable")
        self.root: Path | None = None
        self.format: str | None = None
        self.layout: str = ""
        self.categories: list[str] = []
        self.samples: dict[str, list[Any]] = {}
        self.roles: dict[Role, str | None] = {"source": None, "target": None}
        self.filter: FilterMode = "all"
        self.unreadable: dict[str, str] = {}
        self.error: str | None = None

    # -- loading ---------------------------------------------------------------------------------
    def load(
        self,
        root: str | Path,
        fmt: str,
        samples: Mapping[str, Sequence[Any]],
        layout: str = "",
    ) -> None:
        """Replace the dataset with ``samples`` (category -> samples) read from ``root``."""
        self.root = Path(root)
        self.format = fmt
        self.layout = layout
        self.categories = sorted(samples)
        self.samples = {c: list(samples[c]) for c in self.categories}
        self.unreadable = {}
        self.error = None
        # Keep roles whose category still exists; default source/target by name when unset.
        roles = {r: (c if c in self.samples else None) for r, c in self.roles.items()}
        for role in ROLES:
            if roles[role] is None:
                guess = [c for c in self.categories if role in c.lower() and c not in roles.values()]
                roles[role] = guess[0] if guess else None
        self.roles = roles
        self.events.loaded.emit(self)
        self.events.roles.emit(dict(self.roles))
        self.events.error.emit(None)

    def set_error(self, message: str | None) -> None:
        """Show ``message`` (a wrong layout, a missing folder); the loaded data stays as it was."""
        if message != self.error:
            self.error = message
            self.events.error.emit(message)

    # -- filter ----------------------------------------------------------------------------------
    def set_filter(self, mode: FilterMode) -> None:
        if mode not in FILTERS:
            raise ValueError(f"filter {mode!r}: expected one of {', '.join(FILTERS)}")
        if mode != self.filter:
            self.filter = mode
            self.events.filter.emit(mode)

    def passes(self, sample: Any) -> bool:
        """Whether ``sample`` is shown under the current filter (unreadable images never are)."""
        if str(sample.path) in self.unreadable:
            return False
        if self.filter == "good":
            return sample.label == 0
        if self.filter == "defective":
            return sample.label == 1
        return True

    # -- roles -----------------------------------------------------------------------------------
    def assign_role(self, category: str, role: Role | None) -> None:
        """Give ``category`` the ``role`` (``None`` clears its role).

        A category holds at most one role: making the source category the target moves it there
        and leaves the source unset.
        """
        if category not in self.samples:
            raise ValueError(
                f"category {category!r} is not in the opened dataset ({', '.join(self.categories)})"
            )
        if role is not None and role not in ROLES:
            raise ValueError(f"role {role!r}: expected 'source' or 'target'")
        roles = dict(self.roles)
        for r in ROLES:
            if roles[r] == category:
                roles[r] = None
        if role is not None:
            roles[role] = category
        if roles != self.roles:
            self.roles = roles
            self.events.roles.emit(dict(roles))

    def role_of(self, category: str) -> Role | None:
        for role, cat in self.roles.items():
            if cat == category:
                return role
        return None

    # -- unreadable images -----------------------------------------------------------------------
    def mark_unreadable(self, path: str | Path, reason: str) -> None:
        """Record that ``path`` cannot be read (listed with the reason, then skipped)."""
        key = str(path)
        if self.unreadable.get(key) != reason:
            self.unreadable[key] = reason
            self.events.unreadable.emit(dict(self.unreadable))

    # -- views of the data -----------------------------------------------------------------------
    def tree(self) -> dict[str, dict[str, dict[str, list[Any]]]]:
        """``{category: {split: {defect: [samples]}}}`` of the samples passing the filter.

        Splits are ordered train, test; defects ``good`` first, then by name; empty nodes dropped.
        """
        out: dict[str, dict[str, dict[str, list[Any]]]] = {}
        for category in self.categories:
            splits: dict[str, dict[str, list[Any]]] = {}
            for sample in self.samples[category]:
                if self.passes(sample):
                    splits.setdefault(sample.split, {}).setdefault(sample.defect, []).append(sample)
            ordered = {}
            for split in sorted(splits, key=lambda s: (s != "train", s)):
                defects = splits[split]
                ordered[split] = {d: defects[d] for d in sorted(defects, key=lambda d: (d != "good", d))}
            out[category] = ordered
        return out

    def counts(self, category: str) -> Counts:
        """Counts of ``category``'s readable samples (whatever the filter)."""
        return count(s for s in self.samples.get(category, []) if str(s.path) not in self.unreadable)

    def find(self, category: str, image_id: str) -> Any | None:
        for sample in self.samples.get(category, []):
            if sample.image_id == image_id:
                return sample
        return None

    def find_image(self, image_id: str, category: str | None = None) -> Any | None:
        """The first sample called ``image_id`` (in ``category`` when given, else in any)."""
        cats = [category] if category else self.categories
        for cat in cats:
            found = self.find(cat, image_id)
            if found is not None:
                return found
        return None

    def normal_samples(self, category: str) -> list[Any]:
        return [s for s in self.samples.get(category, []) if s.label == 0]
