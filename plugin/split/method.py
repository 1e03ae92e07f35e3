"""The split method as pure steps over arrays (SPEC: recover, gate, tighten,
sub-cluster, assign). No file access here.

Embeddings are L2-normalised rows; distances are cosine distances.
Years are int arrays with 0 meaning "undated".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage

from ..results import UNDATED, dominant_year, year_span  # noqa: F401  (part of the method's steps)
from . import averagecut
from .averagecut import year_penalty

# Which exact path clusters n faces (bench/run.py --only cluster measures them):
# - up to PLAIN_BELOW, scipy's linkage: under a second, 0.2 GB at most;
# - up to the size whose condensed matrix (8 n^2/2 bytes) fits PLAIN_BUDGET (n <=
#   23,170), the matrix-free cut, 2-4x faster than scipy on ordinary shapes and
#   in a fraction of its memory, except on a tight core of near-identical faces
#   (:func:`looks_tight`), which goes straight to scipy, whose time does not
#   depend on the shape (peak: twice the matrix); a work budget catches any other
#   shape the cut would settle slowly, and hands it to scipy too;
# - past that, the matrix-free cut alone: scipy would not fit. Near-copies fold
#   into one weighted point each where that is exact (averagecut.fold_near_copies);
#   a tight core is refused at once; any other shape the cut settles slowly
#   (issue 19: 40,000 faces in clusters of mixed spread ran past 400 s) is
#   refused by its exact-work budget or its 60 s deadline, naming the cause.
PLAIN_BELOW = 5_000
PLAIN_BUDGET = 2 * 2**30
TIGHT_SAMPLE = 256  # rows sampled to recognise a tight core before choosing the path


def looks_tight(emb: np.ndarray, threshold: float) -> bool:
    """Most faces nearly one face: the median distance of sampled pairs (looks
    alone) is under a quarter of the threshold. Such a set is the matrix-free
    cut's slow shape, its candidate lists unable to tell near-equal neighbours
    apart; scipy's time does not depend on the shape, so it goes there at once."""
    n = len(emb)
    pick = np.random.default_rng(0).choice(n, min(n, TIGHT_SAMPLE), replace=False)
    x = np.asarray(emb[np.sort(pick)], dtype=np.float64)
    d = 1.0 - x @ x.T
    return bool(np.median(d[np.triu_indices(len(x), 1)]) < threshold / 4)


def plain_fits(n: int) -> bool:
    """scipy's condensed matrix for ``n`` faces fits :data:`PLAIN_BUDGET`."""
    return 8 * n * (n - 1) // 2 <= PLAIN_BUDGET


def centroid(emb: np.ndarray) -> np.ndarray:
    """Normalised mean of embedding rows, shape (d,)."""
    c = emb.astype(np.float64).mean(axis=0)
    norm = np.linalg.norm(c)
    if norm == 0:
        raise ValueError("embeddings cancel out: centroid is zero")
    return c / norm


def distance_to(emb: np.ndarray, c: np.ndarray, block: int = 1 << 16) -> np.ndarray:
    """Cosine distance of every row of ``emb`` (n, d) to the unit vector ``c``.

    Done in row blocks in the rows' own precision, so a memory-mapped million-row
    float32 cache is streamed, never copied whole.
    """
    dtype = emb.dtype if emb.dtype in (np.float32, np.float64) else np.float64
    c = np.asarray(c, dtype=dtype)
    out = np.empty(len(emb), dtype=np.float64)
    for start in range(0, len(emb), block):
        out[start : start + block] = np.asarray(emb[start : start + block], dtype=dtype) @ c
    return 1.0 - out


def recover(emb: np.ndarray, seed_centroid: np.ndarray, scope: np.ndarray, radius: float) -> np.ndarray:
    """Indices of in-scope records within ``radius`` of the seed centroid."""
    return np.flatnonzero(scope & (distance_to(emb, seed_centroid) <= radius))


def quality_gate(
    idx: np.ndarray,
    face_short: np.ndarray,
    blur: np.ndarray,
    det_score: np.ndarray,
    *,
    min_face: float,
    min_blur: float,
    min_det: float,
) -> np.ndarray:
    """Indices of ``idx`` that pass size, sharpness and detector-confidence gates."""
    why = gate_reasons(idx, face_short, blur, det_score, min_face=min_face, min_blur=min_blur, min_det=min_det)
    return idx[why == PASSED]


PASSED = 0
GATE_REASONS = {1: "small_face", 2: "low_detector_score", 3: "blurry"}


def gate_reasons(
    idx: np.ndarray,
    face_short: np.ndarray,
    blur: np.ndarray,
    det_score: np.ndarray,
    *,
    min_face: float,
    min_blur: float,
    min_det: float,
) -> np.ndarray:
    """Per face of ``idx``: :data:`PASSED`, or the first gate it fails (small,
    then detector score, then sharpness: the order a user would fix them in)."""
    out = np.zeros(len(idx), dtype=np.int64)
    checks = ((face_short, min_face), (det_score, min_det), (blur, min_blur))
    for reason, (values, limit) in enumerate(checks, 1):
        fail = (out == PASSED) & (np.asarray(values[idx]) < limit)
        out[fail] = reason
    return out


def tighten(emb: np.ndarray, idx: np.ndarray, radius: float) -> np.ndarray:
    """Re-centre once on ``idx`` and keep those within ``radius`` of the new centroid."""
    if len(idx) == 0:
        return idx
    c = centroid(emb[idx])
    return idx[distance_to(emb[idx], c) <= radius]


def condensed_cosine(
    x: np.ndarray, block: int = 256, years: np.ndarray | None = None, year_weight: float = 0.0,
    free: int = 1,
) -> np.ndarray:
    """Condensed (upper-triangle, row-major) float64 cosine distances of unit rows,
    built a row block at a time: n(n-1)/2 doubles and one block, never n x n.

    With ``years`` and ``year_weight``, two dated faces are ``year_weight`` farther
    apart per year between them beyond ``free`` (see :func:`year_penalty`).
    """
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    out = np.empty(n * (n - 1) // 2, dtype=np.float64)
    pos = 0
    for start in range(0, n, block):
        stop = min(n, start + block)
        d = 1.0 - x[start:stop] @ x[start:].T  # rows start..stop against columns start..n
        np.clip(d, 0.0, 2.0, out=d)
        if years is not None and year_weight:
            d += year_penalty(years[start:stop], years[start:], year_weight, free)
        for r in range(stop - start):  # row-major upper triangle: the condensed order
            out[pos : pos + n - start - r - 1] = d[r, r + 1 :]
            pos += n - start - r - 1
    return out


def subcluster(
    emb: np.ndarray, threshold: float, years: np.ndarray | None = None, year_weight: float = 0.0,
    free: int = 1,
) -> np.ndarray:
    """Exact average-linkage clusters of unit rows; merge while the distance is below
    ``threshold`` (scikit-learn's ``distance_threshold`` semantics).

    Every path gives the same partition (see :data:`PLAIN_BELOW` for which runs):
    scipy's linkage, or the matrix-free cut (:mod:`averagecut`) whose memory
    grows with n, not n^2, so 50,000 survivors fit in about a gigabyte. Returns
    labels of shape (n,), numbered 0.. by cluster size (largest first), ties by
    the smallest member index.
    """
    n = len(emb)
    if n <= 1:
        return np.zeros(n, dtype=np.int64)
    if n <= PLAIN_BELOW:
        return subcluster_plain(emb, threshold, years, year_weight, free)
    fits = plain_fits(n)
    tight = looks_tight(emb, threshold)
    if fits and tight:
        return subcluster_plain(emb, threshold, years, year_weight, free)
    try:
        if tight:  # the cut's slow shape, and scipy would not fit: said at once
            raise averagecut.OverBudget("a tight core")
        return relabel_by_size(averagecut.average_cut(emb, threshold, years, year_weight, free=free, budget=True))
    except (averagecut.Undecided, averagecut.OverBudget):
        if fits:
            return subcluster_plain(emb, threshold, years, year_weight, free)
        raise ValueError(
            f"{n:,} faces to group, many of them near-copies of each other (a video's frames, one photo "
            "re-saved over the years) that cannot be told apart quickly; exactly, it would take the full "
            f"distance matrix ({8 * n**2 / 2 / 2**30:.1f} GB, over the {PLAIN_BUDGET / 2**30:.0f} GB "
            "allowed). Remove the copies from the photos, split them with --roots (a folder at a time), "
            "or take fewer faces (a lower --recovery or --tighten)"
        ) from None


def subcluster_plain(
    emb: np.ndarray, threshold: float, years: np.ndarray | None = None, year_weight: float = 0.0,
    free: int = 1,
) -> np.ndarray:
    """scipy's linkage over every pair: the path while the matrix fits, and the
    reference the matrix-free path is tested against."""
    n = len(emb)
    if n <= 1:
        return np.zeros(n, dtype=np.int64)
    z = linkage(condensed_cosine(emb, years=years, year_weight=year_weight, free=free), method="average")
    return relabel_by_size(fcluster(z, t=np.nextafter(threshold, -np.inf), criterion="distance"))


def relabel_by_size(raw: np.ndarray) -> np.ndarray:
    """Renumber cluster labels 0.. by size descending, then first member index."""
    labels, first, inverse, sizes = np.unique(raw, return_index=True, return_inverse=True, return_counts=True)
    ranked = np.lexsort((first, -sizes))  # by size descending, then first member
    mapping = np.empty(len(labels), dtype=np.int64)
    mapping[ranked] = np.arange(len(labels))
    return mapping[inverse.reshape(-1)]


@dataclass(frozen=True)
class Group:
    """A bucket before labelling: member positions into the survivor arrays."""

    members: tuple[int, ...]
    anchor: bool
    reason: str  # a key of results.REASONS
    fragments: int = 0


def assign_fragments(
    labels: np.ndarray,
    emb: np.ndarray,
    years: np.ndarray,
    *,
    anchor_min: int,
    fragment_dist: float,
    fragment_years: int,
    undated_fragments: str = "standalone",
) -> list[Group]:
    """The seed's anchor rule: sub-clusters of at least ``anchor_min`` faces are
    anchors and never merge; each smaller fragment joins its single nearest anchor
    when the centroid distance is at most ``fragment_dist`` and the dominant years
    differ by at most ``fragment_years``; otherwise it stands alone.

    labels : (n,) sub-cluster labels; emb : (n, d) unit rows; years : (n,) ints.
    """
    n_sub = int(labels.max()) + 1 if len(labels) else 0
    members = [np.flatnonzero(labels == s) for s in range(n_sub)]
    cents = np.array([centroid(emb[m]) for m in members]) if n_sub else np.zeros((0, 1))
    doms = [dominant_year(years[m]) for m in members]
    anchors = [s for s in range(n_sub) if len(members[s]) >= anchor_min]
    attached: dict[int, list[int]] = {a: [] for a in anchors}
    standalone: list[tuple[int, str]] = []
    for s in range(n_sub):
        if s in attached:
            continue
        if not anchors:
            standalone.append((s, "fragment_no_anchor"))
            continue
        dists = 1.0 - cents[anchors] @ cents[s]
        nearest = anchors[int(np.argmin(dists))]
        if dists.min() > fragment_dist:
            standalone.append((s, "fragment_far"))
            continue
        ya, yf = doms[nearest], doms[s]
        if ya is not None and yf is not None:
            if abs(ya - yf) <= fragment_years:
                attached[nearest].append(s)
            else:
                standalone.append((s, "fragment_other_years"))
        elif undated_fragments == "attach":
            attached[nearest].append(s)
        else:
            standalone.append((s, "fragment_undated"))

    groups = []
    for a in anchors:
        frags = attached[a]
        idx = np.sort(np.concatenate([members[a]] + [members[f] for f in frags]))
        groups.append(
            Group(
                members=tuple(int(i) for i in idx),
                anchor=True,
                reason="anchor_with_fragments" if frags else "anchor",
                fragments=len(frags),
            )
        )
    for s, reason in standalone:
        groups.append(Group(tuple(int(i) for i in members[s]), False, reason))
    return groups
