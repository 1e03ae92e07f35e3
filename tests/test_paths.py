import os

import numpy as np
import pytest
from era_split.plugin.errors import EraSplitError
from era_split.plugin.host.paths import parse_remap, remap_path, under_roots


def test_remap_windows_recorded_paths():
    r = [parse_remap(r"X:\Photos=/data/photos")]
    assert remap_path(r"X:\Photos\2011\IMG_1.JPG", r) == os.path.join("/data/photos", "2011", "IMG_1.JPG")
    assert remap_path(r"x:\photos\2011\a.jpg", r) == os.path.join("/data/photos", "2011", "a.jpg")
    assert remap_path(r"X:\PhotosOld\a.jpg", r) == r"X:\PhotosOld\a.jpg"  # component boundary


def test_remap_posix_longest_prefix_wins():
    r = [parse_remap("/mnt/x=/a"), parse_remap("/mnt/x/src/nl=/b")]
    assert remap_path("/mnt/x/src/nl/1.jpg", r) == os.path.join("/b", "1.jpg")
    assert remap_path("/mnt/x/other/1.jpg", r) == os.path.join("/a", "other", "1.jpg")
    assert remap_path("/Mnt/x/1.jpg", r) == "/Mnt/x/1.jpg"  # POSIX is case-sensitive


def test_bad_remap():
    with pytest.raises(EraSplitError, match="OLD=NEW"):
        parse_remap("/only/old")


def test_roots_are_prefixes_of_recorded_paths():
    paths = np.array(["/mnt/x/src/nl/a.jpg", "/mnt/x/src/nlx/b.jpg", r"X:\src\lz\c.jpg", "/other/d.jpg"])
    assert under_roots(paths, None).all()
    assert under_roots(paths, ["/mnt/x/src/nl", r"x:\src\lz"]).tolist() == [True, False, True, False]


def test_vectorised_roots_follow_the_scalar_rule():
    from era_split.plugin.host.paths import _split_prefix

    rng = np.random.default_rng(0)
    parts = ["mnt", "x", "src", "nl", "nlx", "X:", "x:", "Src", "a.jpg"]
    paths = np.array(["/" * int(rng.integers(0, 2)) + rng.choice(["/", "\\"]).join(rng.choice(parts, 4))
                      for _ in range(400)])
    for roots in (["/mnt/x"], [r"X:\src"], ["mnt/x/src", r"x:\Src\nl"], ["/"]):
        expected = [any(_split_prefix(p, r) is not None for r in roots) for p in paths.tolist()]
        assert under_roots(paths, roots).tolist() == expected, roots
