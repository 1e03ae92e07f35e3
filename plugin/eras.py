"""The default ("era") assignment: eras that hold their years.

The seed's rule lets an anchor absorb faces from many years. Here:

1. Sub-clusters come from a year-aware distance (see :func:`method.subcluster`):
   for two dated faces the cosine distance grows by ``year_weight`` per year
   apart beyond the first, so one look photographed across a decade does not
   come out as one cluster.
2. An anchor far from the seed centroid compared with the other anchors, and
   holding few of the curated faces, is probably another person (a sibling,
   a lookalike): it is quarantined as thin, reason ``suspected_other_person``.
3. Every other anchor is split by years: around its dominant year, faces at
   most ``era_years`` years away form one part; the rest is split again. Parts
   with at least ``anchor_min`` faces are era cores; smaller parts become
   fragments. Undated faces of an anchor join the part nearest in embedding.
4. Each face of a fragment joins the nearest core (centroid distance at most
   ``fragment_dist``) whose dominant year is within ``era_years`` of the face's
   year; an undated face joins the nearest core only when it is within
   ``undated_dist`` and clearly nearer than the next one. What joins nothing
   stays a fragment bucket (thin).

All pure functions over arrays; the pipeline labels and classifies the groups.
"""

from __future__ import annotations

import numpy as np

from .method import UNDATED, Group, centroid, dominant_year

UNDATED_MARGIN = 0.01  # an undated face must be this much nearer its era than the next


def split_by_years(members: np.ndarray, years: np.ndarray, emb: np.ndarray, window: int) -> list[np.ndarray]:
    """Split ``members`` into year parts of +-``window`` around successive dominant
    years; undated members join the part nearest in embedding."""
    dated = [m for m in members.tolist() if years[m] != UNDATED]
    undated = [m for m in members.tolist() if years[m] == UNDATED]
    parts: list[list[int]] = []
    rest = dated
    while rest:
        dom = dominant_year(years[rest])
        parts.append([m for m in rest if abs(years[m] - dom) <= window])
        rest = [m for m in rest if abs(years[m] - dom) > window]
    if not parts:
        return [members]
    if undated:
        cents = np.array([centroid(emb[p]) for p in parts])
        nearest = np.argmax(emb[undated] @ cents.T, axis=1)
        for m, k in zip(undated, nearest.tolist()):
            parts[k].append(m)
    return [np.array(sorted(p), dtype=np.int64) for p in parts]


def suspected_others(
    clusters: list[np.ndarray], emb: np.ndarray, is_seed: np.ndarray, seed_c: np.ndarray, gap: float
) -> set[int]:
    """Indices of clusters that are probably another person: centroid farther than
    ``gap`` beyond the median anchor's distance from the seed centroid, with fewer
    than a quarter of the curated faces one would expect."""
    if len(clusters) < 2:
        return set()
    dists = np.array([1.0 - centroid(emb[c]) @ seed_c for c in clusters])
    sizes = np.array([len(c) for c in clusters])
    ref = float(np.median(np.repeat(dists, sizes)))  # the typical face's cluster
    expected = float(is_seed[np.concatenate(clusters)].mean())
    out = set()
    for i, c in enumerate(clusters):
        if dists[i] > ref + gap and is_seed[c].mean() < expected / 4:
            out.add(i)
    return out


def assign_eras(
    labels: np.ndarray,
    emb: np.ndarray,
    years: np.ndarray,
    is_seed: np.ndarray,
    seed_c: np.ndarray,
    *,
    anchor_min: int,
    fragment_dist: float,
    era_years: int,
    undated_dist: float,
    other_gap: float,
) -> list[Group]:
    """Groups of survivor positions (see the module docstring).

    labels : (n,) sub-cluster labels; emb : (n, d) unit rows; years : (n,) ints;
    is_seed : (n,) bool, the face is in the curated faceset.
    """
    n_sub = int(labels.max()) + 1 if len(labels) else 0
    subs = [np.flatnonzero(labels == s) for s in range(n_sub)]
    anchors = [s for s in range(n_sub) if len(subs[s]) >= anchor_min]
    others = suspected_others([subs[a] for a in anchors], emb, is_seed, seed_c, other_gap)

    groups: list[Group] = []
    cores: list[list[int]] = []
    core_reason: list[str] = []
    loose: list[int] = []  # faces of fragments and small year parts
    for i, a in enumerate(anchors):
        if i in others:
            groups.append(Group(tuple(subs[a].tolist()), True, "suspected_other_person"))
            continue
        parts = split_by_years(subs[a], years, emb, era_years)
        big = [p for p in parts if len(p) >= anchor_min]
        for p in big:
            cores.append(p.tolist())
            core_reason.append("split_by_years" if len(parts) > 1 else "anchor")
        for p in parts:
            if len(p) < anchor_min:
                loose += p.tolist()
    for s in range(n_sub):
        if s not in anchors:
            loose += subs[s].tolist()

    attached: list[list[int]] = [[] for _ in cores]
    left: list[int] = []
    if cores and loose:
        cents = np.array([centroid(emb[c]) for c in cores])
        doms = np.array([dominant_year(years[c]) or 0 for c in cores])
        dist = 1.0 - emb[loose] @ cents.T  # (faces, cores)
        for row, face in enumerate(loose):
            d = dist[row].copy()
            y = years[face]
            if y != UNDATED:
                d[(doms == 0) | (np.abs(doms - y) > era_years)] = np.inf
                k = int(np.argmin(d))
                ok = d[k] <= fragment_dist
            else:
                order = np.argsort(d)
                k = int(order[0])
                margin = d[order[1]] - d[k] if len(order) > 1 else np.inf
                ok = d[k] <= undated_dist and margin >= UNDATED_MARGIN
            (attached[k] if ok else left).append(face)
    else:
        left = loose

    for core, extra, reason in zip(cores, attached, core_reason):
        members = tuple(sorted(core + extra))
        groups.append(Group(members, True, "anchor_with_fragments" if extra and reason == "anchor" else reason,
                            fragments=len({int(labels[f]) for f in extra})))
    # what joined nothing stays together as it was clustered, one bucket per sub-cluster
    left_set = set(left)
    by_label: dict[int, list[int]] = {}
    for face in sorted(left_set):
        by_label.setdefault(int(labels[face]), []).append(face)
    for _, faces in sorted(by_label.items()):
        reason = "fragment_undated" if all(years[f] == UNDATED for f in faces) else (
            "fragment_no_anchor" if not cores else "fragment_far")
        groups.append(Group(tuple(faces), False, reason))
    return groups
