"""Source photos: opened safely, and their EXIF year and displayed size, read once
per file and cached on disk.

Every photo the project decodes is opened by :func:`open_photo`: a regular file
only (a FIFO would block), EXIF checked before Pillow sees it and read by the
bounded reader in :mod:`exif` (Pillow's own parser costs N x C bytes on a
crafted EXIF), and at most :data:`MAX_PIXELS` as its header declares (a
decompression bomb is a few KB that decode to gigabytes).

Reading the header is ~0.1 ms per file, but photos often live on slow mounts, so
the results are kept in ``<library>/.era_split/photos.json`` and invalidated when
a file's size or mtime changes.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import io
import json
import os
import re
import stat
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import IO

from PIL import Image, UnidentifiedImageError

from . import heif
from .exif import ExifInfo, check_file, read_exif
from .fsutil import atomic_write_json, open_regular

heif.register()

MIN_YEAR = 1990
# Photos larger than this (as their header declares) are not decoded: 60 MP is
# 180 MB per RGB copy, and the face finder holds about three. Every camera below
# medium format stays under it.
MAX_PIXELS = 60_000_000
_TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
              4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
              6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_90}


class PhotoTooLarge(ValueError):
    """A photo whose header declares more than :data:`MAX_PIXELS`."""


@contextlib.contextmanager
def open_photo(path: str, data: bytes | None = None) -> Iterator[tuple[Image.Image, ExifInfo]]:
    """The opened (not yet decoded) photo and its EXIF: the file at ``path``, or
    its bytes ``data`` when given (a scan on another machine; ``path`` then only
    names it). Raises FileNotFoundError, OSError for anything not a regular file,
    :class:`HostileExif`, :class:`PhotoTooLarge`, or Pillow's errors for what it
    cannot read."""
    def handle() -> IO[bytes]:
        return io.BytesIO(data) if data is not None else open_regular(path)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # corrupt EXIF: the pixels are still good
        with handle() as fh:
            size = len(data) if data is not None else os.fstat(fh.fileno()).st_size
            check_file(fh, size)
            with Image.open(fh) as im:
                if im.width * im.height > MAX_PIXELS:
                    raise PhotoTooLarge(f"{im.width}x{im.height} pixels")
                if im.format == "TIFF":
                    with handle() as other:  # Pillow reads the first handle lazily
                        exif = read_exif(other, size, {})
                else:
                    exif = read_exif(fh, size, im.info)
                yield im, exif


def displayed(im: Image.Image, orientation: int) -> Image.Image:
    """The decoded photo turned as its EXIF orientation says (a copy only when turned)."""
    method = _TRANSPOSE.get(orientation)
    return im.transpose(method) if method is not None else im


def open_displayed(path: str, data: bytes | None = None) -> Image.Image:
    """Decode a photo as displayed (EXIF orientation applied), in RGB; from its
    bytes ``data`` when given (see :func:`open_photo`)."""
    with open_photo(path, data) as (im, exif):
        im.load()
        shown = displayed(im, exif.orientation)
        return shown if shown.mode == "RGB" and shown is not im else shown.convert("RGB")
CACHE_VERSION = 1

_STAMP = re.compile(r"^(\d{4})[:\-](\d{2})[:\-](\d{2})(?:[ T]\d{2}:\d{2}:\d{2}(?:\.\d+)?)?$")

OK, MISSING, UNREADABLE = "ok", "missing", "unreadable"


@dataclass(frozen=True)
class PhotoInfo:
    status: str  # "ok", "missing" or "unreadable"
    year: int = 0  # 0 = undated
    width: int = 0  # as displayed (EXIF orientation applied)
    height: int = 0


def parse_year(stamp: object, *, max_year: int | None = None) -> int:
    """Year of an EXIF date stamp, or 0 when it is missing, bogus or out of range.

    Accepts ``YYYY:MM:DD[ HH:MM:SS]`` with trailing NULs or spaces (cameras pad);
    anything else after the date counts as unparseable.
    """
    if isinstance(stamp, bytes):
        stamp = stamp.decode("ascii", "replace")
    if not isinstance(stamp, str):
        return 0
    m = _STAMP.match(stamp.rstrip("\x00 ").strip())
    if not m:
        return 0
    year, month, day = (int(g) for g in m.groups())
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return 0
    top = max_year if max_year is not None else _dt.date.today().year
    return year if MIN_YEAR <= year <= top else 0


def read_photo(path: str) -> PhotoInfo:
    """Year and displayed size of one photo; never raises for a bad file."""
    try:
        with open_photo(path) as (im, exif):
            width, height = im.size
            orientation = exif.orientation
            year = next((y for y in map(parse_year, exif.stamps()) if y), 0)
    except FileNotFoundError:
        return PhotoInfo(MISSING)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        # a FIFO, device or folder ("not a regular file"), a hostile EXIF, a bomb: unreadable
        return PhotoInfo(UNREADABLE)
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    if width <= 0 or height <= 0:
        return PhotoInfo(UNREADABLE)
    return PhotoInfo(OK, year, width, height)


class PhotoCache:
    """On-disk cache of :class:`PhotoInfo` keyed by path, size and mtime."""

    def __init__(self, file: str | None) -> None:
        self.file = file
        self.entries: dict[str, list] = {}
        self.dirty = False
        if file and os.path.isfile(file):
            try:
                with open(file, encoding="utf-8") as fh:
                    data = json.load(fh)
                if data.get("version") == CACHE_VERSION and isinstance(data.get("photos"), dict):
                    self.entries = data["photos"]
            except (OSError, ValueError, AttributeError, RecursionError):
                self.entries = {}  # a broken cache is only a slower run

    def get(self, path: str) -> PhotoInfo:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return PhotoInfo(MISSING)
        except (OSError, ValueError):  # ValueError: a NUL byte in the recorded path
            return PhotoInfo(UNREADABLE)
        if not stat.S_ISREG(st.st_mode):
            return PhotoInfo(UNREADABLE)  # never open a FIFO or device: it would block
        stamp = [st.st_size, st.st_mtime_ns]
        hit = self.entries.get(path)
        if isinstance(hit, list) and len(hit) == 6 and hit[:2] == stamp:
            return PhotoInfo(*hit[2:])
        info = read_photo(path)
        if info.status != MISSING:
            self.entries[path] = stamp + [info.status, info.year, info.width, info.height]
            self.dirty = True
        return info

    def save(self) -> None:
        if self.file and self.dirty:
            try:
                os.makedirs(os.path.dirname(self.file), exist_ok=True)
                atomic_write_json(self.file, {"version": CACHE_VERSION, "photos": self.entries})
            except OSError:
                pass  # a read-only library only makes the next run slower
            self.dirty = False


def read_photos(
    paths: Iterable[str],
    cache: PhotoCache,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, PhotoInfo]:
    """PhotoInfo for each unique path, through the cache."""
    unique = sorted(set(paths))
    out = {}
    for i, path in enumerate(unique, 1):
        out[path] = cache.get(path)
        if progress and (i % 200 == 0 or i == len(unique)):
            progress("dates", i, len(unique))
    cache.save()
    return out
