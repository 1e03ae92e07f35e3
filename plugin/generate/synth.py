"""A synthetic photo archive with known truth, for the demo, the tests and benchmarks.

No face detector or model weights are involved: the generator draws simple faces
into real JPEGs with real EXIF, and writes the embedding cache the host's scanner
would have written, with embeddings that behave like ArcFace's for one person
photographed over many years: the target drifts through life phases, photos of
one shoot look alike, other people are far away.
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

from ..host.library import MANIFEST

EXIF_IFD = 0x8769


@dataclass(frozen=True)
class SynthSpec:
    seed: int = 0
    dim: int = 512
    first_year: int = 2008
    last_year: int = 2022
    phase_years: int = 4  # the target's look changes every few years
    target_photos: int = 300
    others: int = 5  # unrelated identities
    other_photos: int = 60  # photos per unrelated identity
    second_faceset: bool = True  # a second host faceset (one of the others)
    group_share: float = 0.15  # target photos that show a second person
    undated_share: float = 0.10
    ifd0_only_share: float = 0.10  # dated only by IFD0 DateTime, as some scanners write
    bogus_share: float = 0.02  # 0000:00:00 stamps
    rotated_share: float = 0.05  # stored sideways with an EXIF orientation tag
    size: tuple[int, int] = (640, 480)
    face_px: tuple[int, int] = (70, 190)  # range of a face's width in pixels
    other_photo_files: bool = True  # False: photos without the target exist only in the cache
    windows_paths: bool = True  # record paths as a Windows scanner would
    curated_share: float = 0.5  # share of good target faces in the host faceset
    with_face_short: bool = True
    drift: float = 0.75  # norm of a phase's offset
    event: float = 0.28  # norm of a shoot's offset
    noise: float = 0.42  # norm of per-face noise
    odd_share: float = 0.12  # odd pose or light: much noisier embedding (thin fragments)
    odd_noise: tuple[float, float] = (1.0, 3.0)  # range of an odd face's noise norm
    overlap_share: float = 0.2  # group photos where the second face overlaps the first


@dataclass
class SynthLibrary:
    root: str  # the library (facesets_swap_ready)
    cache_file: str
    photos_dir: str
    recorded_root: str  # prefix of the paths as the cache records them
    remaps: list[str]  # OLD=NEW strings that map recorded paths to photos_dir
    truth: dict[str, dict] = field(default_factory=dict)  # key -> identity, year, phase, dated


def _unit(rng: np.random.Generator, dim: int, norm: float = 1.0) -> np.ndarray:
    v = rng.standard_normal(dim)
    return v / np.linalg.norm(v) * norm


def _exif(year: int, month: int, mode: str, orientation: int) -> Image.Exif:
    exif = Image.Exif()
    if orientation != 1:
        exif[0x0112] = orientation
    if mode == "bogus":
        exif.get_ifd(EXIF_IFD)[0x9003] = "0000:00:00 00:00:00"
    elif mode == "ifd0":
        exif[0x0132] = f"{year}:{month:02d}:15 12:00:00"
    elif mode == "exif":
        exif.get_ifd(EXIF_IFD)[0x9003] = f"{year}:{month:02d}:15 12:00:00"
    return exif


def _draw_face(draw: ImageDraw.ImageDraw, box: tuple, skin: tuple, hair: tuple, glasses: bool) -> None:
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    draw.ellipse([x1, y1, x2, y2], fill=skin)
    draw.chord([x1, y1 - h * 0.05, x2, y1 + h * 0.45], 180, 360, fill=hair)
    for ex in (x1 + w * 0.3, x1 + w * 0.7):
        r = w * 0.07
        draw.ellipse([ex - r, y1 + h * 0.42 - r, ex + r, y1 + h * 0.42 + r], fill=(30, 30, 40))
        if glasses:
            R = w * 0.14
            draw.ellipse([ex - R, y1 + h * 0.42 - R, ex + R, y1 + h * 0.42 + R], outline=(10, 10, 10), width=2)
    draw.line([x1 + w * 0.5, y1 + h * 0.48, x1 + w * 0.46, y1 + h * 0.62], fill=(120, 80, 70), width=2)
    draw.arc([x1 + w * 0.32, y1 + h * 0.6, x1 + w * 0.68, y1 + h * 0.8], 20, 160, fill=(150, 40, 50), width=3)


def _place(rng: np.random.Generator, sizes: list[int], width: int, height: int) -> list[tuple]:
    """Non-overlapping face boxes (w = s, h = 1.2 s) with a little air between them."""
    boxes: list[tuple] = []
    for s in sizes:
        h = int(s * 1.2)
        for _ in range(50):
            x = int(rng.integers(0, max(1, width - s)))
            y = int(rng.integers(0, max(1, height - h)))
            box = (x, y, x + s, y + h)
            if all(box[2] + 8 < b[0] or b[2] + 8 < box[0] or box[3] + 8 < b[1] or b[3] + 8 < box[1] for b in boxes):
                boxes.append(box)
                break
    return boxes


class _Identity:
    def __init__(self, rng: np.random.Generator, spec: SynthSpec, name: str) -> None:
        self.name = name
        self.base = _unit(rng, spec.dim)
        n_phases = (spec.last_year - spec.first_year) // spec.phase_years + 1
        self.phases = [_unit(rng, spec.dim, spec.drift) for _ in range(n_phases)]
        self.skin = tuple(int(v) for v in rng.integers(150, 235, 3))
        self.hair = [tuple(int(v) for v in rng.integers(10, 200, 3)) for _ in range(n_phases)]
        self.glasses = [bool(rng.random() < 0.4) for _ in range(n_phases)]

    def phase_of(self, spec: SynthSpec, year: int) -> int:
        return (year - spec.first_year) // spec.phase_years


def generate(out_dir: str | os.PathLike, spec: SynthSpec = SynthSpec()) -> SynthLibrary:
    """Write photos, an embedding cache and a host library under ``out_dir``."""
    out_dir = os.fspath(out_dir)
    rng = np.random.default_rng(spec.seed)
    photos_dir = os.path.join(out_dir, "photos")
    library = os.path.join(out_dir, "facesets_swap_ready")
    cache_dir = os.path.join(out_dir, "cache")
    for d in (photos_dir, library, cache_dir):
        os.makedirs(d, exist_ok=True)
    recorded_root = "X:\\Photos" if spec.windows_paths else "/mnt/archive/photos"
    sep = "\\" if spec.windows_paths else "/"

    people = [_Identity(rng, spec, "target")] + [_Identity(rng, spec, f"other{i}") for i in range(spec.others)]
    width, height = spec.size
    records: list[dict] = []
    truth: dict[str, dict] = {}

    # shoots: a few photos each, one year and month, one shared offset per person
    plan: list[tuple[int, list[int]]] = []  # (year, people in photo)
    for who, count in [(0, spec.target_photos)] + [(i, spec.other_photos) for i in range(1, len(people))]:
        for _ in range(count):
            group = [who]
            if rng.random() < spec.group_share and len(people) > 1:
                group.append(int(rng.choice([p for p in range(len(people)) if p != who])))
            plan.append((int(rng.integers(spec.first_year, spec.last_year + 1)), group))
    plan.sort(key=lambda p: p[0])
    shoot_offsets: dict[tuple[int, int, int], np.ndarray] = {}

    for n, (year, group) in enumerate(plan):
        month = int(rng.integers(1, 13))
        shoot = int(rng.integers(0, 3))  # three shoots a year per person
        r = rng.random()
        mode = "undated" if r < spec.undated_share else (
            "bogus" if r < spec.undated_share + spec.bogus_share else (
                "ifd0" if r < spec.undated_share + spec.bogus_share + spec.ifd0_only_share else "exif"))
        rotated = rng.random() < spec.rotated_share
        rel = [str(year), f"IMG_{n:05d}.JPG"]
        path = os.path.join(photos_dir, *rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        recorded = recorded_root + sep + sep.join(rel)

        sizes = [int(rng.integers(*spec.face_px)) for _ in group]
        boxes = _place(rng, sizes, width, height)
        if len(boxes) > 1 and rng.random() < spec.overlap_share:  # one face half over another
            x1, y1, x2, y2 = boxes[0]
            s2 = boxes[1][2] - boxes[1][0]
            nx, ny = min(width - s2, x1 + (x2 - x1) // 2), y1
            boxes[1] = (nx, ny, nx + s2, ny + int(s2 * 1.2))
        bg = tuple(int(v) for v in rng.integers(40, 220, 3))
        image = Image.new("RGB", (width, height), bg)
        draw = ImageDraw.Draw(image)
        for who, box in zip(group, boxes):
            person = people[who]
            phase = person.phase_of(spec, year)
            _draw_face(draw, box, person.skin, person.hair[phase], person.glasses[phase])
            sk = (who, year, shoot)
            if sk not in shoot_offsets:
                shoot_offsets[sk] = _unit(rng, spec.dim, spec.event)
            noise = float(rng.uniform(*spec.odd_noise)) if rng.random() < spec.odd_share else spec.noise
            emb = person.base + person.phases[phase] + shoot_offsets[sk] + _unit(rng, spec.dim, noise)
            key = f"{person.name}-{n:05d}-{len(records):05d}"
            records.append({
                "key": key, "path": recorded, "file": path, "emb": emb.astype(np.float32),
                "bbox": box, "det": float(rng.uniform(0.5, 0.99)),
                "blur": float(np.exp(rng.normal(np.log(150), 0.7))),
            })
            truth[key] = {"identity": person.name, "year": year, "phase": phase,
                          "dated": mode in ("exif", "ifd0"), "photo": path}
        if not spec.other_photo_files and 0 not in group:
            continue  # never read: the split only decodes the target's photos
        stored = image
        orientation = 1
        if rotated:
            stored, orientation = image.transpose(Image.Transpose.ROTATE_90), 6
        stored.save(path, quality=88, exif=_exif(year, month, mode, orientation))

    arrays = {
        "keys": np.array([r["key"] for r in records]),
        "paths": np.array([r["path"] for r in records]),
        "embeddings": np.stack([r["emb"] for r in records]),
        "bboxes": np.array([r["bbox"] for r in records], dtype=np.float32),
        "det_score": np.array([r["det"] for r in records], dtype=np.float32),
        "blur": np.array([r["blur"] for r in records], dtype=np.float32),
    }
    if spec.with_face_short:
        b = arrays["bboxes"]
        arrays["face_short"] = np.minimum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1])
    cache_file = os.path.join(cache_dir, "faces.npz")
    np.savez(cache_file, **arrays)

    facesets = [_write_host_faceset(library, "faceset_001", records, "target", rng, spec)]
    if spec.second_faceset and spec.others:
        facesets.append(_write_host_faceset(library, "faceset_002", records, "other0", rng, spec))
    with open(os.path.join(library, MANIFEST), "w", encoding="utf-8") as fh:
        json.dump({"facesets": facesets}, fh, indent=2)
    return SynthLibrary(
        root=library,
        cache_file=cache_file,
        photos_dir=photos_dir,
        recorded_root=recorded_root,
        remaps=[f"{recorded_root}={photos_dir}"],
        truth=truth,
    )


DEMO_MARKER = "era-split-demo.json"


def demo_library(out_dir: str, spec: SynthSpec, say=print) -> SynthLibrary:
    """The bundled demo under ``out_dir``: reused when a complete one is there,
    (re)generated when its parts are missing. A library there that no demo wrote
    is refused, never overwritten."""
    marker = os.path.join(out_dir, DEMO_MARKER)
    library = os.path.join(out_dir, "facesets_swap_ready")
    parts = [os.path.join(out_dir, p) for p in ("photos", "cache", "facesets_swap_ready")]
    if os.path.isfile(marker):
        with open(marker, encoding="utf-8") as fh:
            meta = json.load(fh)
        complete = all(os.path.isdir(p) for p in parts) and os.path.isfile(
            os.path.join(library, MANIFEST)) and os.path.isfile(os.path.join(out_dir, "cache", "faces.npz"))
        if complete and meta.get("seed") == spec.seed:
            say(f"reusing the demo library under {out_dir} (delete the folder for a fresh one)")
            return SynthLibrary(root=library, cache_file=os.path.join(out_dir, "cache", "faces.npz"),
                                photos_dir=parts[0], recorded_root=meta["recorded_root"],
                                remaps=[f"{meta['recorded_root']}={parts[0]}"])
        say(f"the demo under {out_dir} is incomplete: writing it again")
        for p in parts:
            if os.path.isdir(p) and not os.path.islink(p):
                shutil.rmtree(p)
        os.unlink(marker)
    elif os.path.exists(library):
        from ..errors import EraSplitError

        raise EraSplitError(out_dir, "holds a facesets_swap_ready/ that the demo did not write; "
                                     "pick another folder")
    say(f"writing a demo photo archive and library under {out_dir} ...")
    lib = generate(out_dir, spec)
    with open(marker, "w", encoding="utf-8") as fh:
        json.dump({"seed": spec.seed, "recorded_root": lib.recorded_root}, fh)
    return lib


def _write_host_crops(folder: str, name: str, chosen: list[dict], records: list[dict]) -> None:
    """The host's own crops and ``<name>_all.fsz`` (what a swap loads before any split)."""
    from ..host.crops import encode_png, open_displayed, plan_crop_box, render_crop

    by_photo: dict[str, list[dict]] = {}
    for r in records:
        by_photo.setdefault(r["file"], []).append(r)
    pngs = []
    for r in chosen:
        if not os.path.exists(r["file"]):
            continue
        image = open_displayed(r["file"])
        others = [o["bbox"] for o in by_photo[r["file"]] if o is not r]
        box = plan_crop_box(r["bbox"], others, image.width, image.height, 0.5)
        if box is None:
            continue
        png = os.path.join(folder, f"{len(pngs):04d}.png")
        with open(png, "wb") as fh:
            fh.write(encode_png(render_crop(image, box, 256)))
        pngs.append(png)
    with zipfile.ZipFile(os.path.join(folder, f"{name}_all.fsz"), "w", zipfile.ZIP_STORED) as zf:
        for png in pngs:
            zf.write(png, os.path.basename(png))


def _write_host_faceset(
    library: str, name: str, records: list[dict], who: str, rng: np.random.Generator, spec: SynthSpec
) -> dict:
    """A host faceset as the host curated it: good faces of one person, entries
    as bare keys or objects, plus one key the cache no longer has."""
    good = [r for r in records if r["key"].startswith(who + "-") and r["det"] >= 0.7
            and r["bbox"][2] - r["bbox"][0] >= 100]
    chosen = [r for r in good if rng.random() < spec.curated_share] or good[:1]
    faces: list[object] = []
    for i, r in enumerate(chosen):
        if i % 3 == 0:
            faces.append(r["key"])
        else:
            faces.append({"key": r["key"], "file": f"{i:04d}.png", "source": r["path"],
                          "bbox": [float(v) for v in r["bbox"]], "det_score": round(r["det"], 3)})
    faces.append(f"{who}-stale-key")
    folder = os.path.join(library, name)
    os.makedirs(folder, exist_ok=True)
    _write_host_crops(folder, name, chosen, records)
    with open(os.path.join(folder, MANIFEST), "w", encoding="utf-8") as fh:
        json.dump({"name": name, "faces": faces}, fh, indent=2)
    with open(os.path.join(folder, f"{name}.txt"), "w", encoding="utf-8") as fh:
        fh.write(f"{name}\n")
    return {"name": name, "relpath": name, "faces": len(chosen), "host_note": "curated by hand"}
