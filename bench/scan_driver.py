"""The scan driver's own cost per photo, without any model (issue 23).

    python bench/scan_driver.py [--files 500000]

Builds a tree of tiny photo files (1,000 per folder), then scans it with a
stand-in analyser that returns one made-up face per photo at once, so what is
measured is the driver alone: listing, bookkeeping, checkpoints, merging and
writing the cache (the same loop runs whether the photos are scanned here or
on a Ray cluster). Each size runs in a fresh process, so its peak memory is its
own. Prints total time, peak memory and the time per 1,000 photos at a tenth,
half and all of the files (flat when the cost is linear), and an unchanged
re-scan. Targets at 500,000: <= 10 minutes, <= 4 GB.
A benchmark, not a test: machines are noisy, compare figures from one run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

PER_FOLDER = 1000


def build_tree(folder: str, n: int) -> None:
    for i in range(n):
        if i % PER_FOLDER == 0:
            os.makedirs(os.path.join(folder, f"d{i // PER_FOLDER:04d}"), exist_ok=True)
        fd = os.open(os.path.join(folder, f"d{i // PER_FOLDER:04d}", f"p{i:07d}.jpg"), os.O_WRONLY | os.O_CREAT)
        os.write(fd, b"\xff\xd8" + i.to_bytes(4, "big"))
        os.close(fd)


def one(folder: str, n: int, base: str) -> dict:
    """Scan the first ``n`` photos' folders of ``folder`` in this process."""
    from era_split.plugin.faces import scan as scan_mod
    from era_split.plugin.faces.models import ModelSpec
    from era_split.plugin.faces.photo import FileResult

    rng = np.random.default_rng(0)
    pool = rng.standard_normal((1024, 512)).astype(np.float32)
    pool /= np.linalg.norm(pool, axis=1)[:, None]
    stand_in = [0.0]

    def run_local(todo, spec, workers):
        for i, (path, size, mtime, _known) in enumerate(todo):
            t = time.perf_counter()
            face = {"key": f"{i:016x}_0", "path": path, "embedding": pool[i % len(pool)],
                    "bbox": np.array([10, 10, 150, 170], np.float32), "det_score": 0.9, "blur": 100.0,
                    "face_short": 140.0, "landmarks": np.zeros((5, 2), np.float32)}
            result = FileResult(path, size, mtime, "ok", [face])
            stand_in[0] += time.perf_counter() - t
            yield result

    scan_mod._run_local = run_local
    roots = [os.path.join(folder, f"d{k:04d}") for k in range(-(-n // PER_FOLDER))]
    models = os.path.join(base, "roop", "models", "buffalo_l")
    os.makedirs(models, exist_ok=True)
    open(os.path.join(models, "stand-in.onnx"), "wb").close()
    spec = ModelSpec(os.path.join(base, "roop"))
    cache = os.path.join(base, f"faces-{n}.npz")
    start = time.perf_counter()
    report = scan_mod.scan(roots, cache, spec, workers=1)
    took = time.perf_counter() - start
    first_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    again = scan_mod.scan(roots, cache, spec, workers=1)
    rescan = time.perf_counter() - start
    size = os.path.getsize(cache)
    os.unlink(cache)
    return {"files": n, "scanned": report.scanned, "faces": report.faces, "seconds": took,
            "stand_in": stand_in[0], "rescan": rescan, "unchanged": again.unchanged,
            "first_peak_mb": first_peak, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "cache_mb": size / 2**20}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=500_000)
    ap.add_argument("--one", nargs=3, metavar=("FOLDER", "N", "BASE"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        print(json.dumps(one(args.one[0], int(args.one[1]), args.one[2])))
        return 0
    base = tempfile.mkdtemp(prefix="era-split-bench-driver-")
    try:
        folder = os.path.join(base, "photos")
        start = time.perf_counter()
        build_tree(folder, args.files)
        print(f"{args.files:,} tiny photo files in {args.files // PER_FOLDER:,} folders, built in "
              f"{time.perf_counter() - start:.0f} s; {os.cpu_count()} cores, Python {sys.version.split()[0]}")
        print(f"{'photos':>9} {'driver s':>9} {'ms/1k':>7} {'peak MB':>8} {'cache MB':>9} {'re-scan s':>10}")
        for n in sorted({max(PER_FOLDER, args.files // 10), max(PER_FOLDER, args.files // 2), args.files}):
            out = subprocess.run([sys.executable, __file__, "--one", folder, str(n), base],
                                 capture_output=True, text=True, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            driver = r["seconds"] - r["stand_in"]
            print(f"{n:>9,} {driver:>9.1f} {1000 * driver / n * 1000:>7.0f} {r['peak_mb']:>8.0f} "
                  f"{r['cache_mb']:>9.0f} {r['rescan']:>10.1f}")
            assert r["scanned"] == n and r["faces"] == n and r["unchanged"] == n
        print("driver s: the scan's own time (the stand-in analyser's time taken out); ms/1k: per 1,000 photos; "
              "targets at 500,000: <= 600 s, <= 4,096 MB")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
