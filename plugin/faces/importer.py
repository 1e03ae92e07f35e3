"""``era-split import``: a host faceset from what a roop-unleashed user has — a
``.fsz`` or a folder of face crops or photos of the person.

1. **Faces.** Each picture is decoded in turn and its faces found as the scan
   finds them (:meth:`Analyser.find`: tight crops whose face fills the frame,
   small and upscaled photos). Pictures are never held together, only their
   faces' boxes and embeddings; a ``.fsz`` is read with bounded work
   (:mod:`host.bundles`).
2. **The person.** The pictures show one person; some also show others (a
   bystander beside him, the edge of a neighbour's face in a loose crop). For
   every pair of pictures, the two most alike faces get a vote: two photos of
   one person are more alike than a stranger is to either, so in each picture
   that holds the person, his face collects the votes. A picture's candidate
   is its face with most votes; a candidate whose distance to the other
   candidates' centre is :data:`STRANGER` or more is someone else (unrelated
   people lie near cosine distance 1 in ArcFace-style models; one person's own
   faces, at any age, well under 0.8). Every other face is listed, never added.
3. **Match.** The person's face in each picture is matched to its face in the
   embedding cache: in the same photo by its box when the picture *is* a
   scanned photo, else the nearest cache face: within ``match_dist`` always,
   and up to twice that when it is clearly the nearest (the next cache face
   that is not a near-copy of it, a burst shot, ``match_dist`` farther still). Measured with buffalo_s on real photos: a
   crop as roop cuts it (the face with a margin) lands 0.01-0.11 from its
   photo's embedding, a tight crop of the face box alone 0.08-0.24, another
   photo of the same person 0.2-0.8 away, a stranger 0.67 or more. Each cache
   face is matched once, as many pictures as possible, nearest first. The library's own crops never match, even if a scan
   took them in.
4. **Write.** Crops are staged under ``.era_split/`` and switched in by the
   journaled commit, the library manifest last: a crash leaves the library as
   it was (``check --repair``, or the next write, rolls it back).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from ..errors import EraSplitError
from ..host.bundles import MAX_MEMBERS, TINY, Bundle
from ..host.cache import EmbeddingCache, load_cache
from ..host.crops import encode_png, plan_crop_box, render_crop
from ..host.fsutil import atomic_write_bytes, dump_json, refuse_link
from ..host.library import (
    MANIFEST,
    OWNER,
    STATE_DIR,
    Library,
    check_new_name,
    open_library,
)
from ..host.lock import library_lock
from ..host.photos import PhotoTooLarge, open_displayed
from ..host.transaction import STAGING_PREFIX, commit, recover
from .models import ModelSpec, load_analyser
from .scan import walk_photos

MATCH_DIST = 0.3
STRANGER = 0.8
SAME_BOX = 0.5  # IoU: the picture is the scanned photo, and this is the same face
NEAREST = 32  # cache faces looked at per picture
UNFIT = 1e6  # the cost of a pairing that is not a match
# Why a picture gave no face of the person, in the words the report uses.
WHY = {
    "no_face": "no face found",
    "another_person": "only someone else's face",
    "not_in_cache": "the person, but not in the cache (scan the photo it comes from)",
    "duplicate": "the same cache face as another picture",
    "unreadable": "not a picture that can be loaded",
    "too_large": "too large to decode safely",
}


@dataclass
class Picture:
    name: str  # member name, or path relative to the folder
    path: str | None  # the file, for a folder
    member: object | None  # the bundle member, for a .fsz
    boxes: np.ndarray  # (k, 4)
    embeddings: np.ndarray  # (k, d)
    problem: str | None = None  # unreadable, too_large, no_face
    person: int | None = None  # index of the person's face
    row: int | None = None  # matched cache row
    dist: float = 0.0


@dataclass
class ImportReport:
    name: str
    folder: str
    images: int = 0
    faces: int = 0  # detected in the source
    matched: list[str] = field(default_factory=list)  # cache keys, in source order
    distances: list[float] = field(default_factory=list)
    unmatched: dict[str, list[str]] = field(default_factory=dict)  # reason -> picture names
    others: list[str] = field(default_factory=list)  # pictures that hold someone else besides the person
    other_faces: int = 0  # faces of someone else, never added

    @property
    def no_face(self) -> list[str]:
        return self.unmatched.get("no_face", [])

    def summary(self) -> str:
        """One line: what was imported, what was left out and why, who else was seen."""
        left = "; ".join(f"{len(v)} {WHY[k]} ({', '.join(v[:5])}{' ...' if len(v) > 5 else ''})"
                         for k, v in self.unmatched.items() if v)
        others = (f"; {self.other_faces} face{'s' if self.other_faces != 1 else ''} of someone else never added"
                  if self.other_faces else "")
        return (f"imported {len(self.matched)} of {self.images} pictures"
                + (f"; left out: {left}" if left else "") + others)

    def to_json(self) -> dict:
        return {"name": self.name, "folder": self.folder, "pictures": self.images, "faces": self.faces,
                "matched": len(self.matched), "keys": self.matched,
                "unmatched": {k: v for k, v in self.unmatched.items() if v},
                "other_faces": self.other_faces, "pictures_with_others": self.others}


def _find(analyser, image: Image.Image | None) -> tuple[np.ndarray, np.ndarray]:
    if image is None or min(image.size) < TINY:
        return np.zeros((0, 4)), np.zeros((0, 0))
    found = analyser.find(image)
    return (np.array([d.bbox for d in found], dtype=np.float64).reshape(-1, 4),
            np.array([d.embedding for d in found], dtype=np.float32).reshape(len(found), -1))


def _pictures_of_bundle(bundle: Bundle, analyser) -> list[Picture]:
    out = []
    for member, image in bundle.images():
        boxes, emb = _find(analyser, image)
        problem = "unreadable" if image is None else (None if len(boxes) else "no_face")
        out.append(Picture(member.name, None, member, boxes, emb, problem))
    return out


def _pictures_of_folder(folder: str, analyser, skip: str) -> list[Picture]:
    listing = walk_photos([folder])
    files = [p for p, _, _ in listing.files if not _inside(p, skip)]
    if len(files) > MAX_MEMBERS:
        raise EraSplitError(folder, f"holds {len(files):,} pictures; a faceset needs far fewer "
                                    f"(at most {MAX_MEMBERS:,}): pick the person's best photos")
    out = []
    for path in files:
        name = os.path.relpath(path, folder)
        try:
            image = open_displayed(path)
        except PhotoTooLarge:
            out.append(Picture(name, path, None, np.zeros((0, 4)), np.zeros((0, 0)), "too_large"))
            continue
        except Exception:
            image = None
        boxes, emb = _find(analyser, image)
        problem = "unreadable" if image is None else (None if len(boxes) else "no_face")
        out.append(Picture(name, path, None, boxes, emb, problem))
        del image
    return out


def choose_person(pictures: list[Picture]) -> None:
    """Set each picture's ``person`` face (see the module docstring, step 2)."""
    with_faces = [p for p in pictures if p.problem is None]
    if not with_faces:
        return
    emb = np.concatenate([p.embeddings for p in with_faces]).astype(np.float32)
    sizes = [len(p.boxes) for p in with_faces]
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    # best[a, q]: how alike face a is to the most alike face of picture q
    best = np.concatenate([np.maximum.reduceat(emb[lo:lo + 1024] @ emb.T, starts, axis=1)
                           for lo in range(0, len(emb), 1024)])
    votes = np.zeros(len(emb))
    others = np.ones(len(with_faces), dtype=bool)
    for i in range(len(with_faces)):
        # for every other picture q, the face of this one most alike to q's gets a vote
        won = starts[i] + np.argmax(best[starts[i]:starts[i] + sizes[i]], axis=0)
        others[i] = False
        np.add.at(votes, won[others], 1)
        others[i] = True
    for i, p in enumerate(with_faces):
        mine = votes[starts[i]:starts[i] + sizes[i]]
        area = (p.boxes[:, 2] - p.boxes[:, 0]) * (p.boxes[:, 3] - p.boxes[:, 1])
        p.person = int(np.lexsort((-area, -mine))[0])  # most votes, then the largest face
    cand = np.array([p.embeddings[p.person] for p in with_faces], dtype=np.float64)
    keep = list(range(len(with_faces)))
    while len(keep) >= 3:  # fewer cannot outvote anyone
        x = cand[keep]
        sums = x.sum(axis=0)
        n = len(keep)
        to_others = (x @ sums - 1.0) / (n - 1)  # mean cosine to the other candidates
        pair = (sums @ sums - n) / (n * (n - 1))  # mean cosine of two candidates: the centre's norm squared
        far = 1.0 - to_others / np.sqrt(max(pair, 1e-6))
        worst = int(np.argmax(far))
        if far[worst] < STRANGER:
            return
        with_faces[keep[worst]].person = None
        with_faces[keep[worst]].problem = "another_person"
        del keep[worst]


def _inside(path: str, root: str) -> bool:
    try:
        return os.path.commonpath([os.path.realpath(path), root]) == root
    except ValueError:
        return False


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    x1 = np.maximum(box[0], boxes[:, 0])
    y1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[2], boxes[:, 2])
    y2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])  # noqa: E731
    return inter / np.maximum(area(box) + area(boxes) - inter, 1e-9)


def match_to_cache(pictures: list[Picture], cache: EmbeddingCache, match_dist: float, library: str) -> None:
    """Set each person's face's ``row`` (step 3); one cache face per picture at most."""
    emb = np.asarray(cache.embeddings, dtype=np.float32)
    root = os.path.realpath(library)
    lib_rows = np.array([_inside(p, root) for p in cache.paths.tolist()], dtype=bool) if len(cache) else None
    people = [p for p in pictures if p.person is not None]
    by_path = cache.rows_by_path({p.path for p in people if p.path})
    proposals = []  # (distance, picture index, row)
    for i, p in enumerate(people):
        face = p.embeddings[p.person]
        same = [r for r in by_path.get(p.path, []) if lib_rows is None or not lib_rows[r]] if p.path else []
        if same:
            iou = _iou(p.boxes[p.person], np.asarray(cache.bboxes[same], dtype=np.float64))
            if iou.max() >= SAME_BOX:
                row = same[int(np.argmax(iou))]
                proposals.append((float(1.0 - emb[row] @ face), i, row))
                continue
        dist = 1.0 - emb @ face
        if lib_rows is not None:
            dist[lib_rows] = np.inf
        for row in np.argsort(dist)[:NEAREST].tolist():
            if dist[row] <= match_dist:
                proposals.append((float(dist[row]), i, row))
    # as many pictures matched as possible, then the nearest: near-copies of one photo
    # (a burst) may each fit several pictures, and a greedy pick could leave one out
    rows = sorted({r for _, _, r in proposals})
    if proposals:
        from scipy.optimize import linear_sum_assignment

        col = {r: j for j, r in enumerate(rows)}
        cost = np.full((len(people), len(rows)), UNFIT)
        for dist, i, row in proposals:
            cost[i, col[row]] = min(cost[i, col[row]], dist)
        for i, j in zip(*linear_sum_assignment(cost)):
            if cost[i, j] < UNFIT:
                people[i].row, people[i].dist = rows[j], float(cost[i, j])
    for i, p in enumerate(people):
        if p.row is None:
            wanted = [r for d, j, r in proposals if j == i]
            p.problem = "duplicate" if wanted else "not_in_cache"


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
    are the cache faces of the person the source's pictures show."""
    library = os.path.abspath(library)
    if not 0 < match_dist < 1:
        raise EraSplitError(None, f"--match-dist must be in (0, 1), got {match_dist}")
    if os.path.lexists(library) and not os.path.isdir(library):
        raise EraSplitError(library, "is not a folder (give the library folder, or a new path)")
    check_new_name(_library(library), name, "--name")
    source = os.path.abspath(source)
    if not os.path.exists(source):
        raise EraSplitError(source, "not found (give a .fsz or a folder of pictures)")
    kind = "folder" if os.path.isdir(source) else "fsz"
    bundle = Bundle(source) if kind == "fsz" else None  # a crafted bundle is refused before any work
    try:
        cache = load_cache(cache_file)
        analyser = load_analyser(spec, ages=False)  # import records no ages
        pictures = (_pictures_of_bundle(bundle, analyser) if bundle is not None
                    else _pictures_of_folder(source, analyser, os.path.realpath(library)))
    except BaseException:
        if bundle is not None:
            bundle.close()
        raise
    report = ImportReport(name, os.path.join(library, name))
    try:
        if not pictures:
            raise EraSplitError(source, "holds no picture roop-unleashed could load (.png in a .fsz; "
                                        "JPEG, PNG, TIFF, WebP or HEIC in a folder)")
        report.images = len(pictures)
        report.faces = sum(len(p.boxes) for p in pictures)
        choose_person(pictures)
        match_to_cache(pictures, cache, match_dist, library)
        for p in pictures:
            if p.problem:
                report.unmatched.setdefault(p.problem, []).append(p.name)
            extra = len(p.boxes) - (1 if p.person is not None else 0)
            if p.person is not None and extra:
                report.others.append(p.name)
            report.other_faces += extra
        matched = [p for p in pictures if p.row is not None]
        report.matched = [str(cache.keys[p.row]) for p in matched]
        report.distances = [p.dist for p in matched]
        readable = sum(1 for p in pictures if p.problem not in ("unreadable", "too_large", "no_face"))
        if len(matched) < max(1, (readable + 1) // 2):
            raise EraSplitError(source, _too_few(report, cache_file))
        _write(library, name, source, kind, matched, bundle, cache, lock_timeout)
    finally:
        if bundle is not None:
            bundle.close()
    return report


def _too_few(report: ImportReport, cache_file: str) -> str:
    why = "; ".join(f"{len(v)} {WHY[k]}" for k, v in report.unmatched.items() if v)
    return (f"only {len(report.matched)} of its {report.images} pictures match a face of the cache "
            f"{cache_file} ({why}); scan the photos they come from first: "
            f"era-split scan PHOTOS_DIR --cache {cache_file}")


def _library(library: str) -> Library | None:
    """The library if its manifest exists (validated), None for a new one."""
    if os.path.exists(os.path.join(library, MANIFEST)):
        return open_library(library)
    return None


def _crop_of(picture: Picture, size: int = 512) -> bytes:
    """The person's face alone, from a photo that may show others."""
    image = open_displayed(picture.path)
    others = [b for i, b in enumerate(picture.boxes) if i != picture.person]
    box = plan_crop_box(picture.boxes[picture.person], others, image.width, image.height, 0.5)
    if box is None:  # even the bare face touches another: the tightest square around it
        box = plan_crop_box(picture.boxes[picture.person], [], image.width, image.height, 0.0)
    return encode_png(render_crop(image, box, size))


def _write(library, name, source, kind, matched, bundle, cache, lock_timeout) -> None:
    os.makedirs(library, exist_ok=True)
    state = os.path.join(library, STATE_DIR)
    refuse_link(state)
    with library_lock(state, lock_timeout):
        recover(library)
        lib = _library(library)
        data = lib.data if lib is not None else {"facesets": []}
        check_new_name(lib, name, "--name")  # again under the lock: another import may have won
        if lib is not None:
            lib.check_write_paths()
        staging = tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=state)
        try:
            folder = os.path.join(staging, "new", name)
            os.makedirs(folder)
            faces, files = [], []
            for i, p in enumerate(matched):
                file = f"{i:04d}.png"
                png = bundle.read(p.member) if kind == "fsz" else _crop_of(p)
                atomic_write_bytes(os.path.join(folder, file), png)
                files.append(file)
                faces.append({"key": str(cache.keys[p.row]), "file": file, "source": str(cache.paths[p.row]),
                              "imported_from": p.name, "match_dist": round(p.dist, 4)})
            bundle_file = f"{name}_all.fsz"
            if kind == "fsz":
                shutil.copyfile(source, os.path.join(folder, bundle_file))  # "all eras": what the user had
            else:
                from ..host.export import write_fsz

                write_fsz(os.path.join(folder, bundle_file), [(f, os.path.join(folder, f)) for f in files])
            marker = f"{name}.txt"
            atomic_write_bytes(os.path.join(folder, marker),
                               f"{name}: imported from {os.path.basename(source)}\n".encode())
            owned = sorted(files + [bundle_file, marker, MANIFEST])
            atomic_write_bytes(os.path.join(folder, MANIFEST), dump_json({
                "name": name, "faces": faces,
                OWNER: {"kind": "imported", "imported_from": os.path.basename(source), "files": owned},
            }))
            manifest = {**data, "facesets": list(data["facesets"]) + [
                {"name": name, "relpath": name, "faces": len(faces)}]}
            commit(library, os.path.join(library, MANIFEST), staging, manifest, [],
                   [(folder, os.path.join(library, name))])
        finally:
            shutil.rmtree(staging, ignore_errors=True)
