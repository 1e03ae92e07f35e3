"""What the library holds for a faceset, in words: shown when a faceset is
picked, and before an undo asks for confirmation."""

from __future__ import annotations

from ..errors import EraSplitError
from ..labels import plural, span_text
from .library import OWNER, open_library, owned_by


def split_status(library: str, name: str | None) -> str:
    """What the library already holds for ``name``: shown as soon as it is picked."""
    if not name:
        return ""
    try:
        lib = open_library(library)
    except EraSplitError as exc:
        return f"Cannot read the library: {exc}"
    owned = [e for e in lib.facesets + lib.thin_eras if owned_by(e, name)]
    if not owned:
        return f"**{name}** is not split yet. **Preview** shows the eras it would get."
    eras = sorted((e for e in owned if e[OWNER].get("kind") == "era"),
                  key=lambda e: (e[OWNER].get("span") is None, e[OWNER].get("span") or [0, 0]))
    thin = len(owned) - len(eras)
    spans = ", ".join(f"{span_text(tuple(e[OWNER]['span']) if e[OWNER].get('span') else None)} "
                      f"({plural(int(e.get('faces', 0)), 'face')})" for e in eras)
    return (f"**{name}** is already split: {plural(len(eras), 'era')}"
            + (f" — {spans}" if spans else "") + f"; {plural(thin, 'thin fragment')}. "
            "**Apply** replaces them; **Undo split** removes them.")


def undo_summary(library: str, name: str) -> str | None:
    """What an undo of ``name`` would remove, for the confirmation; None if nothing."""
    lib = open_library(library)
    owned = [e for e in lib.facesets + lib.thin_eras if owned_by(e, name)]
    if not owned:
        return None
    eras = [e["name"] for e in owned if e[OWNER].get("kind") == "era"]
    return (f"Undo the split of **{name}**? This removes {plural(len(eras), 'era faceset')} "
            f"({', '.join(eras) or 'none'}) and {plural(len(owned) - len(eras), 'thin fragment')}, "
            f"with their folders and crops. The original faceset {name} is kept.")
