import numpy as np
import pytest
from conftest import near, unit
from era_split.plugin.labels import assign_labels, span_text
from era_split.plugin.split import method
from era_split.plugin.split.calibrate import calibrate
from era_split.plugin.split.params import SplitParams, scaled_anchor_min
from scipy.spatial.distance import squareform
from sklearn.cluster import AgglomerativeClustering


def partition(labels):
    return sorted(sorted(np.flatnonzero(labels == lab).tolist()) for lab in np.unique(labels))


def test_defaults_are_the_seeds():
    p = SplitParams()
    assert (p.recovery, p.tighten, p.subcluster, p.fragment_dist) == (None,) * 4  # derived per identity
    seed = calibrate(np.zeros((0, 4)), {}, measure=False).values  # what the seed method uses
    assert (seed["recovery"], seed["tighten"], seed["subcluster"], seed["fragment_dist"]) == (0.55, 0.50, 0.35, 0.40)
    assert p.fragment_years == 5
    assert (p.min_face, p.min_blur, p.min_det) == (None, None, 0.6)  # the gate is calibrated too
    cal = calibrate(np.zeros((0, 4)), {}, measure=False)
    assert cal.gate == {"min_face": 100.0, "min_blur": 40.0}  # the seed method's gate is the seed's
    assert (p.pad, p.size, p.top) == (0.5, 512, 8)


def test_params_key_is_stable_and_tracks_values():
    assert SplitParams().cache_key() == SplitParams().cache_key()
    assert SplitParams(subcluster=0.3).cache_key() != SplitParams().cache_key()
    with pytest.raises(ValueError, match="undated_fragments"):
        SplitParams(undated_fragments="maybe")
    with pytest.raises(ValueError, match="recovery"):
        SplitParams(recovery=3.0)


def test_anchor_size_scales_with_identity():
    assert scaled_anchor_min(856) == 20  # the seed's scale
    assert scaled_anchor_min(5000) == 20
    assert scaled_anchor_min(200) == 5
    assert scaled_anchor_min(10) == 3  # the seed method's floor
    assert scaled_anchor_min(4, floor=2) == 2  # the era method's: two faces of one look and time


def test_recover_gate_tighten(rng):
    c = unit(rng)
    emb = np.array([near(rng, c, 0.1) for _ in range(5)] + [unit(rng) for _ in range(5)])
    scope = np.ones(10, dtype=bool)
    scope[1] = False
    rec = method.recover(emb, c, scope, 0.55)
    assert rec.tolist() == [0, 2, 3, 4]
    face = np.array([150, 150, 90, 150, 150, 0, 0, 0, 0, 0.0])
    blur = np.array([100, 100, 100, 39.9, 100, 0, 0, 0, 0, 0.0])
    det = np.array([0.9, 0.9, 0.9, 0.9, 0.59, 0, 0, 0, 0, 0.0])
    gated = method.quality_gate(rec, face, blur, det, min_face=100, min_blur=40, min_det=0.6)
    assert gated.tolist() == [0]
    # tighten re-centres on the survivors: an outlier far from the new centre goes
    emb2 = np.array([near(rng, c, 0.05) for _ in range(8)] + [near(rng, unit(rng), 0.05)])
    kept = method.tighten(emb2, np.arange(9), 0.5)
    assert kept.tolist() == list(range(8))


@pytest.mark.parametrize("threshold", [0.2, 0.35, 0.5])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_subcluster_matches_scikit_learn(threshold, seed):
    rng = np.random.default_rng(seed)
    centers = [unit(rng) for _ in range(6)]
    emb = np.array([near(rng, centers[i % 6], rng.uniform(0.05, 0.4)) for i in range(90)])
    ours = method.subcluster(emb, threshold)
    ref = AgglomerativeClustering(
        n_clusters=None, distance_threshold=threshold, metric="precomputed", linkage="average"
    ).fit_predict(squareform(method.condensed_cosine(emb), checks=False))
    assert partition(ours) == partition(ref)
    sizes = np.bincount(ours)
    assert (np.diff(sizes) <= 0).all()  # numbered largest first


def test_subcluster_merges_below_threshold_only():
    a = np.array([1.0, 0.0])
    b = np.array([0.7, np.sqrt(1 - 0.49)])  # cosine distance exactly 0.3
    assert len(set(method.subcluster(np.array([a, b]), 0.3).tolist())) == 2
    assert len(set(method.subcluster(np.array([a, b]), 0.31).tolist())) == 1


def test_cosine_distance_blocks_agree():
    rng = np.random.default_rng(5)
    x = np.array([unit(rng) for _ in range(50)])
    np.testing.assert_allclose(method.condensed_cosine(x, block=4096), method.condensed_cosine(x, block=7),
                               atol=1e-12)


def test_dominant_year_and_span():
    years = np.array([2011, 2011, 2012, 2012, 0, 0, 2015])
    assert method.dominant_year(years) == 2011  # tie: earliest
    assert method.dominant_year(np.array([0, 0])) is None
    assert method.year_span(np.array([0, 0])) is None
    ys = np.array([2000] + [2010] * 8 + [2020])
    assert method.year_span(ys) == (2009, 2011)  # 10th-90th percentile
    assert method.year_span(np.array([2011])) == (2011, 2011)
    # widened to hold the dominant year
    skew = np.array([2005, 2005, 2005, 2010, 2011, 2012, 2013, 2014, 2015, 2016])
    lo, hi = method.year_span(skew)
    assert lo <= 2005 <= hi


def test_span_text_and_labels():
    assert span_text((2011, 2011)) == "2011"
    assert span_text((2010, 2013)) == "2010-13"
    assert span_text((1998, 2003)) == "1998-2003"
    assert span_text(None) == "undated"
    labels = assign_labels("fs", [(2011, 2011), (2011, 2011), None, (2010, 2013)], {"fs_2010-13"})
    assert labels == ["fs_2011", "fs_2011_v2", "fs_undated", "fs_2010-13_v2"]


def _groups(sizes, cents, years, rng, **kw):
    emb, labels, ys = [], [], []
    for lab, (n, c, y) in enumerate(zip(sizes, cents, years)):
        for _ in range(n):
            emb.append(near(rng, c, 0.01))
            labels.append(lab)
            ys.append(y)
    args = dict(anchor_min=5, fragment_dist=0.4, fragment_years=5, undated_fragments="standalone")
    args.update(kw)
    return method.assign_fragments(np.array(labels), np.array(emb), np.array(ys), **args)


def test_anchors_never_merge_even_with_same_years(rng):
    c = unit(rng)
    groups = _groups([10, 8], [c, near(rng, c, 0.05)], [2011, 2011], rng)
    assert [len(g.members) for g in groups] == [10, 8]
    assert all(g.anchor for g in groups)


def test_fragment_needs_distance_and_years(rng):
    a = unit(rng)
    close = near(rng, a, 0.1)
    far = unit(rng)  # ~1.0 away
    groups = _groups(
        [10, 2, 2, 2, 2],
        [a, close, close, far, close],
        [2011, 2014, 2019, 2011, 0],
        rng,
    )
    by_reason = {g.reason: g for g in groups}
    anchor = next(g for g in groups if g.anchor)
    assert len(anchor.members) == 12 and anchor.fragments == 1  # only the 2014 fragment
    assert by_reason["fragment_other_years"].members and by_reason["fragment_far"].members
    assert by_reason["fragment_undated"].members
    attach = _groups([10, 2], [a, close], [2011, 0], rng, undated_fragments="attach")
    assert len(attach) == 1 and len(attach[0].members) == 12


def test_fragment_joins_only_its_single_nearest_anchor(rng):
    a, b = unit(rng), unit(rng)
    frag = near(rng, b, 0.05)
    # nearest anchor b fails the year rule; a would pass it but is not the nearest
    groups = _groups([10, 10, 2], [a, b, frag], [2011, 2000, 2011], rng, fragment_dist=2.0)
    assert sorted(len(g.members) for g in groups) == [2, 10, 10]


def test_no_anchor_leaves_fragments_standalone(rng):
    groups = _groups([2, 3], [unit(rng), unit(rng)], [2011, 2012], rng)
    assert {g.reason for g in groups} == {"fragment_no_anchor"}


def test_condensed_matches_the_full_matrix():
    rng = np.random.default_rng(9)
    x = np.array([unit(rng) for _ in range(37)])
    full = np.clip(1.0 - x @ x.T, 0, 2)
    np.fill_diagonal(full, 0)
    np.testing.assert_allclose(squareform(method.condensed_cosine(x, block=5), checks=False), full, atol=1e-12)
