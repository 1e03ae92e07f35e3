"""Recorded source paths: scan-root filtering and remapping to where files live now.

The cache records paths as they were at scan time, POSIX (``/mnt/x/src/nl/a.jpg``)
or Windows (``X:\\src\\nl\\a.jpg``). Both are compared with ``/`` separators;
Windows-style prefixes compare case-insensitively, as Windows does.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import EraSplitError

_WINDOWS = re.compile(r"^([A-Za-z]:|\\\\|//)")


def _norm(path: str) -> str:
    return path.replace("\\", "/")


def _is_windows(path: str) -> bool:
    return bool(_WINDOWS.match(path))


def _split_prefix(path: str, prefix: str) -> str | None:
    """Rest of ``path`` after ``prefix`` at a component boundary, or None."""
    p, pre = _norm(path), _norm(prefix).rstrip("/")
    if _is_windows(prefix):
        p_cmp, pre_cmp = p.lower(), pre.lower()
    else:
        p_cmp, pre_cmp = p, pre
    if pre_cmp == "":
        return p.lstrip("/") if p.startswith("/") else None
    if p_cmp == pre_cmp:
        return ""
    if p_cmp.startswith(pre_cmp + "/"):
        return p[len(pre) + 1 :]
    return None


@dataclass(frozen=True)
class Remap:
    old: str
    new: str


def parse_remap(spec: str) -> Remap:
    """Parse ``OLD=NEW`` (split at the first ``=``)."""
    old, sep, new = spec.partition("=")
    if not sep or not old or not new:
        raise EraSplitError(None, f"--remap needs OLD=NEW, got {spec!r}")
    return Remap(old, new)


def remap_path(recorded: str, remaps: Sequence[Remap]) -> str:
    """Where a recorded path lives now: the first matching remap wins, longest first."""
    for remap in sorted(remaps, key=lambda r: -len(_norm(r.old))):
        rest = _split_prefix(recorded, remap.old)
        if rest is not None:
            parts = [part for part in rest.split("/") if part]
            return os.path.join(remap.new, *parts)
    return recorded


def under_roots(paths: np.ndarray, roots: Iterable[str] | None) -> np.ndarray:
    """Boolean mask of recorded paths under any scan root (all True when no roots).

    Vectorised over the array (a million paths in well under a second); the same
    rule as :func:`_split_prefix`: whole components, Windows prefixes case-blind.
    """
    roots = [r for r in (roots or []) if r]
    mask = np.zeros(len(paths), dtype=bool)
    if not roots:
        mask[:] = True
        return mask
    norm = np.char.replace(np.asarray(paths, dtype=str), "\\", "/")
    lower = None
    for root in roots:
        pre = _norm(root).rstrip("/")
        hay = norm
        if _is_windows(root):
            lower = np.char.lower(norm) if lower is None else lower
            hay, pre = lower, pre.lower()
        if pre == "":
            mask |= np.char.startswith(hay, "/")
            continue
        mask |= (hay == pre) | np.char.startswith(hay, pre + "/")
    return mask
