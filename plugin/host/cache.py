"""Read the host's embedding cache (``.npz``), validated and normalised.

A big cache (a million faces is 2 GB of embeddings) is converted once into
``.npy`` files under ``<library>/.era_split/cache/`` and memory-mapped from then
on: a plan reads only the pages it touches, and the conversion is redone when
the ``.npz`` changes size or mtime.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field

import numpy as np

from ..errors import EraSplitError
from .fsutil import is_regular, open_regular

REQUIRED = ("keys", "paths", "embeddings", "bboxes", "det_score", "blur")
OPTIONAL = ("face_short", "landmarks", "age")
STORE_FIELDS = ("keys", "paths", "embeddings", "bboxes", "det_score", "blur", "face_short",
                "key_order", "path_order")
STORE_OPTIONAL = ("landmarks", "age")
STORE_VERSION = 2
MAX_AGE = 120.0
CONVERT_BYTES = 64 * 2**20  # caches bigger than this are converted and memory-mapped
# Face embeddings have 128 dimensions or more (ArcFace: 512). A handful cannot tell
# people apart: with 1 dimension every unit vector is +-1 and every face "the person";
# from 8 on, unrelated vectors are near-orthogonal (cosine within +-0.35 at 8).
MIN_DIM = 8
MAX_COORD = 1_000_000  # px: no photo is a million pixels wide
BLOCK_ROWS = 8192  # embeddings normalised this many rows at a time


@dataclass(frozen=True)
class EmbeddingCache:
    """One record per detected face of the photo archive.

    embeddings : float32 array of shape (n, d), rows L2-normalised
    bboxes : float array of shape (n, 4), x1, y1, x2, y2 as displayed
    """

    keys: np.ndarray
    paths: np.ndarray
    embeddings: np.ndarray
    bboxes: np.ndarray
    det_score: np.ndarray
    blur: np.ndarray
    face_short: np.ndarray
    source: str = ""
    landmarks: np.ndarray | None = field(default=None, repr=False)  # (n, 5, 2); zeros: not recorded
    age: np.ndarray | None = field(default=None, repr=False)  # (n,) apparent age; NaN: not measured
    key_order: np.ndarray | None = field(default=None, repr=False)  # argsort of keys
    path_order: np.ndarray | None = field(default=None, repr=False)  # argsort of paths

    def __len__(self) -> int:
        return len(self.keys)

    def rows_of(self, keys: list[str]) -> tuple[np.ndarray, int]:
        """Rows of ``keys`` (first occurrences, in order), and how many are absent."""
        order = self.key_order if self.key_order is not None else np.argsort(self.keys, kind="stable")
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return np.zeros(0, dtype=np.int64), 0
        sorted_keys = self.keys[order]
        pos = np.searchsorted(sorted_keys, np.array(wanted, dtype=str))
        pos = np.minimum(pos, len(order) - 1)
        found = sorted_keys[pos] == np.array(wanted, dtype=str)
        rows = order[pos[found]].astype(np.int64)
        return rows, int((~found).sum())

    def rows_by_path(self, paths: set[str]) -> dict[str, list[int]]:
        """Every row recorded for each of ``paths`` (any identity)."""
        out: dict[str, list[int]] = {p: [] for p in paths}
        if not paths:
            return out
        order = self.path_order if self.path_order is not None else np.argsort(self.paths, kind="stable")
        sorted_paths = self.paths[order]
        for p in sorted(paths):
            lo = np.searchsorted(sorted_paths, p, side="left")
            hi = np.searchsorted(sorted_paths, p, side="right")
            out[p] = sorted(order[lo:hi].tolist())
        return out


def load_cache(path: str | os.PathLike, store_dir: str | None = None) -> EmbeddingCache:
    """Load and validate an embedding cache; raise :class:`EraSplitError` on bad input.

    With ``store_dir``, a cache over 64 MB is converted once into memory-mapped
    ``.npy`` files there and read from them afterwards.
    """
    path = os.fspath(path)
    if "\x00" in path or not os.path.exists(path):
        raise EraSplitError(path, "embedding cache not found")
    if not is_regular(path):
        raise EraSplitError(path, "embedding cache is not a regular file")
    if store_dir and os.path.getsize(path) > CONVERT_BYTES:
        return _from_store(path, store_dir)
    return _read_npz(path)


def check_npz(path: str) -> None:
    """Refuse, naming the problem, a file that is not an .npz or whose arrays
    claim more than their members hold; reads headers only."""
    _sniff(path)
    try:
        _array_members(path)
    except EraSplitError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, zlib.error) as exc:
        raise EraSplitError(path, f"not a readable .npz (truncated or corrupt): {exc}") from None


def _sniff(path: str) -> None:
    """Name what the file is when it is not an .npz (a zip of .npy arrays)."""
    try:
        with open_regular(path) as fh:
            head = fh.read(8)
    except OSError as exc:
        raise EraSplitError(path, f"cannot be read: {exc.strerror or exc}") from None
    if head.startswith(b"PK"):
        return
    if head.startswith(b"\x93NUMPY"):
        raise EraSplitError(path, "is a single .npy array; the cache must be an .npz archive of "
                                  "named arrays (keys, paths, embeddings, bboxes, det_score, blur)")
    if head.lstrip()[:1] in (b"{", b"["):
        raise EraSplitError(path, "is a JSON file (a manifest?), not an .npz embedding cache")
    raise EraSplitError(path, "is not an .npz archive (not a zip file)")


def _array_members(path: str) -> dict[str, str]:
    """{array name: zip member} for the arrays we read, each checked against its
    member's size, so a header that claims a huge shape is refused before any
    memory is allocated for it."""
    wanted = set(REQUIRED) | set(OPTIONAL)
    out = {}
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            if name not in wanted:
                continue  # arrays we do not know are ignored (SPEC: readers ignore them)
            if not info.filename.endswith(".npy"):
                raise EraSplitError(path, f"member {info.filename!r} is not a .npy array")
            with zf.open(info) as fh:
                try:
                    fmt = np.lib.format
                    version = fmt.read_magic(fh)
                    read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
                    shape, _, dtype = read(fh)
                except (ValueError, SyntaxError, OSError, EOFError, KeyError, TypeError) as exc:
                    raise EraSplitError(path, f"array {name!r} has a broken header: {exc}") from None
                header = fh.tell()
            if dtype.hasobject:
                raise EraSplitError(path, f"array {name!r} holds objects (pickled data), refused")
            need = int(np.prod(shape, dtype=object)) * dtype.itemsize
            if need > info.file_size - header:
                raise EraSplitError(
                    path, f"array {name!r} claims shape {tuple(shape)} ({need:,} bytes) but its "
                    f"member holds {info.file_size - header:,}: truncated or forged"
                )
            out[name] = info.filename
    return out


def _read_npz(path: str) -> EmbeddingCache:
    _sniff(path)
    try:
        members = _array_members(path)
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in members}
    except EraSplitError:
        raise
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise EraSplitError(path, "holds object arrays (pickled data), refused") from None
        raise EraSplitError(path, f"not a readable .npz: {exc}") from None
    except (OSError, zipfile.BadZipFile, EOFError, zlib.error) as exc:
        raise EraSplitError(path, f"not a readable .npz (truncated or corrupt): {exc}") from None
    except MemoryError:
        raise EraSplitError(path, "is too large to load into memory") from None
    return validate_cache(arrays, path)


def _strings(arr: np.ndarray, name: str, path: str, *, file_names: bool) -> np.ndarray:
    """A str array from a U or S array. Bytes are decoded as UTF-8; recorded file
    names that are not UTF-8 keep their bytes through surrogateescape, as Python
    does for file names; keys must be real text."""
    if arr.dtype.kind == "U":
        return arr.astype(str)
    errors = "surrogateescape" if file_names else "strict"
    out = []
    for i, raw in enumerate(arr.tolist()):
        try:
            out.append(raw.decode("utf-8", errors))
        except UnicodeDecodeError:
            raise EraSplitError(path, f"array {name!r} entry {i} is not UTF-8 text: {raw[:40]!r}") from None
    return np.array(out, dtype=str) if out else np.zeros(0, dtype=str)


def validate_cache(arrays: dict[str, np.ndarray], path: str = "", normalise: bool = True) -> EmbeddingCache:
    """The cache of ``arrays``, every array checked; ``normalise=False`` keeps the
    embeddings as they are (checked, not copied: the scan merges them).
    Raises :class:`EraSplitError` naming the first problem."""
    missing = [name for name in REQUIRED if name not in arrays]
    if missing:
        raise EraSplitError(path, f"missing arrays: {', '.join(missing)}")
    for name, arr in arrays.items():
        if not isinstance(arr, np.ndarray):
            raise EraSplitError(path, f"member {name!r} is not an array")
        if arr.dtype == object:
            raise EraSplitError(path, f"array {name!r} holds objects, refused")

    emb = arrays["embeddings"]
    if emb.ndim != 2 or emb.shape[1] == 0:
        raise EraSplitError(path, f"embeddings must have shape (n, d), got {emb.shape}")
    if emb.shape[1] < MIN_DIM:
        raise EraSplitError(path, f"array 'embeddings' has {emb.shape[1]} dimensions; face embeddings have "
                                  f"128 or more (ArcFace: 512), and {MIN_DIM} is the least accepted")
    if not np.issubdtype(emb.dtype, np.number) or np.issubdtype(emb.dtype, np.complexfloating):
        raise EraSplitError(path, f"embeddings must be real numbers, got {emb.dtype}")
    n = emb.shape[0]
    if n == 0:
        raise EraSplitError(path, "the cache holds no face records")

    shapes = {
        "keys": (n,),
        "paths": (n,),
        "bboxes": (n, 4),
        "det_score": (n,),
        "blur": (n,),
    }
    if "face_short" in arrays:
        shapes["face_short"] = (n,)
    for name, shape in shapes.items():
        if arrays[name].shape != shape:
            raise EraSplitError(
                path, f"array {name!r} has shape {arrays[name].shape}, expected {shape} "
                f"(embeddings have {n} rows)"
            )
    for name in ("keys", "paths"):
        if arrays[name].dtype.kind not in "US":
            raise EraSplitError(path, f"array {name!r} must hold strings, got {arrays[name].dtype}")

    keys = _strings(arrays["keys"], "keys", path, file_names=False)
    paths = _strings(arrays["paths"], "paths", path, file_names=True)
    unique, counts = np.unique(keys, return_counts=True)
    if len(unique) != n:
        dup = unique[counts > 1][:3].tolist()
        raise EraSplitError(path, f"duplicate keys: {', '.join(dup)}")

    emb = _normalised(emb, keys, path, copy=normalise)

    numeric = {}
    for name in ("bboxes", "det_score", "blur", "face_short"):
        if name not in arrays:
            continue
        arr = arrays[name]
        if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
            raise EraSplitError(path, f"array {name!r} must be real numbers, got {arr.dtype}")
        with np.errstate(over="ignore"):
            arr = arr.astype(np.float64)
        if not np.isfinite(arr).all():
            raise EraSplitError(path, f"array {name!r} holds NaN or infinity")
        numeric[name] = arr
    bboxes = numeric["bboxes"]
    if (np.abs(bboxes) > MAX_COORD).any():
        bad = int(np.flatnonzero((np.abs(bboxes) > MAX_COORD).any(axis=1))[0])
        raise EraSplitError(path, f"array 'bboxes': the box of key {str(keys[bad])!r} lies beyond "
                                  f"{MAX_COORD:,} px, outside any photo")
    if ((bboxes[:, 2] <= bboxes[:, 0]) | (bboxes[:, 3] <= bboxes[:, 1])).any():
        bad = int(np.flatnonzero((bboxes[:, 2] <= bboxes[:, 0]) | (bboxes[:, 3] <= bboxes[:, 1]))[0])
        raise EraSplitError(path, f"bbox of key {str(keys[bad])!r} is empty or inverted")
    face_short = numeric.get("face_short")
    if face_short is None:
        face_short = np.minimum(bboxes[:, 2] - bboxes[:, 0], bboxes[:, 3] - bboxes[:, 1])
    landmarks, age = _optional(arrays, n, path)

    return EmbeddingCache(
        keys=keys,
        paths=paths,
        embeddings=emb,
        bboxes=bboxes,
        det_score=numeric["det_score"],
        blur=numeric["blur"],
        face_short=face_short,
        source=path,
        landmarks=landmarks,
        age=age,
    )


def _optional(arrays: dict[str, np.ndarray], n: int, path: str) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The optional ``landmarks`` and ``age`` (SPEC 2.2), checked like the rest; a
    value that cannot be one (NaN, beyond any photo, an age over 120) reads as not
    recorded rather than failing the cache: they only label eras."""
    out = []
    for name, shape in (("landmarks", (n, 5, 2)), ("age", (n,))):
        arr = arrays.get(name)
        if arr is None:
            out.append(None)
            continue
        if arr.shape != shape:
            raise EraSplitError(path, f"array {name!r} has shape {arr.shape}, expected {shape} "
                                      f"(embeddings have {n} rows)")
        if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
            raise EraSplitError(path, f"array {name!r} must be real numbers, got {arr.dtype}")
        with np.errstate(over="ignore", invalid="ignore"):
            arr = arr.astype(np.float32)
            if name == "landmarks":
                bad = ~np.isfinite(arr).all(axis=(1, 2)) | (np.abs(arr) > MAX_COORD).any(axis=(1, 2))
                arr[bad] = 0.0
            else:
                arr[~np.isfinite(arr) | (arr < 0) | (arr > MAX_AGE)] = np.nan
        out.append(arr)
    return out[0], out[1]


def _normalised(emb: np.ndarray, keys: np.ndarray, path: str, copy: bool = True) -> np.ndarray:
    """A private float32 copy with unit rows (``copy=False``: ``emb`` itself, only
    checked, for a reader that merges the rows as they are).

    Each row is first divided by its largest magnitude, so a norm of values near
    1e20 (whose squares overflow float32) or 1e-30 (which underflow) is exact.
    Done in blocks of rows: a temporary the size of the whole would be a third
    copy of a million faces' embeddings.
    """
    out = None
    if copy:
        with np.errstate(over="ignore", invalid="ignore"):
            out = np.array(emb, dtype=np.float32)
    for start in range(0, len(emb), BLOCK_ROWS):
        if out is not None:
            block = out[start:start + BLOCK_ROWS]
        else:
            with np.errstate(over="ignore", invalid="ignore"):
                block = np.array(emb[start:start + BLOCK_ROWS], dtype=np.float32)
        if not np.isfinite(block).all():
            bad = start + int(np.flatnonzero(~np.isfinite(block).all(axis=1))[0])
            raise EraSplitError(
                path, f"embedding of key {str(keys[bad])!r} holds NaN or infinity (or values beyond float32)"
            )
        scale = np.abs(block).max(axis=1)
        if (scale == 0).any():
            bad = start + int(np.flatnonzero(scale == 0)[0])
            raise EraSplitError(path, f"embedding of key {str(keys[bad])!r} is all zeros")
        block /= scale[:, None]
        block /= np.linalg.norm(block, axis=1)[:, None]
    return emb if out is None else out


def _store_stamp(path: str) -> dict:
    st = os.stat(path)
    return {"version": STORE_VERSION, "source": os.path.abspath(path),
            "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _from_store(path: str, store_dir: str) -> EmbeddingCache:
    """The converted, memory-mapped form of ``path``; converted first when stale."""
    folder = os.path.join(store_dir, hashlib.sha1(os.path.abspath(path).encode()).hexdigest()[:16])
    stamp = _store_stamp(path)
    meta_file = os.path.join(folder, "meta.json")
    try:
        with open(meta_file, encoding="utf-8") as fh:
            fresh = json.load(fh) == stamp
    except (OSError, ValueError, RecursionError):
        fresh = False
    if not fresh:
        cache = _read_npz(path)
        try:
            _write_store(cache, folder, stamp)
        except OSError:
            return cache  # a read-only library: use it from memory this time
    arrays = {name: np.load(os.path.join(folder, f"{name}.npy"), mmap_mode="r") for name in STORE_FIELDS}
    for name in STORE_OPTIONAL:
        file = os.path.join(folder, f"{name}.npy")
        arrays[name] = np.load(file, mmap_mode="r") if os.path.isfile(file) else None
    return EmbeddingCache(source=path, **arrays)


def _write_store(cache: EmbeddingCache, folder: str, stamp: dict) -> None:
    parent = os.path.dirname(folder)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".convert-", dir=parent)
    try:
        arrays = {
            "keys": cache.keys, "paths": cache.paths, "embeddings": cache.embeddings,
            "bboxes": cache.bboxes, "det_score": cache.det_score, "blur": cache.blur,
            "face_short": cache.face_short,
            "key_order": np.argsort(cache.keys, kind="stable"),
            "path_order": np.argsort(cache.paths, kind="stable"),
            **{name: getattr(cache, name) for name in STORE_OPTIONAL if getattr(cache, name) is not None},
        }
        for name, arr in arrays.items():
            np.save(os.path.join(tmp, f"{name}.npy"), arr)
        with open(os.path.join(tmp, "meta.json"), "w", encoding="utf-8") as fh:
            json.dump(stamp, fh)
        shutil.rmtree(folder, ignore_errors=True)
        os.rename(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
