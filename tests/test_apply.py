"""End to end on generated archives: plan, apply, re-apply, undo; files read back."""

import io
import json
import os
import zipfile

import numpy as np
import pytest
from conftest import Face, near, save_jpeg, tree_digest, unit
from era_split.plugin import api
from era_split.plugin.errors import EraSplitError
from era_split.plugin.host.paths import parse_remap
from era_split.plugin.host.writer import undo_split
from era_split.plugin.split.params import SplitParams
from PIL import Image


def remaps(lib):
    return [parse_remap(r) for r in lib.remaps]


def read_manifest(root):
    with open(os.path.join(root, "manifest.json")) as fh:
        return json.load(fh)


def test_plan_writes_nothing_but_caches(synth_lib):
    archive = os.path.dirname(synth_lib.root)
    before = tree_digest(archive)
    result = api.plan(synth_lib.root, "faceset_001", synth_lib.cache_file, remaps=remaps(synth_lib))
    after = tree_digest(archive)
    new = set(after) - set(before)
    assert new == {os.path.join("facesets_swap_ready", ".era_split", "photos.json")}
    assert all(after[k] == v for k, v in before.items())
    assert result.eras, "the generated target should split into eras"


def test_apply_writes_the_host_layout(synth_lib):
    report = api.apply(synth_lib.root, "faceset_001", synth_lib.cache_file, remaps=remaps(synth_lib))
    result = report.result
    manifest = read_manifest(synth_lib.root)
    names = [e["name"] for e in manifest["facesets"]]
    assert names[:2] == ["faceset_001", result.eras[0].name]
    assert manifest["facesets"][0]["host_note"] == "curated by hand"  # host key kept
    assert "faceset_002" in names
    thin_names = [e["name"] for e in manifest.get("thin_eras", [])]
    assert thin_names == [b.name for b in result.thin]

    for bucket in result.buckets:
        rel = bucket.name if bucket.kind == "era" else f"_thin/{bucket.name}"
        folder = os.path.join(synth_lib.root, *rel.split("/"))
        entry = next(e for e in manifest["facesets" if bucket.kind == "era" else "thin_eras"]
                     if e["name"] == bucket.name)
        assert entry["relpath"] == rel and entry["faces"] == len(bucket.faces)
        assert entry["era_split"]["parent"] == "faceset_001"
        assert entry["era_split"]["kind"] == bucket.kind
        pngs = sorted(f for f in os.listdir(folder) if f.endswith(".png"))
        assert pngs == [f"{i:04d}.png" for i in range(len(bucket.faces))]
        with zipfile.ZipFile(os.path.join(folder, f"{bucket.name}_all.fsz")) as zf:
            assert zf.namelist() == pngs  # flat, lowercase .png, rank order
            for name in zf.namelist()[:3]:
                im = Image.open(io.BytesIO(zf.read(name)))
                assert im.format == "PNG" and im.size == (512, 512)
        with zipfile.ZipFile(os.path.join(folder, f"{bucket.name}_top8.fsz")) as zf:
            assert zf.namelist() == pngs[:8]
        fm = json.load(open(os.path.join(folder, "manifest.json")))
        assert fm["name"] == bucket.name
        assert [f["key"] for f in fm["faces"]] == bucket.keys
        assert fm["faces"][0]["file"] == "0000.png"
        assert {"key", "file", "source", "bbox", "det_score", "blur", "face_short", "year"} <= set(fm["faces"][0])
        meta = fm["era_split"]
        assert meta["parent"] == "faceset_001" and meta["params_key"] == result.params.cache_key()
        assert meta["anchor"] == bucket.anchor and meta["dom_year"] == bucket.dom_year
        qualities = [f["quality"] for f in fm["faces"]]
        assert qualities == sorted(qualities, reverse=True)
        assert os.path.isfile(os.path.join(folder, f"{bucket.name}.txt"))
        assert os.path.isfile(os.path.join(folder, "THIN.txt")) == (bucket.kind == "thin")


def test_face_accounting(synth_lib):
    result = api.apply(synth_lib.root, "faceset_001", synth_lib.cache_file, remaps=remaps(synth_lib)).result
    c = result.counts
    in_buckets = sum(len(b.faces) for b in result.buckets)
    left = {k: v for k, v in c["left_out"].items() if k != "key_not_in_cache"}
    # every face recovered as the person is in a bucket or left out under one reason
    assert in_buckets + sum(left.values()) == c["recovered"]
    gate = sum(left.get(k, 0) for k in ("small_face", "low_detector_score", "blurry"))
    assert gate == c["recovered"] - c["gated"] and gate > 0
    assert c["left_out"]["key_not_in_cache"] == 1  # the stale key of the generated faceset
    assert c["cache"] >= c["candidates"] >= c["recovered"] >= c["gated"] >= c["survivors"]
    assert 0 < c["dated_paths"] < c["paths"]
    keys = [k for b in result.buckets for k in b.keys]
    assert len(keys) == len(set(keys))


def test_eras_hold_the_target_and_its_years(synth_lib):
    result = api.plan(synth_lib.root, "faceset_001", synth_lib.cache_file, remaps=remaps(synth_lib))
    for bucket in result.eras:
        truth = [synth_lib.truth[k] for k in bucket.keys]
        assert all(t["identity"] == "target" for t in truth)
        phases = {t["phase"] for t in truth}
        assert len(phases) == 1, f"{bucket.name} mixes life phases {phases}"


def test_reapply_is_identical_and_undo_restores(synth_lib):
    before = read_manifest(synth_lib.root)
    args = (synth_lib.root, "faceset_001", synth_lib.cache_file)
    api.apply(*args, remaps=remaps(synth_lib))
    first_manifest = read_manifest(synth_lib.root)
    first_tree = {k: v for k, v in tree_digest(synth_lib.root).items() if ".era_split" not in k}
    report = api.apply(*args, remaps=remaps(synth_lib))
    assert read_manifest(synth_lib.root) == first_manifest
    assert {k: v for k, v in tree_digest(synth_lib.root).items() if ".era_split" not in k} == first_tree
    assert sorted(report.removed) == sorted(report.written)

    # another faceset's split is not touched by re-splitting or undoing this one
    api.apply(synth_lib.root, "faceset_002", synth_lib.cache_file, remaps=remaps(synth_lib))
    other = [e for e in read_manifest(synth_lib.root)["facesets"] if e.get("era_split", {}).get("parent") == "faceset_002"]
    api.apply(*args, params=SplitParams(subcluster=0.3), remaps=remaps(synth_lib))
    removed = undo_split(synth_lib.root, "faceset_001")
    assert removed
    after = read_manifest(synth_lib.root)
    assert [e for e in after["facesets"] if e.get("era_split", {}).get("parent") == "faceset_002"] == other
    undo_split(synth_lib.root, "faceset_002")
    assert read_manifest(synth_lib.root) == before
    left = sorted(n for n in os.listdir(synth_lib.root) if not n.startswith("."))
    assert left == ["faceset_001", "faceset_002", "manifest.json"]


def test_apply_writes_only_inside_the_library(synth_lib):
    archive = os.path.dirname(synth_lib.root)
    outside_before = {k: v for k, v in tree_digest(archive).items() if not k.startswith("facesets_swap_ready")}
    api.apply(synth_lib.root, "faceset_001", synth_lib.cache_file, remaps=remaps(synth_lib))
    outside_after = {k: v for k, v in tree_digest(archive).items() if not k.startswith("facesets_swap_ready")}
    assert outside_after == outside_before
    assert not [n for n in os.listdir(os.path.join(synth_lib.root, ".era_split")) if n.startswith("staging")]


def test_era_facesets_cannot_be_split_again(synth_lib):
    report = api.apply(synth_lib.root, "faceset_001", synth_lib.cache_file, remaps=remaps(synth_lib))
    with pytest.raises(EraSplitError, match="is an era faceset of 'faceset_001'"):
        api.plan(synth_lib.root, report.result.eras[0].name, synth_lib.cache_file)


def test_labels_avoid_existing_names(synth_lib):
    result = api.plan(synth_lib.root, "faceset_001", synth_lib.cache_file, remaps=remaps(synth_lib))
    taken = result.eras[0].name
    manifest = read_manifest(synth_lib.root)
    manifest["facesets"].append({"name": taken, "relpath": "faceset_002"})
    with open(os.path.join(synth_lib.root, "manifest.json"), "w") as fh:
        json.dump(manifest, fh)
    again = api.plan(synth_lib.root, "faceset_001", synth_lib.cache_file, remaps=remaps(synth_lib))
    assert again.eras[0].name == taken + "_v2"
    # a host folder of that name, not in the manifest, is not overwritten either
    os.makedirs(os.path.join(synth_lib.root, again.eras[1].name))
    third = api.plan(synth_lib.root, "faceset_001", synth_lib.cache_file, remaps=remaps(synth_lib))
    assert third.eras[1].name == again.eras[1].name + "_v2"


def test_missing_photos_are_left_out_not_fatal(synth_lib):
    result = api.plan(synth_lib.root, "faceset_001", synth_lib.cache_file, remaps=remaps(synth_lib))
    victim = result.eras[0].faces[0].path
    os.remove(victim)
    report = api.apply(synth_lib.root, "faceset_001", synth_lib.cache_file, remaps=remaps(synth_lib))
    assert report.result.counts["left_out"]["missing_photo"] >= 1
    written = [f.path for b in report.result.buckets for f in b.faces]
    assert victim not in written


def test_photo_that_breaks_between_plan_and_apply(synth_lib):
    """A photo whose header reads but whose pixels do not decode is dropped at apply,
    and the report still matches the files on disk."""
    from era_split.plugin.host.writer import apply_split

    result = api.plan(synth_lib.root, "faceset_001", synth_lib.cache_file, remaps=remaps(synth_lib))
    victim = result.eras[0].faces[0]
    data = open(victim.path, "rb").read()
    with open(victim.path, "wb") as fh:
        fh.write(data[: len(data) // 3])
    report = apply_split(synth_lib.root, result)
    keys = [k for b in report.result.buckets for k in b.keys]
    assert victim.key not in keys
    assert report.result.counts["left_out"]["unreadable_photo"] >= 1
    for b in report.result.buckets:
        folder = os.path.join(synth_lib.root, b.name if b.kind == "era" else f"_thin/{b.name}")
        with zipfile.ZipFile(os.path.join(folder, f"{b.name}_all.fsz")) as zf:
            assert len(zf.namelist()) == len(b.faces)


def test_small_identity_gets_a_scaled_anchor_size(tiny, rng):
    """Forty faces over two eras: with the seed's 20 there would be no era at all."""
    a, b = unit(rng), unit(rng)  # two looks ~1.0 apart, each ~0.3 from their mean
    for i in range(40):
        year = 2010 if i < 20 else 2018
        c = near(rng, a if i < 20 else b, 0.05)
        photo = f"{year}/p{i}.jpg"
        save_jpeg(os.path.join(tiny.photos, photo), original=f"{year}:06:01 10:00:00")
        tiny.faces.append(Face(f"k{i}", photo, (100, 100, 260, 290), c / np.linalg.norm(c)))
    tiny.write_cache()
    tiny.write_library([f"k{i}" for i in range(0, 40, 2)])
    result = api.plan(tiny.root, "faceset_001", tiny.cache)
    assert result.anchor_min_scaled and result.params.anchor_min < 20
    assert len(result.eras) == 2
    assert sorted(b.dom_year for b in result.eras) == [2010, 2018]
    given = api.plan(tiny.root, "faceset_001", tiny.cache, SplitParams(anchor_min=25))
    assert not given.anchor_min_scaled and given.params.anchor_min == 25
    assert not given.eras and len(given.thin) == 2
