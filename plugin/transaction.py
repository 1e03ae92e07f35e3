"""Crash-safe library switch: a journal of renames, with the manifest rename as
the commit point.

Everything new is built in a staging folder inside ``<library>/.era_split/``
first. Then the journal is written, old folders are renamed aside into the
staging folder, new ones renamed into place, and the new library manifest is
renamed over the old one: that rename is the commit. A crash before it is
rolled back on the next start (old folders back, new ones out); a crash after
it only leaves clean-up, which the next start finishes. Either way the library
holds the old state or the new one, never a mix.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
from collections.abc import Sequence

from .fsutil import atomic_write_json, fsync_dir
from .library import STATE_DIR, THIN_DIR, read_json

JOURNAL = "journal.json"
NEXT_MANIFEST = "manifest.next.json"
STAGING_PREFIX = "staging-"

# Test hook: ERA_SPLIT_FAULT_AT=N makes the N-th write step fail: SIGKILL
# (ERA_SPLIT_FAULT=kill, the default), a full disk (enospc) or a read-only
# file system (erofs).
_steps = 0
_FAULTS = {
    "enospc": (errno.ENOSPC, "No space left on device (simulated)"),
    "erofs": (errno.EROFS, "Read-only file system (simulated)"),
}


def crashpoint(what: str) -> None:
    global _steps
    target = os.environ.get("ERA_SPLIT_FAULT_AT")
    if not target:
        return
    _steps += 1
    if os.environ.get("ERA_SPLIT_FAULT_TRACE"):
        print(f"step {_steps}: {what}", flush=True)
    if _steps == int(target):
        fault = os.environ.get("ERA_SPLIT_FAULT", "kill")
        if fault in _FAULTS:
            raise OSError(*_FAULTS[fault], what)
        os.kill(os.getpid(), signal.SIGKILL)


def reset_faults() -> None:
    """Restart the step count (tests that inject faults in-process)."""
    global _steps
    _steps = 0


def _abs(root: str, rel: str) -> str:
    return os.path.join(root, *rel.split("/"))


def _rel(root: str, path: str) -> str:
    return os.path.relpath(path, root).replace(os.sep, "/")


def commit(
    root: str,
    manifest_file: str,
    staging: str,
    manifest: dict,
    old: Sequence[str],
    new: Sequence[tuple[str, str]],
) -> None:
    """Switch the library: ``old`` folders out, ``new`` (staged, target) folders
    in, then the manifest. All paths absolute and inside ``root``."""
    next_file = os.path.join(staging, NEXT_MANIFEST)
    crashpoint("next manifest")
    atomic_write_json(next_file, manifest)
    aside_dir = os.path.join(staging, "old")
    os.makedirs(aside_dir, exist_ok=True)
    old_moves = [(f, os.path.join(aside_dir, str(i))) for i, f in enumerate(old)]
    journal = {
        "version": 1,
        "staging": _rel(root, staging),
        "manifest": _rel(root, next_file),
        "old": [[_rel(root, a), _rel(root, b)] for a, b in old_moves],
        "new": [[_rel(root, a), _rel(root, b)] for a, b in new],
    }
    crashpoint("journal")
    atomic_write_json(os.path.join(root, STATE_DIR, JOURNAL), journal)
    for src, dst in old_moves:
        crashpoint(f"aside {_rel(root, src)}")
        os.rename(src, dst)
    if any(_rel(root, dst).startswith(THIN_DIR + "/") for _, dst in new):
        os.makedirs(os.path.join(root, THIN_DIR), exist_ok=True)
    for src, dst in new:
        crashpoint(f"place {_rel(root, dst)}")
        os.rename(src, dst)
    for folder in {os.path.dirname(d) for _, d in new} | {os.path.dirname(s) for s, _ in old_moves}:
        fsync_dir(folder)
    crashpoint("commit")
    os.replace(next_file, manifest_file)
    fsync_dir(root)
    try:
        _finish(root, staging)
    except OSError:
        pass  # committed: the next start (or check --repair) finishes the clean-up


def _finish(root: str, staging: str) -> None:
    crashpoint("drop journal")
    try:
        os.unlink(os.path.join(root, STATE_DIR, JOURNAL))
    except FileNotFoundError:
        pass
    fsync_dir(os.path.join(root, STATE_DIR))
    crashpoint("drop staging")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        os.rmdir(os.path.join(root, THIN_DIR))  # only if empty
    except OSError:
        pass


def pending(root: str) -> bool:
    return os.path.exists(os.path.join(root, STATE_DIR, JOURNAL))


def stale_staging(root: str) -> list[str]:
    state = os.path.join(root, STATE_DIR)
    try:
        return sorted(os.path.join(state, n) for n in os.listdir(state) if n.startswith(STAGING_PREFIX))
    except OSError:
        return []


def recover(root: str) -> str | None:
    """Finish or roll back an interrupted switch; drop leftover staging folders.
    Call with the library lock held. Returns what was done, or None."""
    done = None
    journal_file = os.path.join(root, STATE_DIR, JOURNAL)
    if os.path.exists(journal_file):
        journal = read_json(journal_file)
        staging = _abs(root, journal["staging"])
        committed = not os.path.exists(_abs(root, journal["manifest"]))
        if committed:
            done = "completed an interrupted write"
        else:
            for src, dst in reversed(journal["new"]):
                if not os.path.exists(_abs(root, src)) and os.path.exists(_abs(root, dst)):
                    os.rename(_abs(root, dst), _abs(root, src))
            for src, dst in reversed(journal["old"]):
                if os.path.exists(_abs(root, dst)) and not os.path.exists(_abs(root, src)):
                    os.rename(_abs(root, dst), _abs(root, src))
            done = "rolled back an interrupted write"
        _finish(root, staging)
    leftovers = stale_staging(root)
    for folder in leftovers:
        shutil.rmtree(folder, ignore_errors=True)
    if leftovers and done is None:
        done = f"removed {len(leftovers)} leftover staging folder(s)"
    return done
