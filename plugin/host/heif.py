"""HEIC/HEIF photos (iPhones since 2017), through the optional ``era-split[heic]`` extra.

Registered by every process that decodes photos — the planner and each crop
worker — so ``plan`` and ``apply`` agree on which photos are readable.
"""

from __future__ import annotations

_registered: bool | None = None


def register() -> bool:
    """Teach Pillow to open HEIC where pillow-heif is installed; True if it can."""
    global _registered
    if _registered is None:
        try:
            from pillow_heif import register_heif_opener  # type: ignore

            register_heif_opener()
            _registered = True
        except Exception:  # not installed, or a broken build: HEIC photos count as unreadable
            _registered = False
    return _registered
