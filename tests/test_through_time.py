"""Every year of the person (issue 19): recovery that follows the person through
time, curated shares read year by year, year windows that leave no year alone,
one label per era, and clustering bounded at any size."""

import numpy as np
import pytest
from conftest import near, unit
from era_split.plugin.generate import truth
from era_split.plugin.labels import era_text
from era_split.plugin.split import averagecut, eras, method, pipeline
from era_split.plugin.split.params import SplitParams
from scipy.cluster.hierarchy import fcluster, linkage


def analyse(archive, **params):
    return pipeline.analyse(archive.cache, archive.seed_keys, SplitParams(**params), faceset="fs",
                            read_photos=archive.read_photos)


# -- the curated shares, year by year -------------------------------------------------

def test_a_young_look_with_its_years_few_curated_faces_is_the_person():
    """Curated mostly late: 2 of 40 early faces, 20 of 40 late ones. The early
    look holds what its years bring; a lookalike through all years holds none."""
    years = np.array([2004] * 40 + [2018] * 40 + [2004] * 10 + [2018] * 10)
    is_seed = np.zeros(100, dtype=bool)
    is_seed[[0, 1]] = True
    is_seed[40:60] = True
    curation = eras.Curation.of(years, is_seed)
    young, sibling = np.arange(40), np.arange(80, 100)
    assert not curation.unlikely(young)
    assert curation.unlikely(sibling)
    # the overall share would have taken the young look for someone else
    overall = eras.Curation(is_seed, np.full(100, is_seed.mean()))
    assert overall.unlikely(young)


def test_years_with_no_curated_face_prove_nothing_by_missing_them():
    years = np.array([2004] * 30 + [2018] * 30)
    is_seed = np.zeros(60, dtype=bool)
    is_seed[30:45] = True
    curation = eras.Curation.of(years, is_seed)
    assert curation.expected(np.arange(30)) < eras.TOO_FEW_TO_TELL + 2
    assert not curation.unlikely(np.arange(30))


def test_the_poisson_binomial_tail_matches_the_binomial():
    from math import comb, log

    p = np.full(40, 0.3)
    exact = log(sum(comb(40, i) * 0.3**i * 0.7 ** (40 - i) for i in range(4)))
    assert abs(eras._lower_tail(p, 3) - exact) < 1e-9
    mixed = np.concatenate([np.full(20, 0.1), np.full(20, 0.5)])
    brute = np.zeros(41)
    brute[0] = 1.0
    for q in mixed:
        brute = np.concatenate([brute[:1] * (1 - q), brute[1:] * (1 - q) + brute[:-1] * q])
    assert abs(eras._lower_tail(mixed, 5) - log(brute[:6].sum())) < 1e-9


# -- year windows ----------------------------------------------------------------------

def test_year_windows_leave_no_year_alone_between_two_eras():
    """The lost year of issue 19: eras around 2011 and 2016; cut greedily around
    successive dominant years, 2014 stayed alone (thin)."""
    counts = {2010: 30, 2011: 60, 2012: 40, 2013: 30, 2014: 25, 2015: 30, 2016: 60, 2017: 50, 2018: 20}
    windows = eras.year_windows(counts, window=2, era_size=20)
    covered = [y for lo, hi in windows for y in counts if lo <= y <= hi]
    assert sorted(covered) == sorted(counts)  # every year in a window
    for lo, hi in windows:
        part = {y: n for y, n in counts.items() if lo <= y <= hi}
        dom = min(y for y, n in part.items() if n == max(part.values()))
        assert all(abs(y - dom) <= 2 for y in part)  # each holds its years
        assert sum(part.values()) >= 20  # and is an era
    assert eras.year_windows({2001: 5}, 2, 20) == [(2001, 2001)]


def test_eras_of_the_same_years_are_one_or_named_as_looks():
    from era_split.plugin.results import Draft, Face, label_buckets

    def faces(prefix, years):
        return tuple(Face(f"{prefix}{i}", "p", "p", (0, 0, 1, 1), 0.9, 100, 100, y, (0, 0, 1, 1), 1.0)
                     for i, y in enumerate(years))

    drafts = [Draft("anchor", True, 0, faces("a", [2008] * 30)), Draft("anchor", True, 0, faces("b", [2008] * 20)),
              Draft("anchor", True, 0, faces("c", [2012] * 25))]
    names = {b.name: b for b in label_buckets(drafts, parent="fs", anchor_min=5, taken=())}
    assert set(names) == {"fs_2008", "fs_2008_look2", "fs_2012"}
    assert era_text(names["fs_2008_look2"].span, names["fs_2008_look2"].look) == "2008 · look 2"


def test_two_sittings_of_one_year_are_one_era(rng):
    """Two shoots of 2008 a little apart in looks: one era, the label once."""
    base = unit(rng)
    shoot_a, shoot_b = near(rng, base, 0.08), near(rng, base, 0.08)
    emb = np.array([near(rng, shoot_a, 0.04) for _ in range(25)] + [near(rng, shoot_b, 0.04) for _ in range(25)])
    years = np.array([2008] * 50)
    cores = [eras._Core(list(range(25)), "anchor", False), eras._Core(list(range(25, 50)), "anchor", False)]
    merged = eras.merge_same_years(cores, emb, years, era_years=2, alike=0.3)
    assert len(merged) == 1 and sorted(merged[0].members) == list(range(50))
    far = eras.merge_same_years([eras._Core(list(range(25)), "anchor", False),
                                 eras._Core(list(range(25, 50)), "anchor", False)], emb, years, 2, alike=0.001)
    assert len(far) == 2  # looks apart stay apart (and are named as looks)


# -- recovery through time -------------------------------------------------------------

@pytest.mark.parametrize("spec", [
    {"curated_late": 0.9},  # a faceset of recent photos: the archive
    {"curated_late": 0.9, "year_step": 0.5},  # and the early look far from the late one
    {"year_step": 0.6},  # strong drift, curated as the years come
])
def test_every_year_of_the_person_reaches_an_era(spec):
    archive = truth.generate(truth.TruthSpec(seed=31, **spec))
    scores = truth.score(analyse(archive), archive)
    assert scores.precision >= 0.99 and scores.recall >= 0.93, scores
    assert scores.worst_year >= 0.80, scores  # no year of 20 faces or more lost


def test_the_old_single_reach_lost_the_early_years():
    """Why the recovery reaches from every look: with one reach around the centroid
    (looks off) the curated-late, strongly drifting archive loses its early years."""
    from era_split.plugin.split import recovery

    archive = truth.generate(truth.TruthSpec(seed=31, curated_late=0.9, year_step=0.5))
    original = recovery.recover
    try:
        recovery.recover = lambda *a, **k: original(*a, **{**k, "look_dist": None})
        one_reach = truth.score(analyse(archive), archive)
    finally:
        recovery.recover = original
    assert one_reach.worst_year < 0.5
    assert truth.score(analyse(archive), archive).worst_year >= 0.8


def test_siblings_do_not_ride_the_chain():
    """Three times the siblings' faces, curated late: the chain through the years
    stops at them (precision holds)."""
    archive = truth.generate(truth.TruthSpec(seed=7, curated_late=0.9, sibling_faces=360))
    result = analyse(archive)
    scores = truth.score(result, archive)
    assert scores.precision >= 0.99, scores
    row = {k: i for i, k in enumerate(archive.cache.keys.tolist())}
    siblings_in_eras = sum(archive.identity[row[f.key]].startswith("sibling") for b in result.eras for f in b.faces)
    assert siblings_in_eras <= 0.01 * sum(len(b.faces) for b in result.eras)


# -- clustering bounded at any size ----------------------------------------------------

def scipy_labels(x, t, years=None, weight=0.0):
    d = method.condensed_cosine(x, years=years, year_weight=weight)
    return fcluster(linkage(d, "average"), t=np.nextafter(t, -np.inf), criterion="distance")


def same_partition(a, b) -> bool:
    pairs_a = {(x, y) for x, y in zip(a, b)}
    return len(pairs_a) == len(set(a)) == len(set(b))


@pytest.mark.parametrize("dated", [False, True])
def test_folded_near_copies_give_scipy_s_partition(rng, dated, monkeypatch):
    """Groups of near-copies (bursts) of one year fold into one point each; the
    partition is scipy's, with groups that fold and groups that do not (a group
    whose years differ, a group too close to another face)."""
    monkeypatch.setattr(averagecut, "NEAR_SHARE", 0.0)
    pts, yrs = [], []
    for g in range(30):
        centre = unit(rng, 24)
        size = int(rng.integers(2, 25))
        pts += [near(rng, centre, 1e-4, 24) for _ in range(size)]
        yrs += [2000 + g % 7] * size if g % 5 else list(rng.integers(2000, 2010, size))
        if g % 9 == 0:  # a loose neighbour right beside the group: it must not fold past it
            pts.append(near(rng, centre, 0.002, 24))
            yrs.append(2000 + g % 7)
    pts += [unit(rng, 24) for _ in range(60)]
    yrs += list(rng.integers(2000, 2010, 60))
    x, years = np.array(pts, dtype=np.float32), np.array(yrs)
    folded = averagecut.fold_near_copies(x, years if dated else None, 0.35, 0.05 if dated else 0.0)
    assert folded is not None and len(np.unique(folded)) < len(x) * 0.7  # most groups fold
    for t in (0.05, 0.35, 0.9):
        ours = averagecut.average_cut(x, t, years if dated else None, 0.05 if dated else 0.0)
        assert same_partition(ours, scipy_labels(x, t, years if dated else None, 0.05 if dated else 0.0)), t


def test_a_tight_core_too_big_for_scipy_is_refused_at_once(monkeypatch):
    import time

    monkeypatch.setattr(method, "PLAIN_BELOW", 100)
    monkeypatch.setattr(method, "PLAIN_BUDGET", 1)
    x, years = truth.cluster_shape("tight core", 3000, seed=1)
    started = time.monotonic()
    with pytest.raises(ValueError, match=r"3,000 faces to group.*near-copies.*--roots"):
        method.subcluster(x, 0.35, years, 0.05)
    assert time.monotonic() - started < 10


def test_a_slow_shape_is_refused_at_the_deadline(monkeypatch):
    monkeypatch.setattr(method, "PLAIN_BELOW", 100)
    monkeypatch.setattr(method, "PLAIN_BUDGET", 1)
    monkeypatch.setattr(averagecut, "DEADLINE", 0.0)
    x, years = truth.cluster_shape("mixed clusters", 2000, seed=1)
    with pytest.raises(ValueError, match="cannot be told apart quickly"):
        method.subcluster(x, 0.35, years, 0.05)
