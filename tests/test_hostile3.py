"""The third hostile-input round (issue 22): the new doors — import, scan,
validate, the roop install — as a careless user and as an attacker. One test per
finding; each failed on the main of that day. Memory is measured as the peak
resident size of the command's whole process tree."""

import io
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
import zipfile
import zlib

import numpy as np
import pytest
from conftest import Face, near, save_jpeg, tree_digest, unit
from PIL import Image
from realfaces import build_archive, picture

BIN = os.path.join(os.path.dirname(sys.executable), "era-split")
GB = 1024  # MB


def cli(*args, timeout=300, env=None):
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def peak(*args, timeout=300) -> tuple[int, subprocess.CompletedProcess]:
    """(peak MB of the command and its children, the completed process)."""
    code = ("import resource, subprocess, sys\n"
            "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
            "sys.stderr.write(p.stderr); sys.stdout.write(p.stdout)\n"
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024)\n"
            "sys.exit(p.returncode)\n")
    proc = subprocess.run([sys.executable, "-c", code, BIN, *args], capture_output=True, text=True, timeout=timeout)
    return int(proc.stdout.split()[-1]), proc


def one_line(proc, *needles):
    lines = [line for line in proc.stderr.splitlines() if line.strip() and not line.startswith(("  ", "scan:"))]
    assert proc.returncode == 2, (proc.returncode, proc.stderr, proc.stdout)
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def scanned(tmp_path_factory, models):
    """The person's photos and others' scanned into a cache; person.fsz a roop faceset."""
    base = build_archive(tmp_path_factory.mktemp("hostile3"))
    cache = str(base / "faces.npz")
    proc = cli("scan", str(base / "photos"), "--cache", cache, "--models", models, "--workers", "2")
    assert proc.returncode == 0, proc.stderr
    return {"base": base, "cache": cache, "models": models}


def fresh(scanned, tmp_path):
    """A copy of the archive for a test that changes it: (base, cache)."""
    base = tmp_path / "archive"
    shutil.copytree(scanned["base"], base)
    return base, str(base / "faces.npz")


def import_args(scanned, library, source=None, name="person", cache=None):
    return ["import", str(source or scanned["base"] / "person.fsz"), "--name", name, "--library", str(library),
            "--cache", cache or scanned["cache"], "--models", scanned["models"]]


# 1. The importer's lock ----------------------------------------------------------------


def test_import_never_writes_through_a_linked_lock(scanned, tmp_path):
    library = tmp_path / "lib"
    (library / ".era_split").mkdir(parents=True)
    (library / "manifest.json").write_text('{"facesets": []}')
    outside = tmp_path / "precious.txt"
    outside.write_text("the user's file\n")
    os.symlink(outside, library / ".era_split" / "lock")
    one_line(cli(*import_args(scanned, library)), "lock", "symbolic link")
    assert outside.read_text() == "the user's file\n"
    assert json.loads((library / "manifest.json").read_text()) == {"facesets": []}
    assert not (library / "person").exists()


def test_a_fifo_as_the_lock_is_one_line_naming_it(scanned, tmp_path):
    library = tmp_path / "lib"
    (library / ".era_split").mkdir(parents=True)
    (library / "manifest.json").write_text('{"facesets": []}')
    os.mkfifo(library / ".era_split" / "lock")
    line = one_line(cli(*import_args(scanned, library), timeout=120), "lock", "not a regular file")
    assert str(library / ".era_split" / "lock") in line


# 2, 3, 14. Scans -------------------------------------------------------------------------


def test_a_second_scan_of_one_cache_is_refused_and_loses_nothing(scanned, tmp_path):
    base, cache = fresh(scanned, tmp_path)
    os.remove(cache)
    photos = str(base / "photos")
    first = subprocess.Popen([BIN, "scan", photos, "--cache", cache, "--models", scanned["models"],
                              "--workers", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = first.stderr.readline()  # the first progress line: it holds the cache's lock
        assert line.startswith("scan:"), line
        second = cli("scan", photos, "--cache", cache, "--models", scanned["models"], "--workers", "1")
        one_line(second, "another era-split scan is updating this cache")
    finally:
        out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    def faces(npz, root):
        return sorted((os.path.relpath(p, root), k.rpartition("_")[2]) for p, k in zip(npz["paths"], npz["keys"]))

    with np.load(cache) as a, np.load(scanned["cache"]) as b:
        assert faces(a, base) == faces(b, scanned["base"])  # every face of the one scan


def test_rescanning_an_emptied_folder_keeps_the_cache(scanned, tmp_path):
    base, cache = fresh(scanned, tmp_path)
    person = base / "photos" / "person"
    os.remove(cache)
    assert cli("scan", str(base / "photos"), "--cache", cache, "--models", scanned["models"]).returncode == 0
    before = open(cache, "rb").read()
    shutil.move(person, tmp_path / "unmounted")
    person.mkdir()  # the mount point, its drive gone
    proc = cli("scan", str(person), "--cache", cache, "--models", scanned["models"])
    one_line(proc, "12 of the 12 photos this cache knows", "are gone", "is the drive mounted",
             "--force")
    assert open(cache, "rb").read() == before
    forced = cli("scan", str(person), "--cache", cache, "--models", scanned["models"], "--force")
    assert forced.returncode == 0 and "dropped 12 faces" in forced.stdout, forced.stdout


def _children(pid: int) -> set[int]:
    out = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    if int(fh.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.add(int(entry))
            except (OSError, ValueError, IndexError):
                pass
    return out


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_a_killed_scan_leaves_no_worker_behind_and_workers_are_capped(scanned, tmp_path):
    base, cache = fresh(scanned, tmp_path)
    os.remove(cache)
    proc = subprocess.Popen([BIN, "scan", str(base / "photos"), "--cache", cache, "--models", scanned["models"],
                             "--workers", "16"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr.readline().startswith("scan:")  # the workers are up and working
    workers = {c for c in _children(proc.pid) if _alive(c)}
    assert 1 <= len(workers) <= (os.cpu_count() or 1) + 1  # the pool, at most one per core (+ its manager)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(w) for w in workers)
    done = cli("scan", str(base / "photos"), "--cache", cache, "--models", scanned["models"], "--workers", "16")
    assert done.returncode == 0 and f"capped at {os.cpu_count()}" in done.stderr, done.stderr


def test_scan_counts_what_it_skips(tmp_path, models, monkeypatch):
    from era_split.plugin.faces import scan as scan_mod

    photos = tmp_path / "photos"
    save_jpeg(str(photos / "a.jpg"))
    os.mkfifo(photos / "pipe.jpg")
    (photos / "locked").mkdir()
    real_scandir = os.scandir

    def scandir(path="."):
        if os.fspath(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    listing = scan_mod.walk_photos([str(photos)])
    assert listing.skipped == {"not_a_file": 1, "unreadable_folder": 1}
    assert [os.path.basename(p) for p, _, _ in listing.files] == ["a.jpg"]


# 4, 7, 15. Crafted bundles --------------------------------------------------------------


def _png(image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def _same_data_zip(path, data: bytes, n: int) -> None:
    """n central-directory entries of one name, all pointing at one member's data."""
    crc, name = zlib.crc32(data), b"0000.png"
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 0, 0, 0, crc, len(data), len(data), len(name), 0)
    central = b"".join(
        struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 0, 0, 0, crc, len(data), len(data),
                    len(name), 0, 0, 0, 0, 0, 0) + name for _ in range(n))
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, n, n, len(central), len(local) + len(name) + len(data), 0)
    with open(path, "wb") as fh:
        fh.write(local + name + data + central + end)


def _bad_name_zip(path) -> None:
    """One entry flagged UTF-8 whose name is not UTF-8."""
    data, name = _png(Image.new("RGB", (8, 8))), b"\xff\xfe\xfd.png"
    crc = zlib.crc32(data)
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0x800, 0, 0, 0, crc, len(data), len(data), len(name), 0)
    central = struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0x800, 0, 0, 0, crc, len(data), len(data),
                          len(name), 0, 0, 0, 0, 0, 0) + name
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central), len(local) + len(name) + len(data), 0)
    with open(path, "wb") as fh:
        fh.write(local + name + data + central + end)


def test_a_huge_crop_is_refused_before_it_is_decoded(scanned, tmp_path):
    fsz = tmp_path / "bomb.fsz"
    with zipfile.ZipFile(fsz, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("0000.png", _png(Image.new("L", (9000, 9000))))
    assert fsz.stat().st_size < 200_000
    mb, proc = peak(*import_args(scanned, tmp_path / "lib", fsz))
    one_line(proc, "bomb.fsz", "'0000.png' is 9000x9000 pixels")
    assert mb < GB, mb
    assert not (tmp_path / "lib").exists() or not (tmp_path / "lib" / "person").exists()
    one_line(cli("validate", str(fsz), "--models", scanned["models"]), "9000x9000")


def test_entries_sharing_one_members_data_are_refused(scanned, tmp_path):
    fsz = tmp_path / "shared.fsz"
    _same_data_zip(fsz, _png(Image.new("L", (3000, 3000))), 60)
    mb, proc = peak(*import_args(scanned, tmp_path / "lib", fsz))
    one_line(proc, "shared.fsz", "share their data")
    assert mb < GB, mb


def test_thousands_of_tiny_crops_are_refused_at_once(scanned, tmp_path):
    fsz = tmp_path / "many.fsz"
    tiny = _png(Image.new("RGB", (4, 4)))
    with zipfile.ZipFile(fsz, "w") as zf:
        for i in range(4000):
            zf.writestr(f"{i:05d}.png", tiny)
    started = time.monotonic()
    one_line(cli(*import_args(scanned, tmp_path / "lib", fsz)), "many.fsz", "holds 4,000 crops")
    assert time.monotonic() - started < 60  # not minutes of detection (the refusal comes first)


def test_a_zip_name_that_lies_about_utf8_is_one_line(scanned, tmp_path):
    fsz = tmp_path / "names.fsz"
    _bad_name_zip(fsz)
    one_line(cli(*import_args(scanned, tmp_path / "lib", fsz)), "names.fsz", "not a readable .fsz")
    one_line(cli("validate", str(fsz), "--models", scanned["models"]), "names.fsz", "not a readable .fsz")


def test_an_empty_bundle_does_not_validate(scanned, tmp_path):
    fsz = tmp_path / "empty.fsz"
    with zipfile.ZipFile(fsz, "w") as zf:
        zf.writestr("readme.txt", "no crops")
    proc = cli("validate", str(fsz), "--models", scanned["models"])
    assert proc.returncode == 1 and "PROBLEM" in proc.stdout and "swaps with nothing" in proc.stdout


# 5. Crafted EXIF -------------------------------------------------------------------------


def _exif_bomb(path, entries=4000, data_len=1_000_000) -> None:
    """A PNG whose eXIf holds ``entries`` tags all pointing at one ``data_len`` blob:
    Pillow's EXIF parser copies the blob once per tag (4 GB here)."""
    head = b"II*\x00" + struct.pack("<I", 8)
    data_off = 8 + 2 + 12 * entries + 4
    table = b"".join(struct.pack("<HHII", 0x1000 + i, 7, data_len, data_off) for i in range(entries))
    blob = head + struct.pack("<H", entries) + table + b"\0\0\0\0" + b"\0" * data_len
    raw = _png(Image.new("RGB", (400, 300), (120, 110, 100)))
    chunk = struct.pack(">I", len(blob)) + b"eXIf" + blob + struct.pack(">I", zlib.crc32(b"eXIf" + blob))
    at = raw.index(b"IDAT") - 4
    with open(path, "wb") as fh:
        fh.write(raw[:at] + chunk + raw[at:])


def test_a_crafted_exif_costs_no_memory_in_scan_plan_or_apply(tmp_path, models, tiny, rng):
    photos = tmp_path / "photos"
    photos.mkdir()
    _exif_bomb(photos / "bomb.png")
    mb, proc = peak("scan", str(photos), "--cache", str(tmp_path / "c.npz"), "--models", models, "--workers", "1")
    assert proc.returncode == 0 and "have EXIF built to exhaust memory" in proc.stdout, proc.stdout + proc.stderr
    assert mb < GB, mb
    # a cache record pointing at such a photo: plan and apply leave it out, within memory
    c = unit(rng)
    for i in range(8):
        save_jpeg(os.path.join(tiny.photos, f"p{i}.jpg"), original="2011:06:01 10:00:00")
        tiny.faces.append(Face(f"k{i}", f"p{i}.jpg", (100, 100, 260, 290), near(rng, c, 0.05)))
    _exif_bomb(os.path.join(tiny.photos, "bomb.png"))
    tiny.faces.append(Face("kb", "bomb.png", (50, 50, 200, 220), near(rng, c, 0.05)))
    tiny.write_cache()
    tiny.write_library([f.key for f in tiny.faces])
    for command in ("plan", "apply"):
        mb, proc = peak(command, "faceset_001", "--library", tiny.root, "--cache", tiny.cache, "--json")
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout.rsplit("\n", 2)[0])["counts"]["left_out"]["unreadable_photo"] == 1
        assert mb < GB, (command, mb)


# 6, 10. Folder import: one picture at a time, one person -----------------------------------


def test_folder_import_holds_one_picture_at_a_time(scanned, tmp_path, monkeypatch):
    import weakref

    from era_split.plugin.faces import importer
    from era_split.plugin.faces.models import ModelSpec

    alive, most = set(), [0]
    real_open = importer.open_displayed

    def tracked(path):
        image = real_open(path)
        key = id(image)
        alive.add(key)
        most[0] = max(most[0], len(alive))
        weakref.finalize(image, alive.discard, key)
        return image

    monkeypatch.setattr(importer, "open_displayed", tracked)
    report = importer.import_faceset(str(scanned["base"] / "photos" / "person"), "person", str(tmp_path / "lib"),
                                     scanned["cache"], ModelSpec(scanned["models"]))
    assert len(report.matched) == 12
    assert most[0] <= 2, most[0]  # never the whole folder in memory


def test_a_folder_of_group_photos_gives_one_person_not_a_crowd(scanned, tmp_path):
    """Five photos of a 22-player team: a faceset of at most one face per photo,
    all of one person, never the team."""
    from PIL import ImageEnhance

    folder = tmp_path / "team"
    folder.mkdir()
    team = picture("players")
    for i in range(5):
        ImageEnhance.Brightness(team).enhance(0.9 + 0.05 * i).save(folder / f"team{i}.jpg", quality=95)
    base, cache = fresh(scanned, tmp_path)
    assert cli("scan", str(folder), "--cache", cache, "--models", scanned["models"]).returncode == 0
    proc = cli(*import_args(scanned, tmp_path / "lib", folder, name="team", cache=cache), "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert 1 <= out["matched"] <= 5 and out["other_faces"] >= 5 * 20
    with np.load(cache) as npz:
        keys, emb = npz["keys"].tolist(), npz["embeddings"]
    e = emb[[keys.index(k) for k in out["keys"]]]
    assert (1 - e @ e.T).max() < 0.3  # one person in every picture


# 7. One line, never a traceback -----------------------------------------------------------


@pytest.mark.parametrize("manifest", [
    {"facesets": [], "thin_eras": None},
    {"facesets": [], "thin_eras": "abc"},
    {"facesets": [{"name": ["a", "list"], "relpath": "x"}]},
    {"facesets": [{"name": {"an": "object"}, "relpath": "x"}]},
])
def test_import_into_an_odd_library_manifest_is_one_line(scanned, tmp_path, manifest):
    library = tmp_path / "lib"
    library.mkdir()
    (library / "manifest.json").write_text(json.dumps(manifest))
    one_line(cli(*import_args(scanned, library)), "manifest.json")
    assert json.loads((library / "manifest.json").read_text()) == manifest


@pytest.fixture(scope="module")
def split_library(scanned, tmp_path_factory):
    library = tmp_path_factory.mktemp("split") / "lib"
    assert cli(*import_args(scanned, library)).returncode == 0
    proc = cli("apply", "person", "--library", str(library), "--cache", scanned["cache"])
    assert proc.returncode == 0, proc.stderr
    return library


@pytest.mark.parametrize("body", [[], {"faces": 5}, {"name": "x", "faces": [{"key": "k", "file": ["a"]}]}])
def test_validate_on_an_odd_era_manifest_is_one_line(scanned, split_library, tmp_path, body):
    library = tmp_path / "lib"
    shutil.copytree(split_library, library)
    era = next(e for e in json.loads((library / "manifest.json").read_text())["facesets"] if "era_split" in e)
    (library / era["relpath"] / "manifest.json").write_text(json.dumps(body))
    one_line(cli("validate", "person", "--library", str(library), "--models", scanned["models"]), "manifest.json")


def test_auth_files_that_are_not_text_or_not_files(tmp_path, split_library, scanned):
    latin = tmp_path / "auth.txt"
    latin.write_bytes("jos\xe9:s\xe9same\n".encode("latin-1"))
    src = ["--library", str(split_library), "--cache", scanned["cache"]]
    one_line(cli("ui", *src, "--host", "0.0.0.0", "--auth-file", str(latin)), "auth.txt", "not UTF-8")
    fifo = tmp_path / "auth.fifo"
    os.mkfifo(fifo)
    one_line(cli("ui", *src, "--host", "0.0.0.0", "--auth-file", str(fifo), timeout=30), "auth.fifo")


def test_wrong_passwords_are_slowed_down():
    from era_split.plugin.exposure import Login

    slept = []
    login = Login([("alice", "s3cret")], sleep=slept.append)
    assert not any(login("alice", f"guess{i}") for i in range(8))
    assert slept == [0.25, 0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0]  # doubling, capped
    assert login("alice", "s3cret") and len(slept) == 8  # the right one waits for nothing
    assert not login("alice", "again") and slept[-1] == 0.25  # and starts the count again


# 9. An import killed half-way -------------------------------------------------------------


@pytest.mark.parametrize("step", range(1, 7))
def test_an_import_killed_at_any_step_leaves_no_stray_folder(scanned, tmp_path, step):
    library = tmp_path / "lib"
    library.mkdir()
    (library / "manifest.json").write_text('{"facesets": []}')
    killed = cli(*import_args(scanned, library), env={"ERA_SPLIT_FAULT_AT": str(step)})
    assert killed.returncode == -signal.SIGKILL
    assert cli("check", "--library", str(library), "--repair").returncode in (0, 1)
    check = cli("check", "--library", str(library))
    assert check.returncode == 0, check.stdout  # no unlisted folder, no pending write
    listed = [e["name"] for e in json.loads((library / "manifest.json").read_text())["facesets"]]
    assert os.path.isdir(library / "person") == ("person" in listed)
    if "person" not in listed:  # the old state: importing again just works
        assert cli(*import_args(scanned, library)).returncode == 0


def test_a_folder_left_by_an_older_import_is_named(scanned, tmp_path):
    library = tmp_path / "lib"
    (library / "person").mkdir(parents=True)
    (library / "person" / "manifest.json").write_text('{"name": "person", "faces": ["k"]}')
    (library / "manifest.json").write_text('{"facesets": []}')
    assert "faceset folder that no library entry lists" in cli("check", "--library", str(library)).stdout
    one_line(cli(*import_args(scanned, library)), "no library entry lists it", "move it away")


# 11. The library is never scanned or matched as photos ------------------------------------


def test_a_scan_that_includes_the_library_leaves_its_crops_out(scanned, split_library, tmp_path):
    base, cache = fresh(scanned, tmp_path)
    shutil.copytree(split_library, base / "photos" / "facesets_swap_ready")
    os.remove(cache)
    proc = cli("scan", str(base / "photos"), "--cache", cache, "--models", scanned["models"], "--json")
    out = json.loads(proc.stdout)
    assert out["skipped"]["library_folder"] == 1
    with np.load(cache) as npz:
        assert not any("facesets_swap_ready" in p for p in npz["paths"].tolist())


def test_import_never_matches_the_librarys_own_crops(tmp_path, rng):
    """A cache that once took in the library's crops (an older scan): the person's
    photo is matched, not the crop of it."""
    from era_split.plugin.faces.importer import Picture, match_to_cache
    from era_split.plugin.host.cache import validate_cache

    library = tmp_path / "lib"
    face = unit(rng, 512).astype(np.float32)
    crop_of_it = (face + 0.001 * unit(rng, 512)).astype(np.float32)
    photo = (face + 0.05 * unit(rng, 512)).astype(np.float32)
    cache = validate_cache({
        "keys": np.array(["crop", "photo"]), "paths": np.array([str(library / "p" / "0000.png"), "/photos/a.jpg"]),
        "embeddings": np.stack([crop_of_it, photo]), "bboxes": np.array([[0, 0, 100, 100]] * 2, np.float32),
        "det_score": np.array([0.9, 0.9]), "blur": np.array([100.0, 100.0])})
    pic = Picture("a.png", None, None, np.array([[0, 0, 100, 100.0]]), face[None, :] / np.linalg.norm(face), person=0)
    match_to_cache([pic], cache, 0.3, str(library))
    assert pic.row == 1


# 12, 13. Names and the roop config --------------------------------------------------------


@pytest.mark.parametrize("name", ["_thin", "_THIN", ".era_split", "manifest.json"])
def test_reserved_names_cannot_be_imported(scanned, tmp_path, name):
    proc = cli(*import_args(scanned, tmp_path / "lib", name=name))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert not (tmp_path / "lib" / name).exists()


# 16. Crafted caches -----------------------------------------------------------------------


def test_a_one_dimensional_embedding_is_refused(tiny, rng):
    from test_hostile import build

    build(tiny, rng, n=6)
    with np.load(tiny.cache) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["embeddings"] = np.ones((6, 1), np.float32)
    np.savez(tiny.cache, **arrays)
    one_line(cli("plan", "faceset_001", "--library", tiny.root, "--cache", tiny.cache), "embeddings",
             "1 dimensions")


def test_boxes_outside_the_photo_are_left_out_or_refused(tiny, rng):
    from test_hostile import build

    build(tiny, rng, n=12)
    with np.load(tiny.cache) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["bboxes"][0] = [5000, 5000, 5200, 5200]  # the photos are 640 x 480
    np.savez(tiny.cache, **arrays)
    proc = cli("apply", "faceset_001", "--library", tiny.root, "--cache", tiny.cache, "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["counts"]["left_out"]["box_outside_photo"] == 1
    assert "k0" not in {k for b in out["buckets"] for k in b["keys"]}
    arrays["bboxes"][0] = [1e12, 1e12, 2e12, 2e12]
    np.savez(tiny.cache, **arrays)
    one_line(cli("plan", "faceset_001", "--library", tiny.root, "--cache", tiny.cache), "bboxes", "k0")


def test_remove_deletes_only_what_import_made(scanned, split_library, tmp_path):
    library = tmp_path / "lib"
    shutil.copytree(split_library, library)
    before = json.loads((library / "manifest.json").read_text())
    host = library / "host_faceset"
    host.mkdir()
    (host / "manifest.json").write_text('{"name": "host_faceset", "faces": ["k"]}')
    data = dict(before, facesets=before["facesets"] + [{"name": "host_faceset", "relpath": "host_faceset",
                                                         "faces": 1}])
    (library / "manifest.json").write_text(json.dumps(data))
    seen = tree_digest(host)
    one_line(cli("remove", "host_faceset", "--library", str(library)), "not made by era-split import")
    assert tree_digest(host) == seen
    proc = cli("remove", "person", "--library", str(library))
    assert proc.returncode == 0, proc.stderr
    after = json.loads((library / "manifest.json").read_text())
    assert [e["name"] for e in after["facesets"]] == ["host_faceset"] and not after.get("thin_eras")
    assert sorted(os.listdir(library)) == sorted([".era_split", "host_faceset", "manifest.json"])
    one_line(cli("undo", "nobody", "--library", str(library)), "no faceset named 'nobody'")


def test_check_repair_drops_an_entry_whose_folder_is_gone(split_library, tmp_path):
    library = tmp_path / "lib"
    shutil.copytree(split_library, library)
    shutil.rmtree(library / "person")
    check = cli("check", "--library", str(library))
    assert check.returncode == 1 and "'person'" in check.stdout and "is missing" in check.stdout
    repaired = cli("check", "--library", str(library), "--repair")
    assert "dropped the facesets entry 'person'" in repaired.stdout
    assert "person" not in [e["name"] for e in json.loads((library / "manifest.json").read_text())["facesets"]]
    assert (library / ".era_split" / "manifest.before-repair.json").exists()
