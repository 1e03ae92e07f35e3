"""Reading a ``.fsz`` (a zip of face crops) as roop-unleashed does, with bounded work.

roop unzips a ``.fsz`` and loads every member whose name ends in lowercase
``.png``. A bundle comes from anywhere (the roop panel's upload is the exposed
door), so before one pixel is decoded the bundle is refused, with one line,
when it could cost more than a faceset ever needs: more than
:data:`MAX_MEMBERS` crops, a member claiming more than :data:`MAX_MEMBER_BYTES`,
members whose data overlap (many entries pointing at one member, the classic
zip bomb), or a crop whose header declares more than :data:`MAX_PIXELS`
(roop's crops are 512 px; 60 entries of one 9000 x 9000 PNG reached 7.75 GB).
Then members are decoded one at a time, never held together.
"""

from __future__ import annotations

import io
import struct
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass

from PIL import Image

from ..errors import EraSplitError
from .fsutil import open_regular

MAX_MEMBERS = 2000  # crops a bundle may hold (the seed's curated faceset: 707)
MAX_MEMBER_BYTES = 32 * 2**20  # a 512 px crop is ~0.4 MB
MAX_PIXELS = 4096 * 4096  # per crop
MAX_TOTAL_PIXELS = MAX_MEMBERS * 1024 * 1024  # all crops together: minutes of work at most
TINY = 24  # px: no detector finds a face in a smaller picture
_LOCAL_HEADER = 30


@dataclass(frozen=True)
class Member:
    name: str
    info: zipfile.ZipInfo
    size: tuple[int, int] | None  # (width, height) from its header; None: not an image


class Bundle:
    """An open ``.fsz``: :attr:`members` are the crops roop would load, in name order."""

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            self._fh = open_regular(path)
        except FileNotFoundError:
            raise EraSplitError(path, "not found") from None
        except OSError as exc:
            raise EraSplitError(path, f"cannot be read: {exc.strerror or exc}") from None
        try:
            self.zip = zipfile.ZipFile(self._fh)
            self.members = self._members()
        except EraSplitError:
            self.close()
            raise
        except (zipfile.BadZipFile, OSError, EOFError, struct.error, ValueError, NotImplementedError,
                RuntimeError, UnicodeDecodeError) as exc:
            self.close()
            raise EraSplitError(path, f"is not a readable .fsz (zip): {exc}") from None

    def close(self) -> None:
        if getattr(self, "zip", None) is not None:
            self.zip.close()
        self._fh.close()

    def __enter__(self) -> Bundle:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _members(self) -> list[Member]:
        infos = [i for i in self.zip.infolist() if i.filename.endswith(".png") and not i.is_dir()]
        if len(infos) > MAX_MEMBERS:
            raise EraSplitError(self.path, f"holds {len(infos):,} crops; a faceset holds at most "
                                           f"{MAX_MEMBERS:,} (split it into several .fsz)")
        for info in infos:
            if info.file_size > MAX_MEMBER_BYTES or info.compress_size > MAX_MEMBER_BYTES:
                raise EraSplitError(self.path, f"crop {info.filename!r} claims {info.file_size:,} bytes; "
                                               f"a face crop is far under {MAX_MEMBER_BYTES // 2**20} MB")
        every = sorted(self.zip.infolist(), key=lambda i: i.header_offset)
        for a, b in zip(every, every[1:]):
            if a.header_offset + _LOCAL_HEADER + a.compress_size > b.header_offset:
                raise EraSplitError(self.path, f"entries {a.filename!r} and {b.filename!r} share their data "
                                               "(a crafted zip); refused")
        members, total = [], 0
        for info in sorted(infos, key=lambda i: i.filename):
            size = self._header_size(info)
            if size is not None:
                if size[0] * size[1] > MAX_PIXELS:
                    raise EraSplitError(self.path, f"crop {info.filename!r} is {size[0]}x{size[1]} pixels; "
                                                   "a face crop is at most 4096 px a side (roop's are 512)")
                total += size[0] * size[1]
            members.append(Member(info.filename, info, size))
        if total > MAX_TOTAL_PIXELS:
            raise EraSplitError(self.path, f"its crops add up to {total / 1e6:,.0f} million pixels; "
                                           "a faceset needs far fewer")
        return members

    def _header_size(self, info: zipfile.ZipInfo) -> tuple[int, int] | None:
        """The image size its header declares (a few hundred bytes read), or None."""
        try:
            with self.zip.open(info) as fh, warnings.catch_warnings():
                warnings.simplefilter("ignore")
                head = fh.read(64 * 1024)
                with Image.open(io.BytesIO(head)) as im:
                    return im.size
        except Exception:
            return None

    def image(self, member: Member) -> Image.Image | None:
        """One crop decoded in RGB, or None when roop could not load it either."""
        if member.size is None:
            return None
        try:
            data = self.zip.read(member.info)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with Image.open(io.BytesIO(data)) as im:
                    if im.width * im.height > MAX_PIXELS:
                        return None
                    im.load()
                    return im.convert("RGB")
        except Exception:
            return None

    def read(self, member: Member) -> bytes:
        return self.zip.read(member.info)

    def images(self) -> Iterator[tuple[Member, Image.Image | None]]:
        """Each crop in turn (the previous one may be dropped before the next is decoded)."""
        for member in self.members:
            yield member, self.image(member)
