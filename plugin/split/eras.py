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
6. Eras of the same years become one when they still hold their years and
   their looks are close (:func:`merge_same_years`): a user picks an era by its
   years, and two "2008" eras — two sittings of one year — are one. What still
   shares its years is a look apart, and the labels say which (``_look2``).

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


def year_windows(counts: dict[int, int], window: int, era_size: int) -> list[tuple[int, int]]:
    """Contiguous runs of years (first, last) cutting one look's dated faces into
    parts that each hold every face within ``window`` years of the part's own
    dominant year, losing as few faces as possible to parts smaller than
    ``era_size``, then with as few parts as possible (an exact dynamic programme
    over the years present; cutting greedily around successive dominant years
    left a lone year between two eras: issue 19's whole years lost)."""
    ys = sorted(counts)
    best: list[tuple[int, int, int]] = [(0, 0, -1)]  # per prefix: (faces lost, parts, where the last part starts)
    for end in range(len(ys)):
        choice = None
        for start in range(end, -1, -1):
            if ys[end] - ys[start] > 2 * window:
                break
            seg = {y: counts[y] for y in ys[start:end + 1]}
            top = max(seg.values())
            dom = min(y for y, n in seg.items() if n == top)
            if dom - ys[start] > window or ys[end] - dom > window:
                continue
            faces = sum(seg.values())
            lost, parts, _ = best[start]
            cost = (lost + (faces if faces < era_size else 0), parts + 1, start)
            if choice is None or cost[:2] < choice[:2]:
                choice = cost
        best.append(choice if choice is not None else (best[end][0] + counts[ys[end]], best[end][1] + 1, end))
    out, end = [], len(ys)
    while end > 0:
        start = best[end][2]
        out.append((ys[start], ys[end - 1]))
        end = start
    return out[::-1]


def split_by_years(members: np.ndarray, years: np.ndarray, emb: np.ndarray, window: int,
                   era_size: int = 1) -> list[np.ndarray]:
    """Split ``members`` into year parts (:func:`year_windows`); undated members
    join the part nearest in embedding."""
    dated = [m for m in members.tolist() if years[m] != UNDATED]
    undated = [m for m in members.tolist() if years[m] == UNDATED]
    if not dated:
        return [members]
    counts: dict[int, int] = {}
    for m in dated:
        counts[int(years[m])] = counts.get(int(years[m]), 0) + 1
    parts = [[m for m in dated if lo <= years[m] <= hi] for lo, hi in year_windows(counts, window, era_size)]
    if undated:
        cents = np.array([centroid(emb[p]) for p in parts])
        nearest = np.argmax(emb[undated] @ cents.T, axis=1)
        for m, k in zip(undated, nearest.tolist()):
            parts[k].append(m)
    return [np.array(sorted(p), dtype=np.int64) for p in parts]


CURATION_WINDOW = 0  # years either side that share a year's curated share (a curation that starts in one year must not spill into the year before it)
CURATION_PRIOR = 4.0  # faces' worth of the overall share mixed into a year's own
TOO_FEW_TO_TELL = 2.0  # expected curated faces below which a group's absence of them proves nothing


@dataclass(frozen=True)
class Curation:
    """How many curated faces a group of the person's faces should hold.

    People curate some years more than others — the recent, good photos — then
    split the whole archive to get their younger self back (issue 19: 2 curated
    faces in 2005, 111 in 2011). So a face's chance of being curated, were it the
    person, is the curated share of the person's faces of the same years
    (within :data:`CURATION_WINDOW`), mixed with :data:`CURATION_PRIOR` faces of
    the overall share; an undated face's is the overall share. A young look with
    the few curated faces its years have is the person; a lookalike through the
    years without the curated faces those years have is not.

    p : (n,) float, face i's expected chance of being curated
    """

    is_seed: np.ndarray
    p: np.ndarray

    @classmethod
    def of(cls, years: np.ndarray, is_seed: np.ndarray, mine: np.ndarray | None = None) -> Curation:
        """From the faces ``mine`` (positions; all when None): every face of the
        year counts, a sibling's too. A crowd of a sibling's faces dilutes each
        year's share, but the test sums over the sibling's every year, and so
        keeps its power (a sibling with 5x the person's faces in every year still
        expects 5/6 of all the curated faces, and holds none)."""
        years = np.asarray(years)
        base = np.arange(len(years)) if mine is None else np.asarray(mine, dtype=np.int64)
        overall = float(is_seed[base].mean()) if len(base) else 0.0
        p = np.full(len(years), overall)
        dated = base[years[base] != UNDATED]
        if len(dated):
            y, c = years[dated], is_seed[dated]
            for year in np.unique(years[years != UNDATED]):
                near = np.abs(y - year) <= CURATION_WINDOW
                share = (c[near].sum() + CURATION_PRIOR * overall) / (near.sum() + CURATION_PRIOR)
                p[years == year] = share
        return cls(np.asarray(is_seed, dtype=bool), p)

    def expected(self, members: np.ndarray) -> float:
        return float(self.p[members].sum())

    def unlikely(self, members: np.ndarray, p_max: float = 0.01) -> bool:
        """True when ``members`` hold so few curated faces that, were they the
        person, the chance of so few is below ``p_max``, and fewer than a quarter
        of those expected: another person's look, however close. A group whose
        years bring fewer than :data:`TOO_FEW_TO_TELL` curated faces proves
        nothing by missing them; one of faces that are all certainly curated (a
        faceset that is the whole identity) is told by a single uncurated pair."""
        members = np.asarray(members, dtype=np.int64)
        c = int(self.is_seed[members].sum())
        p = self.p[members]
        expected = float(p.sum())
        if c >= expected / 4:
            return False
        if (p >= 1.0).all():
            return True
        if expected < TOO_FEW_TO_TELL:
            return False
        return _lower_tail(p, c) < math.log(p_max)


def _lower_tail(p: np.ndarray, c: int) -> float:
    """log P(X <= c) for X the number of successes of independent trials with
    chances ``p`` (Poisson-binomial): binomials of the trials that share a chance,
    convolved, truncated at ``c``."""
    total = np.zeros(c + 1)
    total[0] = 1.0
    log_scale = 0.0
    for q in np.unique(p):
        k = int((p == q).sum())
        j = np.arange(min(k, c) + 1)
        if q <= 0.0:
            log_pmf = np.where(j == 0, 0.0, -np.inf)
        elif q >= 1.0:
            log_pmf = np.where(j == k, 0.0, -np.inf)
        else:
            log_pmf = (np.array([math.lgamma(k + 1) - math.lgamma(i + 1) - math.lgamma(k - i + 1) for i in j])
                       + j * math.log(q) + (k - j) * math.log1p(-q))
        top = float(np.max(log_pmf))
        if not np.isfinite(top):
            return -math.inf
        total = np.convolve(total, np.exp(log_pmf - top))[: c + 1]
        peak = float(total.max())
        if peak <= 0:
            return -math.inf
        total /= peak
        log_scale += top + math.log(peak)
    return log_scale + math.log(float(total.sum()))


def suspected_others(
    clusters: list[np.ndarray], emb: np.ndarray, is_seed: np.ndarray, seed_c: np.ndarray, gap: float,
    curation: Curation | None = None, years: np.ndarray | None = None,
) -> set[int]:
    """Indices of clusters that are probably another person: centroid farther than
    ``gap`` beyond the typical curated face's cluster from the seed centroid, with
    fewer than a quarter of the curated faces their years would bring, and
    together too few for chance (:meth:`Curation.unlikely`)."""
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
    if curation is None:
        curation = Curation.of(np.zeros(len(is_seed), np.int64) if years is None else years, is_seed,
                               np.concatenate(clusters))
    out = {i for i, c in enumerate(clusters)
           if far[i] and curated[i] < curation.expected(c) / 4}
    # together they must miss curated faces beyond chance: two far faces of a small
    # identity, neither curated, prove nothing; 170 of a sibling's do
    if out and not curation.unlikely(np.concatenate([clusters[i] for i in out])):
        return set()
    return out


PEOPLE_SCALE = 1.4  # see other_people


def other_people(emb: np.ndarray, is_seed: np.ndarray, threshold: float,
                 years: np.ndarray | None = None) -> np.ndarray:
    """Positions of faces that belong to someone else, judged without years.

    Clustered by looks alone at ``threshold`` (the pipeline passes
    :data:`PEOPLE_SCALE` x the sub-cluster threshold), one person's looks over the
    years join while a sibling's faces stay apart: measured on the seed's
    geometry (siblings apart from 0.45 to 0.60) and buffalo_s's (0.55 to 0.65).
    A cluster holding too few curated faces for its size and years
    (:meth:`Curation.unlikely`) is another person; the shares are measured again
    without the clusters so found, which would dilute them. With years, a loose
    model's sibling faces would scatter into the person's year clusters, too few
    in each to tell.
    """
    if len(emb) < 2:
        return np.zeros(0, dtype=np.int64)
    years = np.zeros(len(emb), np.int64) if years is None else np.asarray(years)
    labels = subcluster(emb, threshold)
    looks = [np.flatnonzero(labels == s) for s in range(int(labels.max()) + 1)]
    curation = Curation.of(years, is_seed)
    out = [c for c in looks if curation.unlikely(c)]
    if out:
        rest = np.setdiff1d(np.arange(len(emb)), np.concatenate(out))
        curation = Curation.of(years, is_seed, rest)
        out = [c for c in looks if curation.unlikely(c)]
    return np.array(sorted(m for c in out for m in c.tolist()), dtype=np.int64)


def _cores_of(cluster: np.ndarray, years: np.ndarray, emb: np.ndarray, era_years: int,
              anchor_min: int, sparse: bool) -> tuple[list[np.ndarray], list[int], bool]:
    """Era cores of one cluster split by years, the faces left over, and whether
    it was kept whole (step 3: only in a sparse identity, when no year part is big)."""
    parts = split_by_years(cluster, years, emb, era_years, anchor_min)
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
    curation = Curation.of(years, is_seed)
    others = suspected_others([subs[a] for a in anchors], emb, is_seed, seed_c, other_gap, curation)
    sparse = is_sparse(years, anchor_min)
    mine = [subs[a] for i, a in enumerate(anchors) if i not in others]
    rules = dict(fragment_dist=fragment_dist, era_years=era_years, undated_dist=undated_dist)

    groups: list[Group] = []
    cores: list[_Core] = []
    loose: list[int] = []  # faces of fragments and small year parts

    def add_cores(clusters: list[np.ndarray], reason: str) -> None:
        for cluster in clusters:
            big, rest, whole = _cores_of(cluster, years, emb, era_years, anchor_min, sparse)
            for p in big:
                if curation.unlikely(p):
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
        far = set(suspected_others([np.array(c.members) for c in cores], emb, is_seed, seed_c, other_gap,
                                   curation))
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
    cores = merge_same_years(cores, emb, years, era_years, loose_dist)

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


def merge_same_years(cores: list[_Core], emb: np.ndarray, years: np.ndarray, era_years: int,
                     alike: float) -> list[_Core]:
    """Eras of the same years made one (step 6): two sittings of one year, two
    looks of one summer, two undated looks, are one era of the person at that
    time, the era a user picks by its years. Two cores merge, the nearest pair
    first, when their dominant years are within ``era_years`` (or both are
    undated), every dated face of the two stays within ``era_years`` of the
    merged dominant year, and their centroids lie within ``alike``. What still
    shares its years is a look apart, and is named so (results.label_buckets)."""
    cores = [c for c in cores if c.members or c.extra]
    while True:
        faces = [c.members + c.extra for c in cores]
        doms = [dominant_year(years[f]) for f in faces]
        cents = np.array([centroid(emb[f]) for f in faces]).reshape(len(faces), emb.shape[1])
        pairs = []
        for i in range(len(cores)):
            for j in range(i + 1, len(cores)):
                same = (doms[i] is None and doms[j] is None) or (
                    doms[i] is not None and doms[j] is not None and abs(doms[i] - doms[j]) <= era_years)
                gap = float(1.0 - cents[i] @ cents[j])
                if same and gap <= alike:
                    pairs.append((gap, i, j))
        for _, i, j in sorted(pairs):
            both = faces[i] + faces[j]
            dom = dominant_year(years[both])
            if dom is None or all(abs(int(years[f]) - dom) <= era_years for f in both if years[f] != UNDATED):
                keep, gone = cores[i], cores[j]
                keep.members = keep.members + gone.members
                keep.extra = keep.extra + gone.extra
                keep.whole = keep.whole and gone.whole
                del cores[j]
                break
        else:
            return cores


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
    others = other_people(emb, is_seed, PEOPLE_SCALE * subcluster_dist, years)
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
