"""Real photos in, nothing lost in silence (issue 18), with the real buffalo_s models.

The archive is what a roop user has: portraits where the face fills the frame
(300 and 512 px), small photos upscaled, faces at the edge, blurred photos, a
large group photo, group photos with the person among others, photos with no
face, and roop's own .fsz crops. Every check runs the README's commands with
their defaults.
"""

import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from realfaces import (
    blurred,
    dated,
    face_filling,
    picture,
    roop_crop,
    tight_crop,
    upscaled,
    write_fsz,
)

BIN = os.path.join(os.path.dirname(sys.executable), "era-split")
YAO_FACE = (55, 50, 190, 235)  # Yao Ming's face in yaoming.jpg, with a little margin
TOM_FACE = (0, 0, 112, 112)


def cli(*args, check=True, timeout=600):
    proc = subprocess.run([BIN, *args], capture_output=True, text=True, timeout=timeout)
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def single_person_photos(base):
    """{file: what it is} of photos that each show one person."""
    yao, tom, astro = picture("yao"), picture("tom"), picture("astronaut")
    out = {}
    for year, name, image in [
        (2008, "filling-300", face_filling(yao, YAO_FACE, 300)),
        (2008, "filling-512", face_filling(yao, YAO_FACE, 512)),
        (2009, "filling-900", face_filling(yao, YAO_FACE, 900)),
        (2009, "upscaled-2-3", upscaled(yao, 2, 3)),
        (2010, "upscaled-3-4", upscaled(yao, 3, 4)),
        (2010, "left-edge", yao.crop((66, 0, yao.width, yao.height))),
        (2011, "as-shipped", yao),
        (2011, "double", yao.resize((yao.width * 2, yao.height * 2))),
        (2012, "small-scan", yao.resize((yao.width * 3 // 4, yao.height * 3 // 4))),
        (2012, "upscaled-filling", upscaled(face_filling(yao, YAO_FACE, 300), 2, 2)),
        (2013, "blurred-3", blurred(yao, 3)),
        (2013, "blurred-4", blurred(yao, 4)),
    ]:
        out[dated(image, year, base / "person" / f"{year}-{name}.jpg")] = name
    for name, image in [("tom-112", tom), ("tom-300", tom.resize((300, 300))),
                        ("tom-512", tom.resize((512, 512))), ("astronaut", astro),
                        ("astronaut-filling", face_filling(astro, (160, 40, 290, 200), 300))]:
        out[dated(image, 2015, base / "others" / f"{name}.jpg")] = name
    return out


@pytest.fixture(scope="module")
def real(tmp_path_factory, models):
    base = tmp_path_factory.mktemp("real")
    photos = base / "photos"
    singles = single_person_photos(photos)
    dated(picture("players"), 2016, photos / "person" / "2016-team.jpg")  # the person among 21 others
    players = picture("players")
    dated(players.resize((players.width * 3, players.height * 3)), 2016, photos / "groups" / "team-large.jpg")
    dated(picture("friends"), 2016, photos / "groups" / "friends.jpg")
    dated(picture("spurs"), 2016, photos / "groups" / "spurs.jpg")
    for name in ("coffee", "rocket"):
        dated(picture(name), 2016, photos / "no-face" / f"{name}.jpg")
    cache = str(base / "faces.npz")
    out = json.loads(cli("scan", str(photos), "--cache", cache, "--models", models, "--workers", "2",
                         "--json").stdout)
    with np.load(cache) as npz:
        arrays = {k: npz[k] for k in npz.files}
    return {"base": base, "photos": photos, "singles": singles, "cache": cache, "scan": out,
            "arrays": arrays, "models": models}


def faces_in(arrays, path):
    return np.flatnonzero(arrays["paths"] == path)


def test_scan_finds_the_face_in_every_single_person_photo(real, models):
    """Face-filling portraits (300 to 900 px), small and upscaled photos, faces at
    the edge: the host's single pass at 640 misses several; the scan none."""
    from era_split.plugin.faces.models import ModelSpec, load_analyser
    from era_split.plugin.host.photos import open_displayed

    a = real["arrays"]
    missed = [name for path, name in real["singles"].items() if len(faces_in(a, path)) == 0]
    assert missed == []
    host = load_analyser(ModelSpec(models))
    host_missed = [name for path, name in real["singles"].items() if not host.as_host_loads(open_displayed(path))]
    assert len(host_missed) >= 4, host_missed  # why the scan needs more than one pass
    assert {"filling-512", "filling-900", "tom-300", "tom-512"} <= set(host_missed)
    # the cache says how its faces were found, and the scan counted the photos without one
    assert str(a["scan_model"][0]) == "buffalo_l@640" and str(a["scan_detector"][0]).startswith("full+padded+tiles")
    assert real["scan"]["no_face"] == 2
    assert sorted(os.path.basename(p) for p in real["scan"]["examples"]["no_face"]) == ["coffee.jpg", "rocket.jpg"]


def test_a_large_group_photo_gives_up_its_small_faces(real, models):
    """The team photo at 3x (3711 px): 16 players' faces are over 100 px there,
    but only 18 px at the detector's 640. Tiles find them."""
    a = real["arrays"]
    rows = faces_in(a, str(real["photos"] / "groups" / "team-large.jpg"))
    big = [r for r in rows if a["face_short"][r] >= 100]
    assert len(big) >= 16, len(big)


def test_sharpness_is_measured_as_the_recognizer_sees_the_face(real):
    """Upscaled faces keep a sharp score; blurred ones do not."""
    a = real["arrays"]
    blur = {name: float(a["blur"][faces_in(a, path)[0]]) for path, name in real["singles"].items()}
    for name in ("upscaled-2-3", "upscaled-filling", "filling-512", "filling-900", "tom-512", "double"):
        assert blur[name] >= 40, (name, blur[name])
    for name in ("blurred-3", "blurred-4"):
        assert blur[name] < 10, (name, blur[name])


def test_folder_import_takes_only_the_person(real, tmp_path):
    """A folder of the person's photos where one is a team photo of 22: only his
    face comes in; the 21 others are counted and never added."""
    library = str(tmp_path / "lib")
    out = json.loads(cli("import", str(real["photos"] / "person"), "--name", "yao", "--library", library,
                         "--cache", real["cache"], "--models", real["models"], "--json").stdout)
    pictures = len(os.listdir(real["photos"] / "person"))
    assert out["matched"] == pictures  # every picture, the team photo included (he is in it)
    assert out["other_faces"] >= 20 and out["pictures_with_others"] == ["2016-team.jpg"]
    a = real["arrays"]
    rows = [int(np.flatnonzero(a["keys"] == k)[0]) for k in out["keys"]]
    emb = a["embeddings"][rows]
    centre = emb.mean(axis=0) / np.linalg.norm(emb.mean(axis=0))
    assert (1 - emb @ centre).max() < 0.6  # one person: the others lie near 1
    team = [r for r in rows if a["paths"][r].endswith("2016-team.jpg")]
    assert len(team) == 1
    # the faceset's crops show him alone: each is found as exactly one face
    manifest = json.load(open(os.path.join(library, "yao", "manifest.json")))
    assert len(manifest["faces"]) == pictures and manifest["era_split"]["kind"] == "imported"
    with zipfile.ZipFile(os.path.join(library, "yao", "yao_all.fsz")) as zf:
        assert len(zf.namelist()) == pictures
    proc = cli("validate", os.path.join(library, "yao", "yao_all.fsz"), "--models", real["models"])
    assert "1 of 1 bundle load as one face per crop" in proc.stdout, proc.stdout


def test_a_folder_of_someone_else_is_refused_by_name(real, tmp_path):
    """A picture whose only face is someone else is listed with that reason."""
    folder = tmp_path / "mixed"
    import shutil

    shutil.copytree(real["photos"] / "person", folder)
    shutil.copy(real["photos"] / "others" / "astronaut.jpg", folder / "astronaut.jpg")
    out = json.loads(cli("import", str(folder), "--name", "yao", "--library", str(tmp_path / "lib"),
                         "--cache", real["cache"], "--models", real["models"], "--json").stdout)
    assert out["unmatched"] == {"another_person": ["astronaut.jpg"]}


@pytest.mark.parametrize("style", ["roop", "tight"])
def test_fsz_crops_tight_or_loose_all_match(real, tmp_path, style):
    """A .fsz as roop's Face Management makes it (512 px, the face and a margin on
    black), or of tight face-box crops, with one crop that holds several faces
    (the person and his neighbours in the team photo): every crop comes in as
    the person."""
    from era_split.plugin.faces.models import ModelSpec, load_analyser
    from era_split.plugin.host.photos import open_displayed

    analyser = load_analyser(ModelSpec(real["models"]))
    cut = roop_crop if style == "roop" else tight_crop
    crops = {}
    for path, name in real["singles"].items():
        if "/person/" not in path or name.startswith("blurred"):
            continue
        image = open_displayed(path)
        crops[f"{name}.png"] = cut(image, analyser.find(image)[0].bbox)
    team = open_displayed(str(real["photos"] / "person" / "2016-team.jpg"))
    yao = min(analyser.find(team), key=lambda f: 1 - f.embedding @ analyser.find(picture("yao"))[0].embedding)
    x1, y1, x2, y2 = yao.bbox
    w = x2 - x1
    crops["team-several.png"] = team.crop((int(x1 - 1.6 * w), int(y1 - 0.6 * w), int(x2 + 0.4 * w),
                                           int(y2 + 0.6 * w))).resize((512, 512))
    assert len(analyser.find(crops["team-several.png"])) >= 2  # him and his neighbours
    fsz = write_fsz(tmp_path / "yao.fsz", crops)
    library = str(tmp_path / "lib")
    out = json.loads(cli("import", fsz, "--name", "yao", "--library", library, "--cache", real["cache"],
                         "--models", real["models"], "--json").stdout)
    assert out["matched"] >= 0.95 * len(crops), out["unmatched"]
    assert "team-several.png" in out["pictures_with_others"] and out["other_faces"] >= 1
    manifest = json.load(open(os.path.join(library, "yao", "manifest.json")))
    several = next(f for f in manifest["faces"] if f["imported_from"] == "team-several.png")
    # the person's face of the team photo (or of its 3x copy, the same face), not a neighbour's
    assert several["source"].endswith(("2016-team.jpg", "team-large.jpg"))
    a = real["arrays"]
    row = int(np.flatnonzero(a["keys"] == several["key"])[0])
    assert 1 - a["embeddings"][row] @ yao.embedding < 0.1


def test_split_with_defaults_keeps_upscaled_faces_and_says_why_blurred_ones_went(real, tmp_path):
    library = str(tmp_path / "lib")
    cli("import", str(real["photos"] / "person"), "--name", "yao", "--library", library,
        "--cache", real["cache"], "--models", real["models"])
    src = ["--library", library, "--cache", real["cache"]]
    out = json.loads(cli("apply", "yao", *src, "--validate", "--models", real["models"], "--json").stdout)
    left = out["counts"]["left_out"]
    assert left.get("blurry") == 2, left  # the two blurred photos, and only them
    assert not {"no_face_in_crop", "several_faces_in_crop"} & set(left), left  # the host finds every crop
    in_eras = {k for b in out["buckets"] if b["kind"] == "era" for k in b["keys"]}
    a = real["arrays"]
    paths = {str(a["paths"][int(np.flatnonzero(a["keys"] == k)[0])]) for k in in_eras}
    for name in ("filling-300", "filling-512", "upscaled-2-3", "upscaled-3-4", "upscaled-filling", "left-edge"):
        assert any(p.endswith(f"-{name}.jpg") for p in paths), name
    text = cli("plan", "yao", *src).stdout
    assert "left out: 2 blurry" in text
    table = cli("plan", "--all", *src).stdout
    assert "2 blurry" in table
    # every era crop loads as one face in roop's loader, at roop's 640 and at 320
    for det in ("640", "320"):
        proc = cli("validate", "yao", "--library", library, "--cache", real["cache"], "--models", real["models"],
                   "--det-size", det)
        assert "PROBLEM" not in proc.stdout and f"at detection size {det}" in proc.stdout, proc.stdout
    # a limit that drops most faces is named, with the flag that changes it
    strict = cli("plan", "yao", *src, "--min-blur", "1000")
    assert "Most of the person's faces" in strict.stdout and "--min-blur 500 keeps more" in strict.stdout
    strict_json = json.loads(cli("plan", "yao", *src, "--min-blur", "1000", "--json").stdout)
    assert strict_json["hints"] and strict_json["counts"]["left_out"]["blurry"] > 5


def test_a_cache_of_the_older_detector_is_scanned_again_keeping_its_keys(real, tmp_path):
    """What an older scan left: no detector stamp, the face-filling portraits
    without a face. The next scan scans every photo once more, keeps the keys of
    the faces it had and finds the missed ones."""
    from era_split.plugin.faces import scan as scan_mod
    from era_split.plugin.faces.models import ModelSpec

    photos = real["photos"] / "person"
    cache = str(tmp_path / "old.npz")
    scan_mod.scan([str(photos)], cache, ModelSpec(real["models"]), workers=1)
    with np.load(cache) as npz:
        arrays = {k: npz[k] for k in npz.files if k != "scan_detector"}
    keep = np.array(["filling" not in p for p in arrays["paths"].tolist()])
    n = len(arrays["keys"])
    old = {k: (v[keep] if v.ndim and v.shape[0] == n and k not in ("scan_files", "scan_sizes", "scan_mtimes",
                                                                    "scan_status") else v)
           for k, v in arrays.items()}
    np.savez(cache, **old)
    report = scan_mod.scan([str(photos)], cache, ModelSpec(real["models"]), workers=1)
    assert report.redetected == len(os.listdir(photos)) and report.unchanged == 0
    with np.load(cache) as npz:
        keys, paths = npz["keys"].tolist(), npz["paths"].tolist()
        assert str(npz["scan_detector"][0]).startswith("full+padded+tiles")
    assert set(old["keys"].tolist()) <= set(keys)  # every face the old scan had keeps its key
    assert sum("filling" in p for p in paths) >= 3  # and the portraits it missed have a face now
    again = scan_mod.scan([str(photos)], cache, ModelSpec(real["models"]), workers=1)
    assert again.redetected == 0 and again.scanned == 0  # once


def test_import_and_validate_detect_as_the_scan_did(real, tmp_path):
    """A cache scanned at 320: import and validate read that, not their own default."""
    cache = str(tmp_path / "faces320.npz")
    cli("scan", str(real["photos"] / "person"), "--cache", cache, "--models", real["models"],
        "--det-size", "320", "--workers", "1")
    library = str(tmp_path / "lib")
    out = json.loads(cli("import", str(real["photos"] / "person"), "--name", "yao", "--library", library,
                         "--cache", cache, "--models", real["models"], "--json").stdout)
    assert out["matched"] == len(os.listdir(real["photos"] / "person"))
    cli("apply", "yao", "--library", library, "--cache", cache)
    proc = cli("validate", "yao", "--library", library, "--cache", cache, "--models", real["models"])
    assert "at detection size 320" in proc.stdout
