"""The library lock: one writer at a time (CLI, UI tabs, batch).

An OS file lock on ``<library>/.era_split/lock``: the kernel drops it when the
holder dies, so a crashed writer never leaves the library locked.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator

from ..errors import EraSplitError

try:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)

except ImportError:  # pragma: no cover - Windows
    import msvcrt

    def _try_lock(fd: int) -> bool:
        try:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False

    def _unlock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)


@contextlib.contextmanager
def library_lock(
    state_dir: str, timeout: float = 30.0, on_wait: Callable[[], None] | None = None
) -> Iterator[None]:
    """Hold the library's write lock, waiting up to ``timeout`` seconds for it;
    ``on_wait`` is called once if another writer holds it, so the user hears why."""
    try:
        os.makedirs(state_dir, exist_ok=True)
        path = os.path.join(state_dir, "lock")
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise EraSplitError(state_dir, f"cannot create the library lock: {exc.strerror}") from None
    try:
        deadline = time.monotonic() + timeout
        waited = False
        while not _try_lock(fd):
            if not waited and on_wait is not None:
                on_wait()
            waited = True
            if time.monotonic() >= deadline:
                raise EraSplitError(
                    path, f"another era-split is writing this library; gave up after {timeout:g} s"
                )
            time.sleep(0.1)
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            yield
        finally:
            _unlock(fd)
    finally:
        os.close(fd)
