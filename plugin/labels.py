"""Era labels: ``<faceset>_<span>`` with deterministic ``_v2``, ``_v3`` on collisions."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def span_text(span: tuple[int, int] | None) -> str:
    """``2011``, ``2010-13`` within a century, ``1998-2003`` across one, ``undated``."""
    if span is None:
        return "undated"
    lo, hi = span
    if lo == hi:
        return str(lo)
    if lo // 100 == hi // 100:
        return f"{lo}-{hi % 100:02d}"
    return f"{lo}-{hi}"


def plural(n: int, word: str) -> str:
    """``1 face``, ``2 faces``: counts a user reads."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def assign_labels(
    parent: str, spans: Sequence[tuple[int, int] | None], taken: Iterable[str]
) -> list[str]:
    """Labels for buckets given largest first; a label already taken (by another
    bucket or by any existing name) gets the next free ``_vN`` suffix."""
    used = set(taken)
    labels = []
    for span in spans:
        base = f"{parent}_{span_text(span)}"
        label, n = base, 1
        while label in used:
            n += 1
            label = f"{base}_v{n}"
        used.add(label)
        labels.append(label)
    return labels
