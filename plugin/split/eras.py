"""The default ("era") assignment: eras that hold their years.

The seed's rule lets an anchor absorb faces from many years. Here:

1. Sub-clusters come from a year-aware distance (see :func:`method.subcluster`):
   for two dated faces the cosine distance grows by ``year_weight`` per year
   apart beyond the first, so one look photographed across a decade does not
   come out as one cluster. Dated faces are clustered first; an undated face
   then joins the dated sub-cluster it is clearly nearest (average distance at
   most ``undated_dist``), and the remaining undated faces cluster among
   themselves. An undated face has no year to pay a penalty with, so it must
   never be what joins two dated ages.
2. An anchor far from the seed centroid compared with the other anchors, and
   holding few of the curated faces, is probably another person (a sibling,
   a lookalike): it is quarantined as thin, reason ``suspected_other_person``.
3. Every other anchor is split by years: around its dominant year, faces at
   most ``era_years`` years away form one part; the rest is split again. Parts
   with at least ``anchor_min`` faces are era cores; smaller parts become
   fragments. When no part is that big, the anchor stays whole: a sparse
   identity's years spread thinly, and splitting would only scatter it.
4. Each face of a fragment joins the nearest core (centroid distance at most
   ``fragment_dist``) whose dominant year is within ``era_years`` of the face's
   year; an undated face joins the nearest core only when it is within
   ``undated_dist`` and clearly nearer than the next one.
5. What joined nothing is clustered again at ``fragment_dist``: small
   sub-clusters of the same years that lie close together become an era
   together once they reach the era size (reason ``merged_fragments``), and the
   rest may join those. These are an identity's sparse years, so here a pair
   pays for its years apart only beyond an era's full width (2 x ``era_years``):
   two photos of a child four years apart are one look as much as two of an
   adult one year apart. What is still left stays a fragment bucket (thin).

All pure functions over arrays; the pipeline labels and classifies the groups.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .calibrate import MAX_DISTANCE
from .method import UNDATED, Group, centroid, dominant_year, relabel_by_size, subcluster

UNDATED_MARGIN = 0.01  # an undated face must be this much nearer its era than the next...
ALIKE = 0.15  # ...unless the two eras' centroids lie within this share of undated_dist


def cluster_dated_first(
    emb: np.ndarray, years: np.ndarray, threshold: float, year_weight: float, undated_dist: float,
    free: int = 1,
) -> np.ndarray:
    """Sub-cluster labels (numbered by size) with undated faces added after the
    dated ones are clustered (module docstring, step 1)."""
    n = len(emb)
    labels = np.full(n, -1, dtype=np.int64)
    dated = np.flatnonzero(years != UNDATED)
    undated = np.flatnonzero(years == UNDATED)
    if len(dated):
        labels[dated] = subcluster(emb[dated], threshold, years[dated], year_weight, free)
    if len(undated) and len(dated):
        k = int(labels[dated].max()) + 1
        sums = np.zeros((k, emb.shape[1]))
        np.add.at(sums, labels[dated], np.asarray(emb[dated], dtype=np.float64))
        counts = np.bincount(labels[dated], minlength=k)
        avg = 1.0 - np.asarray(emb[undated], dtype=np.float64) @ sums.T / counts  # average-linkage distance
        order = np.argsort(avg, axis=1)
        best = avg[np.arange(len(undated)), order[:, 0]]
        runner = avg[np.arange(len(undated)), order[:, 1]] if k > 1 else np.full(len(undated), np.inf)
        joins = (best <= undated_dist) & (runner - best >= UNDATED_MARGIN)
        labels[undated[joins]] = order[joins, 0]
    rest = undated[labels[undated] < 0]
    if len(rest):
        labels[rest] = labels.max() + 1 + subcluster(emb[rest], threshold)
    return relabel_by_size(labels) if n else labels


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
    ``gap`` beyond the typical curated face's cluster from the seed centroid, with
    fewer than a quarter of the curated faces one would expect, and together too
    few for chance (:func:`unlikely_share`)."""
    if len(clusters) < 2:
        return set()
    dists = np.array([1.0 - centroid(emb[c]) @ seed_c for c in clusters])
    curated = np.array([int(is_seed[c].sum()) for c in clusters])
    weight = curated if curated.sum() else np.array([len(c) for c in clusters])
    # the typical curated face's cluster: a crowd of a sibling's faces must not set the norm
    ref = float(np.median(np.repeat(dists, weight)))
    far = dists > ref + gap
    if not far.any():
        return set()
    # the curated share of the person's own clusters: a crowd of a sibling's faces
    # would dilute it until their absence of curated faces looked like chance
    mine = [c for c, f in zip(clusters, far) if not f]
    expected = float(is_seed[np.concatenate(mine if mine else clusters)].mean())
    out = {i for i, c in enumerate(clusters) if far[i] and is_seed[c].mean() < expected / 4}
    # together they must miss curated faces beyond chance: two far faces of a small
    # identity, neither curated, prove nothing; 170 of a sibling's do
    if out and not unlikely_share(np.concatenate([clusters[i] for i in out]), is_seed, expected):
        return set()
    return out


def unlikely_share(members: np.ndarray, is_seed: np.ndarray, share: float, p_max: float = 0.01) -> bool:
    """True when ``members`` hold so few curated faces that, were they the person,
    the chance of so few (binomial, at the survivors' curated ``share``) is below
    ``p_max``, and fewer than a quarter of those expected: another person's look,
    however close. With a faceset that is the whole identity (share near 1) a
    single uncurated pair is enough to tell."""
    k = len(members)
    c = int(is_seed[members].sum())
    if c >= k * share / 4:
        return False
    if share >= 1.0:
        return True
    log_p, log_q = math.log(share), math.log1p(-share)
    terms = [math.lgamma(k + 1) - math.lgamma(i + 1) - math.lgamma(k - i + 1) + i * log_p + (k - i) * log_q
             for i in range(c + 1)]
    top = max(terms)
    return top + math.log(sum(math.exp(t - top) for t in terms)) < math.log(p_max)


PEOPLE_SCALE = 1.4  # see other_people


def other_people(emb: np.ndarray, is_seed: np.ndarray, threshold: float) -> np.ndarray:
    """Positions of faces that belong to someone else, judged without years.

    Clustered by looks alone at ``threshold`` (the pipeline passes
    :data:`PEOPLE_SCALE` x the sub-cluster threshold), one person's looks over the
    years join while a sibling's faces stay apart: measured on the seed's
    geometry (siblings apart from 0.45 to 0.60) and buffalo_s's (0.55 to 0.65).
    A cluster holding too few curated faces for its size (:func:`unlikely_share`)
    is another person. With years, a loose model's sibling faces would scatter
    into the person's year clusters, too few in each to tell.
    """
    if len(emb) < 2:
        return np.zeros(0, dtype=np.int64)
    labels = subcluster(emb, threshold)
    share = float(is_seed.mean())
    out = [np.flatnonzero(labels == s) for s in range(int(labels.max()) + 1)]
    return np.array(sorted(m for c in out if unlikely_share(c, is_seed, share) for m in c.tolist()),
                    dtype=np.int64)


def _cores_of(cluster: np.ndarray, years: np.ndarray, emb: np.ndarray, era_years: int,
              anchor_min: int, sparse: bool) -> tuple[list[np.ndarray], list[int], bool]:
    """Era cores of one cluster split by years, the faces left over, and whether
    it was kept whole (step 3: only in a sparse identity, when no year part is big)."""
    parts = split_by_years(cluster, years, emb, era_years)
    big = [p for p in parts if len(p) >= anchor_min]
    if not big and sparse and len(cluster) >= anchor_min:
        return [cluster], [], True
    loose = [m for p in parts if len(p) < anchor_min for m in p.tolist()]
    return big, loose, False


def _attach(loose: list[int], cores: list[list[int]], emb: np.ndarray, years: np.ndarray, *,
            fragment_dist: float, era_years: int, undated_dist: float,
            avoid: np.ndarray | None = None) -> tuple[list[list[int]], list[int]]:
    """Faces of ``loose`` that join a core (step 4), per core, and those left.
    A face nearer to one of the ``avoid`` centroids (looks set aside as another
    person) than to the core it would join stays out."""
    attached: list[list[int]] = [[] for _ in cores]
    if not cores or not loose:
        return attached, list(loose)
    left: list[int] = []
    cents = np.array([centroid(emb[c]) for c in cores])
    doms = np.array([dominant_year(years[c]) or 0 for c in cores])
    dist = 1.0 - emb[loose] @ cents.T  # (faces, cores)
    if avoid is not None and len(avoid):
        fence = (1.0 - emb[loose] @ avoid.T).min(axis=1)
        dist[dist > fence[:, None]] = np.inf
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
            runner = d[order[1]] if len(order) > 1 else np.inf
            clear = np.isinf(runner) or runner - d[k] >= UNDATED_MARGIN
            # two eras whose looks are this close take an undated face either way unharmed
            alike = not clear and 1.0 - cents[k] @ cents[order[1]] <= ALIKE * undated_dist
            ok = d[k] <= undated_dist and (clear or alike)
        (attached[k] if ok else left).append(face)
    return attached, left


LEFTOVER_SCALE = 1.6  # step 5 clusters at this x fragment_dist (see assign_eras)


@dataclass
class _Core:
    members: list[int]
    reason: str
    whole: bool  # kept whole in a sparse identity: its years are not held to the window
    extra: list[int] = field(default_factory=list)


def is_sparse(years: np.ndarray, anchor_min: int) -> bool:
    """Fewer dated faces per photographed year than an era needs: a small
    identity, whose few photos a year cannot each make an era."""
    dated = years[years != UNDATED]
    return len(dated) < anchor_min * max(1, len(np.unique(dated)))


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
    year_weight: float = 0.0,
) -> list[Group]:
    """Groups of survivor positions (see the module docstring).

    labels : (n,) sub-cluster labels (:func:`cluster_dated_first`); emb : (n, d)
    unit rows; years : (n,) ints; is_seed : (n,) bool, the face is in the curated faceset.

    Step 5 clusters what joined nothing at :data:`LEFTOVER_SCALE` x ``fragment_dist``:
    looser than attaching, because those faces are each far from every era, and
    the years (for dated faces) and the curated share (for whole clusters) still
    stand guard. Last, every era not kept whole holds its years: a face farther
    than ``era_years`` from the era's final dominant year (attachments can move
    it) tries the other eras, else stays thin.
    """
    n_sub = int(labels.max()) + 1 if len(labels) else 0
    subs = [np.flatnonzero(labels == s) for s in range(n_sub)]
    anchors = [s for s in range(n_sub) if len(subs[s]) >= anchor_min]
    others = suspected_others([subs[a] for a in anchors], emb, is_seed, seed_c, other_gap)
    sparse = is_sparse(years, anchor_min)
    mine = [subs[a] for i, a in enumerate(anchors) if i not in others]
    # the curated share of the person's own anchors (a sibling's crowd would dilute it)
    share = float(is_seed[np.concatenate(mine)].mean()) if mine else float(is_seed.mean()) if len(is_seed) else 0.0
    rules = dict(fragment_dist=fragment_dist, era_years=era_years, undated_dist=undated_dist)

    groups: list[Group] = []
    cores: list[_Core] = []
    loose: list[int] = []  # faces of fragments and small year parts

    def add_cores(clusters: list[np.ndarray], reason: str) -> None:
        for cluster in clusters:
            big, rest, whole = _cores_of(cluster, years, emb, era_years, anchor_min, sparse)
            for p in big:
                if unlikely_share(p, is_seed, share):
                    groups.append(Group(tuple(p.tolist()), False, "suspected_other_person"))
                else:
                    split = reason == "anchor" and len(big) + bool(rest) > 1
                    cores.append(_Core(p.tolist(), "split_by_years" if split else reason, whole))
            loose.extend(rest)

    def fence() -> np.ndarray:
        """Centroids of the looks set aside as another person's, so far."""
        aside = [g.members for g in groups if g.reason == "suspected_other_person"]
        return np.array([centroid(emb[list(m)]) for m in aside]).reshape(len(aside), emb.shape[1])

    add_cores(mine, "anchor")
    for i in others:
        groups.append(Group(tuple(subs[anchors[i]].tolist()), True, "suspected_other_person"))
    for s in range(n_sub):
        if len(subs[s]) < anchor_min:
            loose += subs[s].tolist()

    def attach(faces: list[int], **looser: float) -> list[int]:
        extra, left = _attach(sorted(faces), [c.members + c.extra for c in cores], emb, years,
                              **{**rules, **looser}, avoid=fence())
        for core, more in zip(cores, extra):
            core.extra += more
        return left

    loose_dist = min(LEFTOVER_SCALE * fragment_dist, MAX_DISTANCE)

    left = attach(loose)
    if len(left) >= anchor_min:  # step 5
        pos = np.array(sorted(left), dtype=np.int64)
        again = cluster_dated_first(emb[pos], years[pos], loose_dist, year_weight, loose_dist,
                                    free=2 * era_years)
        before = len(cores)
        loose = []
        add_cores([pos[again == s] for s in range(int(again.max()) + 1)], "merged_fragments")
        # a new core is another person's when far out and without its curated faces, as
        # an anchor would be, or when nearer to a look set aside than to the person's
        far = set(suspected_others([np.array(c.members) for c in cores], emb, is_seed, seed_c, other_gap))
        aside, ours = fence(), np.vstack([seed_c[None, :]] + [centroid(emb[c.members]) for c in cores[:before]])
        for i in range(before, len(cores)):
            c = centroid(emb[cores[i].members])
            if len(aside) and (1.0 - aside @ c).min() < (1.0 - ours @ c).min():
                far.add(i)
        for i in sorted((i for i in far if i >= before), reverse=True):
            groups.append(Group(tuple(sorted(cores[i].members)), False, "suspected_other_person"))
            del cores[i]
        left = attach(loose)  # every other leftover face now sits in a core or a group
    if cores and left:  # dated faces of an era's years, looser: the years vouch for them
        left = attach(left, fragment_dist=loose_dist, undated_dist=-1.0)
    for attempt in range(4):  # hold the years; the last round only evicts
        evicted = []
        for core in cores:
            if core.whole:
                continue
            faces = core.members + core.extra
            dom = dominant_year(years[faces])
            if dom is None:
                continue
            out = {f for f in faces if years[f] != UNDATED and abs(int(years[f]) - dom) > era_years}
            core.members = [f for f in core.members if f not in out]
            core.extra = [f for f in core.extra if f not in out]
            evicted += sorted(out)
        if not evicted:
            break
        left = sorted(set(left) | set(attach(evicted) if attempt < 3 else evicted))

    for core in cores:
        members = tuple(sorted(core.members + core.extra))
        if not members:
            continue
        reason = "anchor_with_fragments" if core.extra and core.reason == "anchor" else core.reason
        groups.append(Group(members, True, reason, fragments=len({int(labels[f]) for f in core.extra})))
    # what joined nothing stays together as it was clustered, one bucket per sub-cluster
    by_label: dict[int, list[int]] = {}
    for face in sorted(set(left)):
        by_label.setdefault(int(labels[face]), []).append(face)
    for _, faces in sorted(by_label.items()):
        reason = "fragment_undated" if all(years[f] == UNDATED for f in faces) else (
            "fragment_no_anchor" if not cores else "fragment_far")
        groups.append(Group(tuple(faces), False, reason))
    return groups


def era_groups(
    emb: np.ndarray,
    years: np.ndarray,
    is_seed: np.ndarray,
    seed_c: np.ndarray,
    *,
    subcluster_dist: float,
    anchor_min: int,
    fragment_dist: float,
    era_years: int,
    undated_dist: float,
    other_gap: float,
    year_weight: float,
) -> tuple[np.ndarray, list[Group]]:
    """The whole era method over survivors: sub-cluster labels (n,) and groups.

    Faces of another person (:func:`other_people`) are set aside first as one
    thin bucket per look, so they neither join nor start an era.
    """
    n = len(emb)
    others = other_people(emb, is_seed, PEOPLE_SCALE * subcluster_dist)
    keep = np.setdiff1d(np.arange(n), others)
    labels = np.full(n, -1, dtype=np.int64)
    groups: list[Group] = []
    if len(keep):
        labels[keep] = cluster_dated_first(emb[keep], years[keep], subcluster_dist, year_weight, undated_dist)
        local = assign_eras(
            labels[keep], emb[keep], years[keep], is_seed[keep], seed_c,
            anchor_min=anchor_min, fragment_dist=fragment_dist, era_years=era_years,
            undated_dist=undated_dist, other_gap=other_gap, year_weight=year_weight,
        )
        groups = [Group(tuple(int(keep[m]) for m in g.members), g.anchor, g.reason, g.fragments) for g in local]
    if len(others):
        looks = subcluster(emb[others], subcluster_dist)
        base = int(labels.max()) + 1
        labels[others] = base + looks
        for s in range(int(looks.max()) + 1):
            groups.append(Group(tuple(int(m) for m in others[looks == s]), False, "suspected_other_person"))
    return (relabel_by_size(labels) if n else labels), groups
