import numpy as np
import pytest
from era_split.plugin.errors import EraSplitError
from era_split.plugin.host.cache import load_cache


def arrays(n=4, dim=8, **over):
    rng = np.random.default_rng(0)
    a = {
        "keys": np.array([f"k{i}" for i in range(n)]),
        "paths": np.array([f"/p/{i}.jpg" for i in range(n)]),
        "embeddings": rng.standard_normal((n, dim)).astype(np.float32) * 3,
        "bboxes": np.array([[10, 20, 110, 140]] * n, dtype=np.float32),
        "det_score": np.full(n, 0.9),
        "blur": np.full(n, 100.0),
    }
    a.update(over)
    return {k: v for k, v in a.items() if v is not None}


def write(tmp_path, **over):
    path = tmp_path / "c.npz"
    np.savez(path, **arrays(**over))
    return path


def test_loads_normalises_and_derives_face_short(tmp_path):
    cache = load_cache(write(tmp_path))
    np.testing.assert_allclose(np.linalg.norm(cache.embeddings, axis=1), 1, atol=1e-6)
    assert cache.face_short.tolist() == [100.0] * 4  # min(w=100, h=120)
    rows, missing = cache.rows_of(["k2", "nope", "k0", "k2"])
    assert rows.tolist() == [2, 0] and missing == 1
    assert cache.rows_by_path({"/p/1.jpg", "/p/x.jpg"}) == {"/p/1.jpg": [1], "/p/x.jpg": []}


def test_face_short_array_is_used_when_present(tmp_path):
    cache = load_cache(write(tmp_path, face_short=np.array([1.0, 2, 3, 4])))
    assert cache.face_short.tolist() == [1, 2, 3, 4]


@pytest.mark.parametrize(
    "over, message",
    [
        ({"keys": np.array(["a", "b", "a", "c"])}, "duplicate keys: a"),
        ({"blur": np.full(3, 1.0)}, "'blur' has shape (3,), expected (4,)"),
        ({"embeddings": np.zeros((4, 8))}, "all zeros"),
        ({"embeddings": np.full((4, 8), np.nan)}, "NaN"),
        ({"det_score": None}, "missing arrays: det_score"),
        ({"bboxes": np.array([[10, 20, 5, 140]] * 4, dtype=np.float32)}, "empty or inverted"),
        ({"embeddings": np.zeros((0, 8)), "keys": np.array([], dtype=str)}, "no face records"),
    ],
)
def test_bad_arrays_are_named(tmp_path, over, message):
    path = write(tmp_path, **over)
    with pytest.raises(EraSplitError) as err:
        load_cache(path)
    assert message in str(err.value) and str(path) in str(err.value)


def test_object_arrays_are_refused(tmp_path):
    path = tmp_path / "c.npz"
    a = arrays()
    a["embeddings"] = np.array([np.zeros(3), np.zeros(4)] * 2, dtype=object)  # mixed dimensions
    np.savez(path, **a)
    with pytest.raises(EraSplitError, match="object arrays|pickled"):
        load_cache(path)


def test_truncated_and_missing(tmp_path):
    path = write(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(EraSplitError, match="truncated or corrupt|not a readable"):
        load_cache(path)
    with pytest.raises(EraSplitError, match="not found"):
        load_cache(tmp_path / "nope.npz")


def test_big_cache_is_converted_once_and_memory_mapped(tmp_path, monkeypatch):
    from era_split.plugin.host import cache as cache_mod

    monkeypatch.setattr(cache_mod, "CONVERT_BYTES", 0)
    path = write(tmp_path, face_short=np.array([1.0, 2, 3, 4]))
    plain = load_cache(path)
    store = str(tmp_path / "store")
    mapped = load_cache(path, store)
    assert isinstance(mapped.embeddings, np.memmap)
    for name in ("keys", "paths", "embeddings", "bboxes", "det_score", "blur", "face_short"):
        np.testing.assert_array_equal(getattr(mapped, name), getattr(plain, name))
    assert mapped.rows_of(["k3"])[0].tolist() == [3]
    (folder,) = [p for p in (tmp_path / "store").iterdir()]
    stamp = (folder / "meta.json").read_text()
    load_cache(path, store)
    assert (folder / "meta.json").read_text() == stamp  # reused, not converted again
    np.savez(path, **arrays(n=5))  # the host rescanned: the store is rebuilt
    assert len(load_cache(path, store)) == 5
