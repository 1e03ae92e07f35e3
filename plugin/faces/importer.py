"""``era-split import``: a host faceset from what a roop-unleashed user has — a
``.fsz`` or a folder of face crops or photos of the person.

Each face found in the source is re-detected and embedded with the same models
as the scan, and matched to the nearest face of the embedding cache. A match
must lie within ``match_dist`` (cosine distance): the same photo re-detected
from a crop lands within ~0.02 of its cached embedding, while another photo of
the same person lies 0.2-0.8 away (buffalo_s: median 0.47), so 0.15 keeps a
wide margin on both sides. Each cache face is matched at most once.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
import warnings
import zipfile
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from ..errors import EraSplitError
from ..host.cache import load_cache
from ..host.crops import encode_png, open_displayed, plan_crop_box, render_crop
from ..host.fsutil import (
    atomic_write_bytes,
    atomic_write_json,
    dump_json,
    open_regular,
    refuse_link,
)
from ..host.library import MANIFEST, STATE_DIR, check_name, read_json
from ..host.lock import library_lock
from ..host.transaction import STAGING_PREFIX
from .models import ModelSpec, detect, load_analyser
from .scan import list_photos

MATCH_DIST = 0.15
MAX_MEMBER_BYTES = 64 * 2**20  # a face crop is well under a MB; bigger members are refused
MAX_MEMBERS = 5000


@dataclass
class ImportReport:
    name: str
    folder: str
    images: int = 0
    faces: int = 0  # detected in the source
    matched: list[str] = field(default_factory=list)  # cache keys, in source order
    distances: list[float] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)  # source image names
    no_face: list[str] = field(default_factory=list)


def _fsz_images(path: str) -> list[tuple[str, Image.Image]]:
    """The images roop-unleashed would load from a .fsz: members whose name ends in
    lowercase ``.png``, in name order."""
    out = []
    try:
        with open_regular(path) as fh, zipfile.ZipFile(fh) as zf:
            members = sorted((i for i in zf.infolist() if i.filename.endswith(".png")), key=lambda i: i.filename)
            if len(members) > MAX_MEMBERS:
                raise EraSplitError(path, f"holds {len(members)} PNGs; a faceset holds at most {MAX_MEMBERS}")
            for info in members:
                if info.file_size > MAX_MEMBER_BYTES:
                    raise EraSplitError(path, f"member {info.filename!r} claims {info.file_size:,} bytes")
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        im = Image.open(io.BytesIO(zf.read(info)))
                        im.load()
                    out.append((info.filename, im.convert("RGB")))
                except Exception:
                    continue  # roop skips what it cannot decode too
    except (OSError, zipfile.BadZipFile) as exc:
        raise EraSplitError(path, f"is not a readable .fsz (zip): {exc}") from None
    return out


def _folder_images(path: str) -> list[tuple[str, Image.Image]]:
    """The pictures under ``path`` (as ``scan`` finds photos), as displayed."""
    out = []
    for full, _, _ in list_photos([path]):
        try:
            out.append((os.path.relpath(full, path), open_displayed(full)))
        except Exception:
            continue  # unreadable: not a picture of the person
    return out


def match_faces(app, images, cache, match_dist: float, report: ImportReport) -> list[tuple[int, str, Image.Image, tuple]]:
    """(cache row, source name, image, bbox) for each source face matched to the cache."""
    emb = np.asarray(cache.embeddings, dtype=np.float32)
    used: set[int] = set()
    out = []
    for name, image in images:
        found = detect(app, image)
        report.faces += len(found)
        if not found:
            report.no_face.append(name)
            continue
        hit = False
        for d in found:
            dist = 1.0 - emb @ d.embedding
            for row in np.argsort(dist)[:8].tolist():
                if dist[row] > match_dist:
                    break
                if row not in used:
                    used.add(row)
                    out.append((row, name, image, d.bbox))
                    report.distances.append(float(dist[row]))
                    hit = True
                    break
        if not hit:
            report.unmatched.append(name)
    return out


def import_faceset(
    source: str,
    name: str,
    library: str,
    cache_file: str,
    spec: ModelSpec,
    *,
    match_dist: float = MATCH_DIST,
    lock_timeout: float = 30.0,
) -> ImportReport:
    """Add a host faceset ``name`` to ``library`` (created when missing) whose keys
    are the cache faces that ``source``'s faces match."""
    check_name(name, "--name")
    if os.path.lexists(library) and not os.path.isdir(library):
        raise EraSplitError(os.path.abspath(library), "is not a folder (give the library folder, or a new path)")
    if not 0 < match_dist < 1:
        raise EraSplitError(None, f"--match-dist must be in (0, 1), got {match_dist}")
    source = os.path.abspath(source)
    if os.path.isdir(source):
        images, kind = _folder_images(source), "folder"
    elif os.path.isfile(source):
        images, kind = _fsz_images(source), "fsz"
    else:
        raise EraSplitError(source, "not found (give a .fsz or a folder of pictures)")
    if not images:
        raise EraSplitError(source, "holds no picture roop-unleashed could load")
    cache = load_cache(cache_file)
    app = load_analyser(spec)
    report = ImportReport(name, os.path.join(os.path.abspath(library), name), images=len(images))
    matches = match_faces(app, images, cache, match_dist, report)
    report.matched = [str(cache.keys[row]) for row, *_ in matches]
    need = max(1, (report.images - len(report.no_face) + 1) // 2)
    if len(matches) < need:
        raise EraSplitError(
            source, f"only {len(matches)} of its {report.images} pictures match a face of the cache "
            f"{cache_file} (within {match_dist}); scan the photos they come from first: "
            f"era-split scan PHOTOS_DIR --cache {cache_file}"
        )
    _write(library, name, source, kind, matches, cache, report, lock_timeout)
    return report


def _write(library, name, source, kind, matches, cache, report, lock_timeout) -> None:
    library = os.path.abspath(library)
    if os.path.lexists(library) and not os.path.isdir(library):
        raise EraSplitError(library, "is not a folder (give the library folder, or a new path)")
    os.makedirs(library, exist_ok=True)
    manifest_file = os.path.join(library, MANIFEST)
    refuse_link(os.path.join(library, STATE_DIR))
    with library_lock(os.path.join(library, STATE_DIR), lock_timeout):
        data = read_json(manifest_file) if os.path.exists(manifest_file) else {"facesets": []}
        if not isinstance(data, dict) or not isinstance(data.get("facesets"), list):
            raise EraSplitError(manifest_file, "library manifest must be an object with a 'facesets' array")
        taken = {e.get("name") for e in data["facesets"] + data.get("thin_eras", []) if isinstance(e, dict)}
        folder = os.path.join(library, name)
        if name in taken or os.path.lexists(folder):
            raise EraSplitError(folder, f"the library already has a faceset or folder named {name!r}")
        # staged where every writer stages, so check --repair clears what a crash leaves
        staging = tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=os.path.join(library, STATE_DIR))
        try:
            faces = []
            crops = []
            for i, (row, src_name, image, bbox) in enumerate(matches):
                file = f"{i:04d}.png"
                if kind == "folder":  # a photo may show others: cut this face alone
                    box = plan_crop_box(bbox, [], image.width, image.height, 0.5)
                    png = encode_png(render_crop(image, box, 512))
                else:
                    png = encode_png(image)
                atomic_write_bytes(os.path.join(staging, file), png)
                crops.append(file)
                faces.append({"key": str(cache.keys[row]), "file": file, "source": str(cache.paths[row]),
                              "imported_from": src_name, "match_dist": round(report.distances[i], 4)})
            all_fsz = os.path.join(staging, f"{name}_all.fsz")
            if kind == "fsz":
                shutil.copyfile(source, all_fsz)  # "all eras" loads exactly what the user had
            else:
                with zipfile.ZipFile(all_fsz, "w", compression=zipfile.ZIP_STORED) as zf:
                    for file in crops:
                        zf.write(os.path.join(staging, file), file)
            atomic_write_bytes(os.path.join(staging, MANIFEST), dump_json({"name": name, "faces": faces}))
            atomic_write_bytes(os.path.join(staging, f"{name}.txt"),
                               f"{name}: imported from {os.path.basename(source)}\n".encode())
            os.rename(staging, folder)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        data["facesets"].append({"name": name, "relpath": name, "faces": len(faces)})
        atomic_write_json(manifest_file, data)
