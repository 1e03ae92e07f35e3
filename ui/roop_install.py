"""``era-split roop install|uninstall``: wire Era Split into a roop-unleashed
install without editing any of roop's files.

Install adds two files to the roop folder: a launcher, ``run_era_split.py``
(start roop with it instead of ``run.py``: it wraps roop's Face Swap tab with the
era panel and adds the Era split tab, then runs roop as usual), and
``era_split.json`` (where the library, the embedding cache and the models are).
Uninstall removes exactly those two files, after checking that they are still
the ones install wrote: an edited launcher is refused, an edited config is kept
(it holds the user's own settings) and said so. The library and the cache are
the user's data and stay.
"""

from __future__ import annotations

import hashlib
import json
import os
import re

from ..plugin.errors import EraSplitError
from ..plugin.host.fsutil import atomic_write_bytes, dump_json, open_regular

KNOWN_VERSIONS = ("4.4.1",)
LAUNCHER = "run_era_split.py"
CONFIG = "era_split.json"
MARK = "era-split roop install"
LAUNCHER_TEXT = f'''#!/usr/bin/env python3
# Written by `{MARK}`; `era-split roop uninstall` removes it. Start roop-unleashed
# with this file instead of run.py to get the Era split panel and tab.
import os
import sys

from era_split.ui.roop_adapter import launch

if __name__ == "__main__":
    launch(os.path.dirname(os.path.abspath(__file__)), sys.argv[1:])
'''


def roop_version(roop_dir: str) -> str:
    """roop-unleashed's version, from ``roop/metadata.py``; refuse what is not roop."""
    meta = os.path.join(roop_dir, "roop", "metadata.py")
    if not os.path.isfile(os.path.join(roop_dir, "run.py")) or not os.path.isfile(meta):
        raise EraSplitError(roop_dir, "is not a roop-unleashed folder (no run.py and roop/metadata.py)")
    with open_regular(meta) as fh:
        m = re.search(r"""^version\s*=\s*['"]([^'"]+)['"]""", fh.read().decode("utf-8", "replace"), re.M)
    if not m:
        raise EraSplitError(meta, "names no version")
    return m.group(1)


def default_config(roop_dir: str) -> dict:
    return {
        "written_by": MARK,
        "library": os.path.join(roop_dir, "facesets_swap_ready"),
        "cache": os.path.join(roop_dir, "era_split_faces.npz"),
        "models": roop_dir,  # roop keeps buffalo_l in <roop>/models/buffalo_l
        "remaps": [],
    }


def fingerprint(config: dict) -> str:
    """What install records of the settings it wrote, so uninstall can tell an edit."""
    rest = {k: v for k, v in config.items() if k != "fingerprint"}
    return hashlib.sha256(json.dumps(rest, sort_keys=True).encode()).hexdigest()[:16]


def _as_written(config: dict) -> dict:
    return {**{k: v for k, v in config.items() if k != "fingerprint"}, "fingerprint": fingerprint(config)}


def read_config(roop_dir: str) -> dict:
    path = os.path.join(roop_dir, CONFIG)
    from ..plugin.host.library import read_json

    data = read_json(path)
    if not isinstance(data, dict) or data.get("written_by") != MARK:
        raise EraSplitError(path, "was not written by era-split roop install")
    for key in ("library", "cache", "models"):
        if not isinstance(data.get(key), str):
            raise EraSplitError(path, f"needs a {key!r} path")
    return data


def install(roop_dir: str, *, library: str | None = None, cache: str | None = None) -> list[str]:
    """Add the launcher and the config; idempotent. Returns what was written."""
    roop_dir = os.path.abspath(roop_dir)
    version = roop_version(roop_dir)
    if version not in KNOWN_VERSIONS:
        raise EraSplitError(roop_dir, f"roop-unleashed {version} is not a version era-split knows "
                                      f"({', '.join(KNOWN_VERSIONS)}); its Face Swap tab may differ")
    launcher = os.path.join(roop_dir, LAUNCHER)
    if os.path.lexists(launcher) and _read(launcher) != LAUNCHER_TEXT:
        raise EraSplitError(launcher, "exists and is not era-split's launcher; move it away first")
    config = default_config(roop_dir)
    if os.path.exists(os.path.join(roop_dir, CONFIG)):
        config.update(read_config(roop_dir))
    if library:
        config["library"] = os.path.abspath(library)
    if cache:
        config["cache"] = os.path.abspath(cache)
    written = []
    if _read(launcher) != LAUNCHER_TEXT:
        atomic_write_bytes(launcher, LAUNCHER_TEXT.encode())
        written.append(launcher)
    path = os.path.join(roop_dir, CONFIG)
    config = _as_written(config)
    if _read(path) != dump_json(config).decode():
        atomic_write_bytes(path, dump_json(config))
        written.append(path)
    return written


def _edited(path: str, config: dict) -> bool:
    """True when the config is not as install wrote it (its settings changed by hand)."""
    if "fingerprint" in config:
        return config["fingerprint"] != fingerprint(config)
    return _read(path) != dump_json(config).decode()  # written before fingerprints: byte for byte


def uninstall(roop_dir: str) -> tuple[list[str], list[str]]:
    """Remove the launcher and the config if they are the ones install wrote.
    Returns (removed, kept): kept are the user's library and cache, and the
    config when it was edited."""
    roop_dir = os.path.abspath(roop_dir)
    roop_version(roop_dir)
    launcher, path = os.path.join(roop_dir, LAUNCHER), os.path.join(roop_dir, CONFIG)
    if os.path.lexists(launcher) and _read(launcher) != LAUNCHER_TEXT:
        raise EraSplitError(launcher, "was changed since era-split wrote it; remove it yourself")
    kept, targets = [], [launcher]
    if os.path.lexists(path):
        config = read_config(roop_dir)
        kept = [p for p in (config["library"], config["cache"]) if os.path.exists(p)]
        if _edited(path, config):
            kept.append(path)
        else:
            targets.append(path)
    removed = []
    for f in targets:
        if os.path.lexists(f):
            os.unlink(f)
            removed.append(f)
    return removed, kept


def _read(path: str) -> str | None:
    try:
        with open_regular(path) as fh:
            return fh.read().decode("utf-8", "replace")
    except OSError:
        return None
