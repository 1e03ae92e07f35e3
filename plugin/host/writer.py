"""Write a split into the library, and undo it.

Under the library lock: crops and folders are built in a staging folder inside
``<library>/.era_split/`` and switched in by :func:`transaction.commit`, the
library manifest last. Nothing is written outside the library.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from ..errors import EraSplitError
from ..results import LOST_MOST, AgeMeasure, SplitResult, drop_faces, with_ages
from ..timing import Stopwatch, lap
from .export import (
    FSZ_WARN_BYTES,
    library_entry,
    prune_crop_cache,
    render_crops,
    write_bucket,
)
from .library import (
    MANIFEST,
    Library,
    open_library,
    owned_by,
    prove_imported,
    read_json,
    relpath_of,
    remove_split,
    replace_split,
)
from .lock import library_lock
from .transaction import STAGING_PREFIX, commit, crashpoint, recover

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class ApplyReport:
    result: SplitResult  # as written: faces that failed at export left out
    written: list[str] = field(default_factory=list)  # relpaths of new folders
    removed: list[str] = field(default_factory=list)  # relpaths of replaced folders
    bundle_bytes: dict[str, int] = field(default_factory=dict)  # name -> _all.fsz size
    warnings: list[str] = field(default_factory=list)


def _replaceable(lib: Library, parent: str) -> tuple[list[str], list[str]]:
    """Folders of ``parent``'s previous split that may be replaced, and warnings for
    those kept. A folder holding files the plugin did not write is refused, by name."""
    mine, kept = lib.split_folders(parent)
    for folder, proof in mine:
        foreign = proof.foreign
        if foreign:
            shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
            raise EraSplitError(
                folder, f"holds {shown}, which era-split did not write; move them out of this "
                "folder, then run again (a re-split or undo replaces the whole folder)"
            )
    warnings = [
        f"kept {os.path.relpath(folder, lib.root)}: not removed, {why} (only its library entry was dropped)"
        for folder, why in kept
    ]
    return [folder for folder, _ in mine], warnings


def _split_faces(lib: Library, parent: str) -> int:
    """Faces of ``parent``'s current split, as its library entries count them."""
    total = 0
    for entry in lib.facesets + lib.thin_eras:
        faces = entry.get("faces")
        if owned_by(entry, parent) and isinstance(faces, int) and not isinstance(faces, bool) and faces > 0:
            total += faces
    return total


def _staging(lib: Library) -> str:
    os.makedirs(lib.state_dir, exist_ok=True)
    return tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=lib.state_dir)


def _waiter(progress: Progress | None) -> Callable[[], None]:
    """Tell the user why a write has not started: another writer holds the lock."""
    def wait() -> None:
        if progress:
            progress("waiting for another writer of this library", 0, 1)

    return wait


@contextlib.contextmanager
def _locked(root: str, name: str, lock_timeout: float, progress: Progress | None) -> Iterator[Library]:
    """The library under its lock, an interrupted write finished first, re-read
    under the lock (another writer may have finished) and checked for writing
    ``name``'s folders."""
    lib = open_library(root)
    lib.check_write_paths(name)
    with library_lock(lib.state_dir, lock_timeout, _waiter(progress)):
        recover(root)
        lib = open_library(root)
        lib.check_write_paths(name)
        yield lib


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
    force: bool = False,
    check_crop: Callable[[str], str | None] | None = None,
    ages: AgeMeasure | None = None,
) -> ApplyReport:
    """Write ``result``'s buckets as facesets and merge them into the library manifest,
    replacing whatever this faceset's previous split wrote.

    ``check_crop(file)`` (``apply --validate``) returns why the host would not read
    a crop as exactly one face; such faces are left out and counted. ``ages``
    measures apparent ages from the crops where the scan recorded none (each era's
    manifest then says how old its faces look).

    Refused (the old split kept) when most faces would be lost — their photos
    failed to crop, or the new split holds less than half of the old one's faces —
    unless ``force``.
    """
    root = os.fspath(root)
    with _locked(root, result.faceset, lock_timeout, progress) as lib:
        lib.find_faceset(result.faceset)
        try:
            staging = _staging(lib)
        except OSError as exc:
            raise _write_error(exc, root) from None
        try:
            return _apply_locked(lib, result, staging, progress, clock, force, check_crop, ages)
        except OSError as exc:
            recover(root)
            raise _write_error(exc, root) from None
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def _old_bundles(folders: list[str]) -> dict[str, str]:
    """Bundle key -> .fsz of the previous split (provably ours), so unchanged bundles
    are linked, not rewritten."""
    out = {}
    for folder in folders:
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


def _refuse_losses(lib: Library, result: SplitResult, faces: list, failed: dict[str, str]) -> None:
    if failed and len(failed) > len(faces) * LOST_MOST:
        example = next(f.path for f in faces if f.key in failed)
        raise EraSplitError(
            example,
            f"{len(failed)} of {len(faces)} faces could not be cropped (photos missing or unreadable "
            "since the plan); nothing written. Is the photo drive mounted? --force writes the rest",
        )
    old, new = _split_faces(lib, result.faceset), sum(len(b.faces) for b in result.buckets)
    if old and new < old * (1 - LOST_MOST):
        raise EraSplitError(
            lib.manifest_file,
            f"the new split of {result.faceset} keeps {new} faces where the current one has {old}; "
            "refused, the current split is kept. Check that the photos are reachable (--remap OLD=NEW), "
            "or pass --force to replace it anyway",
        )


def _apply_locked(
    lib: Library, result: SplitResult, staging: str, progress: Progress | None, clock: Stopwatch | None,
    force: bool = False,
    check_crop: Callable[[str], str | None] | None = None,
    ages: AgeMeasure | None = None,
) -> ApplyReport:
    crashpoint("staging")
    old, warnings = _replaceable(lib, result.faceset)
    faces = [f for b in result.buckets for f in b.faces]
    cache_dir = crop_cache_dir(lib, result.faceset)
    with lap(clock, "crops"):
        crop_of, failed, rendered = render_crops(faces, cache_dir, result.params.size, progress)
    if check_crop is not None:
        with lap(clock, "validate"):
            verdicts = {}
            for n, (key, file) in enumerate(sorted(crop_of.items()), 1):
                if file not in verdicts:
                    verdicts[file] = check_crop(file)
                if verdicts[file]:
                    failed[key] = verdicts[file]
                if progress:
                    progress("validate", n, len(crop_of))
        crop_of = {k: f for k, f in crop_of.items() if k not in failed}
    result = drop_faces(result, failed, lib.taken_names(result.faceset))
    if not force:
        _refuse_losses(lib, result, faces, failed)
    with lap(clock, "ages"):
        result = with_ages(result, crop_of, ages)
    reuse = _old_bundles(old)

    eras, thins, written, sizes = [], [], [], {}
    new_dir = os.path.join(staging, "new")
    with lap(clock, "bundles"):
        for n, bucket in enumerate(result.buckets, 1):
            rel = relpath_of(bucket.name, bucket.kind)
            crops = [crop_of[k] for k in bucket.keys]
            size = write_bucket(
                os.path.join(new_dir, bucket.name), bucket, result, crops,
                {} if rendered.intersection(crops) else reuse,  # a re-rendered crop: fresh bundles
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
    removed = [os.path.relpath(f, lib.root).replace(os.sep, "/") for f in old]
    moves = [
        (os.path.join(new_dir, b.name), os.path.join(lib.root, *rel.split("/")))
        for b, rel in zip(result.buckets, written)
    ]
    with lap(clock, "manifests"):
        commit(lib.root, lib.manifest_file, staging, manifest, old, moves)
    prune_crop_cache(cache_dir, set(crop_of.values()))
    return ApplyReport(result, written, removed, sizes, warnings)


def remove_faceset(
    root: str | os.PathLike, name: str, *, lock_timeout: float = 30.0, progress: Progress | None = None
) -> tuple[list[str], list[str]]:
    """Remove a faceset that ``era-split import`` made, with every era and thin
    faceset of it, in one journaled switch. Its folder must be provably the
    importer's (see :func:`library.prove_imported`): a host's own faceset is never
    deleted. Returns (removed relpaths, warnings)."""
    root = os.fspath(root)
    with _locked(root, name, lock_timeout, progress) as lib:
        entry = lib.find_faceset(name)
        folder = lib.folder_of(entry)
        proof = prove_imported(folder, entry)
        if not proof.ours:
            raise EraSplitError(folder, f"{name} was not made by era-split import ({proof.why}), so era-split "
                                        "does not delete it: remove it with your host's own tools "
                                        f"(era-split undo {name} removes its era split)")
        if proof.foreign:
            raise EraSplitError(folder, f"holds {', '.join(proof.foreign[:5])}, which era-split did not write; "
                                        "move them out of this folder, then run again")
        old, warnings = _replaceable(lib, name)
        removed = [e["relpath"] for e in lib.facesets + lib.thin_eras if owned_by(e, name)]
        data = remove_split(lib.data, name)
        data["facesets"] = [e for e in data["facesets"] if owned_by(e) or e.get("name") != name]
        _commit_removal(lib, data, old + [folder], name)
        return [entry["relpath"], *removed], warnings


def undo_split(
    root: str | os.PathLike, parent: str, *, lock_timeout: float = 30.0, progress: Progress | None = None
) -> list[str]:
    """Remove every entry and folder the plugin made for ``parent``; their relpaths."""
    return undo_report(root, parent, lock_timeout=lock_timeout, progress=progress)[0]


def undo_report(
    root: str | os.PathLike, parent: str, *, lock_timeout: float = 30.0, progress: Progress | None = None
) -> tuple[list[str], list[str]]:
    """:func:`undo_split`, with the warnings: folders kept because they are not
    provably the plugin's."""
    root = os.fspath(root)
    with _locked(root, parent, lock_timeout, progress) as lib:
        if not any(e.get("name") == parent and not owned_by(e) for e in lib.facesets) and not any(
                owned_by(e, parent) for e in lib.facesets + lib.thin_eras):
            lib.find_faceset(parent)  # names the facesets it knows
        entries = [e for e in lib.facesets + lib.thin_eras if owned_by(e, parent)]
        if not entries:
            return [], []
        old, warnings = _replaceable(lib, parent)
        _commit_removal(lib, remove_split(lib.data, parent), old, parent)
        return [e["relpath"] for e in entries], warnings


def _commit_removal(lib: Library, data: dict, folders: list[str], name: str) -> None:
    """Write the manifest ``data`` and remove ``folders`` as one journaled step
    (the library as it was if it fails), then ``name``'s crop cache."""
    try:
        staging = _staging(lib)
        commit(lib.root, lib.manifest_file, staging, data, folders, [])
    except OSError as exc:
        recover(lib.root)
        raise _write_error(exc, lib.root) from None
    crops = crop_cache_dir(lib, name)
    if not os.path.islink(crops):
        shutil.rmtree(crops, ignore_errors=True)
