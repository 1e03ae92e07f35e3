"""Auto era: the era whose apparent age matches the face in a target image or video.

Each era's manifest records its apparent age (the median over its faces, see
``results.with_ages``); an era split before ages existed gets it here, measured
on its best crops, and kept in ``.era_split/ages.json``. The target's face is
found like any photo's (``Analyser.find``), the largest unless ``face`` says
which; a video gives one face per sampled frame and their median.

The choice must be right when it is made, so it is made only where the target's
age is clearly nearer one era than the next: the target lies on the nearest
era's side of the midpoint between the two nearest era ages by at least
:data:`Z` times the uncertainty, with the two eras' standard errors added.
The uncertainty of one target face is the larger of two measures of the
model's own error: the spread of its age probabilities for that face, and how
much its readings of one person at one time vary from photo to photo (the
spread of apparent ages inside the faceset's eras, pooled; the network is often
surer of a face than its readings of the same person in other photos justify).
To that is added (in quadrature) :data:`CHIP_ERROR`, how far the age read
from our chip strays from the age read from dlib's own (bench/age_chip.py).
A video divides it by the square root of its frames, up to 4 (frames of one
scene are not independent). Otherwise nothing is picked and the reason says
between which eras the target lies.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from ..errors import EraSplitError
from ..host.fsutil import atomic_write_bytes, dump_json, is_regular, open_regular
from ..host.library import era_meta, open_library, whole
from ..host.photos import open_displayed
from ..labels import apparent_median, era_text, plural
from ..results import apparent_age, face_spread
from .age import AgeEstimator, has_landmarks, load_age_estimator

Z = 1.28  # one-sided 90 %: the target's age is on the picked era's side of the midpoint
VIDEO = (".mp4", ".mov", ".m4v", ".avi", ".mkv", ".webm", ".wmv", ".mpg", ".mpeg")
FRAMES = 8  # frames sampled from a video target
CROPS_PER_ERA = 16  # crops measured for an era split before ages were recorded
AGES_FILE = "ages.json"
MAX_CROP_PIXELS = 4096 * 4096
MIN_SPREAD = 1.0  # years: no estimate is surer than this
CHIP_ERROR = 2.3  # years: mean |age from our chip - age from dlib's chip|, bench/age_chip.py (28 faces)


@dataclass(frozen=True)
class EraAge:
    name: str
    label: str
    age: float | None
    error: float  # standard error of the era's median apparent age, years
    faces: int  # faces its age was measured on
    spread: float = 0.0  # how far one face's apparent age in this era strays from its median, years


@dataclass(frozen=True)
class Pick:
    era: str | None
    target_age: float | None
    why: str
    eras: list[EraAge] = field(default_factory=list)
    target_error: float | None = None
    frames: int = 0
    faces_in_target: int = 0

    def to_json(self) -> dict:
        return {"era": self.era, "target_age": None if self.target_age is None else round(self.target_age, 1),
                "target_error": None if self.target_error is None else round(self.target_error, 1),
                "why": self.why, "frames": self.frames, "faces_in_target": self.faces_in_target,
                "eras": [{"name": e.name, "label": e.label,
                          "age": None if e.age is None else round(e.age, 1), "faces": e.faces}
                         for e in self.eras]}


def choose(target_age: float, target_error: float, eras: list[EraAge]) -> tuple[str | None, str]:
    """(era name or None, why): the nearest era by apparent age, when it is clearly nearest."""
    aged = sorted((e for e in eras if e.age is not None), key=lambda e: (abs(e.age - target_age), e.name))
    looks = f"the target looks about {round(target_age)} (±{max(1, round(target_error))})"
    if not aged:
        return None, f"{looks}, but no era has an apparent age; apply the split again with the age model installed"
    a = aged[0]
    if len(aged) == 1:
        return a.name, f"{looks}; the only era with an age, {a.label}"
    b = aged[1]
    sigma = math.sqrt(target_error**2 + (a.error**2 + b.error**2) / 4)
    margin = abs(target_age - (a.age + b.age) / 2)
    if abs(a.age - b.age) < Z * sigma:
        return None, (f"{looks}; eras {a.label} and {b.label} look the same age within the model's error: "
                      "pick by hand")
    if margin >= Z * sigma:
        return a.name, f"{looks}; era {a.label}; next nearest {b.label}"
    return None, (f"{looks}, between era {a.label} and era {b.label} within the model's error: "
                  "pick by hand")


def _era_spread(age: dict) -> tuple[float, float]:
    """(one face's standard deviation, the median's standard error) of an era's
    apparent age, from its recorded 10th-90th percentile range (2.56 sd apart)."""
    try:
        spread = max(MIN_SPREAD, face_spread(age))
        n = max(1, int(age["faces"]))
    except (KeyError, TypeError, ValueError):
        return 5.0, 5.0
    return spread, 1.25 * spread / math.sqrt(n)


def photo_error(eras: list[EraAge]) -> float:
    """How much one photo's apparent age strays, pooled over eras measured on 3+ faces."""
    measured = [e for e in eras if e.age is not None and e.faces >= 3]
    if not measured:
        return MIN_SPREAD
    return math.sqrt(sum(e.spread**2 * e.faces for e in measured) / sum(e.faces for e in measured))


def era_ages(library: str, faceset: str, analyser=None, estimator: AgeEstimator | None = None) -> list[EraAge]:
    """Every era of ``faceset`` with its apparent age; an era whose manifest has
    none is measured on its crops (with ``analyser`` and ``estimator``) and kept."""
    lib = open_library(library)
    kept_file = os.path.join(lib.state_dir, AGES_FILE)
    kept = _read_kept(kept_file)
    changed = False
    out = []
    for entry in lib.era_variants(faceset):
        if entry["era_split"].get("kind", "era") != "era":
            continue
        meta = era_meta(entry)
        age = meta.apparent_age
        if age is None and analyser is not None and estimator is not None:
            folder = lib.folder_of(entry)
            stamp = _stamp(folder)
            if stamp and kept.get(entry["name"], {}).get("stamp") == stamp:
                age = kept[entry["name"]]["age"]
            elif stamp:
                age = _measure_crops(folder, analyser, estimator)
                kept[entry["name"]] = {"stamp": stamp, "age": age}
                changed = True
        median = apparent_median(age)
        spread, error = _era_spread(age) if median is not None else (0.0, 0.0)
        faces = age.get("faces", 0) if median is not None else 0
        out.append(EraAge(entry["name"], era_text(meta.span, meta.look, age if median is not None else None, meta.born),
                          median, error, faces if whole(faces) else 0, spread))
    if changed:
        try:
            atomic_write_bytes(kept_file, dump_json(kept))
        except OSError:
            pass  # a read-only library: measured again next time
    return out


def _stamp(folder: str) -> str | None:
    manifest = os.path.join(folder, "manifest.json")
    if not is_regular(manifest):
        return None
    try:
        with open_regular(manifest) as fh:
            return hashlib.sha1(fh.read(4 << 20)).hexdigest()
    except OSError:
        return None


def _read_kept(path: str) -> dict:
    try:
        with open_regular(path) as fh:
            data = json.loads(fh.read(16 << 20))
    except (OSError, ValueError, RecursionError):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, dict)} if isinstance(data, dict) else {}


def _measure_crops(folder: str, analyser, estimator: AgeEstimator) -> dict | None:
    ages = []
    for i in range(CROPS_PER_ERA):
        crop = os.path.join(folder, f"{i:04d}.png")
        if not is_regular(crop):
            break
        try:
            with open_regular(crop) as fh, Image.open(fh) as im:
                if im.width * im.height > MAX_CROP_PIXELS:
                    continue  # not a crop this plugin wrote (they are 512 px)
                im = im.convert("RGB")
                found = analyser.as_host_loads(im)
                if found and has_landmarks(found[0].landmarks):
                    ages.append(float(estimator.of_faces(im, [found[0].landmarks])[0][0]))
        except (OSError, ValueError, Image.DecompressionBombError):
            continue
    return apparent_age(ages, estimator.ident + "/crops")


def _frames(path: str) -> list[Image.Image]:
    """The target as images: the photo as displayed, or frames sampled from a video."""
    if not os.path.isfile(path):
        raise EraSplitError(path, "target not found")
    if not path.lower().endswith(VIDEO):
        try:
            return [open_displayed(path)]
        except Exception as exc:  # decoders raise many types for a bad file
            raise EraSplitError(path, f"target is not a readable image or video ({type(exc).__name__})") from None
    try:
        import cv2  # type: ignore
    except ImportError:
        raise EraSplitError(path, "reading a video needs OpenCV (roop-unleashed has it): "
                                  "pip install opencv-python-headless") from None
    cap = cv2.VideoCapture(path)
    try:
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        frames = []
        for pos in (np.linspace(0, total - 1, FRAMES).round().astype(int) if total > 0 else [0]):
            cap.set(cv2.CAP_PROP_POS_FRAMES, int(pos))
            ok, bgr = cap.read()
            if ok and bgr is not None:
                frames.append(Image.fromarray(np.ascontiguousarray(bgr[:, :, ::-1])))
    finally:
        cap.release()
    if not frames:
        raise EraSplitError(path, "no frame of this video could be read")
    return frames


def target_age(path: str, analyser, estimator: AgeEstimator, face: int | None = None,
               photo_error: float = MIN_SPREAD) -> tuple[float, float, int, int]:
    """(age, error, frames with the face, faces in the first such frame) of the
    target's face: the largest, or the ``face``-th largest (1 = largest). The
    error is at least ``photo_error`` for one frame (see the module docstring)."""
    ages, spreads, frames, seen = [], [], 0, 0
    for image in _frames(path):
        found = [d for d in analyser.find(image) if has_landmarks(d.landmarks)]
        if not found:
            continue
        seen = seen or len(found)
        index = (face or 1) - 1
        if index >= len(found):
            continue
        a, s = estimator.of_faces(image, [found[index].landmarks])
        if np.isfinite(a[0]):
            ages.append(float(a[0]))
            spreads.append(float(s[0]))
            frames += 1
    if not ages:
        if face and seen:
            raise EraSplitError(path, f"the target shows {plural(seen, 'face')}; there is no face {face}")
        raise EraSplitError(path, "the detector finds no face in the target")
    age = float(np.median(ages))
    one = math.hypot(max(MIN_SPREAD, photo_error, float(np.median(spreads))), CHIP_ERROR)
    error = one / math.sqrt(min(frames, 4))
    return age, error, frames, seen


def pick_era(library: str, faceset: str, target: str, analyser, face: int | None = None,
             estimator: AgeEstimator | None = None) -> Pick:
    """The era of ``faceset`` whose apparent age matches ``target``'s face (see the
    module docstring); ``Pick.era`` is None when no choice is clear, and ``why`` says why."""
    estimator = estimator or load_age_estimator(required=True)
    open_library(library).find_faceset(faceset)
    eras = era_ages(library, faceset, analyser, estimator)
    if not eras:
        raise EraSplitError(library, f"{faceset} has no era yet; split it first (era-split apply {faceset})")
    age, error, frames, seen = target_age(target, analyser, estimator, face, photo_error(eras))
    era, why = choose(age, error, eras)
    return Pick(era, age, why, eras, error, frames, seen)

