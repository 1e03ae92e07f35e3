"""Write locks: one writer of a library at a time (CLI, UI tabs, batch, import),
one scan of an embedding cache at a time.

An OS file lock: the kernel drops it when the holder dies, so a crashed writer
never leaves anything locked. The lock file itself is opened without following
a link and must be a plain, singly-linked regular file: the holder writes its
PID into it, and a link planted there would have that write land outside.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
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


def _open_lock_file(path: str) -> int:
    """A descriptor on ``path`` (created when missing), refused with one line when
    it is a link, a FIFO, a device, a folder or a file with other hard links."""
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP or os.path.islink(path):
            raise EraSplitError(path, "the lock file is a symbolic link; era-split never writes through a "
                                      "link (remove it: it is recreated)") from None
        if exc.errno == errno.EISDIR:
            raise EraSplitError(path, "the lock file is a folder (remove it: it is recreated)") from None
        raise EraSplitError(path, f"cannot open the lock file: {exc.strerror}") from None
    st = os.fstat(fd)
    problem = None
    if not stat.S_ISREG(st.st_mode):
        problem = "the lock file is not a regular file (a FIFO or device?)"
    elif st.st_nlink > 1:
        problem = "the lock file has other hard links; writing it would change them too"
    if problem:
        os.close(fd)
        raise EraSplitError(path, f"{problem}; remove it: it is recreated")
    return fd


def _same_file(fd: int, path: str) -> bool:
    try:
        a, b = os.fstat(fd), os.lstat(path)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


@contextlib.contextmanager
def file_lock(
    path: str, timeout: float = 30.0, on_wait: Callable[[], None] | None = None, busy: str = "locked",
    *, remove: bool = False,
) -> Iterator[None]:
    """Hold an exclusive lock on ``path``, waiting up to ``timeout`` seconds;
    ``on_wait`` is called once if another process holds it; ``busy`` says who
    that is in the error when it does not let go in time. With ``remove`` the
    lock file is deleted when let go (for a lock beside the user's own files):
    a holder checks after locking that the path still names the file it locked,
    and takes the lock anew if it does not, so two never hold it at once."""
    deadline = time.monotonic() + timeout
    waited = False
    while True:
        fd = _open_lock_file(path)
        locked = _try_lock(fd)
        if locked and (not remove or _same_file(fd, path)):
            break
        if locked:  # the previous holder deleted this file as we opened it: start again
            _unlock(fd)
        os.close(fd)
        if not locked:
            if not waited and on_wait is not None:
                on_wait()
            waited = True
            if time.monotonic() >= deadline:
                raise EraSplitError(path, busy if timeout <= 0 else f"{busy}; gave up after {timeout:g} s")
            time.sleep(0.1)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        try:
            if remove and _same_file(fd, path):
                os.unlink(path)
        except OSError:
            pass
        _unlock(fd)
        os.close(fd)


@contextlib.contextmanager
def library_lock(
    state_dir: str, timeout: float = 30.0, on_wait: Callable[[], None] | None = None
) -> Iterator[None]:
    """Hold the library's write lock, ``<library>/.era_split/lock``."""
    try:
        st = os.lstat(state_dir)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise EraSplitError(state_dir, f"cannot be inspected: {exc.strerror}") from None
    if st is not None and not stat.S_ISDIR(st.st_mode):
        raise EraSplitError(state_dir, "is a link or a file; era-split writes only inside the library and "
                                       "never through a link")
    try:
        os.makedirs(state_dir, exist_ok=True)
    except OSError as exc:
        raise EraSplitError(state_dir, f"cannot create the library lock: {exc.strerror}") from None
    with file_lock(os.path.join(state_dir, "lock"), timeout, on_wait,
                   "another era-split is writing this library"):
        yield
