"""Time ``era-split pick`` as a user runs it (a fresh process: imports, models,
the target's face, its age): an image target and a video target, on the
two-era library of tests/test_age.py. Target: an image answered in <= 3 s on a
2-core machine.

    .venv/bin/python bench/pick.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))


def main() -> None:
    from era_split.plugin.faces.models import ModelSpec, load_analyser
    from realfaces import dated, models_root, picture
    from test_age import OLD_MAN, aged_library, around

    base = tempfile.mkdtemp()
    models = models_root(os.path.join(base, "roop"))
    lib = aged_library(os.path.join(base, "aged"), load_analyser(ModelSpec(models)))
    exe = os.path.join(os.path.dirname(sys.executable), "era-split")
    subprocess.run([exe, "apply", "person", "--library", lib.root, "--cache", lib.cache], check=True,
                   capture_output=True)
    image = dated(around(picture("players"), OLD_MAN, 2.0, 500), None, os.path.join(base, "t.jpg"))
    big = dated(picture("players").resize((4000, 2200)), None, os.path.join(base, "big.jpg"))
    targets = [("image, 500 px", image), ("image, 8.8 MP group photo", big)]
    try:
        import cv2

        video = os.path.join(base, "t.mp4")
        w = cv2.VideoWriter(video, cv2.VideoWriter_fourcc(*"mp4v"), 25, (640, 640))
        for i in range(250):
            w.write(np.ascontiguousarray(np.asarray(around(picture("players"), OLD_MAN, 1.6 + i / 500, 640))[:, :, ::-1]))
        w.release()
        targets.append(("video, 10 s 640x640", video))
    except ImportError:
        pass
    print(f"{'target':<28} {'run 1':>7} {'run 2':>7} {'run 3':>7}  answer")
    for label, target in targets:
        times, answer = [], ""
        for _ in range(3):
            t = time.perf_counter()
            proc = subprocess.run([exe, "pick", "person", "--target", target, "--library", lib.root,
                                   "--models", models], capture_output=True, text=True)
            times.append(time.perf_counter() - t)
            answer = proc.stdout.splitlines()[0][:60] if proc.stdout else proc.stderr.strip()[:60]
        print(f"{label:<28} " + " ".join(f"{x:6.2f}s" for x in times) + f"  {answer}")
    print(f"\n{os.cpu_count()} cores")


if __name__ == "__main__":
    main()
