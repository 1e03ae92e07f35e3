"""The second hostile-input round: ways to lose data, write outside the library,
hang or crash that a careful user or an attacker found. One test per finding."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile

import numpy as np
import pytest
from conftest import Face, near, tree_digest, unit
from era_split.plugin import api
from era_split.plugin.errors import EraSplitError
from era_split.plugin.generate import synth
from era_split.plugin.host.check import check_library
from era_split.plugin.host.paths import parse_remap
from PIL import Image
from test_hostile import build

BIN = os.path.join(os.path.dirname(sys.executable), "era-split")
SPEC = synth.SynthSpec(seed=11, target_photos=70, others=1, other_photos=12, size=(320, 240))


def cli(*args, timeout=120, env=None, input=None):
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, input=input)


def one_line(proc, *needles):
    """Exit 2, one line on stderr (besides indented progress lines), no traceback,
    every needle in it."""
    lines = [line for line in proc.stderr.splitlines() if line.strip() and not line.startswith("  ")]
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def manifest(root):
    with open(os.path.join(root, "manifest.json")) as fh:
        return json.load(fh)


def era_entries(root):
    m = manifest(root)
    return [e for e in m["facesets"] + m.get("thin_eras", []) if "era_split" in e]


@pytest.fixture(scope="module")
def split_template(tmp_path_factory):
    """An archive whose faceset_001 is split once; tests work on copies of it."""
    base = tmp_path_factory.mktemp("hostile2")
    lib = synth.generate(base / "archive", SPEC)
    api.apply(lib.root, "faceset_001", lib.cache_file, remaps=[parse_remap(r) for r in lib.remaps])
    assert era_entries(lib.root)
    return lib


@pytest.fixture
def split(split_template, tmp_path):
    """A private copy of the split archive: (library root, cache, remap flag)."""
    src = os.path.dirname(split_template.root)
    dst = tmp_path / "archive"
    shutil.copytree(src, dst, symlinks=True)
    photos = os.path.join(dst, "photos")
    remap = split_template.remaps[0].split("=", 1)[0] + "=" + photos
    return str(dst / "facesets_swap_ready"), str(dst / "cache" / "faces.npz"), remap


def source(split):
    root, cache, remap = split
    return ["--library", root, "--cache", cache, "--remap", remap]


def outside_state(root):
    return {k: v for k, v in tree_digest(root).items() if not k.startswith(".era_split")}


# 1. Photos not reachable: refuse, keep the split ---------------------------------


def test_unreachable_photos_refuse_and_keep_the_split(split):
    root, cache, remap = split
    before = (manifest(root), outside_state(root))
    for command in ("plan", "apply"):
        proc = cli(command, "faceset_001", "--library", root, "--cache", cache)  # the --remap forgotten
        line = one_line(proc, "cannot be read", "--remap OLD=NEW", "mounted")
        assert "X:\\Photos" in line  # says how the photo was recorded
    assert (manifest(root), outside_state(root)) == before
    forced = cli("plan", "faceset_001", "--library", root, "--cache", cache, "--force", "--json")
    assert forced.returncode == 0, forced.stderr
    assert json.loads(forced.stdout)["counts"]["left_out"]["missing_photo"] > 0


def test_a_split_that_lost_most_faces_does_not_replace_the_old_one(split):
    root, cache, remap = split
    before = (manifest(root), outside_state(root))
    old_faces = sum(e["faces"] for e in era_entries(root))
    # a gate that keeps only the biggest faces: a legal split, but most faces gone
    proc = cli("apply", "faceset_001", *source(split), "--min-face", "150")
    line = one_line(proc, "refused, the current split is kept", f"where the current one has {old_faces}", "--force")
    assert (manifest(root), outside_state(root)) == before
    forced = cli("apply", "faceset_001", *source(split), "--min-face", "150", "--force")
    assert forced.returncode == 0, forced.stderr
    assert sum(e["faces"] for e in era_entries(root)) < old_faces / 2
    assert "keeps" in line


def test_photos_that_vanish_between_plan_and_apply_leave_the_library_alone(split):
    root, cache, remap = split
    result = api.plan(root, "faceset_001", cache, remaps=[parse_remap(remap)])
    before = (manifest(root), outside_state(root))
    shutil.rmtree(os.path.join(os.path.dirname(root), "photos"))
    shutil.rmtree(os.path.join(root, ".era_split", "crops"))  # nothing cached to fall back on
    from era_split.plugin.host.writer import apply_split

    with pytest.raises(EraSplitError, match="could not be cropped"):
        apply_split(root, result)
    assert (manifest(root), outside_state(root)) == before


# 2. Deleting folders the plugin did not make --------------------------------------


def write_manifest(root, data):
    with open(os.path.join(root, "manifest.json"), "w") as fh:
        json.dump(data, fh, indent=2)


def host_faceset(root, name, files=3):
    folder = os.path.join(root, name)
    os.makedirs(folder)
    for i in range(files):
        Image.new("RGB", (64, 64), (i * 40, 90, 90)).save(os.path.join(folder, f"{i:04d}.png"))
    with open(os.path.join(folder, "manifest.json"), "w") as fh:
        json.dump({"name": name, "faces": [f"h{i}" for i in range(files)]}, fh)
    return folder


def test_undo_keeps_an_era_folder_a_host_entry_points_at(split):
    root, _, _ = split
    era = era_entries(root)[0]
    m = manifest(root)
    m["facesets"].append({"name": "my_pick", "relpath": era["relpath"], "faces": era["faces"]})
    write_manifest(root, m)
    folder = os.path.join(root, era["relpath"])
    files = tree_digest(folder)
    proc = cli("undo", "faceset_001", "--library", root)
    assert proc.returncode == 0, proc.stderr
    assert "kept" in proc.stderr and era["relpath"] in proc.stderr
    assert tree_digest(folder) == files
    assert any(e["name"] == "my_pick" for e in manifest(root)["facesets"])


@pytest.mark.parametrize("listed", [True, False], ids=["host faceset", "unlisted folder"])
def test_undo_never_deletes_a_folder_a_forged_entry_claims(split, listed):
    """A copied entry with an ``era_split`` object, at the very place the plugin puts
    an era: the host's own faceset_002, or a user's folder the manifest does not list."""
    root, _, _ = split
    name = "faceset_002" if listed else "faceset_001_2099"
    if not listed:
        host_faceset(root, name)
    victim = os.path.join(root, name)
    m = manifest(root)
    assert any(e["name"] == "faceset_002" and "era_split" not in e for e in m["facesets"])
    m["facesets"].append({"name": name, "relpath": name, "faces": 3,
                          "era_split": {"parent": "faceset_001", "kind": "era"}})
    write_manifest(root, m)
    files = tree_digest(victim)
    proc = cli("undo", "faceset_001", "--library", root)
    assert proc.returncode == 0, proc.stderr
    assert tree_digest(victim) == files
    assert f"kept {name}" in proc.stderr
    assert [e["name"] for e in manifest(root)["facesets"]].count("faceset_002") == 1


def test_a_users_file_in_an_era_folder_is_never_deleted(split):
    root, cache, remap = split
    era = era_entries(root)[0]
    notes = os.path.join(root, era["relpath"], "notes.txt")
    with open(notes, "w") as fh:
        fh.write("my notes")
    before = (manifest(root), outside_state(root))
    for args in (["apply", "faceset_001", *source(split)], ["undo", "faceset_001", "--library", root]):
        one_line(cli(*args), "notes.txt", "did not write", "move them out")
        assert (manifest(root), outside_state(root)) == before
    report = check_library(root)
    assert any("notes.txt" in p for p in report.problems)
    os.remove(notes)
    assert cli("undo", "faceset_001", "--library", root).returncode == 0


# 3. A crafted journal --------------------------------------------------------------


def write_journal(root, journal):
    state = os.path.join(root, ".era_split")
    os.makedirs(state, exist_ok=True)
    with open(os.path.join(state, "journal.json"), "w") as fh:
        fh.write(journal if isinstance(journal, str) else json.dumps(journal))


def test_a_journal_pointing_outside_deletes_nothing(split, tmp_path):
    root, _, _ = split
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("keep me")
    write_journal(root, {"version": 1, "staging": "../../victim", "manifest": "x", "old": [], "new": []})
    proc = cli("check", "--library", root, "--repair")
    assert (victim / "precious.txt").read_text() == "keep me"
    assert "ignored a journal era-split did not write" in proc.stdout
    assert "set aside" in proc.stdout  # the rejected journal stays visible until looked at


def test_a_journal_cannot_move_a_host_folder_away(split):
    root, cache, remap = split
    victim = host_faceset(root, "host_faces")
    files = tree_digest(victim)
    staging = ".era_split/staging-forged"
    os.makedirs(os.path.join(root, staging))
    with open(os.path.join(root, staging, "manifest.next.json"), "w") as fh:
        fh.write("{}")  # "not committed yet": the rollback path
    write_journal(root, {"version": 1, "staging": staging, "manifest": f"{staging}/manifest.next.json",
                         "old": [], "new": [[f"{staging}/new/host_faces", "host_faces"]]})
    proc = cli("apply", "faceset_001", *source(split))
    assert proc.returncode == 0, proc.stderr
    assert tree_digest(victim) == files


@pytest.mark.parametrize("journal", ["{}", "[]", "null", "{", '{"version": 1, "staging": 5}'])
def test_a_malformed_journal_does_not_block_later_writes(split, journal):
    root, _, _ = split
    write_journal(root, journal)
    proc = cli("undo", "faceset_001", "--library", root)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert not era_entries(root)
    assert not os.path.exists(os.path.join(root, ".era_split", "journal.json"))


# 4, 5. Symlinks where the plugin writes ---------------------------------------------


@pytest.mark.parametrize("link", ["_thin", "_thin before any split", ".era_split", ".era_split/crops/faceset_001"])
def test_links_where_the_plugin_writes_are_refused(split, tmp_path, link):
    root, _, _ = split
    if link == "_thin before any split":  # no thin entry yet whose relpath would give it away
        assert cli("undo", "faceset_001", "--library", root).returncode == 0
        link = "_thin"
    outside = tmp_path / "outside"
    target = os.path.join(root, link)
    if os.path.exists(target):
        shutil.move(target, outside)  # the real folder now lives outside, behind the link
    else:
        outside.mkdir()
    os.symlink(outside, target)
    seen = tree_digest(outside)
    before = manifest(root)
    for args in (["apply", "faceset_001", *source(split), "--pad", "0.3"],
                 ["undo", "faceset_001", "--library", root]):
        one_line(cli(*args), link, "link")
        assert tree_digest(outside) == seen and manifest(root) == before
    if link == ".era_split":
        one_line(cli("plan", "faceset_001", *source(split)), link, "link")
        assert tree_digest(outside) == seen


# 6. A FIFO in place of a photo --------------------------------------------------------


def test_a_fifo_in_place_of_a_photo_does_not_hang(split):
    root, cache, remap = split
    photos = os.path.join(os.path.dirname(root), "photos")
    victim = next(os.path.join(d, f) for d, _, files in sorted(os.walk(photos)) for f in sorted(files))
    os.remove(victim)
    os.mkfifo(victim)
    shutil.rmtree(os.path.join(root, ".era_split"))  # no cached date for it either
    proc = cli("plan", "faceset_001", *source(split), "--json", timeout=90)
    assert proc.returncode == 0, proc.stderr
    proc = cli("apply", "faceset_001", *source(split), "--json", timeout=90)
    assert proc.returncode == 0, proc.stderr


# 7. One line, never a traceback -------------------------------------------------------


small_archive = build  # test_hostile's hand-built 30-face archive


def cache_arrays(tiny):
    with np.load(tiny.cache) as npz:
        return {k: npz[k] for k in npz.files}


def as_npy(tiny):
    np.save(tiny.cache.replace(".npz", ".npy"), cache_arrays(tiny)["embeddings"])
    return tiny.cache.replace(".npz", ".npy")


def text_member_for_an_array(tiny):
    arrays = cache_arrays(tiny)
    with zipfile.ZipFile(tiny.cache, "w") as zf:
        for name, arr in arrays.items():
            if name == "blur":
                zf.writestr("blur", "not an array")
                continue
            path = os.path.join(tiny.base, f"{name}.npy")
            np.save(path, arr)
            zf.write(path, f"{name}.npy")
    return tiny.cache


def huge_header(tiny):
    arrays = cache_arrays(tiny)
    with zipfile.ZipFile(tiny.cache, "w") as zf:
        for name, arr in arrays.items():
            path = os.path.join(tiny.base, f"{name}.npy")
            np.save(path, arr)
            data = open(path, "rb").read()
            if name == "embeddings":
                import io

                buf = io.BytesIO()
                np.lib.format.write_array_header_1_0(
                    buf, {"descr": "<f4", "fortran_order": False, "shape": (10**8, 512 * 1024)})
                data = buf.getvalue() + b"\0" * 64
            zf.writestr(f"{name}.npy", data)
    return tiny.cache


def non_utf8_keys(tiny):
    arrays = cache_arrays(tiny)
    arrays["keys"] = np.array([k.encode() for k in arrays["keys"]])
    arrays["keys"][3] = b"k\xff\xfe"
    np.savez(tiny.cache, **arrays)
    return tiny.cache


def manifest_as_cache(tiny):
    return os.path.join(tiny.root, "manifest.json")


CACHE_CASES = [
    ("npy", as_npy, "is a single .npy array"),
    ("text member", text_member_for_an_array, "member 'blur' is not a .npy array"),
    ("huge header", huge_header, "claims shape (100000000, 524288)"),
    ("non-UTF-8 keys", non_utf8_keys, "array 'keys' entry 3 is not UTF-8 text"),
    ("manifest as cache", manifest_as_cache, "is a JSON file (a manifest?)"),
]


@pytest.mark.parametrize("label, make, problem", CACHE_CASES, ids=[c[0] for c in CACHE_CASES])
def test_bad_caches_are_one_line(tiny, rng, label, make, problem):
    small_archive(tiny, rng)
    cache = make(tiny)
    before = tree_digest(tiny.root)
    one_line(cli("apply", "faceset_001", "--library", tiny.root, "--cache", cache), os.path.basename(cache), problem)
    assert tree_digest(tiny.root) == before


def test_unknown_members_are_ignored_and_huge_embeddings_normalised(tiny, rng):
    small_archive(tiny, rng)
    arrays = cache_arrays(tiny)
    arrays["embeddings"] = arrays["embeddings"].astype(np.float32) * np.float32(1e20)  # norms overflow float32
    np.savez(tiny.cache, **arrays)
    with zipfile.ZipFile(tiny.cache, "a") as zf:
        zf.writestr("README.txt", "written by some scanner")
    report = api.apply(tiny.root, "faceset_001", tiny.cache)
    assert sum(len(b.faces) for b in report.result.buckets) == 30


def test_bytes_paths_and_a_nul_path_are_handled(tiny, rng):
    small_archive(tiny, rng)
    arrays = cache_arrays(tiny)
    paths = [p.encode() for p in arrays["paths"]]
    paths[2] = paths[2] + b"\x00evil"
    arrays["paths"] = np.array(paths)
    np.savez(tiny.cache, **arrays)
    report = api.apply(tiny.root, "faceset_001", tiny.cache)
    assert report.result.counts["left_out"] == {"unreadable_photo": 1}


def deep(n=100_000):
    return "[" * n + "]" * n


@pytest.mark.parametrize("which", ["library", "faceset"])
def test_deeply_nested_manifests(tiny, rng, which):
    small_archive(tiny, rng)
    path = os.path.join(tiny.root, *(["manifest.json"] if which == "library" else ["faceset_001", "manifest.json"]))
    with open(path, "w") as fh:
        fh.write(deep())
    for args in (["plan", "faceset_001", "--library", tiny.root, "--cache", tiny.cache],
                 ["apply", "faceset_001", "--library", tiny.root, "--cache", tiny.cache]):
        one_line(cli(*args), "manifest.json", "nested too deeply")
    proc = cli("check", "--library", tiny.root)
    assert "Traceback" not in proc.stderr and proc.returncode in (0, 1)
    if which == "library":
        assert "nested too deeply" in proc.stdout


def test_check_on_an_era_manifest_with_bare_string_faces(split):
    root, _, _ = split
    era = era_entries(root)[0]
    path = os.path.join(root, era["relpath"], "manifest.json")
    data = json.load(open(path))
    data["faces"] = [f["key"] for f in data["faces"]]
    with open(path, "w") as fh:
        json.dump(data, fh)
    proc = cli("check", "--library", root)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "has no plain crop file name" in proc.stdout


def test_demo_into_an_existing_file(tmp_path):
    target = tmp_path / "taken"
    target.write_text("x")
    one_line(cli("demo", str(target)), str(target), "is not a folder")


def test_ui_on_a_busy_port_is_one_line(split):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        one_line(cli("ui", *source(split), "--port", str(port)), f"127.0.0.1:{port}", "--port")


def test_undo_into_a_closed_pipe(split):
    root, _, _ = split
    proc = subprocess.run(f"'{BIN}' undo faceset_001 --library '{root}' | head -c 0", shell=True,
                          capture_output=True, text=True, timeout=120)
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr
    assert not era_entries(root)


# 8. Numeric parameters ----------------------------------------------------------------


@pytest.mark.parametrize("value", ["nan", "inf", "1e308", "-0.5"])
def test_parameters_are_finite_and_in_range(split, value):
    one_line(cli("plan", "faceset_001", *source(split), "--year-weight", value), "--year-weight", "finite number")


# 9. HEIC: plan and apply agree ---------------------------------------------------------


def test_heic_photos_plan_and_apply_alike(tiny, rng):
    from pillow_heif import register_heif_opener  # the [heic] extra, part of [test]

    register_heif_opener()
    c = unit(rng)
    for i in range(24):  # over 16 photos: apply crops them in worker processes
        photo = f"p{i}.heic"
        exif = Image.Exif()
        exif.get_ifd(0x8769)[0x9003] = f"{2010 + i % 2}:06:01 10:00:00"
        os.makedirs(tiny.photos, exist_ok=True)
        Image.new("RGB", (400, 360), (90 + i, 120, 160)).save(os.path.join(tiny.photos, photo), exif=exif)
        tiny.faces.append(Face(f"k{i}", photo, (100, 100, 260, 290), near(rng, c, 0.05)))
    tiny.write_cache()
    tiny.write_library([f"k{i}" for i in range(24)])
    planned = api.plan(tiny.root, "faceset_001", tiny.cache)
    report = api.apply(tiny.root, "faceset_001", tiny.cache)
    assert planned.counts["dated_paths"] == 24 and not planned.counts["left_out"]
    assert not report.result.counts["left_out"]
    assert sum(len(b.faces) for b in report.result.buckets) == 24


# 10. Damaged crops and an empty _thin ----------------------------------------------------


def test_a_damaged_crop_is_found_by_check_and_rendered_again(split):
    root, cache, remap = split
    assert check_library(root).ok
    era = era_entries(root)[0]
    crop = os.path.join(root, era["relpath"], "0000.png")
    size = os.path.getsize(crop)
    with open(crop, "r+b") as fh:  # hard-linked: the cached crop is damaged too
        fh.truncate(size // 2)
    report = check_library(root)
    assert any("crop '0000.png' is damaged" in p for p in report.problems), report.problems
    assert cli("apply", "faceset_001", *source(split)).returncode == 0
    assert check_library(root).ok
    with zipfile.ZipFile(os.path.join(root, era["relpath"], f"{era['name']}_all.fsz")) as zf:
        for name in zf.namelist():
            with zf.open(name) as fh:
                Image.open(fh).load()


def test_an_undo_killed_after_its_commit_leaves_no_empty_thin(split, split_template):
    root, _, _ = split
    # a larger era size than the archive's own leaves some buckets thin
    assert cli("apply", "faceset_001", *source(split), "--anchor-min", "12").returncode == 0
    assert os.path.isdir(os.path.join(root, "_thin"))
    probe = root + "-probe"
    shutil.copytree(root, probe)
    trace = cli("undo", "faceset_001", "--library", probe,
                env={"ERA_SPLIT_FAULT_AT": "999", "ERA_SPLIT_FAULT_TRACE": "1"})
    steps = [line for line in trace.stdout.splitlines() if line.startswith("step ")]
    at = next(int(s.split()[1].rstrip(":")) for s in steps if s.endswith("drop staging"))
    killed = cli("undo", "faceset_001", "--library", root, env={"ERA_SPLIT_FAULT_AT": str(at)})
    assert killed.returncode == -9
    proc = cli("check", "--library", root, "--repair")
    assert proc.returncode == 0, proc.stdout
    assert not os.path.exists(os.path.join(root, "_thin"))


# 11. Network exposure ----------------------------------------------------------------------


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serving_off_loopback_needs_a_login(split):
    one_line(cli("ui", *source(split), "--host", "0.0.0.0", "--port", str(free_port())),
             "--host 0.0.0.0", "--auth-file", "--unsafe-no-auth")


def wait_up(proc, url, deadline=90):
    end = time.monotonic() + deadline
    while True:
        try:
            return urllib.request.urlopen(url, timeout=5)
        except urllib.error.HTTPError as exc:
            return exc
        except OSError:
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < end, "the UI did not come up"
            time.sleep(0.5)


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_off_loopback_the_api_is_behind_the_login(split):
    port = free_port()
    secret = "s3cret-pass-word"
    proc = subprocess.Popen([BIN, "ui", *source(split), "--host", "0.0.0.0", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "ERA_SPLIT_AUTH": f"alice:{secret}"})
    try:
        wait_up(proc, f"http://127.0.0.1:{port}/")
        status, body = get(f"http://127.0.0.1:{port}/config")
        assert status in (401, 403), (status, body[:200])
        assert b"era-split" not in body.lower() or status != 200
    finally:
        proc.terminate()
        out = proc.communicate(timeout=30)[0]
    assert "behind a login" in out and "every address of this machine" in out
    assert secret not in out


def test_file_routes_refuse_what_is_not_served(split):
    root, cache, remap = split
    port = free_port()
    proc = subprocess.Popen([BIN, "ui", *source(split), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_up(proc, f"http://127.0.0.1:{port}/")
        photos = os.path.join(os.path.dirname(root), "photos")
        photo = next(os.path.join(d, f) for d, _, files in sorted(os.walk(photos)) for f in sorted(files))
        for target in ("/etc/passwd", cache, os.path.join(root, ".era_split", "photos.json"),
                       photo,
                       os.path.join(root, "..", "cache", "faces.npz")):
            for route in ("/gradio_api/file=", "/file="):
                status, body = get(f"http://127.0.0.1:{port}{route}{target}")
                assert status != 200 and b"root:" not in body, (route, target, status)
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
