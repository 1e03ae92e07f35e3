"""No top-level ui/plugin/hooks in site-packages: roop-unleashed has its own ``ui``."""

import importlib.metadata
import importlib.util
import os
import subprocess
import sys


def test_subpackages_are_installed_under_era_split():
    for name in ("era_split.plugin", "era_split.hooks", "era_split.ui"):
        assert importlib.util.find_spec(name) is not None, name
    assert importlib.metadata.version("era-split")


def test_importing_leaves_no_generic_top_level_modules():
    code = (
        "import sys, era_split.plugin.api, era_split.ui.cli, era_split.hooks, era_split.ui; "
        "bad = [m for m in ('ui', 'plugin', 'hooks') if m in sys.modules]; "
        "assert not bad, bad"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert proc.returncode == 0, proc.stderr
    for name in ("ui", "plugin", "hooks"):
        proc = subprocess.run([sys.executable, "-c", f"import {name}"], capture_output=True, cwd="/")
        assert proc.returncode != 0, f"a top-level {name!r} module is importable"


def test_skipped_browser_tests_are_said_loudly(tmp_path):
    """Without a browser the test command still passes, but its last lines say
    that the UI was not tested, and how to fix that."""
    import subprocess
    import sys

    here = os.path.dirname(os.path.abspath(__file__))
    env = {k: v for k, v in os.environ.items() if k != "ERA_SPLIT_REQUIRE_BROWSER"}
    env["ERA_SPLIT_CHROMIUM"] = str(tmp_path / "no-chromium")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", os.path.join(here, "test_browser.py"),
         "-k", "batch"], capture_output=True, text=True, env=env, timeout=300, cwd=here)
    assert proc.returncode == 0, proc.stdout
    tail = proc.stdout.strip().splitlines()[-6:]
    assert any("BROWSER TESTS NOT RUN" in line for line in tail), proc.stdout
    assert any("apt-get install chromium" in line for line in tail), proc.stdout


def test_core_hooks_and_ui_never_import_the_face_models():
    """insightface, onnxruntime and Ray load only when a scan, import or validation runs."""
    code = (
        "import sys\n"
        "import era_split.ui.cli, era_split.plugin.api, era_split.hooks.impl, era_split.ui.host_app\n"
        "bad = [m for m in ('insightface', 'onnxruntime', 'ray', 'cv2') if m in sys.modules]\n"
        "print(bad); sys.exit(1 if bad else 0)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_hosts_files_stand_below_the_method():
    """Data flows one way: host files -> method -> results -> writer. The writer and
    the rest of ``host/`` read the result types from ``results``, never ``split/``,
    and ``results`` stands below both."""
    code = (
        "import sys, pkgutil, importlib, era_split.plugin.host as host\n"
        "for m in pkgutil.iter_modules(host.__path__):\n"
        "    if m.name != 'cropworker':\n"
        "        importlib.import_module('era_split.plugin.host.' + m.name)\n"
        "import era_split.plugin.results\n"
        "bad = [m for m in sys.modules if m.startswith('era_split.plugin.split')]\n"
        "print(bad); sys.exit(1 if bad else 0)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
