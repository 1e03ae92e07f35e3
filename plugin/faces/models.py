"""insightface's ``FaceAnalysis``, loaded from files already on disk, never downloaded.

roop-unleashed keeps its model pack in ``<roop>/models/buffalo_l/`` and loads
``FaceAnalysis(name="buffalo_l", root=<roop>)``; ``--models`` takes that root,
so a scan embeds faces exactly as the host does.
"""

from __future__ import annotations

import glob
import os
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..errors import EraSplitError

DEFAULT_MODEL = "buffalo_l"
DEFAULT_DET_SIZE = 640


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


@dataclass(frozen=True)
class Detected:
    """One face as the detector and recognizer see it, in the image's pixels."""

    bbox: tuple[float, float, float, float]
    det_score: float
    landmarks: np.ndarray  # (5, 2)
    embedding: np.ndarray  # (d,) float32, unit length


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


def load_analyser(spec: ModelSpec):
    """A prepared FaceAnalysis with detection and recognition only (what a scan uses)."""
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


def detect(app, image: Image.Image) -> list[Detected]:
    """Every face in an RGB image, largest first."""
    bgr = np.ascontiguousarray(np.asarray(image.convert("RGB"))[:, :, ::-1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        faces = app.get(bgr)
    out = [
        Detected(tuple(float(v) for v in f.bbox), float(f.det_score),
                 np.asarray(f.kps, dtype=np.float32), np.asarray(f.normed_embedding, dtype=np.float32))
        for f in faces
    ]
    out.sort(key=lambda d: -(d.bbox[2] - d.bbox[0]) * (d.bbox[3] - d.bbox[1]))
    return out


def sharpness(gray: np.ndarray, bbox) -> float:
    """The cache's ``blur``: variance of the 4-neighbour Laplacian
    ``[[0,1,0],[1,-4,1],[0,1,0]]`` over the face box, on the 8-bit luma (0-255,
    Pillow's "L") of the photo as displayed, at its own resolution — the same
    number as ``cv2.Laplacian(gray, cv2.CV_64F).var()`` on the box. A sharp
    face scores in the hundreds, a soft or upscaled one below 40 (the gate)."""
    h, w = gray.shape
    x1, y1 = max(0, int(np.floor(bbox[0]))), max(0, int(np.floor(bbox[1])))
    x2, y2 = min(w, int(np.ceil(bbox[2]))), min(h, int(np.ceil(bbox[3])))
    if x2 - x1 < 3 or y2 - y1 < 3:
        return 0.0
    g = gray[y1:y2, x1:x2].astype(np.float64)
    lap = g[:-2, 1:-1] + g[2:, 1:-1] + g[1:-1, :-2] + g[1:-1, 2:] - 4 * g[1:-1, 1:-1]
    return float(lap.var())
