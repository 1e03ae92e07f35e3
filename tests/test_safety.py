"""Never lose the host's data: crashes at every write step, full disks, two writers."""

import json
import os
import shutil
import subprocess
import sys

import pytest
from conftest import tree_digest
from era_split.plugin import api
from era_split.plugin.errors import EraSplitError
from era_split.plugin.generate import synth
from era_split.plugin.host import transaction
from era_split.plugin.host.check import check_library
from era_split.plugin.host.paths import parse_remap
from era_split.plugin.split.params import SplitParams

BIN = os.path.join(os.path.dirname(sys.executable), "era-split")
SPEC = synth.SynthSpec(seed=5, target_photos=60, others=1, other_photos=10, size=(320, 240))
NEW_FLAGS = ["--subcluster", "0.3", "--anchor-min", "6", "--pad", "0.4"]
NEW = SplitParams(subcluster=0.3, anchor_min=6, pad=0.4)  # a split with a thin bucket


def state(root):
    """What a user sees of the library: the manifest and every file outside .era_split."""
    with open(os.path.join(root, "manifest.json")) as fh:
        manifest = json.load(fh)
    files = {k: v for k, v in tree_digest(root).items() if not k.startswith(".era_split")}
    return manifest, files


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """An archive whose faceset_001 was split once (old state), and the state that a
    split with NEW parameters gives (new state)."""
    base = tmp_path_factory.mktemp("crash")
    lib = synth.generate(base / "archive", SPEC)
    remaps = [parse_remap(r) for r in lib.remaps]
    api.apply(lib.root, "faceset_001", lib.cache_file, remaps=remaps)
    old = state(lib.root)
    probe = str(base / "probe")
    shutil.copytree(lib.root, probe)
    report = api.apply(probe, "faceset_001", lib.cache_file, NEW, remaps=remaps)
    assert report.result.thin and report.removed, "the sweep needs thin buckets and replaced folders"
    new = state(probe)
    return lib, old, new


def fresh_copy(template_lib, dest):
    shutil.copytree(template_lib.root, dest)
    return str(dest)


def run_apply(root, lib, env=None, extra=()):
    return subprocess.run(
        [BIN, "apply", "faceset_001", "--library", root, "--cache", lib.cache_file,
         "--remap", lib.remaps[0], *NEW_FLAGS, *extra],
        capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=120,
    )


def test_kill_at_every_write_step_leaves_old_or_new(template, tmp_path):
    lib, old, new = template
    seen = {"old": 0, "new": 0}
    step = 0
    while True:
        step += 1
        root = fresh_copy(lib, tmp_path / f"run{step}")
        proc = run_apply(root, lib, {"ERA_SPLIT_FAULT_AT": str(step)})
        if proc.returncode == 0:
            assert state(root) == new
            break
        assert proc.returncode == -9, proc.stderr  # SIGKILL, as a crash or power cut
        report = check_library(root, repair=True)
        assert report.ok, (step, report.problems)
        now = state(root)
        assert now in (old, new), f"mixed state after a kill at step {step}"
        seen["old" if now == old else "new"] += 1
        assert check_library(root).ok
        again = run_apply(root, lib)
        assert again.returncode == 0, again.stderr
        assert state(root) == new
        shutil.rmtree(root)
        assert step < 200
    assert seen["old"] >= 5 and seen["new"] >= 1, seen


def test_interrupted_write_is_repaired_by_the_next_apply(template, tmp_path):
    lib, old, new = template
    root = fresh_copy(lib, tmp_path / "lib")
    trace = run_apply(root, lib, {"ERA_SPLIT_FAULT_AT": "1000", "ERA_SPLIT_FAULT_TRACE": "1"})
    steps = [line for line in trace.stdout.splitlines() if line.startswith("step ")]
    place = next(i for i, line in enumerate(steps, 1) if ": place " in line)
    root = fresh_copy(lib, tmp_path / "lib2")
    assert run_apply(root, lib, {"ERA_SPLIT_FAULT_AT": str(place + 1)}).returncode == -9
    report = check_library(root)
    assert not report.ok and any("interrupted write" in p for p in report.problems)
    assert run_apply(root, lib).returncode == 0  # recovers first, then writes
    assert state(root) == new and check_library(root).ok


@pytest.mark.parametrize("fault", ["enospc", "erofs"])
def test_full_or_read_only_disk_leaves_the_library_as_it_was(template, tmp_path, monkeypatch, fault):
    lib, old, new = template
    remaps = [parse_remap(r) for r in lib.remaps]
    step = 0
    while True:
        step += 1
        root = fresh_copy(lib, tmp_path / f"{fault}{step}")
        monkeypatch.setenv("ERA_SPLIT_FAULT", fault)
        monkeypatch.setenv("ERA_SPLIT_FAULT_AT", str(step))
        transaction.reset_faults()
        try:
            api.apply(root, "faceset_001", lib.cache_file, NEW, remaps=remaps)
        except EraSplitError as exc:
            assert "write failed, library left as it was" in str(exc)
            assert ("No space left" if fault == "enospc" else "Read-only") in str(exc)
            assert state(root) == old, f"step {step}"
            assert check_library(root).ok
        else:
            assert state(root) == new
            break
        finally:
            monkeypatch.delenv("ERA_SPLIT_FAULT_AT")
        assert step < 200
    assert step > 5


def test_two_concurrent_applies(template, tmp_path):
    lib, _, _ = template
    root = fresh_copy(lib, tmp_path / "lib")
    common = ["--library", root, "--cache", lib.cache_file, "--remap", lib.remaps[0]]
    procs = [
        subprocess.Popen([BIN, "apply", name, *common, *flags], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for name, flags in (("faceset_001", NEW_FLAGS), ("faceset_002", []), ("faceset_001", []))
    ]
    for p in procs:
        out, err = p.communicate(timeout=180)
        assert p.returncode == 0, err
    manifest = json.load(open(os.path.join(root, "manifest.json")))
    names = [e["name"] for e in manifest["facesets"] + manifest.get("thin_eras", [])]
    assert len(names) == len(set(names))
    entries = manifest["facesets"] + manifest.get("thin_eras", [])
    parents = {e["era_split"]["parent"] for e in entries if "era_split" in e}
    assert parents == {"faceset_001", "faceset_002"}
    assert check_library(root).ok


def test_lock_holder_makes_a_second_writer_wait_then_fail(template, tmp_path):
    from era_split.plugin.host.lock import library_lock
    from era_split.plugin.host.writer import apply_split, undo_split

    lib, _, _ = template
    root = fresh_copy(lib, tmp_path / "lib")
    before = state(root)
    told = []
    with library_lock(os.path.join(root, ".era_split")):
        with pytest.raises(EraSplitError, match="another era-split is writing this library"):
            undo_split(root, "faceset_001", lock_timeout=0.3)
        with pytest.raises(EraSplitError, match="gave up after 0.3 s"):
            apply_split(root, api.plan(root, "faceset_001", lib.cache_file,
                                       remaps=[parse_remap(r) for r in lib.remaps]),
                        lock_timeout=0.3, progress=lambda *a: told.append(a[0]))
    assert told == ["waiting for another writer of this library"]
    assert state(root) == before


def test_dead_lock_holder_does_not_block(template, tmp_path):
    lib, _, new = template
    root = fresh_copy(lib, tmp_path / "lib")
    code = (
        "import os, signal; from era_split.plugin.host.lock import library_lock\n"
        f"with library_lock({os.path.join(root, '.era_split')!r}):\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == -9
    assert run_apply(root, lib).returncode == 0
    assert state(root) == new


def test_check_finds_damage(template, tmp_path):
    lib, old, _ = template
    root = fresh_copy(lib, tmp_path / "lib")
    assert check_library(root).ok
    manifest = old[0]
    era = next(e for e in manifest["facesets"] if "era_split" in e)
    bundle = os.path.join(root, era["relpath"], f"{era['name']}_all.fsz")
    with open(bundle, "r+b") as fh:
        fh.truncate(100)
    os.makedirs(os.path.join(root, ".era_split", "staging-leftover"))
    report = check_library(root)
    assert not report.ok
    assert any(era["name"] + "_all.fsz: not a readable zip" in p for p in report.problems)
    assert any("leftover staging folder" in p for p in report.problems)
    proc = subprocess.run([BIN, "check", "--library", root], capture_output=True, text=True)
    assert proc.returncode == 1 and "NOT OK" in proc.stdout
    shutil.rmtree(os.path.join(root, era["relpath"]))
    assert any("is missing" in p for p in check_library(root).problems)
