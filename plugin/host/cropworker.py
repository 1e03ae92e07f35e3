"""Render the crops of one photo: the unit of work of the crop workers.

Run as ``python -m era_split.plugin.host.cropworker TASKFILE`` it renders a list of
tasks and prints one JSON line per photo. Workers are plain subprocesses, not
multiprocessing children: they never re-import the host's ``__main__`` and
never fork a threaded server. Imports only Pillow (and pillow-heif where installed), so a worker starts fast. Each photo is decoded
once for all its faces; a JPEG whose smallest crop box is at least twice the
output size is decoded at a reduced scale (``Image.draft``: 2-4x less work).
PNGs are written through a temp name and a rename, so a crash never leaves a
half crop in the cache for a later run to reuse.
"""

from __future__ import annotations

import json
import os
import sys

from PIL import Image

from . import heif
from .crops import encode_png, render_crop
from .photos import displayed, open_photo

heif.register()  # HEIC decodes here exactly when it does in the planner


def _draft_scale(min_side: float, size: int) -> int:
    scale = 1
    while scale < 8 and min_side / (scale * 2) >= size:
        scale *= 2
    return scale


def _cut(shown: Image.Image, jobs: list, size: int, sx: float, sy: float) -> list[tuple[str, bytes]]:
    out = []
    for name, (x0, y0, x1, y1) in jobs:
        box = (round(x0 * sx), round(y0 * sy), round(x1 * sx), round(y1 * sy))
        out.append((name, encode_png(render_crop(shown, box, size))))
    return out


def render_photo(path: str, jobs: list[tuple[str, tuple[int, int, int, int]]], size: int, out_dir: str) -> str | None:
    """Write ``out_dir/<name>`` for each (name, box) of one photo; None, or the
    reason ("missing_photo", "unreadable_photo") when the photo cannot be decoded."""
    try:
        with open_photo(path) as (im, exif):
            orientation = exif.orientation
            disp_w, disp_h = (im.height, im.width) if orientation in (5, 6, 7, 8) else im.size
            if im.format == "JPEG":
                scale = _draft_scale(min(b[2] - b[0] for _, b in jobs), size)
                if scale > 1:
                    im.draft("RGB", (-(-im.width // scale), -(-im.height // scale)))
            im.load()
            # no copies for the common upright RGB photo: each costs ~3 ms at 2 MP
            shown = displayed(im, orientation)
            if shown.mode != "RGB":
                shown = shown.convert("RGB")
            crops = _cut(shown, jobs, size, shown.width / disp_w, shown.height / disp_h)
    except FileNotFoundError:
        return "missing_photo"
    except Exception:  # any decoder failure: a truncated or corrupt photo
        return "unreadable_photo"
    for name, png in crops:
        final = os.path.join(out_dir, name)
        tmp = f"{final}.{os.getpid()}.part"
        with open(tmp, "wb") as fh:
            fh.write(png)
        os.replace(tmp, final)
    return None


def render_task(task: tuple) -> tuple[str, str | None]:
    path, jobs, size, out_dir = task
    return path, render_photo(path, jobs, size, out_dir)


def main(argv: list[str]) -> int:
    with open(argv[0], encoding="utf-8") as fh:
        tasks = json.load(fh)
    for path, jobs, size, out_dir in tasks:
        reason = render_photo(path, [(n, tuple(b)) for n, b in jobs], size, out_dir)
        print(json.dumps([path, reason]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
