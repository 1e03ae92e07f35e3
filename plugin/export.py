"""Build one era or thin faceset folder: crops, bundles, manifest, markers.

The folder has the host's faceset shape, so the host and roop-unleashed read it
like any other: ``0000.png``... ranked best first, ``<name>_all.fsz`` (a flat zip
of every PNG), ``<name>_top<N>.fsz``, ``manifest.json`` and ``<name>.txt``.
"""

from __future__ import annotations

import os
import shutil
import zipfile
from collections import defaultdict
from collections.abc import Callable, Sequence

from .crops import encode_png, open_displayed, render_crop
from .fsutil import atomic_write_bytes, dump_json
from .params import SplitParams
from .pipeline import Bucket, Face, SplitResult

FSZ_WARN_BYTES = 100 * 1024 * 1024
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # fixed stamps: same crops give the same bytes

Progress = Callable[[str, int, int], None]


def crop_file(index: int) -> str:
    return f"{index:04d}.png"


def render_crops(
    faces: Sequence[Face], out_dir: str, size: int, progress: Progress | None = None
) -> dict[str, str]:
    """Write ``<out_dir>/<key-index>.png`` for each face, decoding each photo once.

    Returns {key: reason} for faces whose photo could not be decoded.
    """
    by_photo: dict[str, list[int]] = defaultdict(list)
    for i, face in enumerate(faces):
        by_photo[face.path].append(i)
    failed: dict[str, str] = {}
    done = 0
    for path in sorted(by_photo):
        members = by_photo[path]
        try:
            image = open_displayed(path)
        except FileNotFoundError:
            failed.update({faces[i].key: "missing_photo" for i in members})
        except Exception:  # any decoder failure: a truncated or corrupt photo
            failed.update({faces[i].key: "unreadable_photo" for i in members})
        else:
            for i in members:
                png = encode_png(render_crop(image, faces[i].box, size))
                with open(os.path.join(out_dir, f"{i}.png"), "wb") as fh:
                    fh.write(png)
        done += len(members)
        if progress:
            progress("crops", done, len(faces))
    return failed


def write_fsz(path: str, files: Sequence[tuple[str, str]]) -> int:
    """Flat, stored (PNGs are already compressed) zip of (arcname, file) pairs; its size."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for arcname, src in files:
            info = zipfile.ZipInfo(arcname, date_time=_ZIP_EPOCH)
            info.external_attr = 0o644 << 16
            with open(src, "rb") as fh:
                zf.writestr(info, fh.read())
    return os.path.getsize(path)


def face_entry(face: Face, file: str) -> dict:
    return {
        "key": face.key,
        "file": file,
        "source": face.recorded,
        "bbox": [round(v, 2) for v in face.bbox],
        "det_score": round(face.det_score, 4),
        "blur": round(face.blur, 2),
        "face_short": round(face.face_short, 2),
        "year": face.year or None,
        "quality": round(face.quality, 4),
    }


def ownership(bucket: Bucket, result: SplitResult) -> dict:
    """The ``era_split`` object that marks an entry as ours (library and faceset manifests)."""
    return {
        "parent": result.faceset,
        "kind": bucket.kind,
        "reason": bucket.reason,
        "dom_year": bucket.dom_year,
        "span": list(bucket.span) if bucket.span else None,
        "anchor": bucket.anchor,
        "params_key": result.params.cache_key(),
    }


def library_entry(bucket: Bucket, result: SplitResult, relpath: str) -> dict:
    return {
        "name": bucket.name,
        "relpath": relpath,
        "faces": len(bucket.faces),
        "era_split": ownership(bucket, result),
    }


def _marker_text(bucket: Bucket, result: SplitResult) -> str:
    when = f"around {bucket.span[0]}" if bucket.span and bucket.span[0] == bucket.span[1] else (
        f"around {bucket.span[0]}-{bucket.span[1]}" if bucket.span else "undated"
    )
    return f"{bucket.name}: {result.faceset} {when}, {len(bucket.faces)} faces ({bucket.kind})\n"


def _thin_text(bucket: Bucket, params: SplitParams) -> str:
    return (
        f"THIN: {len(bucket.faces)} faces, fewer than the anchor size {params.anchor_min} "
        f"used for this split ({bucket.reason}).\n"
        "Kept apart so it does not dilute an era; useful only for narrow, targeted swaps.\n"
    )


def write_bucket(folder: str, bucket: Bucket, result: SplitResult, crops: Sequence[str]) -> int:
    """Fill an empty ``folder`` for ``bucket``; ``crops`` are rendered PNGs in rank
    order (moved in). Returns the size of ``_all.fsz``."""
    params = result.params
    os.makedirs(folder, exist_ok=True)
    entries, files = [], []
    for rank, (face, src) in enumerate(zip(bucket.faces, crops)):
        name = crop_file(rank)
        dst = os.path.join(folder, name)
        shutil.move(src, dst)
        files.append((name, dst))
        entries.append(face_entry(face, name))
    all_size = write_fsz(os.path.join(folder, f"{bucket.name}_all.fsz"), files)
    write_fsz(os.path.join(folder, f"{bucket.name}_top{params.top}.fsz"), files[: params.top])
    manifest = {
        "name": bucket.name,
        "faces": entries,
        "era_split": {**ownership(bucket, result), "fragments": bucket.fragments,
                      "params": params.as_dict()},
    }
    atomic_write_bytes(os.path.join(folder, "manifest.json"), dump_json(manifest))
    atomic_write_bytes(os.path.join(folder, f"{bucket.name}.txt"), _marker_text(bucket, result).encode())
    if bucket.kind == "thin":
        atomic_write_bytes(os.path.join(folder, "THIN.txt"), _thin_text(bucket, params).encode())
    return all_size
