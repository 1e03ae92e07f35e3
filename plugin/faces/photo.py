"""One photo to face records: decoded as displayed, every face found and embedded.

The unit of a scan's work, wherever it runs: a worker process here, or a Ray
actor on another machine that received the photo's bytes (:mod:`.cluster`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from ..host import heif
from ..host.exif import HostileExif
from ..host.photos import PhotoTooLarge, open_displayed
from .models import _iou, sharpness

SAME_FACE_IOU = 0.5  # a face found again in an unchanged photo keeps its key

heif.register()


@dataclass
class FileResult:
    path: str
    size: int
    mtime: int
    status: str  # "ok" or why not
    faces: list[dict]



def face_key(path: str, size: int, mtime: int, index: int) -> str:
    """Stable while the file is unchanged; a changed file gets new keys."""
    digest = hashlib.sha1(f"{path}\0{size}\0{mtime}".encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return f"{digest}_{index}"


def _key_index(key: str) -> int:
    tail = key.rpartition("_")[2]
    return int(tail) if tail.isdigit() else -1


def scan_file(analyser, path: str, size: int, mtime: int, known: list[dict] | None = None,
              data: bytes | None = None) -> FileResult:
    """Decode one photo as displayed (EXIF orientation applied) and embed its faces;
    never raises for a bad file. ``known`` are the records an older detector made of
    this unchanged file: a face found again keeps its key, one not found again is
    kept as it was (its sharpness measured anew). ``data``: the file's bytes, read
    on another machine (``path`` then only names the photo)."""
    try:
        shown = open_displayed(path, data)
    except FileNotFoundError:
        return FileResult(path, size, mtime, "missing", [])
    except HostileExif:
        return FileResult(path, size, mtime, "hostile_exif", [])
    except PhotoTooLarge:
        return FileResult(path, size, mtime, "too_large", [])
    except Exception:
        return FileResult(path, size, mtime, "unreadable", [])
    gray = np.asarray(shown.convert("L"))
    found = [d for d in analyser.find(shown) if d.bbox[2] > d.bbox[0] and d.bbox[3] > d.bbox[1]]
    known = known or []
    keys: list[str | None] = [None] * len(found)
    if known and found:
        iou = _iou(np.array([d.bbox for d in found]), np.array([k["bbox"] for k in known], dtype=np.float64))
        taken_new, taken_old = set(), set()
        for flat in np.argsort(-iou, axis=None, kind="stable"):
            i, j = divmod(int(flat), len(known))
            if iou[i, j] < SAME_FACE_IOU:
                break
            if i not in taken_new and j not in taken_old:
                keys[i] = known[j]["key"]
                taken_new.add(i)
                taken_old.add(j)
        lost = [k for j, k in enumerate(known) if j not in taken_old]
    else:
        lost = list(known)
    index = max([_key_index(k["key"]) for k in known] + [-1]) + 1
    faces = []
    for d, key in zip(found, keys):
        if key is None:
            key, index = face_key(path, size, mtime, index), index + 1
        x1, y1, x2, y2 = d.bbox
        faces.append({
            "key": key, "path": path, "embedding": d.embedding,
            "bbox": np.array(d.bbox, dtype=np.float32), "det_score": d.det_score,
            "blur": sharpness(gray, d.bbox), "face_short": float(min(x2 - x1, y2 - y1)),
            "landmarks": d.landmarks, "age": d.age,
        })
    for k in lost:  # found by the older detector only: kept, with this scan's sharpness
        faces.append({**k, "path": path, "blur": sharpness(gray, k["bbox"])})
    return FileResult(path, size, mtime, "ok", faces)
