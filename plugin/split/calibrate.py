"""Distance thresholds from the identity's own faces, so one set of defaults
serves face models whose distances differ.

The seed's thresholds were chosen on one model. Another model spreads the same
person wider: insightface buffalo_s puts two photos of one person at the same
age 0.47 apart (median, p90 0.76) and a child and the adult 0.76, so the seed's
sub-cluster threshold (0.35) splinters every identity there, and its recovery
radius (0.55) cuts the person's own photos.

The ruler is the curated faces' spread: the 90th percentile of their distances
to the identity's centre, estimated so that a small faceset does not overstate
it (:func:`spread`). The curated faces are the user's
word on who the person is, so their spread says how far a photo of that person
may lie in this model. Every distance threshold is the seed's, times the ruler
over the seed geometry's (0.36, measured on plugin/generate/truth.py's seed geometry,
whose pair distances match the seed's write-up), within :data:`SCALE_RANGE` and
never above :data:`MAX_DISTANCE`. Thresholds given explicitly are used as given.
The seed method does not measure: it is the seed's, reproducibly.

Why a ruler and not a fit: on the grid (bench/quality.py) the seed-geometry
archives measure 0.35-0.43 and keep near-seed thresholds; buffalo_s-like ones
measure 0.52-0.66 and get 1.45-1.8x, where hand-tuning found sub-cluster 0.6 and
fragment 0.6-0.7 (issue 11).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# The seed's constants and the ruler they were chosen at.
SEED = {"recovery": 0.55, "tighten": 0.50, "subcluster": 0.35, "fragment_dist": 0.40, "undated_dist": 0.35}
SEED_SPREAD = 0.36
SCALE_RANGE = (0.6, 1.8)  # a faceset of a few faces measures its spread roughly
# Unrelated people sit near cosine distance 1 in ArcFace-style models (buffalo_s:
# 0.975 median): no derived threshold may come near it.
MAX_DISTANCE = 0.8
MIN_FACES = 3  # curated faces needed to measure a spread
LABELS = {"recovery": "recovery", "tighten": "tighten", "subcluster": "sub-cluster",
          "fragment_dist": "fragment", "undated_dist": "undated"}


@dataclass(frozen=True)
class Calibration:
    """The thresholds one split used and why."""

    spread: float | None  # the curated faces' spread (:func:`spread`); None: not measured
    scale: float  # spread / SEED_SPREAD, within SCALE_RANGE; 1 when not measured
    values: dict[str, float]  # every threshold as used
    given: tuple[str, ...]  # the thresholds set explicitly, used as given

    def to_json(self) -> dict:
        return {"spread": self.spread, "scale": self.scale, "values": self.values, "given": list(self.given)}

    def why(self) -> str:
        """One line: where the thresholds came from."""
        if self.spread is None:
            ruler = "the seed's (not measured: seed method, or fewer than 3 curated faces)"
        else:
            ruler = (f"calibrated: the curated faces' spread is {self.spread:.3f} (the seed's {SEED_SPREAD}), "
                     f"so the seed's x{self.scale:.2f}")
        given = f"; given: {', '.join(LABELS[g] for g in self.given)}" if self.given else ""
        return ruler + given

    def values_text(self) -> str:
        """The thresholds used, in the order the method applies them."""
        return ", ".join(f"{label} {self.values[k]:.3f}" for k, label in LABELS.items())


def spread(emb: np.ndarray, q: float = 90) -> float | None:
    """The ``q``-th percentile of the curated faces' cosine distances to the
    identity's centre; None for fewer than :data:`MIN_FACES` faces.

    With few faces the centroid itself is noisy, and a face's distance to the
    centroid of the others overstates the spread (8 faces: by about a third).
    The mean cosine between two different faces, m, estimates the centre's squared
    norm without that bias, and a face's mean cosine to the others, divided by
    sqrt(m), its cosine to the centre; so a 4-face and a 4,000-face faceset of one
    person measure alike.
    """
    x = np.asarray(emb, dtype=np.float64)
    n = len(x)
    if n < MIN_FACES:
        return None
    total = x.sum(axis=0)
    to_others = (x @ total - np.einsum("ij,ij->i", x, x)) / (n - 1)  # mean cosine to the other faces
    m = float(to_others.mean())
    if m <= 0:
        return None
    d = 1.0 - to_others / np.sqrt(m)
    return float(np.percentile(d, q))


def calibrate(curated: np.ndarray, given: dict[str, float | None], *, measure: bool = True) -> Calibration:
    """Thresholds for one identity: ``given`` values (not None) as they are, the
    rest the seed's scaled by the curated faces' spread when ``measure`` (the
    era method), else the seed's."""
    ruler = spread(curated) if measure else None
    scale = 1.0 if ruler is None else float(np.clip(ruler / SEED_SPREAD, *SCALE_RANGE))
    values, explicit = {}, []
    for name, base in SEED.items():
        if given.get(name) is not None:
            values[name] = float(given[name])  # type: ignore[arg-type]
            explicit.append(name)
        else:
            values[name] = round(min(base * scale, MAX_DISTANCE), 4)
    return Calibration(ruler, scale, values, tuple(explicit))
