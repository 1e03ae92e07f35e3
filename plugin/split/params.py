"""Split parameters: one frozen dataclass with the seed's defaults and a stable key."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass

from .calibrate import SEED

UNDATED_FRAGMENT_MODES = ("standalone", "attach")
METHODS = ("era", "seed")


# Every numeric parameter's allowed range. Cosine distances live in [0, 2]; the
# others are bounded where a larger value could only be a typo, and would otherwise
# overflow the arithmetic downstream (a year weight of 1e308, say).
RANGES: dict[str, tuple[float, float]] = {
    "recovery": (0, 2), "tighten": (0, 2), "subcluster": (0, 2), "fragment_dist": (0, 2),
    "undated_dist": (0, 2), "other_gap": (0, 2),
    "anchor_min": (1, 10_000_000), "fragment_years": (0, 200), "era_years": (0, 200),
    "year_weight": (0, 10),
    "min_face": (0, 100_000), "min_blur": (0, 1e12), "min_det": (0, 1),
    "pad": (0, 2), "size": (16, 4096), "top": (1, 100_000), "born": (1850, 2100),
}
WHOLE = {"anchor_min", "fragment_years", "era_years", "size", "top", "born"}
GATED = {"min_face", "min_blur"}  # None: the seed's, or lower for small or soft photos (calibrate.py)
OPTIONAL = {"anchor_min", *SEED, *GATED, "born"}  # None: derived per identity (scaled_anchor_min, calibrate.py)


class ParamError(ValueError):
    """A parameter out of its range; ``field`` names it so a front end can name its flag."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field} {problem}")


@dataclass(frozen=True)
class SplitParams:
    """Every tunable of one split run.

    Distances are cosine distances (1 - cosine similarity) between L2-normalised
    embeddings. ``anchor_min=None`` means "scale with the identity's size"
    (see :func:`scaled_anchor_min`); the value actually used is reported.
    """

    method: str = "era"  # "era" (default, see eras.py) or "seed" (the write-up's rule)
    # None: calibrated per identity (calibrate.py); the seed method uses the seed's 0.55,
    # 0.50, 0.35, 0.40 and 0.35. The result's params hold the values actually used.
    recovery: float | None = None  # wide recovery radius around the seed centroid
    tighten: float | None = None  # radius around the re-centred survivors
    subcluster: float | None = None  # average-linkage merge threshold (merge while below)
    anchor_min: int | None = None  # sub-clusters at least this big are anchors
    fragment_dist: float | None = None  # max centroid distance fragment -> anchor
    fragment_years: int = 5  # max |dominant-year difference| fragment -> anchor
    undated_fragments: str = "standalone"  # fragments whose year rule cannot be checked
    min_face: float | None = None  # quality gate: shorter bbox side in pixels (seed: 100)
    min_blur: float | None = None  # quality gate: sharpness, variance of Laplacian (seed: 40)
    min_det: float = 0.6  # quality gate: detector confidence
    year_weight: float = 0.05  # era: distance added per year apart (dated pairs)
    era_years: int = 2  # era: an era holds faces within this many years of its dominant year
    undated_dist: float | None = None  # era: max distance of an undated face to the era it joins
    other_gap: float = 0.10  # era: how much farther than usual an anchor may be before it is
    #                          taken for another person
    pad: float = 0.5  # crop padding around the face, as a share of its size per side
    size: int = 512  # crop side in pixels
    top: int = 8  # faces in the <name>_top<N>.fsz bundle
    born: int | None = None  # the person's birth year: era labels then give real ages from the dates

    def __post_init__(self) -> None:
        for name, (lo, hi) in RANGES.items():
            value = getattr(self, name)
            if value is None and name in OPTIONAL:
                continue
            whole = name in WHOLE
            if isinstance(value, bool) or not isinstance(value, (int, float)) or (
                whole and not float(value).is_integer()
            ):
                kind = "a whole number" if whole else "a number"
                raise ParamError(name, f"must be {kind} in [{lo:g}, {hi:g}], got {value!r}")
            if not (math.isfinite(value) and lo <= value <= hi):
                raise ParamError(name, f"must be a finite number in [{lo:g}, {hi:g}], got {value!r}")
        if self.method not in METHODS:
            raise ParamError("method", f"must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.undated_fragments not in UNDATED_FRAGMENT_MODES:
            raise ParamError(
                "undated_fragments", f"must be one of {', '.join(UNDATED_FRAGMENT_MODES)}, "
                f"got {self.undated_fragments!r}"
            )

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    def settings(self) -> dict:
        """What differs from the defaults: the settings a user asked for."""
        default = SplitParams()
        return {k: v for k, v in self.as_dict().items() if v != getattr(default, k)}

    @classmethod
    def from_settings(cls, settings: object) -> SplitParams:
        """Parameters from stored ``settings``; ParamError (naming the field) when a
        name is unknown or a value out of range."""
        if not isinstance(settings, dict):
            raise ParamError("settings", f"must be an object, got {type(settings).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(str(k) for k in settings if k not in known)
        if unknown:
            raise ParamError(unknown[0], "is not a setting era-split knows")
        return cls(**settings)

    def cache_key(self) -> str:
        """Stable short key of the parameters, recorded in manifests (cf. black's Mode)."""
        blob = json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def flag(name: str) -> str:
    """The command-line flag of a parameter (``min_blur`` -> ``--min-blur``)."""
    return "--" + name.replace("_", "-")


def settings_text(settings: dict) -> str:
    """``--min-blur 0 --era-years 3`` (as flags a user can paste), or ``the defaults``."""
    return " ".join(f"{flag(k)} {v:g}" if isinstance(v, float) else f"{flag(k)} {v}"
                    for k, v in sorted(settings.items())) or "the defaults"


def scaled_anchor_min(survivors: int, floor: int = 3) -> int:
    """Anchor (and era) size for an identity of ``survivors`` faces when none is given.

    The seed used 20 for ~856 survivors; a small identity would otherwise have no
    anchor at all, so the size shrinks in proportion, between ``floor`` and 20.
    The seed method keeps its floor of 3. The era method's floor is 2: a faceset of
    four faces, two of a child and two of the adult, holds two looks, and two faces
    that agree in looks and years are the least evidence of one (a single face is
    a photo, not an era). Below ~64 faces the era size is 2; it reaches 20 at ~830.
    """
    return max(floor, min(20, round(survivors * 20 / 850)))
