"""Fixtures: libraries written to temp dirs, with real JPEGs and real EXIF."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field

import numpy as np
import pytest
from era_split.plugin.generate import synth
from PIL import Image

EXIF_IFD = 0x8769


def save_jpeg(path, size=(640, 480), *, original=None, digitized=None, ifd0=None,
              orientation=None, color=(90, 120, 160), image=None):
    """A real JPEG with EXIF written the way cameras write it."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    exif = Image.Exif()
    if orientation:
        exif[0x0112] = orientation
    if ifd0 is not None:
        exif[0x0132] = ifd0
    if original is not None or digitized is not None:
        sub = exif.get_ifd(EXIF_IFD)
        if original is not None:
            sub[0x9003] = original
        if digitized is not None:
            sub[0x9004] = digitized
    (image or Image.new("RGB", size, color)).save(path, quality=90, exif=exif)
    return path


@dataclass
class Face:
    key: str
    photo: str  # file name under photos/
    bbox: tuple
    emb: np.ndarray
    det: float = 0.9
    blur: float = 200.0


@dataclass
class TinyLibrary:
    """A hand-built archive: photos/, cache.npz and a library with one faceset."""

    base: str
    faces: list[Face] = field(default_factory=list)

    @property
    def root(self) -> str:
        return os.path.join(self.base, "library")

    @property
    def cache(self) -> str:
        return os.path.join(self.base, "cache.npz")

    @property
    def photos(self) -> str:
        return os.path.join(self.base, "photos")

    def write_cache(self, **overrides) -> str:
        arrays = {
            "keys": np.array([f.key for f in self.faces]),
            "paths": np.array([os.path.join(self.photos, f.photo) for f in self.faces]),
            "embeddings": np.stack([f.emb for f in self.faces]).astype(np.float32),
            "bboxes": np.array([f.bbox for f in self.faces], dtype=np.float32),
            "det_score": np.array([f.det for f in self.faces], dtype=np.float32),
            "blur": np.array([f.blur for f in self.faces], dtype=np.float32),
        }
        arrays.update(overrides)
        np.savez(self.cache, **{k: v for k, v in arrays.items() if v is not None})
        return self.cache

    def write_library(self, faceset_keys, name="faceset_001", extra_manifest=None) -> str:
        folder = os.path.join(self.root, name)
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "manifest.json"), "w") as fh:
            json.dump({"name": name, "faces": list(faceset_keys)}, fh)
        manifest = extra_manifest or {"facesets": [{"name": name, "relpath": name, "faces": len(faceset_keys)}]}
        with open(os.path.join(self.root, "manifest.json"), "w") as fh:
            json.dump(manifest, fh, indent=2)
        return self.root


def unit(rng, dim=32):
    v = rng.standard_normal(dim)
    return v / np.linalg.norm(v)


def near(rng, center, scale, dim=32):
    """A unit vector about ``scale`` cosine distance from ``center`` (for small scale)."""
    v = center + rng.standard_normal(dim) * np.sqrt(2 * scale / dim)
    return v / np.linalg.norm(v)


@pytest.fixture(scope="session")
def models(tmp_path_factory):
    """buffalo_s's real models, laid out as roop-unleashed keeps its buffalo_l."""
    from realfaces import models_root

    return models_root(tmp_path_factory.mktemp("roop"))


@pytest.fixture
def tiny(tmp_path):
    return TinyLibrary(str(tmp_path))


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


SMALL = synth.SynthSpec(seed=3, target_photos=160, others=2, other_photos=30, size=(480, 360))


@pytest.fixture
def synth_lib(tmp_path):
    """A generated archive: real JPEGs (some rotated, some undated), a cache and a library."""
    return synth.generate(tmp_path / "archive", SMALL)


def tree_digest(root) -> dict[str, str]:
    """{relative path: sha256} of every file under ``root``."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as fh:
                out[os.path.relpath(path, root)] = hashlib.sha256(fh.read()).hexdigest()
    return out


def pytest_terminal_summary(terminalreporter):
    """Say loudly, in the last lines, which browser-driven tests did not run and how
    to run them: a quiet 'N skipped' hides that the UI or roop was never driven."""
    skipped = terminalreporter.stats.get("skipped", [])
    groups = {
        "test_browser": "Install Debian's chromium (sudo apt-get install chromium) and run pytest again; "
                        "CI requires them (ERA_SPLIT_REQUIRE_BROWSER=1).",
        "test_roop": "They run under roop-unleashed's own environment (torch, gradio 5.9.1): .ci/run builds "
                     "it as .venv-roop and requires them (ERA_SPLIT_REQUIRE_ROOP=1).",
    }
    for name, how in groups.items():
        hits = [r for r in skipped if name in getattr(r, "nodeid", "") or name in str(getattr(r, "location", ""))]
        if not hits:
            continue
        rep = hits[0].longrepr
        reason = str(rep[-1]) if isinstance(rep, tuple) else str(rep)
        title = "BROWSER TESTS NOT RUN" if name == "test_browser" else "ROOP-UNLEASHED TESTS NOT RUN"
        terminalreporter.section(title, sep="!", red=True, bold=True)
        terminalreporter.line(f"{len(hits)} test(s) skipped: {reason}. {how}", red=True, bold=True)
