"""How close Era Split's age chip is to the one dlib's age network was trained on.

dlib's own pipeline (its HOG face detector, its 5-point shape predictor, then
``get_face_chip(image, shape, 64, 0.2)``) gives the reference chip; Era Split
builds its chip from insightface's landmarks (``plugin/faces/age.py``). On the
faces of the package photos that both detectors find, this prints:

1. where insightface's five points fall in dlib's chip (mean and sd): the
   source of ``INSIGHTFACE_IN_CHIP``;
2. for several choices of points to align on, the age difference between our
   chip and dlib's (both through the same network), leaving each photo out of
   the fit in turn, so no face is judged by a template fitted on itself;
3. the shipped chip's age difference per face.

dlib conflicts with roop's pins, so it runs in its own environment:

    python3 -m venv /tmp/dlibv && /tmp/dlibv/bin/pip install dlib-bin==20.0.1 numpy pillow
    .venv/bin/python bench/age_chip.py --dlib-python /tmp/dlibv/bin/python
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))

PHOTOS = ("yao", "friends", "spurs", "players", "astronaut", "tom")
DLIB_SIDE = r"""
import json, sys
import dlib, numpy as np
from PIL import Image
models, items = sys.argv[1], json.loads(sys.argv[2])
detector = dlib.get_frontal_face_detector()
predictor = dlib.shape_predictor(models + "/shape_predictor_5_face_landmarks.dat")
out = []
for name, path in items:
    img = np.asarray(Image.open(path).convert("RGB"))
    for rect in detector(img, 1):
        shape = predictor(img, rect)
        d = dlib.get_face_chip_details(shape, 64, 0.2)
        out.append({"photo": name, "centre": [(rect.left() + rect.right()) / 2, (rect.top() + rect.bottom()) / 2],
                    "rect": [d.rect.left(), d.rect.top(), d.rect.right(), d.rect.bottom()], "angle": d.angle,
                    "chip": np.asarray(dlib.get_face_chip(img, shape, size=64, padding=0.2)).tolist()})
print(json.dumps(out))
"""


def in_chip(points: np.ndarray, rect, angle: float) -> np.ndarray:
    """Image points in the coordinates of dlib's chip (its rect, turned by angle)."""
    left, top, right, bottom = rect
    centre = np.array([(left + right) / 2, (top + bottom) / 2])
    rot = np.array([[np.cos(-angle), -np.sin(-angle)], [np.sin(-angle), np.cos(-angle)]])
    return (points - centre) @ rot.T * (64 / (right - left)) + 32


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dlib-python", required=True, help="a Python with dlib-bin, numpy and Pillow")
    args = ap.parse_args()

    from era_split.plugin.faces import age
    from era_split.plugin.faces.models import ModelSpec, load_analyser
    from realfaces import models_root, picture

    files = age.find_age_model()
    assert files is not None, "install the age model first (README)"
    est = age.load_age_estimator(required=True)
    tmp = tempfile.mkdtemp()
    analyser = load_analyser(ModelSpec(models_root(os.path.join(tmp, "roop"))), ages=False)
    items, images = [], {}
    for name in PHOTOS:
        path = os.path.join(tmp, f"{name}.png")
        images[name] = picture(name)
        images[name].save(path)
        items.append((name, path))
    ref = json.loads(subprocess.run([args.dlib_python, "-c", DLIB_SIDE, os.path.dirname(files.model),
                                     json.dumps(items)], capture_output=True, text=True, check=True).stdout)
    found = {name: analyser.find(images[name]) for name in PHOTOS}
    faces = []  # (photo, insightface landmarks, their place in dlib's chip, dlib's chip)
    for r in ref:
        cx, cy = r["centre"]
        near = [d for d in found[r["photo"]] if d.bbox[0] <= cx <= d.bbox[2] and d.bbox[1] <= cy <= d.bbox[3]]
        if near:
            lm = near[0].landmarks.astype(np.float64)
            faces.append((r["photo"], lm, in_chip(lm, r["rect"], r["angle"]), np.array(r["chip"], np.uint8)))
    places = np.array([f[2] for f in faces])
    print(f"{len(faces)} faces found by both detectors\n")
    print("1. insightface's points in dlib's 64 px chip (x, y): mean, sd")
    for i, what in enumerate(("eye (image left)", "eye (image right)", "nose tip", "mouth left", "mouth right")):
        print(f"   {what:<18} ({places[:, i, 0].mean():5.2f}, {places[:, i, 1].mean():5.2f})  "
              f"sd ({places[:, i, 0].std():.2f}, {places[:, i, 1].std():.2f})")

    def age_gap(points: list[int], leave_out: bool) -> np.ndarray:
        shipped = (age.INSIGHTFACE_IN_CHIP.copy(), list(age.ALIGNED))
        gaps = []
        try:
            age.ALIGNED[:] = points
            for photo, lm, _, theirs in faces:
                if leave_out:
                    age.INSIGHTFACE_IN_CHIP = places[[f[0] != photo for f in faces]].mean(axis=0)
                ours = age.face_chip(images[photo], lm)
                a = est.estimate(np.stack([theirs, ours]))[0]
                gaps.append(abs(a[0] - a[1]))
        finally:
            age.INSIGHTFACE_IN_CHIP, age.ALIGNED[:] = shipped
        return np.array(gaps)

    print("\n2. |age from our chip - age from dlib's chip|, each photo left out of the fit in turn")
    for label, points in (("eyes", [0, 1]), ("eyes + nose", [0, 1, 2]), ("all five", [0, 1, 2, 3, 4]),
                          ("eyes + mouth (shipped)", [0, 1, 3, 4])):
        g = age_gap(points, leave_out=True)
        print(f"   {label:<24} mean {g.mean():.2f}  median {np.median(g):.2f}  max {g.max():.2f} years")
    print("\n3. the shipped chip, per face: age from dlib's chip, from ours")
    for (photo, lm, _, theirs), gap in zip(faces, age_gap(list(age.ALIGNED), leave_out=False)):
        a = est.estimate(np.stack([theirs, age.face_chip(images[photo], lm)]))[0]
        print(f"   {photo:<10} {a[0]:5.1f} {a[1]:5.1f}")


if __name__ == "__main__":
    main()
