"""Exact average-linkage clusters cut at a threshold, without a distance matrix.

For unit rows the average cosine distance of two clusters is one minus the dot
product of their mean vectors, and the year penalty is a bilinear form on their
year histograms: ``d(A, B) = 1 - (S_A.S_B - H_A P H_B) / (n_A n_B)``. So any
cluster-to-cluster distance costs one dot product of the clusters' sums, and
the n^2 matrix scipy's ``linkage`` keeps (and copies) is never needed.

Average linkage is *reducible*: d(A u B, C) >= min(d(A, C), d(B, C)). Hence
any two clusters that are each other's nearest neighbour can merge at once, in
any order, and the dendrogram is the one every exact algorithm builds. We merge
all such pairs below the threshold, round after round; a cluster whose nearest
neighbour is at or above the threshold never merges again.

Nearest neighbours come from a short candidate list per cluster: ``m`` entries
with a *lower bound* on their distance, plus a floor below which no cluster
outside the list lies. Bounds come from float32 matrix products (with a proven
error margin) and, after a merge, from the count-weighted average of the
halves' bounds and floors; an entry is computed exactly (float64, from the
sums) only when it could be the nearest. A cluster whose list runs dry waits
(pairing with nobody) until a batch of them is compared with every active
cluster in one product.

Groups of near-copies (bursts, re-saves: faces a hair apart) are the lists'
slow shape: the float32 filter cannot order their distances, so each is
settled exactly against every cluster (40,000 faces of mixed clusters, a
fifth of them near-copies: past 400 s). A group whose widest inner distance is
below the threshold and below every distance from a member to a face outside
it is a cluster of every linkage's tree — it closes before it touches anything
else — so it enters as one weighted point (its mean, its count), exactly, like
exact copies (:func:`fold_near_copies`).

Exact ties are broken by the smaller cluster id: near-ties the float32 filter
cannot separate get a list of exact distances whose floor carries the id of
the first cluster left out. The result is the partition of scipy's
``linkage(method="average")`` cut below the threshold, wherever that partition
does not depend on how ties are broken. :class:`Undecided` is a safety net
(no input is known to reach it): the caller then falls back to scipy.
"""

from __future__ import annotations

import time

import numpy as np

from ..results import UNDATED  # a face's year when its photo has no date

CHUNK = 64  # columns per chunk in smallest_k
EPS = 1e-12  # float64 rounding allowance for bounds derived by averaging
FAR = np.float32(1e30)  # an inactive column's distance in the float32 filter


class Undecided(RuntimeError):
    """The candidate lists could not settle a nearest neighbour."""


class OverBudget(RuntimeError):
    """The input is one of the shapes the candidate lists handle slowly.

    On ordinary inputs the lists settle almost every nearest neighbour from the
    float32 filter: exact float64 rows cost under 0.005 n^2 distances. A tight
    core (thousands of faces of one video, nearly alike) leaves them undecided
    row after row, each settled against every cluster: 0.1 n^2 and more, 200 s
    for 20,000 faces where scipy takes 16 s. The budget stops that early.
    """


EXACT_BUDGET = 0.02  # x n^2 exact distances before the run gives up (when budgeted)
NEAR_SAMPLE = 512  # faces sampled to see whether near-copies are common enough to fold
NEAR_SHARE = 0.02  # ... the share of them with a near-copy that makes folding worth a pass
NEAR_SCALE = 1 / 8  # near-copies: within this share of the threshold
FOLD_MAX = 20_000  # members of one group checked pairwise (larger groups stay unfolded)
DEADLINE = 60.0  # seconds a budgeted run may take before it gives up (issue 19: the target)
FOLD_CROWD = 256  # near neighbours per sampled face beyond which nothing is folded: a chain's
#                   neighbourhoods, whose pairs alone would take gigabytes and never fold

def year_penalty(a: np.ndarray, b: np.ndarray, weight: float, free: int = 1) -> np.ndarray:
    """(len(a), len(b)) extra distance: ``weight`` per year apart beyond ``free``
    years, for pairs where both faces are dated; zero otherwise."""
    a16, b16 = np.asarray(a, dtype=np.int16), np.asarray(b, dtype=np.int16)
    gap = np.abs(a16[:, None] - b16[None, :])
    gap -= free
    np.maximum(gap, 0, out=gap)
    gap[a16 == UNDATED] = 0
    gap[:, b16 == UNDATED] = 0
    return gap * weight


def year_form(n: int, years: np.ndarray | None, weight: float, free: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """One-hot year histograms H (n, k) and the penalty matrix P (k, k) between the
    k distinct years, so that ``H[i] @ P @ H[j]`` is :func:`year_penalty` of faces i, j."""
    if years is None or not weight:
        return np.zeros((n, 0)), np.zeros((0, 0))
    vals, inv = np.unique(np.asarray(years, dtype=np.int64), return_inverse=True)
    hist = np.zeros((n, len(vals)))
    hist[np.arange(n), inv.reshape(-1)] = 1.0
    return hist, year_penalty(vals, vals, weight, free)


def smallest_k(d: np.ndarray, k: int) -> np.ndarray:
    """Column indices (rows, k) of each row's k smallest values, in no order.

    Columns fall into CHUNK-strided chunks (chunk c: columns c, c + w, c + 2w, ...
    for w = columns / CHUNK); the k chunks with the smallest minima hold every one
    of the k smallest values, so only k * CHUNK values per row are partitioned.
    Needs a whole number of chunks per row.
    """
    rows, cols = d.shape
    if cols <= 4 * k * CHUNK:
        return np.argpartition(d, k - 1, axis=1)[:, :k]
    width = cols // CHUNK
    best = np.argpartition(d.reshape(rows, CHUNK, width).min(axis=1), k - 1, axis=1)[:, :k]
    picked = (np.arange(CHUNK)[None, :, None] * width + best[:, None, :]).reshape(rows, -1)
    values = np.take_along_axis(d, picked, axis=1)
    return np.take_along_axis(picked, np.argpartition(values, k - 1, axis=1)[:, :k], axis=1)


class _Clusters:
    """Cluster sums, candidate lists and nearest neighbours; ids are the smallest member."""

    def __init__(self, x: np.ndarray, weight: np.ndarray, threshold: float, years, year_weight: float,
                 m: int, block: int, batch: int = 256, free: int = 1, budget: bool = False):
        n = len(x)
        self.exact_left = EXACT_BUDGET * n * n if budget else np.inf
        self.budgeted = budget
        self.n, self.m, self.t, self.block, self.batch = n, m, float(threshold), block, batch
        self.S = np.array(x, dtype=np.float64)  # rows of one weighted point: the mean, then the sum
        self.H, P = year_form(n, years, year_weight, free)
        self.HP = self.H @ P
        self.cnt = np.zeros(n + 1)  # index n is the "empty entry" sentinel everywhere
        self.cnt[:n] = weight
        dim, years_dim = self.S.shape[1], self.H.shape[1]
        # mean vectors for the float32 filter: 1 + CL . CR = distance, up to the margin;
        # the last column (CL 1, CR 0) lets an inactive column read as "infinitely far"
        self.CL = np.empty((n, dim + years_dim + 1), dtype=np.float32)
        self.CR = np.empty_like(self.CL)
        self.CL[:, :dim], self.CL[:, dim:-1], self.CL[:, -1] = self.S, self.H, 1.0
        np.negative(self.S, out=self.CR[:, :dim], casting="same_kind")
        self.CR[:, dim:-1], self.CR[:, -1] = self.HP, 0.0
        # |fl32(a.b) - a.b| <= gamma_k |a| |b|, plus the rounding of the inputs to float32
        k = dim + years_dim + 1
        u = 2.0**-24
        sq = np.einsum("ij,ij->i", self.S, self.S)
        norm_l = float(np.sqrt((sq + np.einsum("ij,ij->i", self.H, self.H)).max())) if n else 0.0
        norm_r = float(np.sqrt((sq + np.einsum("ij,ij->i", self.HP, self.HP)).max())) if n else 0.0
        if (weight != 1).any():
            w = np.asarray(weight, dtype=np.float64)[:, None]
            self.S *= w
            self.H *= w
            self.HP *= w
        self.margin = 2.0 * ((k + 2) * u / (1 - (k + 2) * u)) * max(norm_l, 1.0) * max(norm_r, 1.0) + 1e-9
        self.active = np.ones(n + 1, dtype=bool)
        self.active[n] = False
        self.rep = np.arange(n + 1)
        self.ids = np.full((n, m), n, dtype=np.int64)
        self.lo = np.full((n, m), np.inf)
        self.exact = np.zeros((n, m), dtype=bool)
        self.floor = np.full(n, np.inf)
        self.floor_id = np.full(n, -1, dtype=np.int64)  # >= 0: floor excludes (floor, id) ties below it
        self.nn = np.full(n + 1, n, dtype=np.int64)
        self._cols: np.ndarray | None = None
        self._right = self._colpos = np.zeros(0)
        self._live = 0
        self._stale: list[np.ndarray] = []
        self.waiting = np.zeros(n + 1, dtype=bool)  # lists ran dry: refreshed in batches
        self.tries = np.zeros(n + 1, dtype=np.int8)  # refreshes since the row last settled

    # -- distances -----------------------------------------------------------------
    def distance(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Exact float64 distances of cluster pairs, computed in one canonical order
        (smaller id first) so d(a, b) and d(b, a) are the same number."""
        lo, hi = np.minimum(a, b), np.maximum(a, b)
        out = np.empty(len(lo))
        step = 8192
        for s in range(0, len(lo), step):
            p, q = lo[s : s + step], hi[s : s + step]
            dot = np.einsum("ij,ij->i", self.S[p], self.S[q])
            if self.H.shape[1]:
                dot -= np.einsum("ij,ij->i", self.H[p], self.HP[q])
            out[s : s + step] = 1.0 - dot / (self.cnt[p] * self.cnt[q])
        return out

    # -- candidate lists --------------------------------------------------------------
    def _columns(self) -> tuple[np.ndarray, np.ndarray]:
        """Float32 right-hand matrix of the active clusters, padded to whole chunks.
        Rebuilt when a quarter of its columns went inactive; merged clusters'
        columns are updated in place; inactive ones are masked after the product."""
        n_active = int(self.active.sum())
        if self._cols is None or n_active < 0.75 * self._live:
            act = np.flatnonzero(self.active)
            width = -(-len(act) // CHUNK) * CHUNK
            self._cols = np.full(width, self.n, dtype=np.int64)
            self._cols[: len(act)] = act
            self._right = np.zeros((width, self.CR.shape[1]), dtype=np.float32)
            self._right[: len(act)] = self.CR[act]
            self._right[len(act) :, -1] = FAR
            self._colpos = np.full(self.n + 1, -1)
            self._colpos[act] = np.arange(len(act))
            self._live = len(act)
            self._stale.clear()
        elif self._stale:
            changed = np.concatenate(self._stale)
            changed = changed[self.active[changed]]
            self._right[self._colpos[changed]] = self.CR[changed]
            self._stale.clear()
        self._right[~self.active[self._cols], -1] = FAR
        return self._cols, self._right

    def refresh(self, rows: np.ndarray) -> None:
        """New lists for ``rows`` from float32 products against every active cluster."""
        if len(rows) == 0:
            return
        cols, right = self._columns()
        k = min(self.m + 1, int(self.active.sum()) - 1)
        for s in range(0, len(rows), self.block):
            b = rows[s : s + self.block]
            self.ids[b], self.lo[b], self.exact[b], self.floor_id[b] = self.n, np.inf, False, -1
            if k <= 0:
                self.floor[b] = np.inf
                continue
            d = self.CL[b] @ right.T
            d[np.arange(len(b)), self._colpos[b]] = np.inf
            idx = smallest_k(d, k)
            vals = np.take_along_axis(d, idx, axis=1)
            order = np.argsort(vals, axis=1)
            idx = np.take_along_axis(idx, order, axis=1)
            bound = 1.0 + np.take_along_axis(vals, order, axis=1).astype(np.float64) - self.margin
            if k == self.m + 1:
                self.floor[b] = bound[:, self.m]
                idx, bound = idx[:, : self.m], bound[:, : self.m]
            else:
                self.floor[b] = np.inf  # every other active cluster is listed
            self.ids[b, : idx.shape[1]] = cols[idx]
            self.lo[b, : idx.shape[1]] = bound

    def refresh_exact(self, rows: np.ndarray) -> None:
        """Lists from exact float64 distances: the first m by (distance, id), and a
        floor that carries the (m+1)-th's id so exact ties stay decidable."""
        act = np.flatnonzero(self.active)
        self.exact_left -= len(rows) * len(act)
        if self.exact_left < 0:
            raise OverBudget(f"{self.n} points: too many nearest neighbours needed exact distances")
        for r in rows.tolist():
            others = act[act != r]
            d = self.distance(np.full(len(others), r), others)
            order = np.lexsort((others, d))[: self.m + 1]
            take = order[: self.m]
            self.ids[r], self.lo[r], self.exact[r] = self.n, np.inf, False
            self.ids[r, : len(take)] = others[take]
            self.lo[r, : len(take)] = d[take]
            self.exact[r, : len(take)] = True
            if len(order) > self.m:
                self.floor[r], self.floor_id[r] = d[order[self.m]], others[order[self.m]]
            else:
                self.floor[r], self.floor_id[r] = np.inf, -1

    def settle(self, rows: np.ndarray, flush: bool = False) -> None:
        """Nearest neighbour (below the threshold) of every row in ``rows``, or mark
        the row final. Rows whose lists cannot decide wait (no nearest neighbour,
        so they pair with nobody) until ``batch`` of them are refreshed together,
        or all waiting ones when ``flush``."""
        rows = rows[self.active[rows]]
        pool: list[np.ndarray] = []
        while True:
            if len(rows) == 0:
                if pool:
                    stuck = np.concatenate(pool)
                    pool = []
                    self.nn[stuck] = self.n
                    self.waiting[stuck] = True
                queued = np.flatnonzero(self.waiting)
                if len(queued) == 0 or (not flush and len(queued) < self.batch):
                    return
                self.waiting[queued] = False
                rows = queued
                self.tries[rows] += 1
                if (self.tries[rows] > 2).any():
                    raise Undecided("more nearest neighbours at one distance than the candidate lists hold")
                self.refresh(rows[self.tries[rows] == 1])
                self.refresh_exact(rows[self.tries[rows] == 2])
            lo, ids, ex = self.lo[rows], self.ids[rows], self.exact[rows]
            low = lo.min(axis=1)
            # the smallest bound is not an exact distance yet: compute it (and its ties)
            pending = ~ex & (lo == low[:, None]) & (low < self.t)[:, None]
            unsure = pending.any(axis=1)
            if unsure.any():
                pr, pc = np.nonzero(pending)
                rr = rows[pr]
                self.lo[rr, pc] = self.distance(rr, self.ids[rr, pc])
                self.exact[rr, pc] = True
            done = ~unsure
            lo, ids, ex, low, decided = lo[done], ids[done], ex[done], low[done], rows[done]
            floor, floor_id = self.floor[decided], self.floor_id[decided]
            final = (low >= self.t) & (floor >= self.t)
            nn = np.where(ex & (lo == low[:, None]), ids, self.n).min(axis=1)
            known = (low < self.t) & ((low < floor) | ((low == floor) & (floor_id >= 0) & (nn < floor_id)))
            self.active[decided[final]] = False
            self.nn[decided[known]] = nn[known]
            settled = decided[final | known]
            self.tries[settled], self.waiting[settled] = 0, False
            stuck = decided[~final & ~known]
            if len(stuck):
                pool.append(stuck)
            rows = rows[unsure]

    # -- merging -----------------------------------------------------------------------
    def merge(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """Merge each pair i[k] <- j[k] (i < j); returns the rows whose lists changed."""
        n = self.n
        ni, nj = self.cnt[i].copy(), self.cnt[j].copy()
        old_cnt = self.cnt.copy()
        self.S[i] += self.S[j]
        if self.H.shape[1]:
            self.H[i] += self.H[j]
            self.HP[i] += self.HP[j]
        self.cnt[i] += nj
        inv = (1.0 / self.cnt[i])[:, None]
        self.CL[i, :-1] = np.concatenate([self.S[i], self.H[i]], axis=1) * inv
        self.CR[i, :-1] = np.concatenate([-self.S[i], self.HP[i]], axis=1) * inv
        self.active[j] = False
        self.rep[j] = i
        self._stale.append(i)
        merged = np.zeros(n + 1, dtype=bool)
        merged[i] = merged[j] = True
        partner = np.arange(n + 1)
        partner[i], partner[j] = j, i
        new_lists = self._union_lists(i, j, ni, nj, merged)
        # unchanged clusters that list a merged one: average the parts' bounds
        act = np.flatnonzero(self.active)
        act = act[~merged[act]]
        touched = act[merged[self.ids[act]].any(axis=1)]
        if len(touched):
            self._average_entries(touched, merged, partner, old_cnt)
        self.ids[i], self.lo[i], self.exact[i], self.floor[i], self.floor_id[i] = new_lists
        self.nn[i] = n
        return np.concatenate([touched, i])

    def _bound_from(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Lower bound on d(a, b) from b's side: b's list entry for a, else b's floor."""
        hit = self.ids[b] == a[:, None]
        listed = np.where(hit, self.lo[b], np.inf).min(axis=1)
        return np.where(hit.any(axis=1), listed, self.floor[b])

    def _average_entries(self, rows: np.ndarray, merged: np.ndarray, partner: np.ndarray, old_cnt: np.ndarray) -> None:
        """Rows that list a cluster merged this round: its halves' entries become one
        entry, bounded by the count-weighted average of the halves' bounds; a half
        the row does not list counts with the row's floor (or, if larger, that
        half's own bound on the row)."""
        n = self.n
        ids, lo = self.ids[rows], self.lo[rows]
        part = merged[ids]
        target = self.rep[ids]
        weight = np.where(part, old_cnt[ids], 0.0)
        order = np.argsort(target, axis=1, kind="stable")
        target = np.take_along_axis(target, order, axis=1)
        lo = np.take_along_axis(lo, order, axis=1)
        part = np.take_along_axis(part, order, axis=1)
        weight = np.take_along_axis(weight, order, axis=1)
        ex = np.take_along_axis(self.exact[rows], order, axis=1)
        twin = np.zeros_like(part)
        twin[:, 1:] = part[:, 1:] & (target[:, 1:] == target[:, :-1])  # both halves listed
        covered = weight.copy()
        covered[:, :-1] += np.where(twin[:, 1:], weight[:, 1:], 0.0)
        with np.errstate(invalid="ignore"):  # 0 x inf in entries that are not parts
            summed = np.where(part, weight * lo, 0.0)
            summed[:, :-1] += np.where(twin[:, 1:], weight[:, 1:] * lo[:, 1:], 0.0)
        total = self.cnt[target]
        missing = total - covered
        # the half this row does not list: its own floor, or better, that half's bound on the row
        floor = np.broadcast_to(self.floor[rows][:, None], target.shape).copy()
        alone = part & ~twin & (missing > 0)
        alone[:, :-1] &= ~twin[:, 1:]
        if alone.any():
            r, c = np.nonzero(alone)
            other = partner[np.take_along_axis(ids, order, axis=1)[r, c]]
            floor[r, c] = np.maximum(floor[r, c], self._bound_from(rows[r], other))
        with np.errstate(invalid="ignore"):
            rest = np.where(missing > 0, missing * floor, 0.0)
            averaged = (summed + rest) / np.where(total > 0, total, 1.0) - EPS
        lo = np.where(part, averaged, lo)
        ex = ex & ~part
        target = np.where(twin, n, target)
        lo = np.where(twin, np.inf, lo)
        self.ids[rows], self.lo[rows], self.exact[rows] = target, lo, ex

    def _union_lists(self, i, j, ni, nj, merged):
        """Lists for the merged clusters: every cluster either half listed, bounded
        by the count-weighted average of the halves' bounds (a half that does not
        list it counts with its floor); entries that merged this round too are
        computed exactly. The floor is the halves' averaged floors, lowered to the
        best entry that no longer fits in ``m``."""
        n, m = self.n, self.m
        k = len(i)
        ids = np.concatenate([self.ids[i], self.ids[j]], axis=1)
        lo = np.concatenate([self.lo[i], self.lo[j]], axis=1)
        from_j = np.zeros(ids.shape, dtype=bool)
        from_j[:, m:] = True
        target = self.rep[ids]
        target[target == i[:, None]] = n  # the halves themselves
        order = np.argsort(target, axis=1, kind="stable")
        target = np.take_along_axis(target, order, axis=1)
        lo = np.take_along_axis(lo, order, axis=1)
        from_j = np.take_along_axis(from_j, order, axis=1)
        empty = target == n
        dup = np.zeros(target.shape, dtype=bool)
        dup[:, 1:] = (target[:, 1:] == target[:, :-1]) & ~empty[:, 1:]
        fi, fj = self.floor[i][:, None], self.floor[j][:, None]
        wi, wj = ni[:, None], nj[:, None]
        # per entry: the bound from its own half, the other half's floor unless a twin follows
        own = np.where(from_j, wj * lo, wi * lo)
        nxt = np.zeros(target.shape, dtype=bool)
        nxt[:, :-1] = dup[:, 1:]
        other_lo = np.full(target.shape, np.inf)
        other_lo[:, :-1] = lo[:, 1:]
        # an entry one half does not list: that half's floor, or the entry's own bound on that half
        fo = np.where(from_j, fi, fj)
        alone = ~nxt & ~dup & ~empty & ~merged[target]
        if alone.any():
            r, c = np.nonzero(alone)
            half = np.where(from_j[r, c], i[r], j[r])
            fo[r, c] = np.maximum(fo[r, c], self._bound_from(half, target[r, c]))
        with np.errstate(invalid="ignore"):
            other = np.where(nxt, np.where(from_j, wi * other_lo, wj * other_lo), np.where(from_j, wi, wj) * fo)
            bound = (own + other) / (wi + wj) - EPS
        changed = merged[target] & ~empty  # the entry merged this round too: compute it
        bound = np.where(dup | empty, np.inf, bound)
        target = np.where(dup, n, target)
        exact = np.zeros(target.shape, dtype=bool)
        need = changed & ~dup
        if need.any():
            r, c = np.nonzero(need)
            bound[r, c] = self.distance(i[r], target[r, c])
            exact[r, c] = True
        with np.errstate(invalid="ignore"):
            floor = (wi[:, 0] * fi[:, 0] + wj[:, 0] * fj[:, 0]) / (wi[:, 0] + wj[:, 0]) - EPS
        order = np.argsort(bound, axis=1, kind="stable")
        target = np.take_along_axis(target, order, axis=1)
        bound = np.take_along_axis(bound, order, axis=1)
        exact = np.take_along_axis(exact, order, axis=1)
        floor = np.minimum(floor, bound[:, m:].min(axis=1))
        return target[:, :m], bound[:, :m], exact[:, :m], floor, np.full(k, -1, dtype=np.int64)

    # -- the rounds -------------------------------------------------------------------
    def run(self) -> np.ndarray:
        n = self.n
        started = time.monotonic()
        self.refresh(np.arange(n))
        dirty = np.arange(n)
        while True:
            if self.budgeted and time.monotonic() - started > DEADLINE:
                raise OverBudget(f"{n} points: not settled within {DEADLINE:g} s")
            self.settle(dirty)
            act = np.flatnonzero(self.active)
            if len(act) < 2:
                break
            partner = self.nn[act]
            pair = (self.nn[partner] == act) & (act < partner)
            if not pair.any():
                if not self.waiting.any():
                    raise Undecided("no two clusters are each other's nearest neighbour")
                self.settle(dirty[:0], flush=True)
                dirty = dirty[:0]
                continue
            dirty = self.merge(act[pair], partner[pair])
            dirty = dirty[self.active[dirty]]
        root = self.rep[:n].copy()
        while True:
            up = self.rep[root]
            if (up == root).all():
                return root
            root = up


def _margin32(dim: int) -> float:
    """An upper bound on |fl32(1 - a.b) - (1 - a.b)| for unit a, b of ``dim``."""
    u = 2.0**-24
    return 2.0 * ((dim + 2) * u / (1 - (dim + 2) * u)) + 1e-9


def fold_near_copies(
    x: np.ndarray, years: np.ndarray | None, threshold: float, year_weight: float = 0.0, free: int = 1,
    block: int = 4096,
) -> np.ndarray | None:
    """Each point's group (the smallest index of its group) where near-copies fold
    exactly (module docstring), or None when a sample shows too few to be worth a
    pass over every pair. A group is a connected set of points within
    ``threshold * NEAR_SCALE`` of each other, of one year (or all undated), whose
    widest inner distance (the year penalty included) is below the threshold and,
    by more than float32's error, below the nearest distance from any member to
    any point outside it (the year penalty, never negative, only adds to that)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n, dim = x.shape
    x32 = np.asarray(x, dtype=np.float32)
    near = threshold * NEAR_SCALE
    margin = _margin32(dim)
    sample = np.random.default_rng(0).choice(n, min(n, NEAR_SAMPLE), replace=False)
    d = 1.0 - x32[sample] @ x32.T
    d[np.arange(len(sample)), sample] = np.inf
    close = (d <= near).sum(axis=1)
    if (close > 0).mean() < NEAR_SHARE or close.mean() > FOLD_CROWD:
        return None
    rows, cols = [], []
    for s in range(0, n, block):
        a, b = np.nonzero(1.0 - x32[s:s + block] @ x32.T <= near + margin)
        keep = a + s < b
        rows.append(a[keep] + s)
        cols.append(b[keep])
    pairs = np.concatenate(rows), np.concatenate(cols)
    _, label = connected_components(coo_matrix((np.ones(len(pairs[0]), dtype=np.int8), pairs), shape=(n, n)),
                                    directed=False)
    rep = np.arange(n)
    counts = np.bincount(label)
    order = np.argsort(label, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)])
    for g in np.flatnonzero((counts >= 2) & (counts <= FOLD_MAX)):
        members = order[starts[g]:starts[g + 1]]  # ascending: a stable sort of the indices
        if years is not None and year_weight and len(np.unique(np.asarray(years)[members])) > 1:
            continue  # a year penalty inside: not one point
        xm = np.asarray(x[members], dtype=np.float64)
        inner = float((1.0 - xm @ xm.T).max())
        if inner >= threshold:
            continue
        outside = np.inf
        for s in range(0, len(members), block):
            d = 1.0 - x32[members[s:s + block]] @ x32.T
            d[:, members] = np.inf
            outside = min(outside, float(d.min()))
        if inner + 2 * margin < outside:
            rep[members] = members[0]
    return rep


def average_cut(
    x: np.ndarray, threshold: float, years: np.ndarray | None = None, year_weight: float = 0.0,
    m: int = 16, block: int = 1024, free: int = 1, budget: bool = False,
) -> np.ndarray:
    """Cluster id (smallest member index) of each row: average linkage over the
    (year-aware) cosine distance, merging while the distance is below ``threshold``.

    Exact copies (the same photo cached twice) become one point of their count's
    weight first: they are nearer each other than anything else and would merge
    first anyway, and many copies of one face would otherwise tie beyond what
    the candidate lists hold. Raises :class:`Undecided` on inputs the lists
    cannot decide; with ``budget``, :class:`OverBudget` on the shapes it would
    settle slowly (the caller has a faster exact path for those).
    """
    x = np.asarray(x)
    n = len(x)
    if n <= 1:
        return np.zeros(n, dtype=np.int64)
    dated = years is not None and bool(year_weight)
    x = np.ascontiguousarray(x)
    _, same = np.unique(x.view(np.dtype((np.void, x.dtype.itemsize * x.shape[1]))).ravel(), return_inverse=True)
    key = same.reshape(-1).astype(np.int64)
    if dated:
        ys = np.asarray(years, dtype=np.int64)
        key = key * (int(ys.max() - ys.min()) + 1) + (ys - ys.min())
    folded = fold_near_copies(x, years if dated else None, threshold, year_weight, free)
    if folded is not None:
        key = folded  # every exact copy (of one year) lies in its near-copy group
    _, first, inverse, count = np.unique(key, return_index=True, return_inverse=True, return_counts=True)
    if len(first) == n:
        weight = np.ones(n)
        return _Clusters(x, weight, threshold, years, year_weight, m, block, free=free, budget=budget).run()
    order = np.argsort(first)  # points in the order of their first member: ties break as without groups
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    group = rank[inverse.reshape(-1)]
    means = np.zeros((len(first), x.shape[1]))
    np.add.at(means, group, np.asarray(x, dtype=np.float64))
    means /= count[order][:, None]
    point = _Clusters(means, count[order], threshold, years[first[order]] if dated else None,
                      year_weight, m, block, free=free, budget=budget).run()
    return first[order][point[group]]
