"""Which cache records are more of the person: the era method's recovery.

The seed's rule takes every record within a radius of the curated faces'
centroid. With a loose face model that radius also takes strangers (buffalo_s:
the nearest stranger to a faceset's centroid is 0.56 away, the person's own
faces 0.27 median), and with a small faceset it misses the person's photos
that the curated few do not surround. So:

1. **Reach.** Candidates lie within the (calibrated) recovery radius, but the
   reach shrinks towards the farthest curated face as the faceset already holds
   most of what lies near it: a faceset that is the whole identity has nothing
   left to recover, only strangers.
2. **Growth.** Candidates are labelled the person or someone else by growing
   both sides at once, nearest first: the curated faces seed the person, the
   records just beyond the reach seed everyone else, and each candidate takes
   the side whose nearest labelled records (the mean of three) are nearer. A
   stranger whose own photos lie
   outside is claimed by them; the person's uncurated photos chain from the
   curated ones. The person side must win by a margin that grows with the
   curated share near the faceset (the same reasoning as the reach).
3. **Tighten** around every look of the curated faces, not one mean (:func:`tighten`).

Curated faces are never dropped for their distance: they are the user's word.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .method import centroid, distance_to, subcluster

MARGIN = 0.2  # x scale x curated share: how much nearer the person side must be
OUTSIDE_MAX = 10_000  # the records beyond the reach that seed "someone else", nearest first
OUTSIDE_BAND = 0.3  # ... and no farther than this beyond the reach
ROUNDS = 20  # growth labels the nearest 1/ROUNDS of the candidates at a time
NEIGHBOURS = 3  # a side's distance: the mean of its nearest labelled records


@dataclass(frozen=True)
class Recovered:
    rows: np.ndarray  # recovered rows (curated included), sorted
    claimed: int  # candidates labelled someone else


def _nearest(x: np.ndarray, ref: np.ndarray, k: int, block: int = 4096) -> np.ndarray:
    """(len(x), k) cosine distances from each row of x to its k nearest rows of
    ref, ascending; inf where ref has fewer."""
    out = np.full((len(x), k), np.inf)
    for s in range(0, len(ref), block):
        d = 1.0 - (x @ ref[s : s + block].T).astype(np.float64)
        out = _smallest(np.concatenate([out, d], axis=1), k)
    return out


def _smallest(d: np.ndarray, k: int) -> np.ndarray:
    part = np.partition(d, k - 1, axis=1)[:, :k] if d.shape[1] > k else d
    return np.sort(part, axis=1)


def grow(x: np.ndarray, person: np.ndarray, others: np.ndarray, margin: float, k: int = NEIGHBOURS) -> np.ndarray:
    """True where candidate row x[i] ends on the person's side (see module docstring).

    x, person, others: unit rows (float32). A side's distance is the mean of its
    ``k`` nearest labelled rows (a single stray neighbour does not decide).
    Deterministic: rounds label the candidates nearest to any labelled record,
    ties by index.
    """
    n = len(x)
    to_p = _nearest(x, person, k)
    to_o = _nearest(x, others, k)
    side = np.zeros(n, dtype=np.int8)  # 1 person, -1 someone else
    todo = np.arange(n)
    step = max(1, -(-n // ROUNDS))

    def score(d: np.ndarray) -> np.ndarray:
        finite = np.where(np.isfinite(d), d, np.nan)
        with np.errstate(invalid="ignore"):
            mean = np.nanmean(finite, axis=1)
        return np.where(np.isnan(mean), np.inf, mean)

    while len(todo):
        p, o = score(to_p[todo]), score(to_o[todo])
        order = np.lexsort((todo, np.minimum(p, o)))[:step]
        take = todo[order]
        mine = p[order] + margin <= o[order]
        side[take] = np.where(mine, 1, -1)
        todo = np.setdiff1d(todo, take)
        if not len(todo):
            break
        rest = x[todo]
        if mine.any():
            to_p[todo] = _smallest(np.concatenate([to_p[todo], _nearest(rest, x[take[mine]], k)], axis=1), k)
        if (~mine).any():
            to_o[todo] = _smallest(np.concatenate([to_o[todo], _nearest(rest, x[take[~mine]], k)], axis=1), k)
    return side == 1


def recover(
    emb: np.ndarray, seed_rows: np.ndarray, scope: np.ndarray, seed_c: np.ndarray, *, radius: float, scale: float
) -> Recovered:
    """The era method's recovered rows (see the module docstring)."""
    to_seed = distance_to(emb, seed_c)
    curated = seed_rows[scope[seed_rows]]
    farthest = float(to_seed[seed_rows].max())
    inside = int((scope & (to_seed <= farthest)).sum())
    share_in = min(1.0, len(seed_rows) / max(1, inside))
    reach = min(radius, farthest + max(0.0, radius - farthest) * (1.0 - share_in))
    near = scope & (to_seed <= reach)
    cand = np.setdiff1d(np.flatnonzero(near), seed_rows)
    if len(cand) == 0:
        return Recovered(np.sort(curated), 0)
    share = 1.0 - len(cand) / max(1, int(near.sum()))
    beyond = np.flatnonzero(scope & ~near & (to_seed <= reach + OUTSIDE_BAND))
    if len(beyond) > OUTSIDE_MAX:
        beyond = beyond[np.lexsort((beyond, to_seed[beyond]))[:OUTSIDE_MAX]]
    def rows32(rows: np.ndarray) -> np.ndarray:
        return np.asarray(emb[np.sort(rows)], dtype=np.float32)

    mine = grow(rows32(cand), rows32(seed_rows), rows32(beyond), MARGIN * scale * share)
    rows = np.union1d(np.sort(cand)[mine], curated)
    return Recovered(rows, int((~mine).sum()))


def modes(emb: np.ndarray, threshold: float, min_share: float = 0.05) -> np.ndarray:
    """Centroids (k, d) of the looks among curated faces: their sub-clusters at
    ``threshold`` holding at least 2 faces and ``min_share`` of them. A faceset
    mixing a child and the adult has two; one mean sits between both."""
    if len(emb) < 2:
        return np.zeros((0, emb.shape[1]))
    labels = subcluster(np.asarray(emb), threshold)
    sizes = np.bincount(labels)
    keep = np.flatnonzero(sizes >= max(2, min_share * len(emb)))
    return np.array([centroid(emb[labels == s]) for s in keep]).reshape(len(keep), emb.shape[1])


def tighten(emb: np.ndarray, idx: np.ndarray, curated: np.ndarray, seed_c: np.ndarray, *,
            radius: float, mode_dist: float) -> np.ndarray:
    """The era method's tighten: the seed centroid and the curated faces' looks
    (:func:`modes`) are re-centred once on the faces of ``idx`` nearest each, and
    a face is kept within ``radius`` of its nearest one. One mean leans to the
    majority age and cut the minority's faces first (issue 11: 119 of 142 faces
    cut were young). Curated faces in ``idx`` are always kept."""
    if len(idx) == 0:
        return idx
    centres = np.vstack([seed_c[None, :], modes(np.asarray(emb[curated]), mode_dist)])
    x = np.asarray(emb[idx], dtype=np.float64)
    nearest = np.argmax(x @ centres.T, axis=1)
    moved = np.array([centroid(x[nearest == k]) if (nearest == k).any() else centres[k]
                      for k in range(len(centres))])
    near = 1.0 - (x @ moved.T).max(axis=1) <= radius
    return np.union1d(idx[near], np.intersect1d(idx, curated))
