"""An interrupted scan's checkpoints (``<cache stem>.partial/``) with real models:
each part holds only what it adds, an older version's single-file checkpoint is
resumed, a damaged part costs only its own files, what is not ours is left, and
a cache merged from parts in pieces reads back as one written whole."""

import os
import shutil

import numpy as np
import pytest
from era_split.plugin.errors import EraSplitError
from era_split.plugin.faces import scan as scan_mod
from era_split.plugin.faces import store
from era_split.plugin.faces.models import ModelSpec
from realfaces import build_archive


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    return build_archive(tmp_path_factory.mktemp("archive")) / "photos" / "person"


def interrupted(photos, cache, spec, after=5, every=2):
    """A scan stopped after ``after`` photos, checkpointing every ``every``."""
    class Stop(Exception):
        pass

    def stop(done, total, faces):
        if done == after:
            raise Stop

    old = scan_mod.CHECKPOINT_FILES
    scan_mod.CHECKPOINT_FILES = every
    try:
        with pytest.raises(Stop):
            scan_mod.scan([str(photos)], str(cache), spec, workers=1, progress=stop)
    finally:
        scan_mod.CHECKPOINT_FILES = old


def test_parts_hold_only_what_they_add_and_a_damaged_one_costs_only_its_files(photos, models, tmp_path):
    spec = ModelSpec(models)
    cache = tmp_path / "faces.npz"
    interrupted(photos, cache, spec, after=7, every=2)
    folder = tmp_path / "faces.partial"
    parts = sorted(os.listdir(folder))
    assert parts == ["part-000001.npz", "part-000002.npz", "part-000003.npz"]
    files = [store.read_arrays(str(folder / p))["scan_files"].tolist() for p in parts]
    assert [len(f) for f in files] == [2, 2, 2] and len({p for f in files for p in f}) == 6  # no file twice
    (folder / "part-000002.npz").write_bytes(b"PK\x03\x04 torn by a power cut")
    (folder / "notes.txt").write_text("the user's own")
    report = scan_mod.scan([str(photos)], str(cache), spec, workers=1)
    assert report.resumed == 4 and report.scanned == 8 and report.faces == 12
    assert sorted(os.listdir(folder)) == ["notes.txt"]  # our parts gone, the user's file kept

    whole = tmp_path / "whole.npz"
    scan_mod.scan([str(photos)], str(whole), spec, workers=1)
    with np.load(cache) as a, np.load(whole) as b:
        assert set(a.files) == set(b.files)
        ia, ib = np.argsort(a["keys"]), np.argsort(b["keys"])
        assert a["keys"][ia].tolist() == b["keys"][ib].tolist()
        assert np.allclose(a["embeddings"][ia], b["embeddings"][ib], atol=1e-6)


def test_an_older_versions_checkpoint_is_resumed(photos, models, tmp_path):
    """Before issue 23 the whole checkpoint was one file, <stem>.partial.npz."""
    spec = ModelSpec(models)
    cache = tmp_path / "faces.npz"
    interrupted(photos, cache, spec, after=5, every=2)
    folder = tmp_path / "faces.partial"
    parts = [store.read_arrays(str(folder / p)) for p in sorted(os.listdir(folder))]
    legacy = {name: np.concatenate([p[name] for p in parts]) for name in store.RECORD_ARRAYS + store.BOOK_ARRAYS}
    legacy.update(scan_model=parts[0]["scan_model"], scan_detector=parts[0]["scan_detector"])
    np.savez(tmp_path / "faces.partial.npz", **legacy)
    shutil.rmtree(folder)
    report = scan_mod.scan([str(photos)], str(cache), spec, workers=1)
    assert report.resumed == 4 and report.scanned == 8 and report.faces == 12
    assert not (tmp_path / "faces.partial.npz").exists() and not folder.exists()


def test_a_file_in_the_way_of_the_checkpoints_is_refused(photos, models, tmp_path):
    (tmp_path / "faces.partial").write_text("not ours")
    with pytest.raises(EraSplitError, match="in the way of the scan's checkpoints"):
        scan_mod.scan([str(photos)], str(tmp_path / "faces.npz"), ModelSpec(models), workers=1)
    assert (tmp_path / "faces.partial").read_text() == "not ours" and not (tmp_path / "faces.npz").exists()


def test_pieces_are_written_as_one_array(tmp_path):
    """The cache is written array by array from its parts, never joined in memory:
    strings of different widths, 2-D rows and an empty part read back as one."""
    parts = [{"keys": np.array(["a", "bbbbbbbbbb"]), "embeddings": np.ones((2, 3), np.float32)},
             {"keys": np.array([], dtype=str), "embeddings": np.zeros((0, 3), np.float32)},
             {"keys": np.array(["cc"]), "embeddings": np.full((1, 3), 2, np.float32)}]
    path = tmp_path / "x.npz"
    store.write_arrays(str(path), [(name, [p[name] for p in parts if len(p[name])]) for name in ("keys", "embeddings")])
    with np.load(path) as npz:
        assert npz["keys"].tolist() == ["a", "bbbbbbbbbb", "cc"]
        assert npz["embeddings"].tolist() == [[1, 1, 1], [1, 1, 1], [2, 2, 2]]
