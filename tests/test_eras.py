"""The era method's rules, one by one, and its scores on the ground-truth archive."""

import numpy as np
import pytest
from conftest import near, unit
from era_split.plugin import results
from era_split.plugin.generate import truth
from era_split.plugin.split import eras, method, pipeline
from era_split.plugin.split.params import SplitParams


def test_year_penalty_only_for_dated_pairs_beyond_a_year():
    a = np.array([2010, 2010, 0])
    b = np.array([2010, 2011, 2014, 0])
    pen = method.year_penalty(a, b, 0.05)
    assert pen.shape == (3, 4)
    np.testing.assert_allclose(pen[0], [0, 0, 0.15, 0])
    np.testing.assert_allclose(pen[2], [0, 0, 0, 0])


def test_year_weight_separates_one_look_photographed_years_apart(rng):
    c = unit(rng)
    emb = np.array([near(rng, c, 0.05) for _ in range(20)])
    years = np.array([2005] * 10 + [2015] * 10)
    assert len(set(method.subcluster(emb, 0.35).tolist())) == 1
    split = method.subcluster(emb, 0.35, years, 0.05)
    assert sorted(np.bincount(split).tolist()) == [10, 10]
    assert split.tolist() == method.subcluster_plain(emb, 0.35, years, 0.05).tolist()


def test_split_by_years_around_dominant_years(rng):
    c = unit(rng)
    emb = np.array([near(rng, c, 0.05) for _ in range(14)])
    years = np.array([2010] * 5 + [2012] * 3 + [2016] * 4 + [0, 0])
    emb[12] = emb[9]  # this undated face looks like the 2016 faces
    parts = eras.split_by_years(np.arange(14), years, emb, window=2)
    as_sets = [set(p.tolist()) for p in parts]
    assert set(range(8)) <= as_sets[0] and set(range(8, 12)) <= as_sets[1]
    assert 12 in as_sets[1]
    assert sum(len(p) for p in parts) == 14


def test_suspected_other_person(rng):
    target = unit(rng)
    other = unit(rng)
    seed_c = target
    clusters = [np.arange(0, 30), np.arange(30, 60), np.arange(60, 90)]
    emb = np.array([near(rng, target, 0.1) for _ in range(60)] + [near(rng, other, 0.1) for _ in range(30)])
    is_seed = np.zeros(90, dtype=bool)
    is_seed[:60:2] = True  # the curated faces are all in the target's clusters
    assert eras.suspected_others(clusters, emb, is_seed, seed_c, 0.1) == {2}
    is_seed[60:75] = True  # curated faces there: the host says it is the same person
    assert eras.suspected_others(clusters, emb, is_seed, seed_c, 0.1) == set()


def _assign(emb, years, labels, is_seed=None, **kw):
    args = dict(anchor_min=5, fragment_dist=0.4, era_years=2, undated_dist=0.35, other_gap=0.1)
    args.update(kw)
    seed = np.ones(len(emb), dtype=bool) if is_seed is None else is_seed
    return eras.assign_eras(np.array(labels), emb, np.array(years), seed, method.centroid(emb), **args)


def test_fragment_faces_join_a_core_of_their_years_only(rng):
    c = unit(rng)
    emb = np.array([near(rng, c, 0.03) for _ in range(13)])
    labels = [0] * 10 + [1, 2, 3]
    years = [2010] * 10 + [2011, 2016, 0]
    groups = _assign(emb, years, labels)
    core = next(g for g in groups if g.anchor)
    assert set(core.members) == set(range(10)) | {10, 12}  # 2011 and the undated one
    assert core.reason == "anchor_with_fragments" and core.fragments == 2  # two fragment sub-clusters
    left = [g for g in groups if not g.anchor]
    assert [g.members for g in left] == [(11,)] and left[0].reason == "fragment_far"


def test_undated_face_between_two_eras_stays_apart(rng):
    a, b = unit(rng), unit(rng)
    mid = (a + b) / np.linalg.norm(a + b)
    emb = np.array([near(rng, a, 0.02) for _ in range(6)] + [near(rng, b, 0.02) for _ in range(6)] + [mid])
    groups = _assign(emb, [2005] * 6 + [2015] * 6 + [0], [0] * 6 + [1] * 6 + [2], undated_dist=2.0)
    assert any(g.members == (12,) and g.reason == "fragment_undated" for g in groups)


def test_anchor_split_by_years_and_small_parts_rejoin(rng):
    c = unit(rng)
    emb = np.array([near(rng, c, 0.03) for _ in range(16)])
    years = [2004] * 8 + [2012] * 6 + [2013] * 2
    groups = _assign(emb, years, [0] * 16)
    cores = sorted((g for g in groups if g.anchor), key=lambda g: g.members)
    assert [len(g.members) for g in cores] == [8, 8]
    assert all(g.reason == "split_by_years" for g in cores)


def test_suspected_other_person_is_thin_whatever_its_size():
    archive = truth.generate(truth.TruthSpec(seed=3, target_faces=500))
    result = pipeline.analyse(archive.cache, archive.seed_keys, SplitParams(), faceset="fs",
                              read_photos=archive.read_photos)
    big = result.eras[0]
    drafts = [results.Draft("suspected_other_person", True, 0, big.faces)]
    (bucket,) = results.label_buckets(drafts, parent="fs", anchor_min=result.params.anchor_min, taken=())
    assert len(bucket.faces) >= result.params.anchor_min and bucket.kind == "thin"


@pytest.mark.parametrize("seed", [40, 41])
def test_era_method_meets_the_targets_where_the_seed_method_drifts(seed):
    archive = truth.generate(truth.TruthSpec(seed=seed))
    run = lambda how: pipeline.analyse(archive.cache, archive.seed_keys, SplitParams(method=how),
                                       faceset="fs", read_photos=archive.read_photos)
    ours, theirs = truth.score(run("era"), archive), truth.score(run("seed"), archive)
    assert ours.meets(), ours
    assert ours.eras <= 12  # a handful of substantive eras, not dozens
    assert theirs.span >= 5 and theirs.purity < 0.8, theirs  # the seed's own symptoms


def test_generator_resembles_the_seeds_distances():
    archive = truth.generate(truth.TruthSpec(seed=5))
    e = archive.cache.embeddings[archive.identity == "target"]
    d = (1 - e @ e.T)[np.triu_indices(len(e), 1)]
    assert 0.42 <= d.mean() <= 0.48
    assert 0.55 <= np.mean((d >= 0.3) & (d < 0.6)) <= 0.95


def test_seed_method_is_still_selectable():
    archive = truth.generate(truth.TruthSpec(seed=6, target_faces=400))
    result = pipeline.analyse(archive.cache, archive.seed_keys, SplitParams(method="seed"), faceset="fs",
                              read_photos=archive.read_photos)
    reasons = {b.reason for b in result.buckets}
    assert reasons <= {"anchor", "anchor_with_fragments", "fragment_far", "fragment_other_years",
                       "fragment_undated", "fragment_no_anchor"}
