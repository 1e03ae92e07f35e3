"""The few EXIF tags this project needs — orientation and the three date stamps —
read with bounded work, never through Pillow's EXIF parser.

Pillow's parser copies every tag's data: a crafted EXIF whose N tags all point
at one C-byte blob costs N x C bytes (measured: a 1 MB PNG took 3.8 GB in
``getexif()``). Here only the five wanted tags are read, each at most
:data:`MAX_STAMP` bytes, and an IFD is walked only while it is plausible.

Pillow does parse some EXIF by itself when it opens a file: a JPEG's IFD0
(for its DPI), an MPO's APP2 index and a TIFF's first IFD. :func:`check_file`
looks at those structures first and refuses a file whose tags claim more data
than the file holds (real tags never overlap, so their sizes add up to less
than the file), so Pillow never sees such a file.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from typing import BinaryIO

ORIENTATION = 0x0112
DATETIME = 0x0132
EXIF_IFD = 0x8769
DATETIME_ORIGINAL = 0x9003
DATETIME_DIGITIZED = 0x9004
MAX_ENTRIES = 4096  # entries in one IFD; cameras write tens
MAX_STAMP = 64  # bytes of a date stamp ("YYYY:MM:DD HH:MM:SS" is 20)
MAX_SEGMENTS = 512  # JPEG marker segments walked before the image data
MAX_CHUNK = 16 * 2**20  # PNG/WebP metadata chunk read for its EXIF; a bigger one is ignored
_UNIT = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}


class HostileExif(ValueError):
    """EXIF whose structure would make a reader do unbounded work."""


@dataclass(frozen=True)
class ExifInfo:
    orientation: int = 1
    original: bytes | None = None  # DateTimeOriginal (Exif IFD)
    digitized: bytes | None = None  # DateTimeDigitized (Exif IFD)
    datetime: bytes | None = None  # DateTime (IFD0)

    def stamps(self) -> list[bytes | None]:
        """The date stamps in the order they are trusted."""
        return [self.original, self.digitized, self.datetime]


class _Tiff:
    """Random, bounded reads of a TIFF structure in ``fh`` starting at ``base``."""

    def __init__(self, fh: BinaryIO, base: int, length: int) -> None:
        self.fh, self.base, self.length = fh, base, length
        self.fh.seek(base)
        head = self.fh.read(8)
        if len(head) < 8 or head[:2] not in (b"II", b"MM"):
            raise ValueError("not a TIFF header")
        self.order = "<" if head[:2] == b"II" else ">"
        if struct.unpack(self.order + "H", head[2:4])[0] != 42:
            raise ValueError("not a classic TIFF")
        self.ifd0 = struct.unpack(self.order + "I", head[4:8])[0]

    def read(self, offset: int, n: int) -> bytes:
        if offset < 0 or offset + n > self.length:
            return b""
        self.fh.seek(self.base + offset)
        return self.fh.read(n)

    def entries(self, offset: int) -> list[tuple[int, int, int, bytes]]:
        """(tag, type, count, 4 value bytes) of the IFD at ``offset``; none when it
        is cut short; refused when its tags claim more data than the structure holds."""
        raw = self.read(offset, 2)
        if len(raw) < 2:
            return []
        n = struct.unpack(self.order + "H", raw)[0]
        table = self.read(offset + 2, 12 * n)
        if len(table) < 12 * n or n > MAX_ENTRIES:
            return []  # damaged, or nothing a camera writes: no tags from it
        out, claimed = [], 0
        for i in range(n):
            tag, typ, count, value = struct.unpack(self.order + "HHI4s", table[12 * i:12 * i + 12])
            size = count * _UNIT.get(typ, 1)
            if size > 4:
                claimed += size
            out.append((tag, typ, count, value))
        if claimed > self.length:
            raise HostileExif(f"tags claiming {claimed:,} bytes of a {self.length:,}-byte structure")
        return out

    def value(self, typ: int, count: int, value: bytes, limit: int) -> bytes:
        size = count * _UNIT.get(typ, 1)
        if size > limit:
            return b""
        if size <= 4:
            return value[:size]
        return self.read(struct.unpack(self.order + "I", value)[0], size)

    def short(self, typ: int, value: bytes) -> int:
        if typ == 3:
            return struct.unpack(self.order + "H", value[:2])[0]
        if typ == 4:
            return struct.unpack(self.order + "I", value)[0]
        return 0


def _parse(fh: BinaryIO, base: int, length: int) -> ExifInfo:
    tiff = _Tiff(fh, base, length)
    found: dict[int, bytes] = {}
    orientation, exif_at = 1, None
    for tag, typ, count, value in tiff.entries(tiff.ifd0):
        if tag == ORIENTATION:
            orientation = tiff.short(typ, value)
        elif tag == DATETIME and typ == 2:
            found[DATETIME] = tiff.value(typ, count, value, MAX_STAMP)
        elif tag == EXIF_IFD and typ in (4, 13):
            exif_at = tiff.short(4, value)
    if exif_at and exif_at != tiff.ifd0:
        for tag, typ, count, value in tiff.entries(exif_at):
            if tag in (DATETIME_ORIGINAL, DATETIME_DIGITIZED) and typ == 2:
                found[tag] = tiff.value(typ, count, value, MAX_STAMP)
    return ExifInfo(orientation if 1 <= orientation <= 8 else 1, found.get(DATETIME_ORIGINAL) or None,
                    found.get(DATETIME_DIGITIZED) or None, found.get(DATETIME) or None)


def parse_blob(blob: bytes) -> ExifInfo:
    """The wanted tags of raw EXIF bytes (with or without the ``Exif\\0\\0`` prefix)."""
    if blob.startswith(b"Exif\x00\x00"):
        blob = blob[6:]
    try:
        return _parse(io.BytesIO(blob), 0, len(blob))
    except HostileExif:
        raise
    except (ValueError, struct.error):
        return ExifInfo()


def _jpeg_segments(fh: BinaryIO):
    """(marker, payload) of a JPEG's segments before the image data."""
    fh.seek(0)
    if fh.read(2) != b"\xff\xd8":
        return
    for _ in range(MAX_SEGMENTS):
        head = fh.read(4)
        if len(head) < 4 or head[0] != 0xFF:
            return
        marker, length = head[1], struct.unpack(">H", head[2:4])[0]
        if marker == 0xDA or length < 2:
            return
        payload = fh.read(length - 2)
        yield marker, payload


def _check_tiff(fh: BinaryIO, base: int, length: int) -> None:
    """Refuse the structure Pillow would parse when it opens the file."""
    try:
        tiff = _Tiff(fh, base, length)
        tiff.entries(tiff.ifd0)
    except HostileExif:
        raise
    except (ValueError, struct.error):
        return


def check_file(fh: BinaryIO, size: int) -> None:
    """Raise :class:`HostileExif` for a JPEG or TIFF whose EXIF (or MPO index)
    Pillow would parse at open with unbounded work. ``fh`` is seekable."""
    fh.seek(0)
    head = fh.read(4)
    if head[:2] == b"\xff\xd8":
        for marker, payload in _jpeg_segments(fh):
            if marker == 0xE1 and payload.startswith(b"Exif\x00\x00"):
                _check_tiff(io.BytesIO(payload), 6, len(payload) - 6)
            elif marker == 0xE2 and payload.startswith(b"MPF\x00"):
                _check_tiff(io.BytesIO(payload), 4, len(payload) - 4)
    elif head in (b"II*\x00", b"MM\x00*"):
        _check_tiff(fh, 0, size)
    fh.seek(0)


def read_exif(fh: BinaryIO, size: int, info: dict) -> ExifInfo:
    """The wanted tags of an opened photo: from the raw EXIF Pillow keeps in
    ``info`` (JPEG, PNG, WebP, HEIC) or, for a TIFF, from the file itself."""
    raw = info.get("exif")
    if isinstance(raw, (bytes, bytearray)) and len(raw) <= MAX_CHUNK:
        return parse_blob(bytes(raw))
    fh.seek(0)
    if fh.read(4) in (b"II*\x00", b"MM\x00*"):
        try:
            return _parse(fh, 0, size)
        except HostileExif:
            raise
        except (ValueError, struct.error):
            return ExifInfo()
    return ExifInfo()
