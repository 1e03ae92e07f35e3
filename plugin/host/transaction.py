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
import re
import shutil
import signal
from collections.abc import Sequence

from ..errors import EraSplitError
from .fsutil import atomic_write_json, fsync_dir, refuse_link
from .library import MANIFEST, OWNER, STATE_DIR, THIN_DIR, check_name, read_json

JOURNAL = "journal.json"
REJECTED = "journal.rejected.json"
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
    _drop_empty_thin(root)


def pending(root: str) -> bool:
    return os.path.lexists(os.path.join(root, STATE_DIR, JOURNAL))


def stale_staging(root: str) -> list[str]:
    """Leftover staging folders (real folders only: a link there is not ours)."""
    state = os.path.join(root, STATE_DIR)
    try:
        names = os.listdir(state)
    except OSError:
        return []
    return sorted(
        os.path.join(state, n) for n in names
        if n.startswith(STAGING_PREFIX) and not os.path.islink(os.path.join(state, n))
        and os.path.isdir(os.path.join(state, n))
    )


class BadJournal(Exception):
    """The journal is not one this plugin wrote: acting on it could move anything."""


_STAGING = re.compile(rf"^{re.escape(STATE_DIR)}/{re.escape(STAGING_PREFIX)}[A-Za-z0-9_]+$")


def _library_folder(root: str, rel: object) -> str:
    """A place the plugin puts a bucket: ``name`` or ``_thin/name``, reached without a link."""
    if not isinstance(rel, str):
        raise BadJournal(f"{rel!r} is not a path")
    parts = rel.split("/")
    if parts[0] == THIN_DIR and len(parts) == 2:
        name = parts[1]
    elif len(parts) == 1:
        name = parts[0]
    else:
        raise BadJournal(f"{rel!r} is not a bucket folder of the library")
    try:
        check_name(name, JOURNAL)
    except EraSplitError as exc:
        raise BadJournal(exc.problem) from None
    if len(parts) == 2 and os.path.islink(os.path.join(root, THIN_DIR)):
        raise BadJournal(f"{THIN_DIR} is a link")
    return _abs(root, rel)


def _load_journal(root: str, journal_file: str) -> dict:
    """The journal, checked to be exactly the shape :func:`commit` writes, with every
    path confined: staging under ``.era_split/``, bucket folders in the library."""
    try:
        refuse_link(journal_file, want_dir=False)
        data = read_json(journal_file)
    except EraSplitError as exc:
        raise BadJournal(exc.problem) from None
    if not isinstance(data, dict) or data.get("version") != 1:
        raise BadJournal("not a version-1 journal object")
    staging = data.get("staging")
    if not isinstance(staging, str) or not _STAGING.match(staging):
        raise BadJournal(f"staging {staging!r} is not a staging folder of {STATE_DIR}/")
    if data.get("manifest") != f"{staging}/{NEXT_MANIFEST}":
        raise BadJournal("its manifest is not the staged one")
    for key in ("old", "new"):
        moves = data.get(key)
        if not isinstance(moves, list) or not all(
            isinstance(m, list) and len(m) == 2 and all(isinstance(x, str) for x in m) for m in moves
        ):
            raise BadJournal(f"{key!r} is not a list of [from, to] pairs")
    for i, (src, dst) in enumerate(data["old"]):
        _library_folder(root, src)
        if dst != f"{staging}/old/{i}":
            raise BadJournal(f"old[{i}] is not set aside into the staging folder")
    for i, (src, dst) in enumerate(data["new"]):
        _library_folder(root, dst)
        if src != f"{staging}/new/{dst.rsplit('/', 1)[-1]}":
            raise BadJournal(f"new[{i}] does not come from the staging folder")
    return data


def _made_here(folder: str) -> bool:
    """A bucket folder this plugin staged: a real folder whose manifest names it and
    carries our ``era_split`` object. A rollback moves nothing else."""
    if os.path.islink(folder) or not os.path.isdir(folder):
        return False
    try:
        data = read_json(os.path.join(folder, MANIFEST))
    except EraSplitError:
        return False
    return (isinstance(data, dict) and data.get("name") == os.path.basename(folder)
            and isinstance(data.get(OWNER), dict))


def _set_aside(root: str, journal_file: str, why: str) -> str:
    rejected = os.path.join(root, STATE_DIR, REJECTED)
    try:
        os.replace(journal_file, rejected)
    except OSError:
        pass
    return f"ignored a journal era-split did not write ({why}); kept as {STATE_DIR}/{REJECTED}"


def recover(root: str) -> str | None:
    """Finish or roll back an interrupted switch; drop leftover staging folders.
    Call with the library lock held. Returns what was done, or None.

    The journal is trusted no more than any other file: a malformed or forged one
    is set aside, and a rollback moves back only folders the plugin staged.
    """
    done = None
    journal_file = os.path.join(root, STATE_DIR, JOURNAL)
    if os.path.lexists(journal_file):
        try:
            journal = _load_journal(root, journal_file)
        except BadJournal as exc:
            done = _set_aside(root, journal_file, str(exc))
        else:
            done = _replay(root, journal)
    leftovers = stale_staging(root)
    for folder in leftovers:
        shutil.rmtree(folder, ignore_errors=True)
    if leftovers and done is None:
        done = f"removed {len(leftovers)} leftover staging folder(s)"
    _drop_empty_thin(root)
    return done


def _replay(root: str, journal: dict) -> str:
    staging = _abs(root, journal["staging"])
    committed = not os.path.lexists(_abs(root, journal["manifest"]))
    if committed:
        done = "completed an interrupted write"
    else:
        for src, dst in reversed(journal["new"]):
            placed = _abs(root, dst)
            if not os.path.lexists(_abs(root, src)) and _made_here(placed):
                os.rename(placed, _abs(root, src))
        for src, dst in reversed(journal["old"]):
            if os.path.isdir(_abs(root, dst)) and not os.path.lexists(_abs(root, src)):
                os.rename(_abs(root, dst), _abs(root, src))
        done = "rolled back an interrupted write"
    _finish(root, staging)
    return done


def _drop_empty_thin(root: str) -> None:
    """``_thin/`` exists only while it holds something (an undo killed after its
    commit may leave it empty)."""
    thin = os.path.join(root, THIN_DIR)
    if not os.path.islink(thin):
        try:
            os.rmdir(thin)  # only if empty
        except OSError:
            pass
