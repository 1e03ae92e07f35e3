"""Render the crops of one photo: the unit of work of the crop process pool.

Imports only Pillow, so a worker process starts fast. Each photo is decoded
once for all its faces; a JPEG whose smallest crop box is at least twice the
output size is decoded at a reduced scale (``Image.draft``: 2-4x less work).
PNGs are written through a temp name and a rename, so a crash never leaves a
half crop in the cache for a later run to reuse.
"""

from __future__ import annotations

import os
import warnings

from PIL import Image, ImageOps

from .crops import encode_png

ORIENTATION = 0x0112


def _draft_scale(min_side: float, size: int) -> int:
    scale = 1
    while scale < 8 and min_side / (scale * 2) >= size:
        scale *= 2
    return scale


def render_photo(path: str, jobs: list[tuple[str, tuple[int, int, int, int]]], size: int, out_dir: str) -> str | None:
    """Write ``out_dir/<name>`` for each (name, box) of one photo; None, or the
    reason ("missing_photo", "unreadable_photo") when the photo cannot be decoded."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # corrupt EXIF: the pixels are still good
            with Image.open(path) as im:
                try:
                    orientation = im.getexif().get(ORIENTATION, 1)
                except Exception:
                    orientation = 1
                disp_w, disp_h = (im.height, im.width) if orientation in (5, 6, 7, 8) else im.size
                if im.format == "JPEG":
                    scale = _draft_scale(min(b[2] - b[0] for _, b in jobs), size)
                    if scale > 1:
                        im.draft("RGB", (-(-im.width // scale), -(-im.height // scale)))
                im.load()
                shown = ImageOps.exif_transpose(im).convert("RGB")
    except FileNotFoundError:
        return "missing_photo"
    except Exception:  # any decoder failure: a truncated or corrupt photo
        return "unreadable_photo"
    sx, sy = shown.width / disp_w, shown.height / disp_h
    for name, (x0, y0, x1, y1) in jobs:
        box = (round(x0 * sx), round(y0 * sy), round(x1 * sx), round(y1 * sy))
        png = encode_png(shown.crop(box).resize((size, size), Image.Resampling.LANCZOS))
        final = os.path.join(out_dir, name)
        tmp = f"{final}.{os.getpid()}.part"
        with open(tmp, "wb") as fh:
            fh.write(png)
        os.replace(tmp, final)
    return None


def render_task(task: tuple) -> tuple[str, str | None]:
    path, jobs, size, out_dir = task
    return path, render_photo(path, jobs, size, out_dir)
