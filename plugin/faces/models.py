"""insightface's face models, loaded from files already on disk, never downloaded,
and the two ways this project looks for faces with them.

roop-unleashed keeps its model pack in ``<roop>/models/buffalo_l/`` and loads
``FaceAnalysis(name="buffalo_l", root=<roop>)``; ``--models`` takes that root,
so a scan embeds faces exactly as the host does.

- :meth:`Analyser.find` — every face of a photo whatever its share of the frame
  (scan and import). SCRFD, the detector of insightface's packs, misses a face
  that fills the frame: the whole photo is scaled into the detector's square,
  so such a face is larger than its largest anchor (measured: a 300 px
  portrait whose face fills it is found at detection size 320, not at 640;
  roop's own 512 px crops likewise). It also misses the small faces of a large
  group photo, scaled down below its smallest anchor. So ``find`` runs up to
  three passes and keeps each face once (a later pass adds only faces that
  overlap none found before): the photo as the host sees it; the photo shrunk
  into the middle half of a black square (a face that fills the frame then
  fills half the detector's input; black is what the aligner itself puts
  beyond the photo's edge, so the embedding is the same whichever pass found
  the face); and, for a photo over twice the detection size where the first
  pass found a face under :data:`SMALL_AT_INPUT` px, overlapping tiles of
  twice the detection size, where faces are seen three or more times larger.
  Every face is then embedded from the photo itself, at full resolution.
- :meth:`Analyser.as_host_loads` — one pass, exactly what roop-unleashed's
  faceset loader does with a crop (``validate``).
"""

from __future__ import annotations

import glob
import os
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..errors import EraSplitError
from .age import load_age_estimator

DEFAULT_MODEL = "buffalo_l"
DEFAULT_DET_SIZE = 640
# What the cache records of how faces were found (``scan_detector``): a cache of an
# older detector is scanned again once, since it missed faces this one finds.
DETECTOR = "full+padded+tiles/2 sharpness@112"
SMALL_AT_INPUT = 40  # a face this small (px, at the detector's input) may hide smaller ones
OVERLAP = 0.3  # IoU above which two detections are one face
SHARP_SIDE = 112  # the recognizer's input: sharpness is measured with the face at this size


@dataclass(frozen=True)
class ModelSpec:
    root: str  # holds models/<name>/
    name: str = DEFAULT_MODEL
    det_size: int = DEFAULT_DET_SIZE

    @property
    def folder(self) -> str:
        return os.path.join(self.root, "models", self.name)

    @property
    def tag(self) -> str:
        """What the cache records, so faces of two models are never mixed."""
        return f"{self.name}@{self.det_size}"


def parse_tag(tag: str) -> tuple[str, int] | None:
    """(model name, detection size) of a cache's ``scan_model`` tag."""
    name, _, size = tag.rpartition("@")
    return (name, int(size)) if name and size.isdigit() else None


@dataclass(frozen=True)
class Detected:
    """One face as the detector and recognizer see it, in the image's pixels."""

    bbox: tuple[float, float, float, float]
    det_score: float
    landmarks: np.ndarray  # (5, 2)
    embedding: np.ndarray  # (d,) float32, unit length
    age: float = float("nan")  # apparent age (see .age); NaN: no age model, or not measured

    @property
    def short(self) -> float:
        return float(min(self.bbox[2] - self.bbox[0], self.bbox[3] - self.bbox[1]))


def check_models(spec: ModelSpec) -> None:
    """Refuse early, naming the folder, when the model pack is not there: insightface
    would otherwise try to download it."""
    if not os.path.isdir(spec.folder):
        raise EraSplitError(
            spec.folder, f"no {spec.name} model pack here; --models takes the folder that holds "
            f"models/{spec.name}/ (in a roop-unleashed install: the roop folder itself)"
        )
    if not glob.glob(os.path.join(glob.escape(spec.folder), "*.onnx")):
        raise EraSplitError(spec.folder, "holds no .onnx model files")


def _face_analysis(spec: ModelSpec):
    """A prepared FaceAnalysis with detection and recognition only."""
    check_models(spec)
    try:
        from insightface.app import FaceAnalysis  # type: ignore
    except ImportError as exc:
        raise EraSplitError(
            None, f"scanning needs insightface and onnxruntime: pip install 'era-split[scan]' ({exc})"
        ) from None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        app = FaceAnalysis(name=spec.name, root=spec.root, providers=["CPUExecutionProvider"],
                           allowed_modules=["detection", "recognition"])
        app.prepare(ctx_id=-1, det_size=(spec.det_size, spec.det_size))
    if "recognition" not in app.models or "detection" not in app.models:
        raise EraSplitError(spec.folder, "the pack needs a detection and a recognition model")
    return app


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of ``a`` (n, 4) with every box of ``b`` (m, 4)."""
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = lambda r: (r[:, 2] - r[:, 0]) * (r[:, 3] - r[:, 1])  # noqa: E731
    return inter / np.maximum(area(a)[:, None] + area(b)[None, :] - inter, 1e-9)


def _tile_starts(n: int, tile: int, step: int) -> list[int]:
    if n <= tile:
        return [0]
    return sorted(set(list(range(0, n - tile, step)) + [n - tile]))


class Analyser:
    """The pack's detector and recognizer; see the module docstring."""

    def __init__(self, spec: ModelSpec, ages: bool = True) -> None:
        self.spec = spec
        self.app = _face_analysis(spec)
        self.ages = load_age_estimator() if ages else None  # None: the age model is not installed

    def _detect(self, bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(boxes with scores (n, 5), landmarks (n, 5, 2)) of one detector pass."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            boxes, kps = self.app.det_model.detect(bgr, max_num=0, metric="default")
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 5)
        kps = np.zeros((len(boxes), 5, 2)) if kps is None else np.asarray(kps, dtype=np.float64).reshape(-1, 5, 2)
        return boxes, kps

    def _padded(self, image: Image.Image) -> tuple[np.ndarray, np.ndarray]:
        """The photo shrunk into the middle half of a black detector-sized square."""
        size = self.spec.det_size
        w, h = image.size
        scale = size / (2 * max(w, h))
        small = image.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BILINEAR)
        canvas = Image.new("RGB", (size, size))
        ox, oy = (size - small.width) // 2, (size - small.height) // 2
        canvas.paste(small, (ox, oy))
        boxes, kps = self._detect(np.ascontiguousarray(np.asarray(canvas)[:, :, ::-1]))
        sx, sy = small.width / w, small.height / h
        boxes[:, [0, 2]] = (boxes[:, [0, 2]] - ox) / sx
        boxes[:, [1, 3]] = (boxes[:, [1, 3]] - oy) / sy
        kps[:, :, 0] = (kps[:, :, 0] - ox) / sx
        kps[:, :, 1] = (kps[:, :, 1] - oy) / sy
        return boxes, kps

    def _tiles(self, bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Overlapping tiles of twice the detection size (a quarter overlap, so a
        face up to half a tile lies whole in one of them)."""
        h, w = bgr.shape[:2]
        tile = 2 * self.spec.det_size
        step = tile * 3 // 4
        boxes, kps = [np.zeros((0, 5))], [np.zeros((0, 5, 2))]
        for y0 in _tile_starts(h, tile, step):
            for x0 in _tile_starts(w, tile, step):
                b, k = self._detect(np.ascontiguousarray(bgr[y0:y0 + tile, x0:x0 + tile]))
                b[:, [0, 2]] += x0
                b[:, [1, 3]] += y0
                k += (x0, y0)
                boxes.append(b)
                kps.append(k)
        return np.concatenate(boxes), np.concatenate(kps)

    def find(self, image: Image.Image) -> list[Detected]:
        """Every face of an RGB image (see the module docstring), largest first."""
        rgb = image.convert("RGB")
        bgr = np.ascontiguousarray(np.asarray(rgb)[:, :, ::-1])
        h, w = bgr.shape[:2]
        boxes, kps = self._detect(bgr)
        found = [(boxes, kps), self._padded(rgb)]
        input_scale = self.spec.det_size / max(w, h)
        shorts = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) * input_scale
        if input_scale < 0.5 and (shorts < SMALL_AT_INPUT).any():
            found.append(self._tiles(bgr))
        kept_b, kept_k = np.zeros((0, 5)), np.zeros((0, 5, 2))
        for b, k in found:
            order = np.argsort(-b[:, 4], kind="stable")
            b, k = b[order], k[order]
            for i in range(len(b)):
                if b[i, 2] <= b[i, 0] or b[i, 3] <= b[i, 1]:
                    continue
                if len(kept_b) and _iou(b[i:i + 1, :4], kept_b[:, :4]).max() > OVERLAP:
                    continue
                kept_b = np.vstack([kept_b, b[i:i + 1]])
                kept_k = np.concatenate([kept_k, k[i:i + 1]])
        return self._embed(bgr, kept_b, kept_k, rgb)

    def as_host_loads(self, image: Image.Image) -> list[Detected]:
        """Faces as roop-unleashed's loader finds them: one pass, no help."""
        bgr = np.ascontiguousarray(np.asarray(image.convert("RGB"))[:, :, ::-1])
        boxes, kps = self._detect(bgr)
        return self._embed(bgr, boxes, kps)

    def _embed(self, bgr: np.ndarray, boxes: np.ndarray, kps: np.ndarray,
               rgb: Image.Image | None = None) -> list[Detected]:
        """Embed each face; with ``rgb`` (the photo) and the age model, its apparent age too."""
        from insightface.app.common import Face  # type: ignore

        rec = self.app.models["recognition"]
        ages = np.full(len(boxes), np.nan)
        if rgb is not None and self.ages is not None and len(boxes):
            ages = self.ages.of_faces(rgb, list(kps))[0]
        out = []
        for b, k, age in zip(boxes, kps, ages):
            face = Face(bbox=b[:4].astype(np.float32), kps=k.astype(np.float32), det_score=float(b[4]))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                rec.get(bgr, face)
            out.append(Detected(tuple(float(v) for v in b[:4]), float(b[4]), k.astype(np.float32),
                                np.asarray(face.normed_embedding, dtype=np.float32), float(age)))
        out.sort(key=lambda d: -(d.bbox[2] - d.bbox[0]) * (d.bbox[3] - d.bbox[1]))
        return out


def load_analyser(spec: ModelSpec, ages: bool = True) -> Analyser:
    """The pack at ``spec``, ready to find faces (and tell their apparent age where
    the age model is installed, unless ``ages`` is False); refused with one line
    when missing."""
    return Analyser(spec, ages)


def sharpness(gray: np.ndarray, bbox) -> float:
    """The cache's ``blur``: variance of the 4-neighbour Laplacian
    ``[[0,1,0],[1,-4,1],[0,1,0]]`` over the face box, on the 8-bit luma (0-255,
    Pillow's "L") of the photo as displayed, with the box first reduced (a box
    filter) so that its shorter side is at most :data:`SHARP_SIDE` px, the size
    at which the recognizer sees a face. Measured at the photo's own resolution
    a sharp face in an upscaled photo scores as blurred (a 2x upscale divides the
    score by 4-10); at the recognizer's size it keeps its score, while a face
    blurred at that size (what spoils an embedding) still scores low. Faces
    smaller than that are measured as they are."""
    h, w = gray.shape
    x1, y1 = max(0, int(np.floor(bbox[0]))), max(0, int(np.floor(bbox[1])))
    x2, y2 = min(w, int(np.ceil(bbox[2]))), min(h, int(np.ceil(bbox[3])))
    if x2 - x1 < 3 or y2 - y1 < 3:
        return 0.0
    box = gray[y1:y2, x1:x2]
    scale = SHARP_SIDE / min(box.shape)
    if scale < 1:
        size = (max(3, round(box.shape[1] * scale)), max(3, round(box.shape[0] * scale)))
        box = np.asarray(Image.fromarray(box).resize(size, Image.Resampling.BOX))
    g = box.astype(np.float64)
    lap = g[:-2, 1:-1] + g[2:, 1:-1] + g[1:-1, :-2] + g[1:-1, 2:] - 4 * g[1:-1, 1:-1]
    return float(lap.var())
