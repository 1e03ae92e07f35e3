"""Era Split's implementations of the ``faceset_tools`` hooks."""

from __future__ import annotations

import glob
import os

from ..plugin import api, explain
from ..plugin.errors import EraSplitError
from ..plugin.host.cache import EmbeddingCache
from ..plugin.host.library import era_meta, open_library, owned_by
from ..plugin.host.status import undo_summary
from ..plugin.host.writer import undo_report
from ..plugin.labels import plural
from .hookspecs import hookimpl
from .types import (
    ActionResult,
    BatchAction,
    BatchItem,
    EraPick,
    EraVariant,
    FacesetAction,
    HostContext,
    Progress,
    UiTab,
)


def _need_cache(context: HostContext) -> str:
    if not context.cache:
        raise EraSplitError(None, "no embedding cache configured: start the host with --cache FILE")
    return context.cache


def split_faceset(
    context: HostContext, faceset: str, progress: Progress | None = None,
    cache: EmbeddingCache | None = None,
) -> ActionResult:
    """Split one faceset and write it, with the settings its current split was
    applied with (the defaults for a faceset not split yet)."""
    try:
        settings = api.settings_for(context.library, faceset)
        report = api.apply(context.library, faceset, cache or _need_cache(context), settings.params,
                           progress=progress, models=context.models, **context.sources())
    except EraSplitError as exc:
        return ActionResult(False, str(exc))
    r = report.result
    hints = explain.hints(r.counts, r.params)
    words = settings.words().split(";")[0]
    return ActionResult(
        True,
        f"{faceset}: wrote {explain.summary_line(r)}" + "".join(f" {h}" for h in hints)
        + (f" ({words})" if words else ""),
        {"written": report.written, "warnings": report.warnings, "eras": len(r.eras),
         "left_out": r.counts["left_out"], "hints": hints, "settings": settings.to_json()},
    )


def undo_faceset(context: HostContext, faceset: str) -> ActionResult:
    try:
        removed, warnings = undo_report(context.library, faceset)
    except EraSplitError as exc:
        return ActionResult(False, str(exc))
    kept = f"; {'; '.join(warnings)}" if warnings else ""
    return ActionResult(True, f"{faceset}: removed {len(removed)} era and thin facesets{kept}",
                        {"removed": removed, "warnings": warnings})


# Share of one faceset's work in each stage that reports progress: reading dates,
# cropping (the bulk), writing bundles. The batch bar moves by faces with them.
_STAGES = {"dates": (0.0, 0.2), "crops": (0.2, 0.9), "bundles": (0.9, 1.0)}


def _faces_of(lib, entry: dict) -> int:
    try:
        return len(lib.faceset_keys(entry)[0])
    except EraSplitError:
        return 1


def split_all(context: HostContext, progress: Progress | None = None) -> list[BatchItem]:
    """Split every host faceset (never an era variant); a failure is reported and
    the rest still done. Progress counts faces over the whole library."""
    try:
        lib = open_library(context.library)
        entries = lib.host_facesets()
        cache = api.load_for(context.library, _need_cache(context))
    except EraSplitError as exc:
        return [BatchItem("(library)", False, str(exc))]
    sizes = [_faces_of(lib, e) for e in entries]
    total = sum(sizes) or 1
    items, before = [], 0
    for entry, size in zip(entries, sizes):
        name = entry["name"]

        def step(stage: str, done: int, of: int, name=name, size=size, before=before) -> None:
            lo, hi = _STAGES.get(stage, (0.0, 0.0))
            share = lo + (hi - lo) * (done / of if of else 1.0)
            if progress:
                progress(f"{name}: {stage}", before + round(size * share), total)

        step("start", 0, 1)
        result = split_faceset(context, name, progress=step, cache=cache)
        empty = result.ok and not result.details.get("eras")
        items.append(BatchItem(name, result.ok, result.message, "no era" if empty else None))
        before += size
    if progress:
        progress("done", total, total)
    return items


def confirm_split_all(context: HostContext) -> str:
    lib = open_library(context.library)
    names = [e["name"] for e in lib.host_facesets()]
    split = [n for n in names if any(owned_by(e, n) for e in lib.facesets + lib.thin_eras)]
    return (f"Split {plural(len(names), 'faceset')} by era ({', '.join(names)})? Era facesets are "
            f"written into the library; {plural(len(split), 'faceset')} already split "
            f"({', '.join(split) or 'none'}) get theirs replaced, each with the settings it was split "
            "with; the others with the defaults. Original facesets are not changed.")


@hookimpl
def faceset_actions(context: HostContext, faceset: str) -> list[FacesetAction]:
    lib = open_library(context.library)
    entry = next((e for e in lib.facesets if e.get("name") == faceset), None)
    if entry is None or owned_by(entry):
        return []  # era variants are never split again
    actions = [FacesetAction(
        "era_split.split", "Split by era",
        "Split this faceset into era facesets by face sub-clusters and photo dates",
        lambda progress=None: split_faceset(context, faceset, progress),
    )]
    if any(owned_by(e, faceset) for e in lib.facesets + lib.thin_eras):
        actions.append(FacesetAction(
            "era_split.undo", "Undo era split",
            "Remove every era and thin faceset made for this faceset",
            lambda progress=None: undo_faceset(context, faceset),
            confirm=lambda: undo_summary(context.library, faceset) or f"{faceset} is not split.",
        ))
    return actions


@hookimpl
def batch_actions(context: HostContext) -> list[BatchAction]:
    return [BatchAction(
        "era_split.split_all", "Split all facesets by era",
        "Split every faceset of the library (era variants excluded)",
        lambda progress=None: split_all(context, progress),
        confirm=lambda: confirm_split_all(context),
    )]


@hookimpl
def register_tabs(context: HostContext) -> list[UiTab]:
    def build() -> object:
        from ..ui.era_tab import build_era_tab  # gradio only when a UI is built

        return build_era_tab(context)

    return [UiTab("Era split", build)]


@hookimpl
def era_variants(context: HostContext, faceset: str) -> list[EraVariant]:
    lib = open_library(context.library)
    variants = []
    for entry in lib.era_variants(faceset):
        meta = era_meta(entry)
        folder = lib.folder_of(entry)
        name = entry["name"]
        tops = sorted(glob.glob(os.path.join(glob.escape(folder), f"{glob.escape(name)}_top*.fsz")))
        thumbs = sorted(glob.glob(os.path.join(glob.escape(folder), "*.png")))[:4]
        variants.append(EraVariant(
            name=name, parent=faceset, dom_year=meta.dom_year, span=meta.span, faces=int(entry.get("faces", 0)),
            fsz=os.path.join(folder, f"{name}_all.fsz"), top_fsz=tops[0] if tops else None,
            thumbnails=tuple(thumbs), look=meta.look, apparent_age=meta.apparent_age, born=meta.born,
        ))
    variants.sort(key=lambda v: (v.dom_year is None, v.span or (0, 0), v.look, v.name))
    return variants


@hookimpl
def era_for_target(context: HostContext, faceset: str, target: str, face: int | None) -> EraPick:
    from ..plugin.faces.models import load_analyser
    from ..plugin.faces.pick import pick_era
    from ..plugin.faces.scan import spec_for

    try:
        if not context.models:
            raise EraSplitError(None, "the host gave no models folder: the target's face cannot be found")
        analyser = _analyser(spec_for(context.models, context.cache), load_analyser)
        picked = pick_era(context.library, faceset, target, analyser, face)
    except EraSplitError as exc:
        return EraPick(None, str(exc))
    chosen = next((v for v in era_variants(context, faceset) if v.name == picked.era), None)
    return EraPick(picked.era, picked.why, picked.target_age,
                   (chosen.top_fsz or chosen.fsz) if chosen else None, chosen.label if chosen else "")


_ANALYSERS: dict = {}


def _analyser(spec, load):
    """One detector per model pack for a running host: loading it takes seconds."""
    if spec not in _ANALYSERS:
        _ANALYSERS[spec] = load(spec, ages=False)
    return _ANALYSERS[spec]
