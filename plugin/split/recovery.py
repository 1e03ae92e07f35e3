"""Which cache records are more of the person: the era method's recovery.

The seed's rule takes every record within a radius of the curated faces'
centroid. With a loose face model that radius also takes strangers (buffalo_s:
the nearest stranger to a faceset's centroid is 0.56 away, the person's own
faces 0.27 median); with a small faceset it misses the person's photos that the
curated few do not surround; and when the curated faces come mostly from recent
years (people curate recent, good photos) the centroid sits in those years, and
one reach around it never gets to the person's younger self (issue 19: whole
years lost; generated, the early faces lie 0.79 from the centroid but 0.20 from
their nearest curated face). So:

1. **Reach from every look.** Candidates lie within the (calibrated) recovery
   radius of the seed centroid — the reach shrinking towards the farthest
   curated face as the faceset already holds most of what lies near it: a
   faceset that is the whole identity has nothing left to recover, only
   strangers — or within the radius of any look of the curated faces that lies
   away from the centroid (their sub-clusters of two or more faces): a year
   with two curated faces is reached like one with a hundred.
2. **Growth.** Candidates are labelled the person or someone else by growing
   both sides at once, nearest first: the curated faces seed the person, the
   records just beyond the reach seed everyone else, and each candidate takes
   the side whose nearest labelled records (the mean of three) are nearer. A
   stranger whose own photos lie outside is claimed by them; the person's
   uncurated photos chain from the curated ones. The person side must win by a
   margin that grows with the curated share near the faceset (the same
   reasoning as the reach).
3. **Chaining through time.** The looks of the faces just recovered, where they
   lie away from every reach so far (the years between, the years before the
   curated ones), reach further, and growth runs again on what they bring, the
   person's and everyone else's labels kept. A sibling's faces are stopped as
   any stranger's are: by their own faces beyond the reach, which seed the
   other side, and later by the curated shares of their years (eras.Curation).
4. **Tighten** around every look of the curated faces, not one mean (:func:`tighten`).

Curated faces are never dropped for their distance: they are the user's word.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .method import centroid, distance_to, subcluster

MARGIN = 0.2  # x scale x curated share: how much nearer the person side must be
CHAIN_ROUNDS = 12  # reaches of the looks of what was just recovered, at most
MAX_CENTRES = 32  # looks reached from in one pass over the cache, farthest first
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
        finite = np.isfinite(d)
        count = finite.sum(axis=1)
        total = np.where(finite, d, 0.0).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(count > 0, total / np.maximum(count, 1), np.inf)

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


def _nearest_centre(emb: np.ndarray, centres: np.ndarray, block: int = 1 << 16) -> np.ndarray:
    """Cosine distance of every row of ``emb`` to the nearest of ``centres`` (k, d),
    streamed in row blocks (a memory-mapped million-row cache is never copied)."""
    out = np.empty(len(emb), dtype=np.float64)
    c = np.asarray(centres, dtype=np.float32).T
    for start in range(0, len(emb), block):
        out[start:start + block] = 1.0 - (np.asarray(emb[start:start + block], dtype=np.float32) @ c).max(axis=1)
    return out


def _outlying_looks(emb: np.ndarray, rows: np.ndarray, centres: np.ndarray, look_dist: float,
                    apart: float) -> np.ndarray:
    """Centroids of the looks of ``rows`` (sub-clusters of 2+ faces) lying farther
    than ``apart`` from every one of ``centres``: farthest first, at most
    :data:`MAX_CENTRES`."""
    found = modes(np.asarray(emb[np.sort(rows)]), look_dist, min_share=0.0) if len(rows) >= 2 else np.zeros((0, 1))
    if not len(found):
        return found.reshape(0, emb.shape[1])
    gap = 1.0 - (found @ np.asarray(centres, dtype=np.float64).T).max(axis=1)
    keep = np.flatnonzero(gap > apart)
    return found[keep[np.argsort(-gap[keep], kind="stable")][:MAX_CENTRES]]


def recover(
    emb: np.ndarray, seed_rows: np.ndarray, scope: np.ndarray, seed_c: np.ndarray, *, radius: float, scale: float,
    look_dist: float | None = None,
) -> Recovered:
    """The era method's recovered rows (see the module docstring); ``look_dist``
    (the sub-cluster threshold) finds the looks, none when None."""
    to_seed = distance_to(emb, seed_c)
    curated = seed_rows[scope[seed_rows]]
    farthest = float(to_seed[seed_rows].max())
    inside = int((scope & (to_seed <= farthest)).sum())
    share_in = min(1.0, len(seed_rows) / max(1, inside))
    reach = min(radius, farthest + max(0.0, radius - farthest) * (1.0 - share_in))
    near = scope & (to_seed <= reach)
    looks = np.zeros((0, emb.shape[1]))
    if look_dist is not None:  # the looks away from the centroid reach as far as the radius
        looks = _outlying_looks(emb, seed_rows, seed_c[None, :], look_dist, reach / 2)
    to_look = _nearest_centre(emb, looks) if len(looks) else np.full(len(emb), np.inf)
    look_reach = min(radius, look_dist) if look_dist is not None else 0.0
    near |= scope & (to_look <= look_reach)
    cand = np.setdiff1d(np.flatnonzero(near), seed_rows)
    if len(cand) == 0:
        return Recovered(np.sort(curated), 0)
    share = 1.0 - len(cand) / max(1, int(near.sum()))
    margin = MARGIN * scale * share

    def rows32(rows: np.ndarray) -> np.ndarray:
        return np.asarray(emb[np.sort(rows)], dtype=np.float32)

    def band(reached: np.ndarray) -> np.ndarray:
        """The records just beyond the centroid's reach: they seed everyone else.
        Never those beyond a look's reach: there lie the person's next years."""
        beyond = np.flatnonzero(scope & ~reached & (to_seed <= reach + OUTSIDE_BAND))
        if len(beyond) > OUTSIDE_MAX:
            beyond = beyond[np.lexsort((beyond, to_seed[beyond]))[:OUTSIDE_MAX]]
        return beyond

    mine = grow(rows32(cand), rows32(seed_rows), rows32(band(near)), margin)
    person, others = np.sort(cand)[mine], np.sort(cand)[~mine]
    centres = np.vstack([seed_c[None, :], looks])
    fresh = person
    for _ in range(CHAIN_ROUNDS if look_dist is not None else 0):
        new = _outlying_looks(emb, fresh, centres, look_dist, look_reach / 4)
        if not len(new):
            break
        centres = np.vstack([centres, new])
        to_look = np.minimum(to_look, _nearest_centre(emb, new))
        near = scope & ((to_seed <= reach) | (to_look <= look_reach))
        reached = np.flatnonzero(scope & (_nearest_centre(emb, new) <= look_reach))
        # what the new looks reach is judged again, what was taken for someone else included
        cand = np.setdiff1d(reached, np.concatenate([seed_rows, person]))
        if not len(cand):
            break
        outside = np.union1d(band(near), np.setdiff1d(others, cand))
        mine = grow(rows32(cand), rows32(np.union1d(seed_rows, person)), rows32(outside), margin)
        fresh = np.sort(cand)[mine]
        if not len(fresh):
            break
        person = np.union1d(person, fresh)
        others = np.union1d(np.setdiff1d(others, fresh), np.sort(cand)[~mine])
    rows = np.union1d(person, curated)
    return Recovered(rows, int(len(others)))


def modes(emb: np.ndarray, threshold: float, min_share: float = 0.05) -> np.ndarray:
    """Centroids (k, d) of the looks among faces: their sub-clusters at
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
