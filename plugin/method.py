"""The split method as pure steps over arrays (SPEC: recover, gate, tighten,
sub-cluster, assign). No file access here.

Embeddings are L2-normalised rows; distances are cosine distances.
Years are int arrays with 0 meaning "undated".
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage

from . import averagecut
from .averagecut import UNDATED, year_penalty

MAX_PLAIN = 15_000  # scipy's linkage holds 2 x 8 x n^2/2 bytes: 1.7 GB here


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
    ok = (face_short[idx] >= min_face) & (blur[idx] >= min_blur) & (det_score[idx] >= min_det)
    return idx[ok]


def tighten(emb: np.ndarray, idx: np.ndarray, radius: float) -> np.ndarray:
    """Re-centre once on ``idx`` and keep those within ``radius`` of the new centroid."""
    if len(idx) == 0:
        return idx
    c = centroid(emb[idx])
    return idx[distance_to(emb[idx], c) <= radius]


def condensed_cosine(
    x: np.ndarray, block: int = 256, years: np.ndarray | None = None, year_weight: float = 0.0
) -> np.ndarray:
    """Condensed (upper-triangle, row-major) float64 cosine distances of unit rows,
    built a row block at a time: n(n-1)/2 doubles and one block, never n x n.

    With ``years`` and ``year_weight``, two dated faces are ``year_weight`` farther
    apart per year between them beyond the first (see :func:`year_penalty`).
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
            d += year_penalty(years[start:stop], years[start:], year_weight)
        upper = d[np.triu(np.ones(d.shape, dtype=bool), k=1)]  # row-major: the condensed order
        out[pos : pos + len(upper)] = upper
        pos += len(upper)
    return out


def subcluster(
    emb: np.ndarray, threshold: float, years: np.ndarray | None = None, year_weight: float = 0.0
) -> np.ndarray:
    """Exact average-linkage clusters of unit rows; merge while the distance is below
    ``threshold`` (scikit-learn's ``distance_threshold`` semantics).

    Matrix-free (see :mod:`averagecut`): memory grows with n, not n^2, so 50,000
    survivors fit in about a gigabyte. Should its candidate lists ever fail to
    decide (a safety net no known input reaches), scipy's linkage takes over,
    which needs the whole distance matrix. Returns labels of shape (n,), numbered 0.. by
    cluster size (largest first), ties by the smallest member index.
    """
    n = len(emb)
    if n <= 1:
        return np.zeros(n, dtype=np.int64)
    try:
        return relabel_by_size(averagecut.average_cut(emb, threshold, years, year_weight))
    except averagecut.Undecided:
        if n > MAX_PLAIN:
            raise ValueError(
                f"{n} faces whose nearest neighbours could not be settled without the full "
                f"distance matrix, which would need {16 * n**2 / 2**30:.1f} GB (limit: {MAX_PLAIN} faces). "
                "Lower the recovery or tighten radius, or limit the scan roots"
            ) from None
        return subcluster_plain(emb, threshold, years, year_weight)


def subcluster_plain(
    emb: np.ndarray, threshold: float, years: np.ndarray | None = None, year_weight: float = 0.0
) -> np.ndarray:
    """scipy's linkage over every pair: the reference the matrix-free path is
    tested against, and its fallback."""
    n = len(emb)
    if n <= 1:
        return np.zeros(n, dtype=np.int64)
    z = linkage(condensed_cosine(emb, years=years, year_weight=year_weight), method="average")
    return relabel_by_size(fcluster(z, t=np.nextafter(threshold, -np.inf), criterion="distance"))


def relabel_by_size(raw: np.ndarray) -> np.ndarray:
    """Renumber cluster labels 0.. by size descending, then first member index."""
    labels, first, inverse, sizes = np.unique(raw, return_index=True, return_inverse=True, return_counts=True)
    ranked = np.lexsort((first, -sizes))  # by size descending, then first member
    mapping = np.empty(len(labels), dtype=np.int64)
    mapping[ranked] = np.arange(len(labels))
    return mapping[inverse.reshape(-1)]


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
class Group:
    """A bucket before labelling: member positions into the survivor arrays."""

    members: tuple[int, ...]
    anchor: bool
    reason: str  # a key of pipeline.REASONS
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
