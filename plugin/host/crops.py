"""Single-face square crops.

roop-unleashed re-detects faces in every PNG of an ``.fsz`` and adds every face
it finds to the identity, so a crop that shows part of a second face poisons
the faceset. The crop box is therefore planned from the cache's bboxes alone
(so ``plan`` and ``apply`` agree): shrink the padding until the box touches no
other cached face of the same photo, and give up on the face when even the
bare face box does.
"""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Sequence

from PIL import Image

from ..results import Box
from .fsutil import open_regular
from .photos import open_displayed  # noqa: F401  (the photo as displayed, for every caller)

PAD_STEPS = 10


def _square(bbox: Sequence[float], pad: float, width: int, height: int) -> Box:
    """The padded square centred on the face; it may reach beyond the photo."""
    x1, y1, x2, y2 = bbox
    face = max(x2 - x1, y2 - y1)
    side = face * (1 + 2 * pad)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    x0, y0 = cx - side / 2, cy - side / 2
    s = int(round(side))
    return int(round(x0)), int(round(y0)), int(round(x0)) + s, int(round(y0)) + s


def _overlaps(box: Box, other: Sequence[float]) -> bool:
    return box[0] < other[2] and other[0] < box[2] and box[1] < other[3] and other[1] < box[3]


def plan_crop_box(
    bbox: Sequence[float],
    others: Sequence[Sequence[float]],
    width: int,
    height: int,
    pad: float,
) -> Box | None:
    """Largest padded square box around ``bbox`` that avoids every box in ``others``.

    Padding is tried from ``pad`` down to 0 in ten steps; None when even the
    unpadded square touches another face.
    """
    for step in range(PAD_STEPS, -1, -1):
        box = _square(bbox, pad * step / PAD_STEPS, width, height)
        if not any(_overlaps(box, o) for o in others):
            return box
    return None


def mean_colour(image: Image.Image) -> tuple[int, ...]:
    """The photo's average colour (a 1-pixel box reduction: cheap on any size)."""
    return image.convert("RGB").reduce(max(1, min(image.size) // 16)).resize((1, 1), Image.Resampling.BOX).getpixel((0, 0))


def render_crop(image: Image.Image, box: Box, size: int, fill: tuple[int, ...] | None = None) -> Image.Image:
    """Cut ``box`` and scale it to ``size``²; what lies beyond the photo is
    ``fill`` (default: the photo's mean colour), a flat area with no face-like
    structure for the detector to find."""
    x0, y0, x1, y1 = box
    if x0 >= 0 and y0 >= 0 and x1 <= image.width and y1 <= image.height:
        return image.crop(box).resize((size, size), Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", (x1 - x0, y1 - y0), fill if fill is not None else mean_colour(image))
    inner = (max(x0, 0), max(y0, 0), min(x1, image.width), min(y1, image.height))
    if inner[2] > inner[0] and inner[3] > inner[1]:
        canvas.paste(image.crop(inner).convert("RGB"), (inner[0] - x0, inner[1] - y0))
    return canvas.resize((size, size), Image.Resampling.LANCZOS)


def png_problem(path: str, size: int | None = None) -> str | None:
    """None for a complete square PNG crop (``size``² when given, every chunk's CRC
    checked, a regular file and no link), else what is wrong with it. ~1 ms a crop."""
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return "is not a regular file"
        with open_regular(path) as fh, Image.open(fh) as im:
            if im.format != "PNG":
                return f"is {im.format}, not PNG"
            if im.width != im.height or (size is not None and im.size != (size, size)):
                return f"is {im.width}x{im.height}, not {size or 'square'}"
            im.verify()
    except FileNotFoundError:
        return "is missing"
    except Exception as exc:  # any decoder complaint is damage
        return f"is damaged ({exc})"
    return None


def encode_png(crop: Image.Image) -> bytes:
    """PNG bytes; level 1 is 3-5x faster than the default for ~15 % more bytes."""
    buf = io.BytesIO()
    crop.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()
