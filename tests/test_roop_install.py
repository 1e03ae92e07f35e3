"""roop install/uninstall on a folder shaped like roop-unleashed (no torch needed);
tests/test_roop.py drives the real roop."""

import os
import subprocess
import sys

import pytest

BIN = os.path.join(os.path.dirname(sys.executable), "era-split")


def run(*args):
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=120)


@pytest.fixture
def roop_dir(tmp_path):
    (tmp_path / "roop").mkdir()
    (tmp_path / "run.py").write_text("from roop import core\n")
    (tmp_path / "roop" / "metadata.py").write_text("name = 'roop unleashed'\nversion = '4.4.1'\n")
    return tmp_path


def files(folder):
    return sorted(os.path.relpath(os.path.join(d, f), folder) for d, _, fs in os.walk(folder) for f in fs)


def test_install_adds_two_files_idempotently_and_uninstall_keeps_the_users_data(roop_dir):
    before = files(roop_dir)
    assert run("roop", "install", str(roop_dir)).returncode == 0
    assert files(roop_dir) == sorted(before + ["era_split.json", "run_era_split.py"])
    again = run("roop", "install", str(roop_dir))
    assert again.returncode == 0 and again.stdout.startswith("already installed")
    (roop_dir / "facesets_swap_ready").mkdir()  # the user's library, made by a split
    out = run("roop", "uninstall", str(roop_dir))
    assert out.returncode == 0 and "kept your data" in out.stdout
    assert files(roop_dir) == before and (roop_dir / "facesets_swap_ready").is_dir()


def test_unknown_versions_and_foreign_launchers_are_refused(roop_dir, tmp_path):
    (roop_dir / "roop" / "metadata.py").write_text("version = '4.5.0'\n")
    proc = run("roop", "install", str(roop_dir))
    assert proc.returncode == 2 and "4.5.0 is not a version era-split knows" in proc.stderr
    (roop_dir / "roop" / "metadata.py").write_text("version = '4.4.1'\n")
    (roop_dir / "run_era_split.py").write_text("# the user's own script\n")
    proc = run("roop", "install", str(roop_dir))
    assert proc.returncode == 2 and "is not era-split's launcher" in proc.stderr
    os.remove(roop_dir / "run_era_split.py")
    assert run("roop", "install", str(roop_dir)).returncode == 0
    with open(roop_dir / "run_era_split.py", "a") as fh:
        fh.write("# edited\n")
    proc = run("roop", "uninstall", str(roop_dir))
    assert proc.returncode == 2 and "was changed since era-split wrote it" in proc.stderr
    assert (roop_dir / "run_era_split.py").exists() and (roop_dir / "era_split.json").exists()
    proc = run("roop", "install", str(tmp_path / "nowhere"))
    assert proc.returncode == 2 and "is not a roop-unleashed folder" in proc.stderr


def test_uninstall_keeps_a_config_the_user_edited(roop_dir):
    import json

    assert run("roop", "install", str(roop_dir)).returncode == 0
    path = roop_dir / "era_split.json"
    config = json.loads(path.read_text())
    config["remaps"] = ["D:\\Photos=/mnt/photos"]  # the user's own setting
    path.write_text(json.dumps(config))
    out = run("roop", "uninstall", str(roop_dir))
    assert out.returncode == 0 and "kept your edited settings" in out.stdout
    assert json.loads(path.read_text())["remaps"] == ["D:\\Photos=/mnt/photos"]
    assert not (roop_dir / "run_era_split.py").exists()
    # reformatting alone is no edit: what install wrote goes
    assert run("roop", "install", str(roop_dir)).returncode == 0
    path.write_text(json.dumps(json.loads(path.read_text()), indent=4))
    out = run("roop", "uninstall", str(roop_dir))
    assert out.returncode == 0 and not path.exists()
