"""The scan's arrays: built from photo results, merged, written, checkpointed.

A scan's cost past the models must stay linear in the archive: at 500,000
photos, rewriting everything scanned so far at each checkpoint (what the scan
did before issue 23) grew with the square of the archive, and a list of
per-face Python dicts held gigabytes. So results become arrays at each
checkpoint and are dropped; a checkpoint writes only what it adds, as one more
part in ``<cache stem>.partial/``; and the cache is written one array at a time
(the peak is the parts plus the largest array, not two copies of everything).
"""

from __future__ import annotations

import os
import re
import stat
import zipfile
from collections.abc import Iterable, Iterator

import numpy as np

from ..errors import EraSplitError
from .models import DETECTOR
from .photo import FileResult

RECORD_ARRAYS = ("keys", "paths", "embeddings", "bboxes", "det_score", "blur", "face_short", "landmarks",
                 "age")
BOOK_ARRAYS = ("scan_files", "scan_sizes", "scan_mtimes", "scan_status")
PART = re.compile(r"^part-(\d{6})\.npz$")

Arrays = dict[str, np.ndarray]


def records(arrays: Arrays | None) -> int:
    return 0 if arrays is None else len(arrays["keys"])


def from_results(results: list[FileResult], model_tag: str, dim: int | None) -> Arrays:
    """The records and file bookkeeping of ``results``, as the cache's arrays."""
    faces = [f for r in results for f in r.faces]
    d = dim or (len(faces[0]["embedding"]) if faces else 512)
    return {
        "keys": np.array([f["key"] for f in faces], dtype=str),
        "paths": np.array([f["path"] for f in faces], dtype=str),
        "embeddings": np.array([f["embedding"] for f in faces], dtype=np.float32).reshape(-1, d),
        "bboxes": np.array([f["bbox"] for f in faces], dtype=np.float32).reshape(-1, 4),
        "det_score": np.array([f["det_score"] for f in faces], dtype=np.float32),
        "blur": np.array([f["blur"] for f in faces], dtype=np.float32),
        "face_short": np.array([f["face_short"] for f in faces], dtype=np.float32),
        "landmarks": np.array([f["landmarks"] for f in faces], dtype=np.float32).reshape(-1, 5, 2),
        "age": np.array([f.get("age", np.nan) for f in faces], dtype=np.float32),
        "scan_files": np.array([r.path for r in results], dtype=str),
        "scan_sizes": np.array([r.size for r in results], dtype=np.int64),
        "scan_mtimes": np.array([r.mtime for r in results], dtype=np.int64),
        "scan_status": np.array([r.status for r in results], dtype=str),
        "scan_model": np.array([model_tag]),
        "scan_detector": np.array([DETECTOR]),
    }


def select(arrays: Arrays, keep_rows: np.ndarray, keep_files: np.ndarray) -> Arrays:
    """The records in ``keep_rows`` and the file bookkeeping in ``keep_files``
    (the arrays themselves, not copies, where all are kept)."""
    n = len(arrays["keys"])
    rows, files = (None if keep.all() else keep for keep in (keep_rows, keep_files))
    out = {}
    for name, arr in arrays.items():
        if name in BOOK_ARRAYS:
            out[name] = arr if files is None else arr[files]
        elif name in ("scan_model", "scan_detector"):
            out[name] = arr
        elif arr.ndim and arr.shape[0] == n:
            out[name] = arr if rows is None else arr[rows]  # per-record arrays, ours or another tool's
        else:
            out[name] = arr
    return out


def merged(parts: list[Arrays], model_tag: str) -> Iterator[tuple[str, list[np.ndarray]]]:
    """The cache's arrays from ``parts``, each as the pieces to write one after another."""
    for name in RECORD_ARRAYS + BOOK_ARRAYS:
        pieces = [_filled(p, name) for p in parts]
        yield name, [a for a in pieces if len(a)] or pieces[:1]
    yield "scan_model", [np.array([model_tag])]
    yield "scan_detector", [np.array([DETECTOR])]


def _filled(part: Arrays, name: str) -> np.ndarray:
    """``part[name]``, or what stands for it in a cache an older version wrote
    without it (one row per record or per file, so the rows stay aligned)."""
    if name in part:
        return part[name]
    if name in BOOK_ARRAYS:
        return np.zeros(0, dtype=np.int64 if name in ("scan_sizes", "scan_mtimes") else str)
    n = len(part["keys"])
    if name == "face_short":
        b = part["bboxes"]
        return np.minimum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]).astype(np.float32)
    if name == "landmarks":
        return np.zeros((n, 5, 2), np.float32)
    if name == "age":
        return np.full(n, np.nan, np.float32)  # not measured
    return np.zeros(n, np.float32)


def _write_pieces(member, pieces: list[np.ndarray]) -> None:
    """One .npy array made of ``pieces`` joined on the first axis, written piece by
    piece: joining them first would hold a second copy of the largest array."""
    pieces = [np.asarray(a) for a in pieces]
    if len(pieces) == 1:
        np.lib.format.write_array(member, pieces[0], allow_pickle=False)
        return
    dtype = np.result_type(*pieces)  # strings: the widest
    shape = (sum(len(a) for a in pieces),) + pieces[0].shape[1:]
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape}
    try:
        np.lib.format.write_array_header_1_0(member, header)
    except ValueError:  # a header too long for version 1.0
        np.lib.format.write_array_header_2_0(member, header)
    for a in pieces:
        member.write(memoryview(np.ascontiguousarray(a, dtype=dtype)).cast("B"))


def write_arrays(path: str, arrays: Iterable[tuple[str, list[np.ndarray]]]) -> None:
    """An .npz of ``arrays`` (name, pieces) as numpy.load reads it, zip64 where
    large, written to a temp file beside ``path`` and renamed over it."""
    folder = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.tmp.npz")
    try:
        with open(tmp, "wb") as fh:
            with zipfile.ZipFile(fh, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
                for name, pieces in arrays:
                    with zf.open(f"{name}.npy", "w", force_zip64=True) as member:
                        _write_pieces(member, pieces)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def read_arrays(path: str) -> Arrays:
    with np.load(path, allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}


def model_of(arrays: Arrays | None, where: str) -> str | None:
    if arrays is None:
        return None
    if "scan_model" not in arrays:
        if records(arrays):
            raise EraSplitError(where, "was not written by era-split scan (no scan_model): its faces may come "
                                       "from another face model; scan into a new cache file")
        return None
    return str(arrays["scan_model"][0])


def detector_of(arrays: Arrays | None) -> str | None:
    if arrays is None or "scan_detector" not in arrays or not len(arrays["scan_detector"]):
        return None
    return str(arrays["scan_detector"][0])


class Checkpoints:
    """An interrupted scan's work: ``<cache stem>.partial/part-NNNNNN.npz``, one
    part per checkpoint holding only the files scanned since the one before,
    each written whole (temp file + rename). A scan of another model or an older
    detector left parts that are not used; a damaged part costs only its files.
    ``<cache stem>.partial.npz``, where earlier versions kept all of it in one
    file, is read too. Only parts named as this class names them are removed."""

    def __init__(self, cache_file: str) -> None:
        stem = cache_file[:-4] if cache_file.endswith(".npz") else cache_file
        self.folder = stem + ".partial"
        self.legacy = stem + ".partial.npz"
        self.next = 0  # the next part's number; 0 until the folder is listed
        if os.path.lexists(self.folder) and not stat.S_ISDIR(os.lstat(self.folder).st_mode):
            raise EraSplitError(self.folder, "is in the way of the scan's checkpoints (it is not a folder "
                                             "era-split made); move it away")

    def _parts(self) -> list[str]:
        if not os.path.isdir(self.folder):
            return []
        names = sorted(n for n in os.listdir(self.folder) if PART.match(n))
        self.next = max(self.next, int(PART.match(names[-1]).group(1)) + 1 if names else 1)
        return [os.path.join(self.folder, n) for n in names]

    def load(self, model_tag: str) -> list[Arrays]:
        """The parts this model and detector wrote, oldest first."""
        out = []
        for path in ([self.legacy] if os.path.isfile(self.legacy) else []) + self._parts():
            try:
                part = read_arrays(path)
                if model_of(part, path) != model_tag or detector_of(part) != DETECTOR:
                    continue
                n, files = len(part["keys"]), len(part["scan_files"])
                if any(len(part[a]) != n for a in RECORD_ARRAYS) or any(len(part[a]) != files for a in BOOK_ARRAYS):
                    continue
            except Exception:  # a damaged checkpoint only costs the work it held
                continue
            out.append(part)
        return out

    def add(self, arrays: Arrays) -> None:
        if not os.path.isdir(self.folder):
            os.mkdir(self.folder, 0o700)
        if not self.next:
            self._parts()
        write_arrays(os.path.join(self.folder, f"part-{self.next:06d}.npz"), ((n, [a]) for n, a in arrays.items()))
        self.next += 1

    def clear(self) -> None:
        for path in self._parts():
            os.unlink(path)
        if os.path.isdir(self.folder):
            try:
                os.rmdir(self.folder)
            except OSError:
                pass  # something not ours is in it: left alone
        if os.path.isfile(self.legacy):
            os.unlink(self.legacy)
