"""The host's library: read and validate its manifests, and merge our entries in.

Ownership rule: an entry the plugin creates carries an ``era_split`` object with
its ``parent``; the plugin changes or removes only such entries. Every other
entry, every key it does not own and the order of entries survive unchanged.
The merge functions are pure: manifest dict in, new manifest dict out.
"""

from __future__ import annotations

import copy
import json
import os
import re
import stat
from dataclasses import dataclass

from ..errors import EraSplitError
from ..labels import apparent_median
from .fsutil import open_regular, refuse_link

MANIFEST = "manifest.json"
OWNER = "era_split"
THIN_DIR = "_thin"
STATE_DIR = ".era_split"
CREATED_FLAG = "created_thin_eras"


def read_json(path: str) -> object:
    """Parse a JSON file of the library; any problem is one EraSplitError naming it."""
    try:
        with open_regular(path) as fh:
            raw = fh.read()
    except FileNotFoundError:
        raise EraSplitError(path, "not found") from None
    except (OSError, ValueError) as exc:
        raise EraSplitError(path, f"cannot be read: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise EraSplitError(path, "is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise EraSplitError(path, f"is not valid JSON (line {exc.lineno}: {exc.msg})") from None
    except RecursionError:
        raise EraSplitError(path, "is nested too deeply to be a manifest") from None


def check_name(name: object, where: str) -> str:
    """A faceset name usable as one folder name inside the library."""
    if not isinstance(name, str) or not name.strip():
        raise EraSplitError(where, f"faceset name must be a non-empty string, got {name!r}")
    if "/" in name or "\\" in name or "\x00" in name or name in (".", "..") or name.startswith("."):
        raise EraSplitError(where, f"faceset name {name!r} is not a plain folder name")
    return name


RESERVED = (THIN_DIR, STATE_DIR, MANIFEST)  # names of the library's own folders and files


def check_new_name(lib: Library | None, name: object, where: str) -> str:
    """A name for a new faceset of ``lib`` (None: a library not made yet): a plain
    folder name, not one the library reserves, not taken by an entry or a folder.
    Each refusal says what to do instead."""
    check_name(name, where)
    assert isinstance(name, str)
    if name.lower() in {r.lower() for r in RESERVED}:
        raise EraSplitError(where, f"{name!r} is reserved by the library (era-split keeps its own files "
                                   "under that name); pick another name")
    if lib is None:
        return name
    if any(e.get("name") == name for e in lib.facesets + lib.thin_eras):
        import shlex

        raise EraSplitError(lib.manifest_file, f"the library already has a faceset named {name!r}; to replace "
                            f"it, remove it first (era-split remove {shlex.quote(name)} --library "
                            f"{shlex.quote(lib.root)}), or pick another name")
    folder = os.path.join(lib.root, name)
    if os.path.lexists(folder):
        raise EraSplitError(folder, "exists, but no library entry lists it (left by an interrupted import, "
                                    "or put there by hand?): move it away, or pick another name")
    return name


def resolve_relpath(root: str, relpath: object, where: str) -> str:
    """Absolute folder of a manifest ``relpath``; it must stay inside the library."""
    if not isinstance(relpath, str) or not relpath:
        raise EraSplitError(where, f"relpath must be a non-empty string, got {relpath!r}")
    if "\\" in relpath or "\x00" in relpath or relpath.startswith("/") or (len(relpath) > 1 and relpath[1] == ":"):
        raise EraSplitError(where, f"relpath {relpath!r} must be relative, with / separators")
    parts = relpath.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise EraSplitError(where, f"relpath {relpath!r} leaves the library or is not normalised")
    folder = os.path.join(root, *parts)
    real_root = os.path.realpath(root)
    real = os.path.realpath(folder)
    if os.path.commonpath([real_root, real]) != real_root:
        raise EraSplitError(where, f"relpath {relpath!r} points outside the library (symlink?)")
    return folder


def relpath_of(name: str, kind: str) -> str:
    """Where the plugin puts a bucket: eras beside their parent, thin ones in ``_thin/``."""
    return name if kind == "era" else f"{THIN_DIR}/{name}"


# Names the writer gives the files of a bucket folder; a folder made before the
# folder manifest listed its files is recognised by these.
_LEGACY_FILE = re.compile(r"^(\d{4}\.png|manifest\.json|THIN\.txt)$")


@dataclass(frozen=True)
class Proof:
    """Whether a folder is provably one the plugin made for a library entry."""

    ours: bool
    why: str = ""  # why not, when not ours
    foreign: tuple[str, ...] = ()  # files inside an otherwise-ours folder that we did not write


def _real_folder(folder: str) -> str | None:
    """Why ``folder`` is not a real folder (a link, a file, missing), or None."""
    try:
        st = os.lstat(folder)
    except (OSError, ValueError):
        return "the folder is missing"
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        return "it is a link or a file, not a folder"
    return None


def _foreign(folder: str, known) -> tuple[str, ...] | str:
    """Files in ``folder`` that ``known(name)`` does not claim (or links, or
    non-files); a string when the folder cannot be listed."""
    try:
        names = sorted(os.listdir(folder))
    except OSError as exc:
        return f"the folder cannot be listed ({exc.strerror})"
    return tuple(f for f in names
                 if not known(f) or os.path.islink(os.path.join(folder, f))
                 or not os.path.isfile(os.path.join(folder, f)))


def prove_owned(folder: str, entry: dict) -> Proof:
    """Check on disk that ``folder`` is the one the plugin wrote for ``entry``.

    The entry alone proves nothing: a copied or hand-edited entry may point at a
    host faceset. The folder must be a real folder (no link) at the place the
    plugin puts that bucket, its ``manifest.json`` must carry our ``era_split``
    object naming the same parent and bucket, and every file in it must be one
    we wrote (listed in that object, or of our naming for older folders).
    """
    meta = entry.get(OWNER) if isinstance(entry, dict) else None
    if not isinstance(meta, dict):
        return Proof(False, "the library entry is not era-split's")
    name, parent, kind = entry.get("name"), meta.get("parent"), meta.get("kind")
    if not isinstance(name, str) or entry.get("relpath") != relpath_of(name, str(kind)):
        return Proof(False, f"era-split never puts a {kind!r} bucket at {entry.get('relpath')!r}")
    why = _real_folder(folder)
    if why:
        return Proof(False, why)
    try:
        data = read_json(os.path.join(folder, MANIFEST))
    except EraSplitError as exc:
        return Proof(False, f"its manifest cannot be read ({exc.problem})")
    mark = data.get(OWNER) if isinstance(data, dict) else None
    if not isinstance(mark, dict) or data.get("name") != name or mark.get("parent") != parent:
        return Proof(False, "its manifest.json does not say era-split made it for this entry")
    listed = mark.get("files")
    if isinstance(listed, list) and all(isinstance(f, str) for f in listed):
        known = set(listed).__contains__
    else:
        legacy = {f"{name}_all.fsz", f"{name}.txt"}
        known = lambda f: f in legacy or bool(_LEGACY_FILE.match(f)) or (  # noqa: E731
            f.startswith(f"{name}_top") and f.endswith(".fsz"))
    foreign = _foreign(folder, known)
    if isinstance(foreign, str):
        return Proof(False, foreign)
    return Proof(True, foreign=foreign)


def prove_imported(folder: str, entry: dict) -> Proof:
    """Check on disk that ``folder`` is a host faceset ``era-split import`` made:
    a real folder at ``<library>/<name>``, whose manifest names it and says it was
    imported, every file listed there."""
    name = entry.get("name") if isinstance(entry, dict) else None
    if not isinstance(name, str) or entry.get("relpath") != name:
        return Proof(False, "era-split import puts a faceset in a folder of its name, and this entry's is not")
    why = _real_folder(folder)
    if why:
        return Proof(False, why)
    try:
        data = read_json(os.path.join(folder, MANIFEST))
    except EraSplitError as exc:
        return Proof(False, f"its manifest cannot be read ({exc.problem})")
    mark = data.get(OWNER) if isinstance(data, dict) else None
    listed = mark.get("files") if isinstance(mark, dict) else None
    if (not isinstance(mark, dict) or mark.get("kind") != "imported" or data.get("name") != name
            or not isinstance(listed, list) or not all(isinstance(f, str) for f in listed)):
        return Proof(False, "its manifest.json does not say era-split imported it")
    foreign = _foreign(folder, set(listed).__contains__)
    if isinstance(foreign, str):
        return Proof(False, foreign)
    return Proof(True, foreign=foreign)


def owned_by(entry: object, parent: str | None = None) -> bool:
    """True for an entry the plugin made (for ``parent``, when given)."""
    if not isinstance(entry, dict) or not isinstance(entry.get(OWNER), dict):
        return False
    return parent is None or entry[OWNER].get("parent") == parent


def whole(value: object) -> bool:
    """A whole number as a manifest's JSON may hold it (never a bool)."""
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class EraMeta:
    """What an era entry of ours says of itself, each field checked (the library
    is a file like any other: a value that is not what we write reads as unknown)."""

    span: tuple[int, int] | None
    dom_year: int | None
    look: int
    apparent_age: dict | None  # with a valid median, else None
    born: int | None  # the birth year the split was applied with


def era_meta(entry: dict) -> EraMeta:
    meta = entry.get(OWNER) if isinstance(entry.get(OWNER), dict) else {}
    span = meta.get("span")
    settings = meta.get("settings") if isinstance(meta.get("settings"), dict) else {}
    born = settings.get("born")
    return EraMeta(
        span=tuple(span) if isinstance(span, list) and len(span) == 2 and all(map(whole, span)) else None,
        dom_year=meta["dom_year"] if whole(meta.get("dom_year")) else None,
        look=meta["look"] if whole(meta.get("look")) else 1,
        apparent_age=meta["apparent_age"] if apparent_median(meta.get("apparent_age")) is not None else None,
        born=born if whole(born) and 1850 <= born <= 2100 else None,
    )


@dataclass
class Library:
    root: str
    manifest_file: str
    data: dict

    @property
    def facesets(self) -> list[dict]:
        return self.data["facesets"]

    @property
    def thin_eras(self) -> list[dict]:
        return self.data.get("thin_eras", [])

    @property
    def state_dir(self) -> str:
        return os.path.join(self.root, STATE_DIR)

    def host_facesets(self) -> list[dict]:
        """Facesets the host made (era variants excluded): what batch actions split."""
        return [e for e in self.facesets if not owned_by(e)]

    def era_variants(self, parent: str) -> list[dict]:
        return [e for e in self.facesets if owned_by(e, parent)]

    def split_settings(self, parent: str) -> dict | None:
        """The settings ``parent``'s current split was applied with, as its entries
        record them; None when it is not split, or was split before settings were
        kept. Not validated here: the caller turns them into parameters."""
        for entry in self.facesets + self.thin_eras:
            if owned_by(entry, parent) and "settings" in entry[OWNER]:
                return entry[OWNER]["settings"]
        return None

    def find_faceset(self, name: str) -> dict:
        for entry in self.facesets:
            if entry.get("name") == name:
                if owned_by(entry):
                    raise EraSplitError(
                        self.manifest_file,
                        f"{name!r} is an era faceset of {entry[OWNER].get('parent')!r}; split its parent",
                    )
                return entry
        known = ", ".join(repr(e.get("name")) for e in self.host_facesets()[:8])
        raise EraSplitError(self.manifest_file, f"no faceset named {name!r} (known: {known or 'none'})")

    def folder_of(self, entry: dict) -> str:
        return resolve_relpath(self.root, entry.get("relpath"), self.manifest_file)

    def faceset_keys(self, entry: dict) -> tuple[list[str], str]:
        """Face keys of a host faceset and the path of its manifest."""
        folder = self.folder_of(entry)
        path = os.path.join(folder, MANIFEST)
        data = read_json(path)
        if not isinstance(data, dict) or not isinstance(data.get("faces"), list):
            raise EraSplitError(path, "faceset manifest must be an object with a 'faces' list")
        keys = []
        for i, face in enumerate(data["faces"]):
            key = face.get("key") if isinstance(face, dict) else face
            if not isinstance(key, str) or not key:
                raise EraSplitError(path, f"faces[{i}] has no string key")
            keys.append(key)
        if not keys:
            raise EraSplitError(path, "the faceset lists no faces")
        return keys, path

    def split_folders(self, parent: str) -> tuple[list[tuple[str, Proof]], list[tuple[str, str]]]:
        """``parent``'s previous split on disk: ([(folder, proof)] provably ours, so a
        re-split or undo may replace them, unless the proof found foreign files), and
        [(folder, why)] kept: the
        entry is ours but the folder is not provably, or a host entry uses it too.
        Folders that do not exist are in neither list."""
        host = set()
        for e in self.facesets + self.thin_eras:
            if not owned_by(e):
                host.add(os.path.realpath(self.folder_of(e)))
        mine, kept, seen = [], [], set()
        for entry in self.facesets + self.thin_eras:
            if not owned_by(entry, parent):
                continue
            folder = self.folder_of(entry)
            if not os.path.lexists(folder) or folder in seen:
                continue
            seen.add(folder)
            if os.path.realpath(folder) in host:
                kept.append((folder, "a host faceset's entry points at it too"))
                continue
            proof = prove_owned(folder, entry)
            if proof.ours:
                mine.append((folder, proof))
            else:
                kept.append((folder, proof.why))
        return mine, kept

    def check_write_paths(self, parent: str | None = None) -> None:
        """Refuse, before the first write, any symlink where the plugin writes or
        deletes: its state folder and files, ``_thin/`` and the crop cache."""
        state = self.state_dir
        for folder in (state, os.path.join(self.root, THIN_DIR), os.path.join(state, "crops"),
                       os.path.join(state, "cache")):
            refuse_link(folder)
        if parent is not None:
            refuse_link(os.path.join(state, "crops", parent))
        for name in ("lock", "photos.json", "journal.json"):
            refuse_link(os.path.join(state, name), want_dir=False)

    def taken_names(self, parent: str) -> set[str]:
        """Names a new label of ``parent`` must avoid: every entry and folder that is
        not one of ``parent``'s own era or thin buckets (provably ours on disk)."""
        mine, _ = self.split_folders(parent)
        replaceable = {os.path.basename(folder) for folder, _ in mine}
        ours = {e.get("name") for e in self.facesets + self.thin_eras if owned_by(e, parent)}
        ours = {n for n in ours if n in replaceable or not _on_disk(self.root, n)}
        names = {e.get("name") for e in self.facesets + self.thin_eras if not owned_by(e, parent)}
        for folder in (self.root, os.path.join(self.root, THIN_DIR)):
            try:
                names.update(n for n in os.listdir(folder) if n not in ours)
            except OSError:
                pass
        return {n for n in names if isinstance(n, str)}


def _on_disk(root: str, name: object) -> bool:
    if not isinstance(name, str):
        return False
    return os.path.lexists(os.path.join(root, name)) or os.path.lexists(os.path.join(root, THIN_DIR, name))


def open_library(root: str | os.PathLike) -> Library:
    root = os.fspath(root)
    manifest = os.path.join(root, MANIFEST)
    if not os.path.isdir(root):
        raise EraSplitError(root, "library folder not found")
    data = read_json(manifest)
    if not isinstance(data, dict):
        raise EraSplitError(manifest, "library manifest must be a JSON object")
    for array in ("facesets", "thin_eras"):
        if array not in data:
            if array == "facesets":
                raise EraSplitError(manifest, "has no 'facesets' array")
            continue
        if not isinstance(data[array], list):
            raise EraSplitError(manifest, f"'{array}' must be an array")
        for i, entry in enumerate(data[array]):
            where = f"{manifest} {array}[{i}]"
            if not isinstance(entry, dict):
                raise EraSplitError(where, "entry must be an object")
            check_name(entry.get("name"), where)
            resolve_relpath(root, entry.get("relpath"), where)
    return Library(root, manifest, data)


def _strip_owned(entries: list, parent: str) -> tuple[list, int | None, bool]:
    """Entries without ``parent``'s own, where the first of them stood, and whether
    one of them carried the created-``thin_eras`` flag."""
    kept, first, flagged = [], None, False
    for entry in entries:
        if owned_by(entry, parent):
            if first is None:
                first = len(kept)
            flagged = flagged or bool(entry[OWNER].get(CREATED_FLAG))
        else:
            kept.append(entry)
    return kept, first, flagged


def replace_split(data: dict, parent: str, eras: list[dict], thins: list[dict]) -> dict:
    """New library manifest with ``parent``'s era and thin entries replaced.

    New entries go where the old ones stood; the first time, eras go right after
    their parent and thin ones at the end of ``thin_eras``, so a re-run with the
    same result gives the same manifest. A ``thin_eras`` array the plugin creates
    is flagged on one of its own entries, so undo can remove it again.
    """
    out = copy.deepcopy(data)
    facesets, at, _ = _strip_owned(out["facesets"], parent)
    if at is None:
        at = next((i + 1 for i, e in enumerate(facesets) if e.get("name") == parent), len(facesets))
    facesets[at:at] = copy.deepcopy(eras)
    out["facesets"] = facesets

    had_array = "thin_eras" in out
    thin, thin_at, flagged = _strip_owned(out.get("thin_eras", []), parent)
    created = not had_array or flagged
    for entry in thin:
        if owned_by(entry) and entry[OWNER].pop(CREATED_FLAG, None):
            created = True
    pos = len(thin) if thin_at is None else thin_at
    thin[pos:pos] = copy.deepcopy(thins)
    if not thin and created:
        out.pop("thin_eras", None)
        return out
    out["thin_eras"] = thin
    if created:
        mine = next((e for e in thin if owned_by(e)), None)
        if mine is not None:
            mine[OWNER][CREATED_FLAG] = True
    return out


def remove_split(data: dict, parent: str) -> dict:
    """New library manifest without anything the plugin made for ``parent``."""
    return replace_split(data, parent, [], [])
