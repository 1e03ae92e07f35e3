"""What a split produced, below both the method (``split/``) and the host's files
(``host/``): the faces and buckets of a result, how buckets are named and
classified, and the result without faces that failed when written. The method
builds results here; the writer writes and trims them; front ends read them.
Nothing here imports ``split/`` or ``host/``.
"""

from __future__ import annotations

import copy
import dataclasses
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .labels import assign_labels

if TYPE_CHECKING:
    from .split.calibrate import Calibration
    from .split.params import SplitParams

UNDATED = 0  # a face's year when its photo has no date
Box = tuple[int, int, int, int]  # a crop box in the displayed photo

REASONS = {
    "anchor": "anchor sub-cluster",
    "anchor_with_fragments": "anchor sub-cluster with attached fragments",
    "fragment_no_anchor": "fragment; no sub-cluster is big enough to be an anchor",
    "fragment_far": "fragment; nearest anchor too far in embedding",
    "fragment_other_years": "fragment; nearest anchor is from other years",
    "fragment_undated": "undated fragment that joined no era (no year to check it by)",
    "split_by_years": "part of an anchor split by years",
    "merged_fragments": "small sub-clusters of the same years, close together, that add up to an era",
    "suspected_other_person": "a look apart from the curated faces' and nearly without curated faces: "
                              "probably another person",
}


QUARANTINED = {"suspected_other_person"}  # thin whatever their size (SPEC 3.1)
# Losing more than this share of a split's faces — photos unreadable, crops failing,
# a new split far smaller than the one it replaces — is refused unless forced: a
# wrong --remap or an unmounted photo drive far more often than a wish.
LOST_MOST = 0.5


def dominant_year(years: np.ndarray) -> int | None:
    """Most common dated year, the earliest on a tie; None when nothing is dated."""
    dated = [int(y) for y in years if y != UNDATED]
    if not dated:
        return None
    counts = Counter(dated)
    best = max(counts.values())
    return min(y for y, c in counts.items() if c == best)


def year_span(years: np.ndarray) -> tuple[int, int] | None:
    """10th-90th percentile of the dated years, widened to hold the dominant year."""
    dated = np.array([y for y in years if y != UNDATED], dtype=np.float64)
    if len(dated) == 0:
        return None
    lo = int(np.floor(np.percentile(dated, 10)))
    hi = int(np.ceil(np.percentile(dated, 90)))
    dom = dominant_year(years)
    return min(lo, dom), max(hi, dom)


@dataclass(frozen=True)
class Face:
    """One face that goes into a bucket, with everything the writer needs."""

    key: str
    recorded: str  # source path as the cache recorded it
    path: str  # where the photo lives now
    bbox: tuple[float, float, float, float]
    det_score: float
    blur: float
    face_short: float
    year: int  # 0 = undated
    box: Box  # planned crop box in the displayed photo
    quality: float


@dataclass(frozen=True)
class Bucket:
    name: str
    kind: str  # "era" or "thin"
    reason: str
    anchor: bool
    fragments: int
    dom_year: int | None
    span: tuple[int, int] | None
    faces: tuple[Face, ...]  # best first
    look: int = 1  # 2, 3...: another era of the same years, a look apart (its label says _look2)

    @property
    def keys(self) -> list[str]:
        return [f.key for f in self.faces]

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "kind": self.kind,
            "reason": self.reason,
            "faces": len(self.faces),
            "keys": self.keys,
            "dom_year": self.dom_year,
            "span": list(self.span) if self.span else None,
            "anchor": self.anchor,
            "fragments": self.fragments,
            "look": self.look,
        }


@dataclass(frozen=True)
class SplitResult:
    faceset: str
    params: SplitParams  # as used: anchor_min resolved
    anchor_min_scaled: bool
    counts: dict
    buckets: tuple[Bucket, ...]
    raw_sizes: tuple[int, ...] = field(default=())  # sub-cluster sizes, largest first
    calibration: Calibration | None = None  # how the thresholds were set
    # the settings asked for (params before calibration): kept with the split, so
    # the next plan, apply, tab, batch or roop split of this faceset starts from them
    settings: dict = field(default_factory=dict)

    @property
    def eras(self) -> list[Bucket]:
        return [b for b in self.buckets if b.kind == "era"]

    @property
    def thin(self) -> list[Bucket]:
        return [b for b in self.buckets if b.kind == "thin"]

    def to_json(self) -> dict:
        return {
            "faceset": self.faceset,
            "params": self.params.as_dict(),
            "params_key": self.params.cache_key(),
            "anchor_min_scaled": self.anchor_min_scaled,
            "calibration": self.calibration.to_json() if self.calibration else None,
            "settings": self.settings,
            "counts": self.counts,
            "buckets": [b.to_json() for b in self.buckets],
        }


def by_years(buckets: Iterable[Bucket]) -> list[Bucket]:
    """Oldest first, as a user reads a life: by span, then dominant year; undated last."""
    return sorted(buckets, key=lambda b: (b.span is None, b.span or (0, 0), b.dom_year or 0, b.name))


@dataclass(frozen=True)
class Draft:
    """A bucket before its name and kind are known."""

    reason: str
    anchor: bool
    fragments: int
    faces: tuple[Face, ...]  # best first


def label_buckets(
    drafts: Sequence[Draft], *, parent: str, anchor_min: int, taken: Iterable[str]
) -> list[Bucket]:
    """Name and classify drafts, largest first: an era whose years another era of
    this split already names is a look apart (``_look2``: the picker says so); any
    other clash gets ``_vN``. Eras first, then thin."""
    ordered = sorted(
        (d for d in drafts if d.faces), key=lambda d: (-len(d.faces), min(f.key for f in d.faces))
    )
    stats = []
    for d in ordered:
        years = np.array([f.year for f in d.faces], dtype=np.int64)
        stats.append((dominant_year(years), year_span(years)))
    kinds = ["era" if len(d.faces) >= anchor_min and d.reason not in QUARANTINED else "thin" for d in ordered]
    looks, seen = [], {}
    for kind, (_, span) in zip(kinds, stats):
        n = seen.get(span, 0) + 1 if kind == "era" else 1
        if kind == "era":
            seen[span] = n
        looks.append(n)
    names = assign_labels(parent, [span for _, span in stats], taken, looks)
    buckets = [
        Bucket(name, kind, d.reason, d.anchor, d.fragments, dom, span, d.faces, look)
        for d, (dom, span), name, kind, look in zip(ordered, stats, names, kinds, looks)
    ]
    buckets.sort(key=lambda b: b.kind != "era")  # stable: eras first, each largest first
    return buckets


def drop_faces(
    result: SplitResult, dropped: dict[str, str], taken: Iterable[str]
) -> SplitResult:
    """The result without faces that failed at export (key -> reason), relabelled
    and recounted against the names ``taken`` now, so the report matches the disk."""
    drafts = [
        Draft(b.reason, b.anchor, b.fragments, tuple(f for f in b.faces if f.key not in dropped))
        for b in result.buckets
    ]
    buckets = label_buckets(
        drafts, parent=result.faceset, anchor_min=int(result.params.anchor_min or 1), taken=taken
    )
    counts = copy.deepcopy(result.counts)
    left = Counter(counts["left_out"])
    left.update(dropped.values())
    counts["left_out"] = dict(sorted(left.items()))
    return dataclasses.replace(result, counts=counts, buckets=tuple(buckets))
