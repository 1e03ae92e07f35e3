"""Write a split into the library, and undo it.

Under the library lock: crops and folders are built in a staging folder inside
``<library>/.era_split/`` and switched in by :func:`transaction.commit`, the
library manifest last. Nothing is written outside the library.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field

from .errors import EraSplitError
from .export import FSZ_WARN_BYTES, library_entry, prune_crop_cache, render_crops, write_bucket
from .library import MANIFEST, read_json
from .library import THIN_DIR, Library, open_library, owned_by, remove_split, replace_split
from .lock import library_lock
from .pipeline import SplitResult, drop_faces
from .timing import Stopwatch, lap
from .transaction import STAGING_PREFIX, commit, crashpoint, recover

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class ApplyReport:
    result: SplitResult  # as written: faces that failed at export left out
    written: list[str] = field(default_factory=list)  # relpaths of new folders
    removed: list[str] = field(default_factory=list)  # relpaths of replaced folders
    bundle_bytes: dict[str, int] = field(default_factory=dict)  # name -> _all.fsz size
    warnings: list[str] = field(default_factory=list)


def relpath_of(name: str, kind: str) -> str:
    return name if kind == "era" else f"{THIN_DIR}/{name}"


def _owned_folders(lib: Library, parent: str) -> list[str]:
    out = []
    for entry in lib.facesets + lib.thin_eras:
        if owned_by(entry, parent):
            folder = lib.folder_of(entry)
            if os.path.lexists(folder):
                out.append(folder)
    return out


def _staging(lib: Library) -> str:
    os.makedirs(lib.state_dir, exist_ok=True)
    return tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=lib.state_dir)


def _waiter(progress: Progress | None) -> Callable[[], None]:
    """Tell the user why a write has not started: another writer holds the lock."""
    def wait() -> None:
        if progress:
            progress("waiting for another writer of this library", 0, 1)

    return wait


def _write_error(exc: OSError, root: str) -> EraSplitError:
    where = exc.filename if isinstance(exc.filename, str) else root
    return EraSplitError(where, f"write failed, library left as it was: {exc.strerror or exc}")


def apply_split(
    root: str | os.PathLike,
    result: SplitResult,
    *,
    progress: Progress | None = None,
    lock_timeout: float = 30.0,
    clock: Stopwatch | None = None,
) -> ApplyReport:
    """Write ``result``'s buckets as facesets and merge them into the library manifest,
    replacing whatever this faceset's previous split wrote."""
    root = os.fspath(root)
    lib = open_library(root)
    with library_lock(lib.state_dir, lock_timeout, _waiter(progress)):
        recover(root)
        lib = open_library(root)  # re-read under the lock: another writer may have finished
        lib.find_faceset(result.faceset)
        try:
            staging = _staging(lib)
        except OSError as exc:
            raise _write_error(exc, root) from None
        try:
            return _apply_locked(lib, result, staging, progress, clock)
        except OSError as exc:
            recover(root)
            raise _write_error(exc, root) from None
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def _old_bundles(lib: Library, parent: str) -> dict[str, str]:
    """Bundle key -> .fsz of the previous split, so unchanged bundles are linked, not rewritten."""
    out = {}
    for folder in _owned_folders(lib, parent):
        try:
            meta = read_json(os.path.join(folder, MANIFEST))["era_split"]
            name = os.path.basename(folder)
            out[meta["bundles"]["all"]] = os.path.join(folder, f"{name}_all.fsz")
            top = meta["params"]["top"]
            out[meta["bundles"]["top"]] = os.path.join(folder, f"{name}_top{top}.fsz")
        except (EraSplitError, KeyError, TypeError):
            continue  # made by an older version, or damaged: rebuilt
    return out


def crop_cache_dir(lib: Library, parent: str) -> str:
    return os.path.join(lib.state_dir, "crops", parent)


def _apply_locked(
    lib: Library, result: SplitResult, staging: str, progress: Progress | None, clock: Stopwatch | None
) -> ApplyReport:
    crashpoint("staging")
    faces = [f for b in result.buckets for f in b.faces]
    cache_dir = crop_cache_dir(lib, result.faceset)
    with lap(clock, "crops"):
        crop_of, failed = render_crops(faces, cache_dir, result.params.size, progress)
    result = drop_faces(result, failed, lib.taken_names(result.faceset))
    reuse = _old_bundles(lib, result.faceset)

    eras, thins, written, sizes, warnings = [], [], [], {}, []
    new_dir = os.path.join(staging, "new")
    with lap(clock, "bundles"):
        for n, bucket in enumerate(result.buckets, 1):
            rel = relpath_of(bucket.name, bucket.kind)
            size = write_bucket(
                os.path.join(new_dir, bucket.name), bucket, result, [crop_of[k] for k in bucket.keys], reuse
            )
            sizes[bucket.name] = size
            if size > FSZ_WARN_BYTES:
                warnings.append(
                    f"{rel}/{bucket.name}_all.fsz is {size / 2**20:.0f} MB: roop-unleashed users report "
                    f"imports of 100-200 MB facesets failing; use the _top{result.params.top}.fsz"
                )
            (eras if bucket.kind == "era" else thins).append(library_entry(bucket, result, rel))
            written.append(rel)
            crashpoint(f"staged {rel}")
            if progress:
                progress("bundles", n, len(result.buckets))
    manifest = replace_split(lib.data, result.faceset, eras, thins)
    old = _owned_folders(lib, result.faceset)
    removed = [os.path.relpath(f, lib.root).replace(os.sep, "/") for f in old]
    moves = [
        (os.path.join(new_dir, b.name), os.path.join(lib.root, *rel.split("/")))
        for b, rel in zip(result.buckets, written)
    ]
    with lap(clock, "manifests"):
        commit(lib.root, lib.manifest_file, staging, manifest, old, moves)
    prune_crop_cache(cache_dir, set(crop_of.values()))
    return ApplyReport(result, written, removed, sizes, warnings)


def undo_split(
    root: str | os.PathLike, parent: str, *, lock_timeout: float = 30.0, progress: Progress | None = None
) -> list[str]:
    """Remove every entry and folder the plugin made for ``parent``; their relpaths."""
    root = os.fspath(root)
    lib = open_library(root)

    with library_lock(lib.state_dir, lock_timeout, _waiter(progress)):
        recover(root)
        lib = open_library(root)
        entries = [e for e in lib.facesets + lib.thin_eras if owned_by(e, parent)]
        if not entries:
            return []
        try:
            staging = _staging(lib)
            commit(root, lib.manifest_file, staging, remove_split(lib.data, parent),
                   _owned_folders(lib, parent), [])
        except OSError as exc:
            recover(root)
            raise _write_error(exc, root) from None
        shutil.rmtree(crop_cache_dir(lib, parent), ignore_errors=True)
        return [e["relpath"] for e in entries]
