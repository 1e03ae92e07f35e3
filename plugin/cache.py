"""Read the host's embedding cache (``.npz``), validated and normalised."""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass

import numpy as np

from .errors import EraSplitError

REQUIRED = ("keys", "paths", "embeddings", "bboxes", "det_score", "blur")


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

    def __len__(self) -> int:
        return len(self.keys)

    def index_of(self) -> dict[str, int]:
        return {k: i for i, k in enumerate(self.keys.tolist())}


def load_cache(path: str | os.PathLike) -> EmbeddingCache:
    """Load and validate an embedding cache; raise :class:`EraSplitError` on bad input."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise EraSplitError(path, "embedding cache not found")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise EraSplitError(path, "holds object arrays (pickled data), refused") from None
        raise EraSplitError(path, f"not a readable .npz: {exc}") from None
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise EraSplitError(path, f"not a readable .npz (truncated or corrupt): {exc}") from None
    return validate_cache(arrays, path)


def validate_cache(arrays: dict[str, np.ndarray], path: str = "") -> EmbeddingCache:
    missing = [name for name in REQUIRED if name not in arrays]
    if missing:
        raise EraSplitError(path, f"missing arrays: {', '.join(missing)}")
    for name, arr in arrays.items():
        if arr.dtype == object:
            raise EraSplitError(path, f"array {name!r} holds objects, refused")

    emb = arrays["embeddings"]
    if emb.ndim != 2 or emb.shape[1] == 0:
        raise EraSplitError(path, f"embeddings must have shape (n, d), got {emb.shape}")
    if not np.issubdtype(emb.dtype, np.number):
        raise EraSplitError(path, f"embeddings must be numeric, got {emb.dtype}")
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

    keys = arrays["keys"].astype(str)
    unique, counts = np.unique(keys, return_counts=True)
    if len(unique) != n:
        dup = unique[counts > 1][:3].tolist()
        raise EraSplitError(path, f"duplicate keys: {', '.join(dup)}")

    emb = emb.astype(np.float32)
    if not np.isfinite(emb).all():
        bad = int(np.flatnonzero(~np.isfinite(emb).all(axis=1))[0])
        raise EraSplitError(path, f"embedding of key {str(keys[bad])!r} holds NaN or infinity")
    norms = np.linalg.norm(emb, axis=1)
    if (norms == 0).any():
        bad = int(np.flatnonzero(norms == 0)[0])
        raise EraSplitError(path, f"embedding of key {str(keys[bad])!r} is all zeros")
    emb /= norms[:, None]

    numeric = {}
    for name in ("bboxes", "det_score", "blur", "face_short"):
        if name not in arrays:
            continue
        arr = arrays[name]
        if not np.issubdtype(arr.dtype, np.number):
            raise EraSplitError(path, f"array {name!r} must be numeric, got {arr.dtype}")
        arr = arr.astype(np.float64)
        if not np.isfinite(arr).all():
            raise EraSplitError(path, f"array {name!r} holds NaN or infinity")
        numeric[name] = arr
    bboxes = numeric["bboxes"]
    if ((bboxes[:, 2] <= bboxes[:, 0]) | (bboxes[:, 3] <= bboxes[:, 1])).any():
        bad = int(np.flatnonzero((bboxes[:, 2] <= bboxes[:, 0]) | (bboxes[:, 3] <= bboxes[:, 1]))[0])
        raise EraSplitError(path, f"bbox of key {str(keys[bad])!r} is empty or inverted")
    face_short = numeric.get("face_short")
    if face_short is None:
        face_short = np.minimum(bboxes[:, 2] - bboxes[:, 0], bboxes[:, 3] - bboxes[:, 1])

    return EmbeddingCache(
        keys=keys,
        paths=arrays["paths"].astype(str),
        embeddings=emb,
        bboxes=bboxes,
        det_score=numeric["det_score"],
        blur=numeric["blur"],
        face_short=face_short,
        source=path,
    )
