"""Era labels: ``<faceset>_<span>`` with deterministic ``_v2``, ``_v3`` on collisions."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def era_text(span: tuple[int, int] | None, look: int = 1, age: dict | None = None, born: int | None = None) -> str:
    """How a picker names an era: ``2011``, ``2011 · look 2`` for another era of
    the same years that looks apart, then its age where known: ``aged 50-52``
    from the dates and a birth year, else ``looks about 45`` (the apparent age)."""
    text = span_text(span) + (f" · look {look}" if look > 1 else "")
    return text + (f" · {age_words(span, age, born)}" if age_words(span, age, born) else "")


def age_words(span: tuple[int, int] | None, age: dict | None = None, born: int | None = None) -> str:
    """``aged 50-52`` (dates and birth year), ``looks about 45``, or empty."""
    if born and span and span[0] >= born:
        lo, hi = span[0] - born, span[1] - born
        return f"aged {lo}" if lo == hi else f"aged {lo}-{hi}"
    median = apparent_median(age)
    return "" if median is None else f"looks about {round(median)}"


def apparent_median(age: object) -> float | None:
    """The median of an era's recorded ``apparent_age``, or None when it has none
    (or the manifest's value is not a number: it is read from the library)."""
    if not isinstance(age, dict):
        return None
    value = age.get("median")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 120:
        return None
    return float(value)


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
    parent: str, spans: Sequence[tuple[int, int] | None], taken: Iterable[str],
    looks: Sequence[int] | None = None,
) -> list[str]:
    """Labels for buckets given largest first: ``<parent>_<span>``, with
    ``_look<N>`` for the N-th era of the same years (``looks``); a label already
    taken (by another bucket or by any existing name) gets the next free ``_vN``."""
    used = set(taken)
    labels = []
    for span, look in zip(spans, looks or [1] * len(spans)):
        base = f"{parent}_{span_text(span)}" + (f"_look{look}" if look > 1 else "")
        label, n = base, 1
        while label in used:
            n += 1
            label = f"{base}_v{n}"
        used.add(label)
        labels.append(label)
    return labels
