"""Crop rendering: worker processes, the crop cache and bundle reuse."""

import os
import zipfile

from conftest import tree_digest
from era_split.plugin import api
from era_split.plugin.host import export
from era_split.plugin.host.paths import parse_remap
from era_split.plugin.split.params import SplitParams


def plan(lib, params=SplitParams()):
    return api.plan(lib.root, "faceset_001", lib.cache_file, params,
                    remaps=[parse_remap(r) for r in lib.remaps])


def test_workers_render_the_same_bytes_as_this_process(synth_lib, tmp_path):
    faces = [f for b in plan(synth_lib).buckets for f in b.faces]
    assert len({f.path for f in faces}) >= 16  # enough photos for the worker path
    one, failed1, _ = export.render_crops(faces, str(tmp_path / "one"), 128, workers=1)
    two, failed2, _ = export.render_crops(faces, str(tmp_path / "two"), 128, workers=2)
    assert not failed1 and not failed2
    assert tree_digest(tmp_path / "one") == tree_digest(tmp_path / "two")
    assert not [n for n in os.listdir(tmp_path / "two") if not n.endswith(".png")]  # task files gone


def test_crops_are_cached_and_reused(synth_lib, tmp_path):
    faces = [f for b in plan(synth_lib).buckets for f in b.faces]
    files, _, _ = export.render_crops(faces, str(tmp_path), 64, workers=1)
    stamps = {p: os.stat(p).st_mtime_ns for p in files.values()}
    seen = []
    export.render_crops(faces, str(tmp_path), 64, workers=1, progress=lambda *a: seen.append(a))
    assert {p: os.stat(p).st_mtime_ns for p in files.values()} == stamps
    assert seen == []  # nothing left to render
    # a changed photo gets a new crop
    victim = faces[0]
    os.utime(victim.path, ns=(0, os.stat(victim.path).st_mtime_ns + 10**9))
    again, _, _ = export.render_crops(faces, str(tmp_path), 64, workers=1)
    assert again[victim.key] != files[victim.key] and os.path.isfile(again[victim.key])


def test_reapply_links_unchanged_bundles(synth_lib):
    remaps = [parse_remap(r) for r in synth_lib.remaps]
    first = api.apply(synth_lib.root, "faceset_001", synth_lib.cache_file, remaps=remaps).result
    era = first.eras[0]
    bundle = os.path.join(synth_lib.root, era.name, f"{era.name}_all.fsz")
    inode = os.stat(bundle).st_ino
    # only the top-N size changes: every _all bundle is unchanged and linked, not rewritten
    second = api.apply(synth_lib.root, "faceset_001", synth_lib.cache_file, SplitParams(top=5),
                       remaps=remaps).result
    assert [b.keys for b in second.buckets] == [b.keys for b in first.buckets]
    assert os.stat(bundle).st_ino == inode
    top5 = os.path.join(synth_lib.root, era.name, f"{era.name}_top5.fsz")
    with zipfile.ZipFile(top5) as zf:
        assert zf.namelist() == [f"{i:04d}.png" for i in range(min(5, len(era.faces)))]
    assert not os.path.exists(os.path.join(synth_lib.root, era.name, f"{era.name}_top8.fsz"))


def test_undo_drops_the_crop_cache(synth_lib):
    from era_split.plugin.host.writer import undo_split

    remaps = [parse_remap(r) for r in synth_lib.remaps]
    api.apply(synth_lib.root, "faceset_001", synth_lib.cache_file, remaps=remaps)
    cache_dir = os.path.join(synth_lib.root, ".era_split", "crops", "faceset_001")
    assert os.listdir(cache_dir)
    undo_split(synth_lib.root, "faceset_001")
    assert not os.path.exists(cache_dir)
