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

from dataclasses import dataclass, field

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

# The quality gate's size and sharpness limits, lowered for an identity whose photos
# are smaller or softer, to half the curated faces' median (and never below a
# floor). The curated faces are the user's word on what photos of this person look
# like: a faceset of scanned prints or upscaled pictures keeps its typical faces,
# while the clearly worse ones (a fraction of the typical) still go.
# Sharpness is measured as the recognizer sees the face (models.sharpness, at most
# 112 px). Measured there on real faces: a sharp photo 100-900, a face upscaled 2-4x
# 44-270, one upscaled from ~35 px of detail 25, Gaussian blur of sigma 1 px (at a
# 100 px face) 27-68, sigma 2 px 6-11. 20 drops the clearly blurred and keeps every
# upscaled face with detail. The seed method keeps the seed's gate (SEED_GATE).
GATE = {"min_face": 100.0, "min_blur": 20.0}
SEED_GATE = {"min_face": 100.0, "min_blur": 40.0}
GATE_SHARE = 0.5
GATE_FLOOR = {"min_face": 32.0, "min_blur": 5.0}
GATE_WORDS = {"min_face": ("face size", "px"), "min_blur": ("sharpness", "")}


@dataclass(frozen=True)
class Calibration:
    """The thresholds one split used and why."""

    spread: float | None  # the curated faces' spread (:func:`spread`); None: not measured
    scale: float  # spread / SEED_SPREAD, within SCALE_RANGE; 1 when not measured
    values: dict[str, float]  # every threshold as used
    given: tuple[str, ...]  # the thresholds set explicitly, used as given
    gate: dict[str, float] = field(default_factory=dict)  # min_face, min_blur as used
    gate_medians: dict[str, float] = field(default_factory=dict)  # the curated faces' medians

    def to_json(self) -> dict:
        return {"spread": self.spread, "scale": self.scale, "values": self.values, "given": list(self.given),
                "gate": self.gate, "gate_medians": self.gate_medians}

    def gate_text(self) -> str:
        """The size and sharpness limits, and why when they are lower than the seed's."""
        out = []
        for name, value in self.gate.items():
            word, unit = GATE_WORDS[name]
            text = f"{word} {value:g}{unit}"
            if name in self.given:
                text += " (given)"
            elif value < GATE[name]:
                text += (f" (half the curated faces' median {self.gate_medians[name]:.0f}: "
                         f"their photos are {'small' if name == 'min_face' else 'soft'})")
            out.append(text)
        return ", ".join(out)

    def why(self) -> str:
        """One line: where the thresholds came from."""
        if self.spread is None:
            ruler = "the seed's (not measured: seed method, or fewer than 3 curated faces)"
        else:
            ruler = (f"calibrated: the curated faces' spread is {self.spread:.3f} (the seed's {SEED_SPREAD}), "
                     f"so the seed's x{self.scale:.2f}")
        named = [LABELS[g] for g in self.given if g in LABELS]
        given = f"; given: {', '.join(named)}" if named else ""
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


def gate_limits(
    curated: dict[str, np.ndarray], given: dict[str, float | None], *, measure: bool = True
) -> tuple[dict[str, float], dict[str, float]]:
    """The gate's size and sharpness limits (see :data:`GATE`) and the curated
    faces' medians: ``given`` values as they are; the seed's when not ``measure``."""
    limits, medians = {}, {}
    for name, base in GATE.items():
        values = np.asarray(curated.get(name, ()), dtype=np.float64)
        if len(values):
            medians[name] = float(np.median(values))
        if given.get(name) is not None:
            limits[name] = float(given[name])  # type: ignore[arg-type]
        elif measure and len(values):
            limits[name] = round(float(max(GATE_FLOOR[name], min(base, GATE_SHARE * medians[name]))), 2)
        else:
            limits[name] = base if measure else SEED_GATE[name]
    return limits, medians


def calibrate(curated: np.ndarray, given: dict[str, float | None], *, measure: bool = True,
              quality: dict[str, np.ndarray] | None = None) -> Calibration:
    """Thresholds for one identity: ``given`` values (not None) as they are, the
    rest the seed's scaled by the curated faces' spread when ``measure`` (the
    era method), else the seed's. ``quality`` holds the curated faces' face sizes
    and sharpness (``min_face``, ``min_blur``) for the gate's limits."""
    ruler = spread(curated) if measure else None
    scale = 1.0 if ruler is None else float(np.clip(ruler / SEED_SPREAD, *SCALE_RANGE))
    values, explicit = {}, []
    for name, base in SEED.items():
        if given.get(name) is not None:
            values[name] = float(given[name])  # type: ignore[arg-type]
            explicit.append(name)
        else:
            values[name] = round(min(base * scale, MAX_DISTANCE), 4)
    gate, medians = gate_limits(quality or {}, given, measure=measure)
    explicit += [name for name in GATE if given.get(name) is not None]
    return Calibration(ruler, scale, values, tuple(explicit), gate, medians)
