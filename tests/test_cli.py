"""The command line end to end, as a user runs it."""

import json
import os
import subprocess
import sys

import pytest

BIN = os.path.join(os.path.dirname(sys.executable), "era-split")


def run(*args, check=True):
    proc = subprocess.run([BIN, *args], capture_output=True, text=True, timeout=300)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def source_args(lib):
    return ["--library", lib.root, "--cache", lib.cache_file, "--remap", lib.remaps[0]]


def test_plan_json_reports_the_seeds_numbers(synth_lib):
    out = json.loads(run("plan", "faceset_001", *source_args(synth_lib), "--json").stdout)
    assert out["faceset"] == "faceset_001"
    assert set(out["counts"]) >= {"cache", "candidates", "recovered", "gated", "survivors",
                                  "subclusters", "paths", "dated_paths", "left_out"}
    assert out["params"]["anchor_min"] >= 2
    cal = out["calibration"]  # the thresholds as used, derived from the faceset's spread
    assert cal["given"] == [] and 0.6 <= cal["scale"] <= 1.8
    assert out["params"]["subcluster"] == cal["values"]["subcluster"] == round(0.35 * cal["scale"], 4)
    for b in out["buckets"]:
        assert set(b) >= {"name", "kind", "reason", "faces", "keys", "dom_year", "span", "anchor"}
        assert b["faces"] == len(b["keys"]) and b["kind"] in ("era", "thin")
    assert not os.path.exists(os.path.join(synth_lib.root, out["buckets"][0]["name"]))


def test_flags_reach_the_method(synth_lib):
    out = json.loads(run("plan", "faceset_001", *source_args(synth_lib), "--json",
                         "--anchor-min", "7", "--subcluster", "0.3", "--min-face", "120",
                         "--top", "5", "--undated-fragments", "attach").stdout)
    p = out["params"]
    assert (p["anchor_min"], p["subcluster"], p["min_face"], p["top"]) == (7, 0.3, 120, 5)
    assert p["undated_fragments"] == "attach" and not out["anchor_min_scaled"]


def test_roots_filter_recorded_paths(synth_lib):
    out = json.loads(run("plan", "faceset_001", *source_args(synth_lib), "--json",
                         "--roots", synth_lib.recorded_root + "\\2010").stdout)
    all_ = json.loads(run("plan", "faceset_001", *source_args(synth_lib), "--json").stdout)
    assert 0 < out["counts"]["candidates"] < all_["counts"]["candidates"]


def test_apply_then_undo(synth_lib):
    proc = run("apply", "faceset_001", *source_args(synth_lib))
    assert "wrote" in proc.stdout and "era " in proc.stdout
    manifest = json.load(open(os.path.join(synth_lib.root, "manifest.json")))
    assert any("era_split" in e for e in manifest["facesets"])
    proc = run("undo", "faceset_001", "--library", synth_lib.root)
    assert "removed" in proc.stdout
    manifest = json.load(open(os.path.join(synth_lib.root, "manifest.json")))
    assert not any("era_split" in e for e in manifest["facesets"])


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--cache", "/nonexistent/c.npz"], "c.npz: embedding cache not found"),
        (["--remap", "nothing"], "--remap needs OLD=NEW"),
        (["--recovery", "5"], "--recovery must be a finite number in [0, 2], got 5.0"),
    ],
)
def test_errors_are_one_line_without_traceback(synth_lib, args, needle):
    base = ["plan", "faceset_001", "--library", synth_lib.root, "--cache", synth_lib.cache_file]
    proc = run(*base, *args, check=False)
    assert proc.returncode == 2
    assert needle in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_unknown_faceset_and_broken_manifest(synth_lib):
    proc = run("plan", "faceset_999", *source_args(synth_lib), check=False)
    assert proc.returncode == 2 and "no faceset named 'faceset_999'" in proc.stderr
    path = os.path.join(synth_lib.root, "faceset_001", "manifest.json")
    with open(path, "w") as fh:
        fh.write('{"faces": [')
    proc = run("plan", "faceset_001", *source_args(synth_lib), check=False)
    assert proc.returncode == 2 and f"{path}: is not valid JSON" in proc.stderr


def test_plan_does_not_import_gradio(synth_lib):
    code = (
        "import sys; from era_split.ui.cli import main; "
        f"main({['plan', 'faceset_001', *source_args(synth_lib)]!r}); "
        "assert 'gradio' not in sys.modules, 'gradio imported'"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_demo_command(tmp_path):
    proc = run("demo", str(tmp_path / "demo"))
    assert "faceset_001_" in proc.stdout and "wrote" in proc.stdout
    lib = tmp_path / "demo" / "facesets_swap_ready"
    manifest = json.load(open(lib / "manifest.json"))
    eras = [e for e in manifest["facesets"] if "era_split" in e]
    assert len(eras) >= 3
    for e in eras:
        assert (lib / e["relpath"] / f"{e['name']}_all.fsz").is_file()
    import zipfile

    with zipfile.ZipFile(lib / "faceset_001" / "faceset_001_all.fsz") as zf:  # the host's own bundle
        names = zf.namelist()
    assert names and all(n.endswith(".png") for n in names)
    # the printed commands run when pasted, from any folder, with no venv on PATH
    printed = [line.strip() for line in proc.stdout.splitlines() if line.strip().startswith(("/", "'/"))]
    plan_cmd = next(c for c in printed if " plan " in c)
    apply_cmd = next(c for c in printed if " apply " in c)
    assert "same options" not in proc.stdout and " ui " in "\n".join(printed)
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    env["PATH"] = "/usr/bin:/bin"
    for cmd in (plan_cmd, apply_cmd + " --json"):
        pasted = subprocess.run(cmd, shell=True, capture_output=True, text=True, cwd="/", env=env, timeout=300)
        assert pasted.returncode == 0, (cmd, pasted.stderr)
    assert json.loads(pasted.stdout)["faceset"] == "faceset_001"
    # running the demo again just works: the demo is reused and split again
    before = json.load(open(lib / "manifest.json"))
    again = run("demo", str(tmp_path / "demo"))
    assert "reusing the demo library" in again.stderr
    assert json.load(open(lib / "manifest.json")) == before
    # a missing part is rebuilt
    import shutil

    shutil.rmtree(tmp_path / "demo" / "photos")
    rebuilt = run("demo", str(tmp_path / "demo"))
    assert "incomplete" in rebuilt.stderr and (tmp_path / "demo" / "photos").is_dir()
    assert json.load(open(lib / "manifest.json")) == before


def test_demo_refuses_a_library_it_did_not_write(tmp_path):
    (tmp_path / "mine" / "facesets_swap_ready").mkdir(parents=True)
    (tmp_path / "mine" / "facesets_swap_ready" / "manifest.json").write_text('{"facesets": []}')
    proc = run("demo", str(tmp_path / "mine"), check=False)
    assert proc.returncode == 2 and "that the demo did not write" in proc.stderr
    assert (tmp_path / "mine" / "facesets_swap_ready" / "manifest.json").read_text() == '{"facesets": []}'


def test_several_facesets_and_all_in_one_process(synth_lib):
    proc = run("plan", "faceset_001", "faceset_002", *source_args(synth_lib))
    lines = proc.stdout.splitlines()
    assert lines[0].split()[:7] == ["faceset", "eras", "years", "faces", "in", "eras", "left"]
    assert lines[1].startswith("faceset_001") and lines[2].startswith("faceset_002")
    plan = json.loads(run("plan", "faceset_001", *source_args(synth_lib), "--json").stdout)
    years = [b["span"] for b in plan["buckets"] if b["kind"] == "era"]
    assert f"{min(years)[0]}-" in lines[1]  # the eras' years are in the table
    assert "2 done, 0 failed" in proc.stdout
    assert proc.stderr.count("[1/2] faceset_001") == 1 and proc.stderr.count("[2/2] faceset_002") == 1
    out = json.loads(run("apply", "--all", *source_args(synth_lib), "--json").stdout)
    assert [r["faceset"] for r in out] == ["faceset_001", "faceset_002"]
    assert all(r["written"] for r in out)
    manifest = json.load(open(os.path.join(synth_lib.root, "manifest.json")))
    parents = {e["era_split"]["parent"] for e in manifest["facesets"] if "era_split" in e}
    assert parents == {"faceset_001", "faceset_002"}
    # --all never re-splits an era faceset; one failure does not stop the rest
    again = run("plan", "--all", *source_args(synth_lib), "--json")
    assert [r["faceset"] for r in json.loads(again.stdout)] == ["faceset_001", "faceset_002"]
    mixed = run("plan", "faceset_001", "nope", *source_args(synth_lib), check=False)
    assert mixed.returncode == 2 and "1 done, 1 failed" in mixed.stdout and "no faceset named 'nope'" in mixed.stdout


def test_a_mistyped_flag_is_named_with_the_nearest_one(synth_lib):
    proc = run("plan", "faceset_001", "--libary", synth_lib.root, "--cache", synth_lib.cache_file, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "era-split plan: error: unknown option --libary (did you mean --library?); see era-split plan --help"]
    # a flag another command has is still unknown here, and never suggested as itself
    proc = run("validate", "x", "--repair", check=False)
    assert proc.returncode == 2 and "unknown option --repair" in proc.stderr
    assert "did you mean --repair" not in proc.stderr and "see era-split validate --help" in proc.stderr


def test_ui_command_serves_on_loopback(synth_lib):
    import socket
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([BIN, "ui", *source_args(synth_lib), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as resp:
                    assert resp.status == 200
                    assert "Era Split" in resp.read().decode()
                break
            except OSError:
                assert proc.poll() is None, proc.stdout.read()
                assert time.monotonic() < deadline, "the UI did not come up"
                time.sleep(0.5)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_ui_command_refuses_a_bad_library(tmp_path):
    proc = run("ui", "--library", str(tmp_path / "nope"), "--cache", "x.npz", check=False)
    assert proc.returncode == 2 and "library folder not found" in proc.stderr


def test_version_and_the_scan_eta_waits_for_a_measured_pace():
    import io

    from era_split.plugin.faces.scan import ScanProgress

    proc = run("--version")
    assert proc.returncode == 0 and proc.stdout.startswith("era-split ")
    out = io.StringIO()
    progress = ScanProgress(out)
    progress(1, 1000, 1)  # the first result: it includes loading the models
    assert "eta_s=-" in out.getvalue()  # no guess from it
    progress.last = 0
    for done in range(2, 10):
        progress(done, 1000, done)
        progress.last = 0
    assert "eta_s=-" not in out.getvalue().splitlines()[-1]
