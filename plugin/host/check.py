"""``era-split check``: validate a library, and repair what an interrupted write left."""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass, field

from ..errors import EraSplitError
from .crops import png_problem
from .fsutil import atomic_write_json
from .library import (
    MANIFEST,
    OWNER,
    STATE_DIR,
    THIN_DIR,
    open_library,
    owned_by,
    prove_owned,
    read_json,
)
from .lock import library_lock
from .transaction import REJECTED, pending, recover, stale_staging


@dataclass
class CheckReport:
    problems: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    facesets: int = 0
    eras: int = 0
    thin: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def _check_bundle(path: str, expected: int | None, problems: list[str]) -> None:
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            bad = zf.testzip()
    except (OSError, zipfile.BadZipFile) as exc:
        problems.append(f"{path}: not a readable zip ({exc})")
        return
    if bad:
        problems.append(f"{path}: corrupt member {bad}")
    odd = [n for n in names if not n.endswith(".png") or "/" in n]
    if odd:
        problems.append(f"{path}: holds {odd[0]!r}; roop-unleashed reads only flat lowercase .png files")
    if expected is not None and len(names) != expected:
        problems.append(f"{path}: holds {len(names)} crops, its manifest lists {expected}")


def _check_owned(folder: str, entry: dict, problems: list[str]) -> None:
    name = entry["name"]
    proof = prove_owned(folder, entry)
    if not proof.ours:
        problems.append(f"{folder}: listed as era-split's, but not provably made by it: {proof.why}")
        return
    if proof.foreign:
        problems.append(f"{folder}: holds files era-split did not write: {', '.join(proof.foreign[:5])} "
                        "(a re-split or undo refuses until they are moved out)")
    manifest = os.path.join(folder, MANIFEST)
    data = read_json(manifest)
    faces = data.get("faces") if isinstance(data, dict) else None
    if not isinstance(faces, list):
        problems.append(f"{manifest}: has no 'faces' list")
        return
    if entry.get("faces") != len(faces):
        problems.append(f"{manifest}: lists {len(faces)} faces, the library entry says {entry.get('faces')}")
    for i, face in enumerate(faces):
        file = face.get("file") if isinstance(face, dict) else None
        if not isinstance(file, str) or "/" in file or "\\" in file or file.startswith("."):
            problems.append(f"{manifest}: faces[{i}] has no plain crop file name")
            break
        bad = png_problem(os.path.join(folder, file))
        if bad:
            problems.append(f"{folder}: crop {file!r} {bad}")
            break
    _check_bundle(os.path.join(folder, f"{name}_all.fsz"), len(faces), problems)
    tops = [n for n in os.listdir(folder) if n.startswith(f"{name}_top") and n.endswith(".fsz")]
    for top in tops:
        _check_bundle(os.path.join(folder, top), None, problems)


def check_library(root: str | os.PathLike, *, repair: bool = False) -> CheckReport:
    """Manifests parse and match their folders, relpaths stay inside, bundles are
    readable zips of PNGs, no interrupted write or leftover staging."""
    root = os.fspath(root)
    report = CheckReport()
    if repair:
        lib = open_library(root)
        lib.check_write_paths()
        with library_lock(lib.state_dir):
            done = recover(root)
            if done:
                report.repaired.append(done)
            report.repaired += _drop_dangling(open_library(root))
    if pending(root):
        report.problems.append(f"{root}: an interrupted write is pending (run check --repair)")
    rejected = os.path.join(root, STATE_DIR, REJECTED)
    if os.path.lexists(rejected):
        report.problems.append(f"{rejected}: a journal era-split did not write was set aside; "
                               "look at it, then delete it")
    for folder in stale_staging(root):
        report.problems.append(f"{folder}: leftover staging folder (run check --repair)")
    try:
        lib = open_library(root)
        lib.check_write_paths()
    except EraSplitError as exc:
        report.problems.append(str(exc))
        return report
    for array in ("facesets", "thin_eras"):
        for entry in lib.data.get(array, []):
            folder = lib.folder_of(entry)
            if not os.path.isdir(folder):
                report.problems.append(f"{lib.manifest_file}: {array} entry {entry['name']!r}: folder "
                                       f"{entry['relpath']!r} is missing (check --repair drops the entry)")
                continue
            if owned_by(entry):
                report.eras += entry["era_split"].get("kind") == "era"
                report.thin += entry["era_split"].get("kind") == "thin"
                _check_owned(folder, entry, report.problems)
            else:
                report.facesets += 1
    _check_orphans(lib, report.problems)
    return report


BACKUP = "manifest.before-repair.json"


def _drop_dangling(lib) -> list[str]:
    """``--repair``: drop the entries whose folder is gone (deleted by hand, say),
    so the host stops listing a faceset it cannot load. The manifest as it was is
    kept as ``.era_split/manifest.before-repair.json``."""
    gone = {array: [e for e in lib.data.get(array, []) if not os.path.lexists(lib.folder_of(e))]
            for array in ("facesets", "thin_eras")}
    if not any(gone.values()):
        return []
    data = dict(lib.data)
    for array, entries in gone.items():
        if entries:
            data[array] = [e for e in lib.data[array] if not any(e is g for g in entries)]
    atomic_write_json(os.path.join(lib.state_dir, BACKUP), lib.data)
    atomic_write_json(lib.manifest_file, data)
    return [f"dropped the {array} entry {e['name']!r}: its folder {e['relpath']!r} is gone "
            f"(the manifest as it was: {STATE_DIR}/{BACKUP})" for array, entries in gone.items() for e in entries]


def _check_orphans(lib, problems: list[str]) -> None:
    """Folders on disk that no entry points to: era folders (their manifest says
    era_split) and faceset folders (a manifest with a faces list)."""
    listed = {os.path.realpath(lib.folder_of(e)) for e in lib.facesets + lib.thin_eras}
    for base in (lib.root, os.path.join(lib.root, THIN_DIR)):
        try:
            names = sorted(os.listdir(base))
        except OSError:
            continue
        for name in names:
            folder = os.path.join(base, name)
            manifest = os.path.join(folder, MANIFEST)
            if name.startswith(".") or os.path.realpath(folder) in listed or not os.path.isfile(manifest):
                continue
            try:
                data = read_json(manifest)
            except EraSplitError:
                continue
            if isinstance(data, dict) and isinstance(data.get(OWNER), dict) and data[OWNER].get("kind") != "imported":
                problems.append(f"{folder}: era folder that no library entry lists")
            elif isinstance(data, dict) and isinstance(data.get("faces"), list):
                problems.append(f"{folder}: faceset folder that no library entry lists (an interrupted "
                                "import? import it again under another name, or move it away)")
