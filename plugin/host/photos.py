"""Source photos: EXIF year and displayed size, read once per file and cached on disk.

Reading the header is ~0.1 ms per file, but photos often live on slow mounts, so
the results are kept in ``<library>/.era_split/photos.json`` and invalidated when
a file's size or mtime changes.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import stat
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from . import heif
from .fsutil import atomic_write_json, open_regular

heif.register()

EXIF_IFD = 0x8769
DATETIME_ORIGINAL = 0x9003
DATETIME_DIGITIZED = 0x9004
DATETIME = 0x0132
ORIENTATION = 0x0112
MIN_YEAR = 1990
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
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with open_regular(path) as fh, Image.open(fh) as im:
                width, height = im.size
                try:
                    exif = im.getexif()
                except Exception:
                    exif = None
                year = 0
                orientation = 1
                if exif is not None:
                    try:
                        sub = exif.get_ifd(EXIF_IFD)
                    except Exception:
                        sub = {}
                    for stamp in (sub.get(DATETIME_ORIGINAL), sub.get(DATETIME_DIGITIZED), exif.get(DATETIME)):
                        year = parse_year(stamp)
                        if year:
                            break
                    orientation = exif.get(ORIENTATION, 1)
    except FileNotFoundError:
        return PhotoInfo(MISSING)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return PhotoInfo(UNREADABLE)  # a FIFO, device or folder is "not a regular file": unreadable
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
