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
from typing import TYPE_CHECKING, Protocol

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
    landmarks: tuple[float, ...] | None = None  # the detector's 5 points (x, y, ...), if the scan kept them
    age: float | None = None  # apparent age, if the scan measured it
    year_estimate: int | None = None  # an undated face's year from its apparent age and a birth year


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
    apparent_age: dict | None = None  # see apparent_age(); None: not measured

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
            "apparent_age": self.apparent_age,
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


# --- apparent age ------------------------------------------------------------------

MEASURE_PER_BUCKET = 48  # faces measured per bucket when the scan kept no ages: a median is steady by then


class AgeMeasure(Protocol):
    """Apparent ages of faces from their crops (``faces/age.py`` provides one)."""

    ident: str

    def __call__(self, faces: Sequence[Face], crops: Sequence[str], size: int) -> dict[str, float]: ...


def apparent_age(ages: Sequence[float], model: str) -> dict | None:
    """What an era's manifest records of its apparent age: the median over its
    measured faces, the 10th-90th percentile range, how many were measured."""
    a = np.array([v for v in ages if v is not None and np.isfinite(v)], dtype=np.float64)
    if len(a) == 0:
        return None
    return {"median": round(float(np.median(a)), 1), "low": round(float(np.percentile(a, 10)), 1),
            "high": round(float(np.percentile(a, 90)), 1), "faces": int(len(a)), "model": model}


def face_spread(age: dict) -> float:
    """How far one face's apparent age strays from its era's median, in years: the
    recorded 10th-90th percentile range is 2.56 standard deviations wide. Raises
    KeyError, TypeError or ValueError when the range is not recorded as numbers."""
    return (float(age["high"]) - float(age["low"])) / 2.56


def with_ages(result: SplitResult, crop_of: dict[str, str], measure: AgeMeasure | None) -> SplitResult:
    """``result`` with each bucket's apparent age: the ages the scan recorded, and
    where it recorded none, up to :data:`MEASURE_PER_BUCKET` faces per bucket
    measured from their crops (spread over the bucket's rank order)."""
    buckets = []
    for b in result.buckets:
        ages = {f.key: f.age for f in b.faces if f.age is not None}
        model = "scan" if ages else ""
        todo = [f for f in b.faces if f.age is None and f.key in crop_of]
        if measure is not None and todo and len(ages) < MEASURE_PER_BUCKET:
            pick = np.unique(np.linspace(0, len(todo) - 1, min(len(todo), MEASURE_PER_BUCKET - len(ages))).round()
                             .astype(int))
            sample = [todo[i] for i in pick]
            got = measure(sample, [crop_of[f.key] for f in sample], result.params.size)
            ages.update(got)
            model = measure.ident if got else model
        faces = tuple(dataclasses.replace(f, age=ages[f.key]) if f.key in ages and f.age is None else f
                      for f in b.faces)
        buckets.append(dataclasses.replace(b, faces=faces, apparent_age=apparent_age(list(ages.values()), model)))
    if result.params.born:
        buckets = _year_estimates(buckets, result.params.born)
    return dataclasses.replace(result, buckets=tuple(buckets))


MIN_AGE_SPREAD = 3.0  # years: one photo's apparent age strays at least this much (bench/age_chip.py: 2.3)


def _year_estimates(buckets: list[Bucket], born: int) -> list[Bucket]:
    """Each undated face of an era a year from ``born`` + its apparent age, where
    that is unambiguous: the estimate, give or take twice how far one face's
    apparent age strays in its era, meets the years of its own era and of no
    other. Recorded only (``year_estimate`` in the era's manifest): an estimate
    never labels or joins an era, and the undated rules stand."""
    spans = {b.name: b.span for b in buckets if b.kind == "era" and b.span}
    out = []
    for b in buckets:
        spread = max(MIN_AGE_SPREAD, face_spread(b.apparent_age) if b.apparent_age else 0.0)
        faces = []
        for f in b.faces:
            if f.year == UNDATED and f.age is not None and b.name in spans:
                lo, hi = born + f.age - 2 * spread, born + f.age + 2 * spread
                meets = [n for n, (a, z) in spans.items() if lo <= z and a <= hi]
                if meets == [b.name]:
                    f = dataclasses.replace(f, year_estimate=int(round(born + f.age)))
            faces.append(f)
        out.append(dataclasses.replace(b, faces=tuple(faces)))
    return out
