"""Test-only: a Ray node started with this folder on PYTHONPATH cannot read the
folders named in ERA_SPLIT_TEST_FENCE (os.pathsep-separated), as a machine that
does not share the driver's disk could not. Every refused path is appended to
ERA_SPLIT_TEST_FENCE_LOG, so a test can tell that the node tried. Opening a
file named *crash-the-scanner* kills the process at once, as a decoder crash
would."""

import os
import sys

_FENCE = [os.path.realpath(p) for p in os.environ.get("ERA_SPLIT_TEST_FENCE", "").split(os.pathsep) if p]
_LOG = os.environ.get("ERA_SPLIT_TEST_FENCE_LOG")


def _fenced(path) -> bool:
    try:
        path = os.path.realpath(os.fsdecode(path))
    except (TypeError, ValueError):
        return False
    return any(path == f or path.startswith(f + os.sep) for f in _FENCE)


def _hook(event, args):
    if event == "open" and args and isinstance(args[0], str) and "crash-the-scanner" in os.path.basename(args[0]):
        os._exit(3)
    if event in ("open", "os.listdir", "os.scandir") and args and isinstance(args[0], (str, bytes)) \
            and _fenced(args[0]):
        if _LOG:
            fd = os.open(_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, os.fsencode(f"{event} {os.fsdecode(args[0])}\n"))
            finally:
                os.close(fd)
        raise PermissionError(13, "fenced off on this node", os.fsdecode(args[0]))


if _FENCE:
    sys.addaudithook(_hook)
