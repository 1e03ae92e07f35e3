"""Small filesystem helpers: atomic writes and the library lock."""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any


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
