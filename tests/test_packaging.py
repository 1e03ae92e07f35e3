"""No top-level ui/plugin/hooks in site-packages: roop-unleashed has its own ``ui``."""

import importlib.metadata
import importlib.util
import subprocess
import sys


def test_subpackages_are_installed_under_era_split():
    for name in ("era_split.plugin", "era_split.hooks", "era_split.ui"):
        assert importlib.util.find_spec(name) is not None, name
    assert importlib.metadata.version("era-split")


def test_importing_leaves_no_generic_top_level_modules():
    code = (
        "import sys, era_split.plugin.api, era_split.plugin.cli, era_split.hooks, era_split.ui; "
        "bad = [m for m in ('ui', 'plugin', 'hooks') if m in sys.modules]; "
        "assert not bad, bad"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert proc.returncode == 0, proc.stderr
    for name in ("ui", "plugin", "hooks"):
        proc = subprocess.run([sys.executable, "-c", f"import {name}"], capture_output=True, cwd="/")
        assert proc.returncode != 0, f"a top-level {name!r} module is importable"
