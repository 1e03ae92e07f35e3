"""Split parameters: one frozen dataclass with the seed's defaults and a stable key."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass

UNDATED_FRAGMENT_MODES = ("standalone", "attach")
METHODS = ("era", "seed")


@dataclass(frozen=True)
class SplitParams:
    """Every tunable of one split run.

    Distances are cosine distances (1 - cosine similarity) between L2-normalised
    embeddings. ``anchor_min=None`` means "scale with the identity's size"
    (see :func:`scaled_anchor_min`); the value actually used is reported.
    """

    method: str = "era"  # "era" (default, see eras.py) or "seed" (the write-up's rule)
    recovery: float = 0.55  # wide recovery radius around the seed centroid
    tighten: float = 0.50  # radius around the re-centred survivors
    subcluster: float = 0.35  # average-linkage merge threshold (merge while below)
    anchor_min: int | None = None  # sub-clusters at least this big are anchors
    fragment_dist: float = 0.40  # max centroid distance fragment -> anchor
    fragment_years: int = 5  # max |dominant-year difference| fragment -> anchor
    undated_fragments: str = "standalone"  # fragments whose year rule cannot be checked
    min_face: float = 100.0  # quality gate: shorter bbox side in pixels
    min_blur: float = 40.0  # quality gate: variance of Laplacian
    min_det: float = 0.6  # quality gate: detector confidence
    year_weight: float = 0.05  # era: distance added per year apart (dated pairs)
    era_years: int = 2  # era: an era holds faces within this many years of its dominant year
    undated_dist: float = 0.35  # era: max distance of an undated face to the era it joins
    other_gap: float = 0.10  # era: how much farther than usual an anchor may be before it is
    #                          taken for another person
    pad: float = 0.5  # crop padding around the face, as a share of its size per side
    size: int = 512  # crop side in pixels
    top: int = 8  # faces in the <name>_top<N>.fsz bundle

    def __post_init__(self) -> None:
        for name in ("recovery", "tighten", "subcluster", "fragment_dist"):
            value = getattr(self, name)
            if not 0.0 <= value <= 2.0:
                raise ValueError(f"{name} must be a cosine distance in [0, 2], got {value}")
        if self.anchor_min is not None and self.anchor_min < 1:
            raise ValueError(f"anchor_min must be at least 1, got {self.anchor_min}")
        if self.fragment_years < 0:
            raise ValueError(f"fragment_years must be >= 0, got {self.fragment_years}")
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if self.year_weight < 0 or self.era_years < 0 or not 0 <= self.undated_dist <= 2 or self.other_gap < 0:
            raise ValueError("year_weight, era_years, undated_dist and other_gap must not be negative")
        if self.undated_fragments not in UNDATED_FRAGMENT_MODES:
            raise ValueError(
                f"undated_fragments must be one of {UNDATED_FRAGMENT_MODES}, "
                f"got {self.undated_fragments!r}"
            )
        if not 0.0 <= self.pad <= 2.0:
            raise ValueError(f"pad must be in [0, 2], got {self.pad}")
        if not 16 <= self.size <= 4096:
            raise ValueError(f"size must be in [16, 4096], got {self.size}")
        if self.top < 1:
            raise ValueError(f"top must be at least 1, got {self.top}")

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    def cache_key(self) -> str:
        """Stable short key of the parameters, recorded in manifests (cf. black's Mode)."""
        blob = json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def scaled_anchor_min(survivors: int) -> int:
    """Anchor size for an identity of ``survivors`` faces when none is given.

    The seed used 20 for ~856 survivors; a small identity would otherwise have no
    anchor at all, so the size shrinks in proportion, between 3 and 20.
    """
    return max(3, min(20, round(survivors * 20 / 850)))
