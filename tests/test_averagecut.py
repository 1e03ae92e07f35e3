"""The matrix-free average-linkage cut gives scipy's partition."""

import numpy as np
import pytest
from conftest import near, unit
from era_split.plugin.split import averagecut, method


def scipy_labels(x, t, years=None, w=0.0):
    return method.subcluster_plain(x, t, years, w).tolist()


def ours(x, t, years=None, w=0.0, m=16):
    return method.relabel_by_size(averagecut.average_cut(x, t, years, w, m=m)).tolist()


def mixture(seed):
    """Blobs of varied spread and size; some sets with duplicated rows, some dated."""
    rng = np.random.default_rng(seed)
    dim = int(rng.choice([4, 16, 64]))
    k, n = int(rng.integers(1, 10)), int(rng.integers(2, 300))
    centers = [unit(rng, dim) for _ in range(k)]
    x = np.array([near(rng, centers[int(rng.integers(k))], rng.uniform(0.02, 0.6), dim) for _ in range(n)])
    years, w = None, 0.0
    if rng.random() < 0.6:
        years = rng.choice([0, 2005, 2006, 2008, 2012, 2020], size=n)
        w = float(rng.choice([0.05, 0.2]))
    elif rng.random() < 0.5:  # exact copies (with dates, copies tie and the answer is not unique)
        x[rng.integers(0, n, n // 3)] = x[rng.integers(0, n, n // 3)]
    t = float(rng.choice([0.1, 0.2, 0.35, 0.5, 0.8, 1.2]))
    m = int(rng.choice([1, 2, 4, 16]))
    return x.astype(np.float32), t, years, w, m


@pytest.mark.parametrize("seed", range(60))
def test_equals_scipy_on_mixtures(seed):
    x, t, years, w, m = mixture(seed)
    assert ours(x, t, years, w, m) == scipy_labels(x, t, years, w)


def test_equals_scipy_where_lists_run_dry_and_columns_compact():
    """Wide enough for the chunked selection, short lists so rows refresh often."""
    rng = np.random.default_rng(5)
    centers = [unit(rng, 64) for _ in range(40)]
    x = np.array([near(rng, centers[i % 40], rng.uniform(0.05, 0.5), 64) for i in range(1500)], dtype=np.float32)
    years = rng.choice([0, 2001, 2004, 2005, 2006, 2010], size=len(x))
    for m in (2, 5):
        assert ours(x, 0.35, years, 0.05, m=m) == scipy_labels(x, 0.35, years, 0.05)


def test_distances_a_hair_either_side_of_the_threshold():
    """Pairs 1e-7 apart around the threshold: float32 cannot tell, the exact check must."""
    rng = np.random.default_rng(2)
    t, rows = 0.35, []
    for k in range(-20, 21):
        q, _ = np.linalg.qr(rng.standard_normal((512, 2)))
        cos = 1.0 - (t + k * 1e-7)
        rows += [q[:, 0], cos * q[:, 0] + np.sqrt(1 - cos**2) * q[:, 1]]
    x = np.array(rows)
    got = ours(x, t)
    assert got == scipy_labels(x, t)
    assert 15 < len(x) - (max(got) + 1) < 25  # about half the pairs merged


def test_more_exact_copies_than_a_list_holds():
    """Copies become one weighted point (a photo cached many times)."""
    rng = np.random.default_rng(0)
    x = np.array([unit(rng, 16) for _ in range(300)], dtype=np.float32)
    x[40:140] = x[3]
    x[200:230] = x[201]
    years = np.where(np.arange(300) % 3, 2010, 2014)
    years[40:140], years[200:230] = years[3], years[201]
    for t in (0.35, 1.0, 1.3):
        assert ours(x, t, m=4) == scipy_labels(x, t)
        assert ours(x, t, years, 0.05, m=4) == scipy_labels(x, t, years, 0.05)


def test_near_copies_float32_cannot_order(monkeypatch):
    """More near-identical faces than a list holds: the exact lists decide (with
    folding off: it would make these one point)."""
    monkeypatch.setattr(averagecut, "NEAR_SHARE", 2.0)
    rng = np.random.default_rng(0)
    x = np.array([unit(rng, 16) for _ in range(300)])
    for i in range(40, 140):
        x[i] = near(rng, x[3], 1e-12, 16)
    exact_rows = []
    refresh_exact = averagecut._Clusters.refresh_exact

    def spy(self, rows):
        exact_rows.extend(rows.tolist())
        return refresh_exact(self, rows)

    monkeypatch.setattr(averagecut._Clusters, "refresh_exact", spy)
    for t in (0.35, 1.0, 1.3):
        assert ours(x.astype(np.float32), t, m=4) == scipy_labels(x.astype(np.float32), t)
    assert len(exact_rows) > 50


def test_exact_ties_merge_smallest_ids_first():
    """Dated copies tie; the result is the textbook greedy order's (smallest ids first)."""
    v = np.array([1.0, 0.0, 0.0])
    x = np.array([v, v, v])
    years = np.array([2005, 0, 2008])  # d(0,1) = d(1,2) = 0, d(0,2) = 0.1
    assert ours(x, 0.04, years, 0.05) == [0, 0, 1]


def test_year_form_is_the_year_penalty():
    years = np.array([0, 2005, 2006, 2008, 2012, 2005, 0])
    hist, pen = averagecut.year_form(len(years), years, 0.05)
    np.testing.assert_allclose(hist @ pen @ hist.T, method.year_penalty(years, years, 0.05), atol=1e-15)


@pytest.mark.parametrize("shape,k", [((7, 4096), 17), ((3, 64 * 5), 3), ((5, 40), 40), ((4, 8192), 1)])
def test_smallest_k(shape, k):
    rng = np.random.default_rng(shape[1])
    d = rng.random(shape).astype(np.float32)
    d[:, ::7] = np.inf
    idx = averagecut.smallest_k(d, k)
    got = np.sort(np.take_along_axis(d, idx, axis=1), axis=1)
    np.testing.assert_array_equal(got, np.sort(d, axis=1)[:, :k])


def undecided(*args, **kwargs):
    raise averagecut.Undecided("test")


def test_paths_agree_and_the_big_path_refuses_when_undecided(monkeypatch, rng):
    x = np.array([near(rng, unit(rng), 0.2) for _ in range(50)])
    plain = scipy_labels(x, 0.35)
    assert method.subcluster(x, 0.35).tolist() == plain  # small: scipy's linkage
    monkeypatch.setattr(method, "PLAIN_BELOW", 10)
    assert method.subcluster(x, 0.35).tolist() == plain  # matrix-free, budgeted
    monkeypatch.setattr(averagecut, "average_cut", undecided)
    assert method.subcluster(x, 0.35).tolist() == plain  # undecided: scipy while it fits
    monkeypatch.setattr(method, "PLAIN_BUDGET", 8 * 40 * 39 // 2)
    with pytest.raises(ValueError, match=r"50 faces to group.*over the 0 GB allowed.*--roots"):
        method.subcluster(x, 0.35)


@pytest.mark.parametrize("method_name", ["era", "seed"])
def test_plan_buckets_equal_with_scipy_linkage(synth_lib, monkeypatch, method_name):
    """The whole plan on a generated archive: same buckets whichever path clusters."""
    from era_split.plugin import api
    from era_split.plugin.host.paths import parse_remap
    from era_split.plugin.split.params import SplitParams

    def buckets():
        result = api.plan(synth_lib.root, "faceset_001", synth_lib.cache_file, SplitParams(method=method_name),
                          remaps=[parse_remap(r) for r in synth_lib.remaps])
        return [(b.name, b.reason, sorted(f.key for f in b.faces)) for b in result.buckets]

    fast = buckets()
    monkeypatch.setattr(averagecut, "average_cut", undecided)  # scipy's linkage instead
    assert buckets() == fast
    assert len(fast) > 2
