"""Era Split inside roop-unleashed 4.4.1, wired in by the launcher that
``era-split roop install`` writes; none of roop's files is edited.

- Face Swap tab: an Era Split panel under roop's own controls. The faceset the
  user loads in roop's "Source Images or Facesets" (a library faceset, or an
  uploaded ``.fsz`` that is imported into the library on first use) gets
  **Split by era**; the **Target era** picker then replaces roop's source faces
  with that era's bundle, loaded by roop's own loader (``on_srcfile_changed``),
  so what roop swaps with is exactly that era. "All eras" loads the original.
- An **Era split** tab (after Face Management): the era tab and **Split all
  facesets by era**, readable under roop's CSS.

roop keeps its state in module globals (``roop.globals.INPUT_FACESETS``,
``ui.globals.ui_input_thumbs``); this module touches only those two, the way
roop's own handlers do.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from types import SimpleNamespace

import gradio as gr

from ..hooks import impl
from ..hooks.manager import get_plugin_manager
from ..hooks.types import HostContext
from ..plugin import api, explain
from ..plugin.errors import EraSplitError
from ..plugin.host.library import open_library
from ..plugin.labels import plural
from .era_tab import build_era_tab
from .host_app import build_batch_tab
from .roop_install import read_config
from .views import (
    AUTO,
    age_model_installed,
    auto_offered,
    host_faceset_names,
    progress_adapter,
    variant_cards_html,
)

ALL_ERAS = "All eras (the original faceset)"
UPLOADED = " (uploaded: imported into the library when split)"
# roop's CSS colours every span with --block-info-text-color, which fades table
# text; give the plugin's tables and notes the body colour back.
READABLE = ("<style>#era-buckets span, #era-thin span, #batch-results span, #roop-era-panel span,"
            " #era-status span {color: var(--body-text-color) !important;}</style>")


def launch(roop_dir: str, argv: list[str]) -> None:
    """Start roop-unleashed from ``roop_dir`` with the plugin wired in."""
    config = read_config(roop_dir)
    os.chdir(roop_dir)
    sys.path.insert(0, roop_dir)
    sys.argv = [os.path.join(roop_dir, "run.py"), *argv]
    import ui.main as roop_main  # roop's own ui package, from roop_dir
    import ui.tabs.faceswap_tab as faceswap

    context = HostContext(config["library"], config["cache"], tuple(config.get("remaps", ())),
                          models=config["models"])
    face_swap, face_mgr = roop_main.faceswap_tab, roop_main.facemgr_tab

    wiring: dict = {}  # the panel's refresh, for the Era split tab built after it

    def face_swap_with_eras() -> None:
        face_swap()
        tab = [c for c in gr.context.Context.block.children if isinstance(c, gr.Tab)][-1]
        with tab:
            panel = build_roop_panel(context, config["models"], tab, faceswap, wiring)
        if panel is not None:
            _move_below(tab, panel, _find(tab, gr.Files, "Source Images or Facesets"))

    def face_mgr_then_eras() -> None:
        face_mgr()
        with gr.Tab("Era split") as tab:
            gr.HTML(READABLE)
            handles = build_era_tab(context)
            with gr.Accordion("Split all facesets by era", open=False, elem_id="roop-era-batch"):
                batch = build_batch_tab(context, get_plugin_manager())
        # the library changes while roop runs (a split in Face Swap): list it anew on opening,
        # with the picked faceset's status and settings
        tab.select(_current_facesets(context), [handles.faceset], [handles.faceset], show_progress="hidden").then(
            handles.pick, [handles.faceset], handles.picked, show_progress="hidden")
        # and every split or undo here refreshes the Face Swap panel (its picker, roop's source faces)
        if "refresh" in wiring:
            handles.changed.change(*wiring["refresh"], show_progress="hidden")
            batch.changed.change(*wiring["refresh"], show_progress="hidden")

    roop_main.faceswap_tab = face_swap_with_eras
    roop_main.facemgr_tab = face_mgr_then_eras
    from roop import core

    core.run()


def _current_facesets(context: HostContext):
    def refresh(current):
        names = host_faceset_names(context.library)
        return gr.update(choices=names, value=current if current in names else (names[0] if names else None))

    return refresh


def _parent_of(root, block):
    for child in getattr(root, "children", []):
        if child is block:
            return root
        found = _parent_of(child, block)
        if found is not None:
            return found
    return None


def _move_below(tab, panel, anchor) -> None:
    """Put ``panel`` right under the row that holds ``anchor`` (roop's source files),
    next to the faces it acts on; the layout is read only at launch."""
    row = _parent_of(tab, anchor)
    column = _parent_of(tab, row) if row is not None else None
    if column is None or panel not in tab.children:
        return
    tab.children.remove(panel)
    column.children.insert(column.children.index(row) + 1, panel)
    panel.parent = column


def _find(block, cls, label: str):
    for child in getattr(block, "children", []):
        if isinstance(child, cls) and getattr(child, "label", None) == label:
            return child
        found = _find(child, cls, label)
        if found is not None:
            return found
    return None


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def library_faceset_of(library: str, fsz: str) -> str | None:
    """The library faceset whose original bundle is this very file, if any."""
    try:
        lib = open_library(library)
    except EraSplitError:
        return None
    size, digest = os.path.getsize(fsz), None
    for entry in lib.host_facesets():
        bundle = os.path.join(lib.folder_of(entry), f"{entry['name']}_all.fsz")
        if not os.path.isfile(bundle) or os.path.getsize(bundle) != size:
            continue  # only same-size bundles are hashed: a big library stays quick
        digest = digest or _sha256(fsz)
        if _sha256(bundle) == digest:
            return entry["name"]
    return None


def name_for(upload: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", os.path.splitext(os.path.basename(upload))[0]).strip("_")
    return stem or "faceset"


def build_roop_panel(context: HostContext, models: str, tab, faceswap, wiring: dict | None = None):
    """The Era Split panel inside roop's Face Swap tab; returns its block. Its
    refresh event (inputs, outputs) is left in ``wiring["refresh"]`` for the views
    that change a split elsewhere."""
    sources = _find(tab, gr.Files, "Source Images or Facesets")
    input_faces = _find(tab, gr.Gallery, "Input faces gallery")
    targets = _find(tab, gr.Files, "Target File(s)")
    ages_installed = age_model_installed()
    if sources is None or input_faces is None:
        gr.Markdown("Era Split could not find roop's source faces in this Face Swap tab.")
        return None
    with gr.Accordion("Era Split: swap with the person at one age", open=True, elem_id="roop-era-panel") as panel:
        gr.HTML(READABLE)
        with gr.Row():
            faceset = gr.Dropdown(host_faceset_names(context.library), value=None, label="Faceset to split",
                                  allow_custom_value=True, elem_id="roop-era-faceset", scale=3)
            split = gr.Button("Split by era", variant="primary", elem_id="roop-era-split", scale=1)
        status = gr.Markdown(elem_id="roop-era-status")
        target = gr.Radio([], label="Target era (oldest first): roop swaps with this era's faces",
                          elem_id="roop-era-target")
        eras = gr.HTML(elem_id="roop-era-thumbs")
        loaded = gr.Markdown(elem_id="roop-era-loaded")
    uploaded = gr.State(None)  # an uploaded .fsz not in the library yet
    variants = gr.State([])
    loaded_path = gr.State(None)  # the bundle the panel loaded into roop's source faces

    def on_sources(files, pending):
        """A .fsz loaded in roop's source files becomes the faceset to split.

        roop's own handler clears the file list once it has loaded the faces,
        which fires this again with no files, before or after the first call:
        that must leave the choice and a pending upload as they are."""
        fsz = next((f.name if hasattr(f, "name") else f for f in files or []
                    if str(getattr(f, "name", f)).lower().endswith(".fsz")), None)
        names = host_faceset_names(context.library)
        if fsz is None:
            return gr.update(), pending
        known = library_faceset_of(context.library, fsz)
        if known:
            return gr.update(choices=names, value=known), None
        pending = name_for(fsz) + UPLOADED
        return gr.update(choices=names + [pending], value=pending), fsz

    def on_split(name, upload, progress=gr.Progress()):
        if not name:
            raise gr.Error("Load a faceset in Source Images or Facesets, or pick one, first.")
        if name.endswith(UPLOADED) and not (upload and os.path.isfile(upload)):
            raise gr.Error("The uploaded faceset is gone; load it again in Source Images or Facesets.")
        step = progress_adapter(progress)
        imported = ""
        try:
            if name.endswith(UPLOADED):
                from ..plugin.faces.importer import import_faceset
                from ..plugin.faces.scan import spec_for

                step("importing the faceset into the library", 0, 1)
                name = name[: -len(UPLOADED)]
                got = import_faceset(upload, name, context.library, context.cache,
                                     spec_for(models, context.cache))
                imported = f"  \nFrom your .fsz: {got.summary()}."
            settings = api.settings_for(context.library, name)
            report = api.apply(context.library, name, context.cache, settings.params, progress=step, models=models,
                               **context.sources())
        except EraSplitError as exc:
            raise gr.Error(str(exc)) from None
        r = report.result
        hints = "".join(f"  \n⚠ {h}" for h in explain.hints(r.counts, r.params))
        used = settings.words().split(";")[0]
        return (gr.update(choices=host_faceset_names(context.library), value=name), None,
                f"**{name}**: {explain.summary_line(r)}.{hints}{imported}"
                + (f"  \n{used[0].upper() + used[1:]} (change them in the Era split tab)." if used else
                   "  \nSettings: the defaults (change them in the Era split tab)."))

    def on_faceset(name):
        if not name or name.endswith(UPLOADED):
            return gr.update(choices=[], value=None), "", []
        found = impl.era_variants(context, name)
        auto = [(AUTO, AUTO)] if targets is not None and auto_offered(found, ages_installed) else []
        choices = [(ALL_ERAS, ALL_ERAS)] + auto + [
            (f"{v.label} · {plural(v.faces, 'face')}", v.name) for v in found]
        return (gr.update(choices=choices, value=None), variant_cards_html(found),
                [(v.name, v.top_fsz or v.fsz) for v in found])

    def original(name):
        lib = open_library(context.library)
        return os.path.join(lib.folder_of(lib.find_faceset(name)), f"{name}_all.fsz")

    def load(path):
        """roop's source faces from ``path``, through roop's own loader."""
        import roop.globals

        import ui.globals

        roop.globals.INPUT_FACESETS.clear()
        ui.globals.ui_input_thumbs.clear()
        result = faceswap.on_srcfile_changed([SimpleNamespace(name=path)])
        faces = sum(len(fs.faces) for fs in roop.globals.INPUT_FACESETS)
        return result[2], (f"roop's source faces now: {plural(len(roop.globals.INPUT_FACESETS), 'faceset')} "
                           f"of {plural(faces, 'face')}, from `{os.path.basename(path)}`")

    def auto(name, files, was):
        """The era whose apparent age matches the first target file's face, loaded
        as a pick by hand would be; with no clear choice, roop's faces stay."""
        first = next((str(getattr(f, "name", f)) for f in files or []), None)
        if first is None:
            return gr.update(), "Auto: load a target file above; its face's age picks the era.", was
        picked = impl.era_for_target(context, name, first, None)
        if not picked.era or not picked.fsz or not os.path.isfile(picked.fsz):
            return gr.update(), f"Auto picked no era: {picked.why}. roop's source faces are unchanged.", was
        gallery, text = load(picked.fsz)
        return gallery, f"Auto: **{picked.label}** — {picked.why}.  \n{text}", picked.fsz

    def on_target(name, chosen, found, was, files=None):
        """Replace roop's source faces with the chosen era, through roop's loader.
        The picker emptied by a refresh changes nothing (and says nothing over
        what the refresh said)."""
        if not name or not chosen:
            return gr.update(), gr.update(), was
        if chosen == AUTO:
            return auto(name, files, was)
        path = original(name) if chosen == ALL_ERAS else next((f for n, f in found if n == chosen), None)
        if not path or not os.path.isfile(path):
            raise gr.Error(f"No bundle to load for {chosen}.")
        return (*load(path), path)

    def on_changed(name, was):
        """A split or undo elsewhere: the picker anew, and roop's source faces back to
        the original faceset when the era they came from is gone."""
        target_, thumbs, found = on_faceset(name)
        if not was or os.path.isfile(was) or not name:
            return target_, thumbs, found, gr.update(), gr.update(), was
        gallery, text = load(original(name))
        return (target_, thumbs, found, gallery,
                f"The era roop was swapping with is gone (its split was undone or redone): {text}",
                original(name))

    sources.change(on_sources, [sources, uploaded], [faceset, uploaded], show_progress="hidden")
    split.click(on_split, [faceset, uploaded], [faceset, uploaded, status]).then(
        on_faceset, [faceset], [target, eras, variants], show_progress="hidden")
    faceset.change(on_faceset, [faceset], [target, eras, variants], show_progress="hidden")
    if targets is not None:
        target.change(on_target, [faceset, target, variants, loaded_path, targets],
                      [input_faces, loaded, loaded_path])

        def on_targets(name, chosen, was, files):
            """A new target file while Auto is chosen: pick again."""
            if chosen != AUTO or not name or not files:
                return gr.update(), gr.update(), was
            return auto(name, files, was)

        targets.change(on_targets, [faceset, target, loaded_path, targets], [input_faces, loaded, loaded_path],
                       show_progress="hidden")
    else:
        target.change(on_target, [faceset, target, variants, loaded_path], [input_faces, loaded, loaded_path])
    refresh = (on_changed, [faceset, loaded_path], [target, eras, variants, input_faces, loaded, loaded_path])
    tab.select(*refresh, show_progress="hidden")
    if wiring is not None:
        wiring["refresh"] = refresh
    return panel
