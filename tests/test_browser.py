"""The four user paths, clicked through in real headless Chromium (Debian's
``chromium`` driven by Playwright). Screenshots go to a temp folder, or to
``$ERA_SPLIT_SCREENSHOTS`` when set: nothing lands in the clone."""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile

import pytest
from era_split.hooks.hookspecs import hookimpl
from era_split.hooks.manager import get_plugin_manager
from era_split.hooks.types import HostContext, UiTab

CHROMIUM = os.environ.get("ERA_SPLIT_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run"]
SHOTS = os.environ.get("ERA_SPLIT_SCREENSHOTS") or os.path.join(tempfile.gettempdir(), "era-split-screenshots")
BIN = os.path.join(os.path.dirname(sys.executable), "era-split")
REQUIRED = os.environ.get("ERA_SPLIT_REQUIRE_BROWSER") == "1"


def _need(ok: bool, why: str) -> None:
    if not ok:
        if REQUIRED:
            pytest.fail(why)
        pytest.skip(why)


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _need(False, "playwright is not installed")
    _need(os.path.exists(CHROMIUM), f"no chromium at {CHROMIUM}")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        b.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def serve():
    apps = []

    def start(app):
        port = free_port()
        app.queue().launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
        apps.append(app)
        return f"http://127.0.0.1:{port}"

    yield start
    for app in apps:
        app.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    pg.set_default_timeout(60_000)
    yield pg
    context.close()


def shot(page, name):
    os.makedirs(SHOTS, exist_ok=True)
    page.screenshot(path=os.path.join(SHOTS, f"{name}.png"), full_page=True)


def pick(page, elem_id, option):
    page.locator(f"#{elem_id} input").first.click()
    page.get_by_role("option", name=option, exact=True).click()


def host_app(lib, pm=None):
    from era_split.ui.host_app import build_host_app

    return build_host_app(HostContext(lib.root, lib.cache_file, tuple(lib.remaps)), pm)


def test_preview_apply_then_pick_the_era_when_swapping(synth_lib, serve, page):
    url = serve(host_app(synth_lib))
    page.goto(url)
    page.get_by_role("tab", name="Era split").click()
    page.wait_for_selector("#era-status :text('not split yet')")
    page.get_by_role("button", name="Preview").click()
    page.wait_for_selector("#era-timeline .era-timeline-row")
    summary = page.locator("#era-summary").inner_text()
    assert "faceset_001" in summary and "eras" in summary and "Left out:" in summary
    page.locator("#era-summary summary").click()  # the method's figures, folded away by default
    summary = page.locator("#era-summary").inner_text()
    assert "thresholds: recovery" in summary and "calibrated: the curated faces' spread is" in summary
    table = page.locator("#era-buckets").inner_text()
    assert "faceset_001_20" in table
    # oldest first everywhere: the cards, the table (gradio versions render its
    # cells differently, so compare first positions) and the timeline
    cards = [c.get_attribute("data-bucket") for c in page.locator("#era-gallery .era-card").all()]
    years = [int(re.search(r"faceset_001_(\d{4})", n).group(1)) for n in cards]
    assert len(cards) >= 3 and years == sorted(years), cards
    assert [table.index(n) for n in cards] == sorted(table.index(n) for n in cards)
    rows = [r.get_attribute("data-bucket") for r in page.locator("#era-timeline .era-timeline-row").all()]
    assert [r for r in rows if r in cards] == cards
    assert page.locator("#era-gallery img").count() >= 3
    # nothing in the crops view scrolls inside itself or cuts its caption
    clipped = page.evaluate("""() => [...document.querySelectorAll('#era-gallery *')]
        .filter(e => e.scrollHeight > e.clientHeight + 1 && getComputedStyle(e).overflowY !== 'visible'
                  || e.scrollWidth > e.clientWidth + 1 && getComputedStyle(e).overflowX !== 'visible').length""")
    assert clipped == 0
    assert "2015-2015" not in table and "–2015 " not in table
    # preview wrote nothing
    manifest = json.load(open(os.path.join(synth_lib.root, "manifest.json")))
    assert not any("era_split" in e for e in manifest["facesets"])
    # the thin fragments sit in their own collapsed section
    thin = page.locator("#era-thin-section")
    assert thin.count() == 1
    thin.get_by_text("Thin fragments (kept apart in _thin/)").click()
    page.wait_for_selector("#era-thin")
    shot(page, "era-preview")

    page.get_by_role("button", name="Apply").click()
    page.wait_for_selector("#era-summary :text('Applied')")
    page.wait_for_selector("#era-status :text('already split')")
    manifest = json.load(open(os.path.join(synth_lib.root, "manifest.json")))
    entries = sorted((e for e in manifest["facesets"] if "era_split" in e and e["era_split"]["span"]),
                     key=lambda e: e["era_split"]["span"])
    eras = [e["name"] for e in entries]
    assert eras

    page.get_by_role("tab", name="Face swap").click()
    pick(page, "swap-source", "faceset_001")
    page.wait_for_selector(f"#swap-target label:has-text('{eras[0]}')")
    labels = page.locator("#swap-target label").all_inner_texts()
    shown = [next(n for n in eras if n in label) for label in labels[1:] if any(n in label for n in eras)]
    assert shown == eras  # the picker too lists eras oldest first
    assert page.locator("#swap-eras img").count() == len(manifest["facesets"]) - 2 or \
        page.locator("#swap-eras img").count() >= len(eras)
    assert "_top" in page.locator("#swap-note").inner_text()
    page.locator(f"#swap-target label:has-text('{eras[-1]}')").click()
    load = page.locator("#swap-load textarea, #swap-load input").first
    page.wait_for_function(
        "([sel, name]) => document.querySelector(sel).value.endsWith(name)",
        arg=["#swap-load textarea, #swap-load input", f"{eras[-1]}_top8.fsz"],
    )
    assert load.input_value().endswith(os.path.join(eras[-1], f"{eras[-1]}_top8.fsz"))
    page.locator("#swap-target label:has-text('All eras')").click()
    page.wait_for_function(
        "([sel, name]) => document.querySelector(sel).value.endsWith(name)",
        arg=["#swap-load textarea, #swap-load input", "faceset_001_all.fsz"],
    )
    shot(page, "face-swap-target-era")


def test_undo_asks_first_and_says_what_it_removes(synth_lib, serve, page):
    from era_split.plugin import api
    from era_split.plugin.host.paths import parse_remap

    report = api.apply(synth_lib.root, "faceset_001", synth_lib.cache_file,
                       remaps=[parse_remap(r) for r in synth_lib.remaps])
    before = json.load(open(os.path.join(synth_lib.root, "manifest.json")))
    page.goto(serve(host_app(synth_lib)))
    page.get_by_role("tab", name="Era split").click()
    # the split shows on selection, before any preview
    status = page.locator("#era-status")
    page.wait_for_selector("#era-status :text('already split')")
    assert f"{len(report.result.eras)} eras" in status.inner_text()
    page.get_by_role("button", name="Undo split").click()
    page.wait_for_selector("#era-undo-text :text('Undo the split of')")
    ask = page.locator("#era-undo-text").inner_text()
    assert all(b.name in ask for b in report.result.eras) and "is kept" in ask
    page.locator("#era-undo-no").click()
    page.wait_for_selector("#era-undo-yes", state="hidden")
    assert json.load(open(os.path.join(synth_lib.root, "manifest.json"))) == before  # nothing removed
    page.get_by_role("button", name="Undo split").click()
    page.locator("#era-undo-yes").click()
    page.wait_for_selector("#era-summary :text('Undone')")
    page.wait_for_selector("#era-status :text('not split yet')")
    manifest = json.load(open(os.path.join(synth_lib.root, "manifest.json")))
    assert not any("era_split" in e for e in manifest["facesets"])
    shot(page, "undo-confirm")

    # the host's Face swap action asks too
    api.apply(synth_lib.root, "faceset_001", synth_lib.cache_file, remaps=[parse_remap(r) for r in synth_lib.remaps])
    page.get_by_role("tab", name="Face swap").click()
    pick(page, "swap-source", "faceset_001")
    page.locator("#swap-actions input").first.click()
    page.get_by_role("option", name="Undo era split", exact=True).click()
    page.get_by_role("button", name="Run action").click()
    page.wait_for_selector("#swap-confirm-text :text('Undo the split of')")
    assert any("era_split" in e for e in json.load(open(os.path.join(synth_lib.root, "manifest.json")))["facesets"])
    page.locator("#swap-confirm-yes").click()
    page.wait_for_selector("#swap-action-result :text('removed')")
    manifest = json.load(open(os.path.join(synth_lib.root, "manifest.json")))
    assert not any("era_split" in e for e in manifest["facesets"])


def test_split_by_era_action_in_the_face_swap_tab(synth_lib, serve, page):
    page.goto(serve(host_app(synth_lib)))
    page.get_by_role("tab", name="Face swap").click()
    pick(page, "swap-source", "faceset_002")
    page.wait_for_function("() => document.querySelector('#swap-actions input').value === 'Split by era'")
    page.get_by_role("button", name="Run action").click()
    page.wait_for_selector("#swap-action-result :text('Split by era')")
    result = page.locator("#swap-action-result").inner_text()
    assert "wrote" in result and "left out:" in result, result
    manifest = json.load(open(os.path.join(synth_lib.root, "manifest.json")))
    owned = [e for e in manifest["facesets"] + manifest.get("thin_eras", []) if "era_split" in e]
    assert owned and all(e["era_split"]["parent"] == "faceset_002" for e in owned)
    shot(page, "face-swap-action")


def test_batch_split_of_a_two_faceset_library(synth_lib, serve, page):
    page.goto(serve(host_app(synth_lib)))
    page.get_by_role("tab", name="Batch").click()
    page.get_by_role("button", name="Run batch").click()
    page.wait_for_selector("#batch-confirm-text :text('Split 2 facesets by era')")
    assert "faceset_001, faceset_002" in page.locator("#batch-confirm-text").inner_text()
    page.locator("#batch-confirm-no").click()
    page.wait_for_selector("#batch-confirm-yes", state="hidden")
    manifest = json.load(open(os.path.join(synth_lib.root, "manifest.json")))
    assert not any("era_split" in e for e in manifest["facesets"])  # cancelled: nothing written
    page.get_by_role("button", name="Run batch").click()
    page.locator("#batch-confirm-yes").click()
    page.wait_for_selector("#batch-summary :text('2 done, 0 failed')")
    page.wait_for_function(  # the table is filled by the step after the summary
        "() => (document.querySelector('#batch-results') || {}).innerText?.includes('faceset_002')")
    text = page.locator("#batch-results").inner_text()
    assert "faceset_001" in text and "faceset_002" in text
    manifest = json.load(open(os.path.join(synth_lib.root, "manifest.json")))
    parents = {e["era_split"]["parent"] for e in manifest["facesets"] + manifest.get("thin_eras", [])
               if "era_split" in e}
    assert parents == {"faceset_001", "faceset_002"}
    shot(page, "batch")


def test_bad_parameter_and_broken_plugin_show_errors_not_tracebacks(synth_lib, serve, page):
    class Broken:
        @hookimpl
        def register_tabs(self):
            def build():
                raise RuntimeError("this plugin is broken")
            return [UiTab("Broken plugin", build)]

    pm = get_plugin_manager()
    pm.register(Broken(), name="broken")
    try:
        page.goto(serve(host_app(synth_lib, pm)))
    finally:
        pm.unregister(name="broken")
    page.get_by_role("tab", name="Broken plugin").click()
    page.wait_for_selector("text=this plugin is broken")
    page.get_by_role("tab", name="Era split").click()
    page.locator("#era-settings").get_by_text("Settings (they start from").click()
    box = page.locator("#era-param-recovery textarea, #era-param-recovery input").first
    for _ in range(20):  # the field may still be settling right after the accordion opens
        box.fill("9")
        box.press("Tab")
        page.wait_for_timeout(250)
        if box.input_value() == "9":
            break
    page.get_by_role("button", name="Preview").click()
    page.wait_for_selector("text=Recovery radius: must be a finite number in [0, 2], got 9")
    shot(page, "errors")


def cli_args(lib):
    return ["--library", lib.root, "--cache", lib.cache_file, *[f"--remap={r}" for r in lib.remaps]]


def test_a_cli_split_s_settings_are_where_the_tab_starts(synth_lib, serve, page):
    """apply --min-blur 0 --era-years 3 on the command line; the tab then shows
    those settings, previews that very split, and says when they are changed."""
    out = subprocess.run([BIN, "apply", "faceset_001", *cli_args(synth_lib), "--min-blur", "0", "--era-years", "3",
                          "--json"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    applied = sorted(b["name"] for b in json.loads(out.stdout)["buckets"] if b["kind"] == "era")
    page.goto(serve(host_app(synth_lib)))  # it opens on the Era split tab
    page.wait_for_selector("#era-status :text('already split')")
    status = page.locator("#era-status").inner_text()
    assert "those of the current split" in status and "Min sharpness 0" in status, status
    assert "Era half-width (years) 3" in status
    page.locator("#era-settings").get_by_text("Settings (they start from").click()
    assert page.locator("#era-param-min_blur textarea, #era-param-min_blur input").first.input_value() == "0"
    assert page.locator("#era-param-era_years input").first.input_value() == "3"
    blank = page.locator("#era-param-recovery textarea, #era-param-recovery input").first
    assert blank.input_value() == ""  # worked out per faceset: blank, never a 0
    page.get_by_role("button", name="Preview").click()
    page.wait_for_selector("#era-summary :text('Settings: those of the current split')")
    page.wait_for_selector("#era-timeline .era-timeline-row")
    rows = [r.get_attribute("data-bucket") for r in page.locator("#era-timeline .era-timeline-row").all()]
    assert sorted(r for r in rows if r in applied) == applied  # the same split as the CLI's
    years = page.locator("#era-param-era_years input").first
    years.fill("2")
    years.press("Tab")
    page.get_by_role("button", name="Preview").click()
    page.wait_for_selector("#era-summary :text('changed from the current split')")
    # the command line too starts from them, and says so
    plan = subprocess.run([BIN, "plan", "faceset_001", *cli_args(synth_lib)], capture_output=True, text=True,
                          timeout=300)
    assert "settings: those of the current split (--era-years 3 --min-blur 0)" in plan.stdout, plan.stdout
    shot(page, "settings-from-the-cli")


def test_an_undo_in_the_era_tab_refreshes_the_face_swap_picker(synth_lib, serve, page):
    from era_split.plugin import api
    from era_split.plugin.host.paths import parse_remap

    report = api.apply(synth_lib.root, "faceset_001", synth_lib.cache_file,
                       remaps=[parse_remap(r) for r in synth_lib.remaps])
    page.goto(serve(host_app(synth_lib)))
    page.get_by_role("tab", name="Face swap").click()
    pick(page, "swap-source", "faceset_001")
    page.wait_for_function("() => document.querySelectorAll('#swap-target label').length > 2")
    eras = [t for t in page.locator("#swap-target label").all_inner_texts() if not t.startswith("Auto")]
    assert len(eras) == 1 + len(report.result.eras)
    page.get_by_role("tab", name="Era split").click()
    page.get_by_role("button", name="Undo split").click()
    page.locator("#era-undo-yes").click()
    page.wait_for_selector("#era-summary :text('Undone')")
    page.get_by_role("tab", name="Face swap").click()
    page.wait_for_function("() => document.querySelectorAll('#swap-target label').length === 1")
    assert page.locator("#swap-target label").first.inner_text().startswith("All eras")


def test_batch_says_no_era_and_keeps_each_faceset_s_settings(synth_lib, serve, page):
    """faceset_002 was split with an era size nothing reaches: batch splits it again
    with that setting, and says it got no era instead of "ok"."""
    out = subprocess.run([BIN, "apply", "faceset_002", *cli_args(synth_lib), "--anchor-min", "5000", "--force"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and "no era" in out.stdout, out.stdout + out.stderr
    page.goto(serve(host_app(synth_lib)))
    page.get_by_role("tab", name="Batch").click()
    page.get_by_role("button", name="Run batch").click()
    page.wait_for_selector("#batch-confirm-text :text('each with the settings it was split with')")
    page.locator("#batch-confirm-yes").click()
    page.wait_for_selector("#batch-summary :text('1 no era')")
    # gradio 5.9.1 also renders a hidden measuring copy first: wait for the rows after the last header
    page.wait_for_function(
        "() => { const t = (document.querySelector('#batch-results') || {}).innerText || '';"
        " return t.slice(t.lastIndexOf('message')).includes('faceset_002'); }")
    table = page.locator("#batch-results").inner_text()
    table = table[table.rindex("message"):]
    assert table.count("no era") == 1 and "faceset_002: wrote 0 eras" in table, table
    assert table.index("no era") > table.index("faceset_002") > table.index("ok"), table
    assert "--anchor-min 5000" in table, table  # batch split it with its own settings
