"""Hostile and broken input: one clear line naming the file and the problem, no
traceback, and the library byte-identical afterwards; per-face problems are
skipped and counted instead."""

import json
import os

import numpy as np
import pytest
from conftest import Face, near, save_jpeg, tree_digest, unit
from era_split.plugin import api
from era_split.ui.cli import main


def build(tiny, rng, n=30):
    c = unit(rng)
    for i in range(n):
        photo = f"p{i}.jpg"
        save_jpeg(os.path.join(tiny.photos, photo), original=f"{2010 + i % 3}:06:01 10:00:00")
        tiny.faces.append(Face(f"k{i}", photo, (100, 100, 260, 290), near(rng, c, 0.05)))
    tiny.write_cache()
    tiny.write_library([f"k{i}" for i in range(n)])
    return tiny


def cache_case(**over):
    def mutate(tiny):
        tiny.write_cache(**over(tiny) if callable(over) else over)
    return mutate


def truncate_cache(tiny):
    data = open(tiny.cache, "rb").read()
    with open(tiny.cache, "wb") as fh:
        fh.write(data[: len(data) // 3])


def with_arrays(change):
    def mutate(tiny):
        arrays = dict(np.load(tiny.cache))
        change(arrays)
        np.savez(tiny.cache, **arrays)
    return mutate


def object_embeddings(a):
    a["embeddings"] = np.array([np.zeros(3)] + [np.ones(4)] * (len(a["keys"]) - 1), dtype=object)


def nan_embedding(a):
    a["embeddings"][3, 0] = np.nan


def zero_embedding(a):
    a["embeddings"][4] = 0


def short_blur(a):
    a["blur"] = a["blur"][:-2]


def dup_keys(a):
    a["keys"][5] = a["keys"][6]


def faceset_manifest(text):
    def mutate(tiny):
        with open(os.path.join(tiny.root, "faceset_001", "manifest.json"), "w") as fh:
            fh.write(text)
    return mutate


def library_manifest(obj):
    def mutate(tiny):
        with open(os.path.join(tiny.root, "manifest.json"), "w") as fh:
            fh.write(obj if isinstance(obj, str) else json.dumps(obj))
    return mutate


def symlink_out(tiny):
    outside = os.path.join(tiny.base, "elsewhere")
    os.makedirs(outside)
    with open(os.path.join(outside, "manifest.json"), "w") as fh:
        json.dump({"faces": ["k1"]}, fh)
    os.symlink(outside, os.path.join(tiny.root, "linked"))
    library_manifest({"facesets": [{"name": "faceset_001", "relpath": "faceset_001"},
                                   {"name": "linked", "relpath": "linked"}]})(tiny)


CASES = [
    ("truncated cache", truncate_cache, "cache.npz", "truncated or corrupt"),
    ("pickled cache", with_arrays(object_embeddings), "cache.npz", "pickled"),
    ("lengths differ", with_arrays(short_blur), "cache.npz", "'blur' has shape (28,), expected (30,)"),
    ("NaN embedding", with_arrays(nan_embedding), "cache.npz", "embedding of key 'k3' holds NaN"),
    ("zero embedding", with_arrays(zero_embedding), "cache.npz", "embedding of key 'k4' is all zeros"),
    ("duplicate keys", with_arrays(dup_keys), "cache.npz", "duplicate keys: k6"),
    ("no key resolves", faceset_manifest('{"faces": ["gone1", {"key": "gone2"}]}'),
     "faceset_001/manifest.json", "none of its 2 face keys is in the embedding cache"),
    ("faceset not JSON", faceset_manifest("{"), "faceset_001/manifest.json", "is not valid JSON"),
    ("faceset wrong types", faceset_manifest('{"faces": {"a": 1}}'), "faceset_001/manifest.json",
     "must be an object with a 'faces' list"),
    ("face key not a string", faceset_manifest('{"faces": [{"key": 5}]}'), "faceset_001/manifest.json",
     "faces[0] has no string key"),
    ("library not JSON", library_manifest("[1,"), "library/manifest.json", "is not valid JSON"),
    ("library wrong types", library_manifest({"facesets": "faceset_001"}), "library/manifest.json",
     "'facesets' must be an array"),
    ("name with ..", library_manifest({"facesets": [{"name": "..", "relpath": "faceset_001"}]}),
     "facesets[0]", "is not a plain folder name"),
    ("name with separator", library_manifest({"facesets": [{"name": "a/b", "relpath": "faceset_001"}]}),
     "facesets[0]", "is not a plain folder name"),
    ("absolute relpath", library_manifest({"facesets": [{"name": "faceset_001", "relpath": "/tmp"}]}),
     "facesets[0]", "must be relative"),
    ("relpath with ..", library_manifest({"facesets": [{"name": "faceset_001", "relpath": "faceset_001/../.."}]}),
     "facesets[0]", "leaves the library"),
    ("symlink out of the library", symlink_out, "facesets[1]", "points outside the library"),
]


@pytest.mark.parametrize("label, mutate, where, problem", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_clear_line_and_writes_nothing(tiny, rng, capsys, label, mutate, where, problem):
    build(tiny, rng)
    mutate(tiny)
    before = tree_digest(tiny.root)
    code = main(["apply", "faceset_001", "--library", tiny.root, "--cache", tiny.cache])
    err = capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err
    assert where in lines[0] and problem in lines[0], lines[0]
    assert tree_digest(tiny.root) == before


def invalid_exif_jpeg(path):
    """A JPEG whose APP1 Exif segment is garbage."""
    save_jpeg(path)
    data = open(path, "rb").read()
    body = b"Exif\x00\x00" + b"MM\x00\x2a\x00\x00\x00\x08\xff\xff" + os.urandom(20)
    seg = b"\xff\xe1" + (len(body) + 2).to_bytes(2, "big") + body
    with open(path, "wb") as fh:
        fh.write(data[:2] + seg + data[2:])


def test_broken_photos_are_skipped_and_counted(tiny, rng):
    build(tiny, rng, n=40)
    photos = tiny.photos
    os.remove(os.path.join(photos, "p0.jpg"))  # missing
    with open(os.path.join(photos, "p1.jpg"), "wb") as fh:
        fh.write(b"\xff\xd8\xff not really")  # unreadable
    data = open(os.path.join(photos, "p2.jpg"), "rb").read()
    with open(os.path.join(photos, "p2.jpg"), "wb") as fh:
        fh.write(data[: len(data) // 2])  # truncated: the header reads, the pixels do not
    invalid_exif_jpeg(os.path.join(photos, "p3.jpg"))
    for i, stamp in zip((4, 5, 6, 7), ("0000:00:00 00:00:00", "1970:01:01 00:00:00",
                                       "2099:12:31 00:00:00", "2011:01:01 00:00:00junk")):
        save_jpeg(os.path.join(photos, f"p{i}.jpg"), original=stamp)
    report = api.apply(tiny.root, "faceset_001", tiny.cache)
    left = report.result.counts["left_out"]
    assert left["missing_photo"] == 1
    assert left["unreadable_photo"] == 2
    keys = {k for b in report.result.buckets for k in b.keys}
    assert not {"k0", "k1", "k2"} & keys
    years = {f.key: f.year for b in report.result.buckets for f in b.faces}
    assert all(years[f"k{i}"] == 0 for i in (3, 4, 5, 6, 7))  # counted as undated
    # paths are counted at plan time: the truncated photo's header still gave a date
    assert report.result.counts["dated_paths"] == 40 - 2 - 5


def test_odd_file_names(tiny, rng):
    c = unit(rng)
    names = ["été 2011 #1.jpg", "a'b\"c.jpg", "with space/..dots...jpg", "ñ-日本.JPG"]
    for i in range(24):
        photo = names[i % 4].replace(".", f"{i}.", 1) if i >= 4 else names[i]
        save_jpeg(os.path.join(tiny.photos, photo), original="2012:06:01 10:00:00")
        tiny.faces.append(Face(f"k{i}", photo, (100, 100, 260, 290), near(rng, c, 0.05)))
    tiny.write_cache()
    tiny.write_library([f"k{i}" for i in range(24)])
    report = api.apply(tiny.root, "faceset_001", tiny.cache)
    assert sum(len(b.faces) for b in report.result.buckets) == 24
    assert not report.result.counts["left_out"]


def test_non_utf8_file_names(tiny, rng):
    """A photo whose name is not UTF-8 (a Latin-1 'é' from an old camera card)."""
    import json as _json

    c = unit(rng)
    raw = os.fsencode(tiny.photos) + b"/caf\xe9-"
    for i in range(24):
        name = os.fsdecode(raw + str(i).encode() + b".jpg")
        save_jpeg(name, original="2012:06:01 10:00:00")
        tiny.faces.append(Face(f"k{i}", os.path.basename(name), (100, 100, 260, 290), near(rng, c, 0.05)))
    tiny.write_cache()
    tiny.write_library([f"k{i}" for i in range(24)])
    report = api.apply(tiny.root, "faceset_001", tiny.cache)
    assert sum(len(b.faces) for b in report.result.buckets) == 24
    era = report.result.eras[0]
    with open(os.path.join(tiny.root, era.name, "manifest.json"), "rb") as fh:
        data = _json.loads(fh.read().decode("utf-8"))  # still valid UTF-8 JSON
    assert os.fsencode(data["faces"][0]["source"]).startswith(raw)  # the exact name survives
