"""Small filesystem helpers: atomic writes, regular-file reads, link-free folders."""

from __future__ import annotations

import json
import os
import stat
import tempfile
from typing import IO, Any

from ..errors import EraSplitError


def fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def open_regular(path: str) -> IO[bytes]:
    """Open ``path`` for reading only if it is a regular file.

    A FIFO or device in place of a photo or manifest would block ``open()`` (or
    read forever); O_NONBLOCK makes the open return at once, and fstat on the
    open descriptor decides, so nothing can swap the file in between.
    Raises FileNotFoundError, or OSError for anything that is not a regular file.
    """
    if "\x00" in path:
        raise OSError(f"path holds a NUL byte: {path!r}")
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"not a regular file: {path}")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def is_regular(path: str) -> bool:
    """True for an existing regular file (links followed); never raises."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def refuse_link(path: str, *, want_dir: bool = True) -> bool:
    """Refuse a symlink (or, with ``want_dir``, a non-folder) at ``path``, where the
    plugin is about to write or delete. True when something is there.

    Writing through a link would put files outside the library, and deleting
    through one would remove someone else's; so the plugin never follows one.
    """
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    except (OSError, ValueError) as exc:
        raise EraSplitError(path, f"cannot be inspected: {exc}") from None
    if stat.S_ISLNK(st.st_mode):
        raise EraSplitError(
            path, "is a symbolic link; era-split writes only inside the library and never "
            "through a link (replace the link with a real folder, or remove it)"
        )
    if want_dir and not stat.S_ISDIR(st.st_mode):
        raise EraSplitError(path, "must be a folder, but is a file")
    if not want_dir and not stat.S_ISREG(st.st_mode):
        raise EraSplitError(path, "must be a regular file")
    return True


def atomic_write_bytes(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temp file in the same folder and a rename,
    so a reader sees the old file or the new one, never half of one."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".part", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    fsync_dir(folder)


def dump_json(obj: Any) -> bytes:
    """UTF-8 JSON. A file name that is not UTF-8 reaches us with lone surrogates
    (Python's surrogateescape); they are written as ``\\udcXX`` escapes, which JSON
    allows inside strings and json.loads turns back into the same name."""
    return (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode("utf-8", "backslashreplace")


def atomic_write_json(path: str, obj: Any) -> None:
    atomic_write_bytes(path, dump_json(obj))
