"""A small reference host: calls the ``faceset_tools`` hooks exactly as a real
face-swap host would. Tabs: Face swap (source faceset, its actions, target-era
picker), Batch (batch-menu entries) and every plugin tab."""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass

import gradio as gr
import pluggy

from ..hooks.manager import flatten, get_plugin_manager
from ..hooks.types import HostContext
from ..plugin.host.library import open_library
from ..plugin.labels import plural
from .views import (
    AUTO,
    age_model_installed,
    auto_offered,
    host_faceset_names,
    progress_adapter,
)

ALL_ERAS = "All eras (the original faceset)"
SWAP_NOTE = (
    "An era loads its best crops (`_top<N>.fsz`): the swap averages every face it loads, and "
    "roop-unleashed's maintainer advises 5–8 good, similar pictures. `_all.fsz` holds every crop "
    "of the era. *All eras* loads the original faceset."
)


def _variant_label(v) -> str:
    return f"{v.label} · {plural(v.faces, 'face')} · {v.name}"


def _swap_file(v) -> str:
    """What the swap loads for an era: its top-N bundle (see SWAP_NOTE)."""
    return v.top_fsz or v.fsz


def _original_fsz(context: HostContext, name: str) -> str:
    lib = open_library(context.library)
    entry = lib.find_faceset(name)
    return f"{lib.folder_of(entry)}/{name}_all.fsz"


def build_face_swap_tab(context: HostContext, pm: pluggy.PluginManager) -> tuple:
    """The Face swap tab; returns its refresh event (fn, inputs, outputs), which the
    host fires when a plugin tab changes a split."""
    names = host_faceset_names(context.library)
    ages = age_model_installed()
    with gr.Row():
        source = gr.Dropdown(names, value=None, label="Source faceset", elem_id="swap-source", scale=3)
        refresh = gr.Button("↻ Refresh", scale=1)
    with gr.Row():
        action = gr.Dropdown([], label="Faceset actions (from plugins)", elem_id="swap-actions", scale=3)
        run = gr.Button("Run action", elem_id="swap-run", scale=1)
    with gr.Group(visible=False, elem_id="swap-confirm") as confirm_box:
        confirm_text = gr.Markdown(elem_id="swap-confirm-text")
        with gr.Row():
            confirm_yes = gr.Button("Yes, go ahead", variant="stop", elem_id="swap-confirm-yes")
            confirm_no = gr.Button("Cancel", elem_id="swap-confirm-no")
    action_result = gr.Markdown(elem_id="swap-action-result")
    target = gr.Radio([], label="Target era (oldest first)", elem_id="swap-target")
    swap_into = gr.File(label="Target image or video (Auto picks the era whose age matches its face)",
                        file_types=["image", "video"], elem_id="swap-into")
    auto_why = gr.Markdown(elem_id="swap-auto-why")
    gr.Markdown(SWAP_NOTE, elem_id="swap-note")
    eras = gr.Gallery(label="Era variants", columns=6, height="auto", elem_id="swap-eras")
    loads = gr.Textbox(label="Faceset the swap would load", interactive=False, elem_id="swap-load")
    variants_state = gr.State([])

    def actions_for(name):
        if not name:
            return []
        return flatten(pm.hook.faceset_actions(context=context, faceset=name))

    def on_source(name):
        if not name:
            return gr.update(choices=[], value=None), gr.update(choices=[], value=None), [], "", []
        variants = flatten(pm.hook.era_variants(context=context, faceset=name))
        auto = [(AUTO, AUTO)] if auto_offered(variants, ages) else []
        choices = [(ALL_ERAS, ALL_ERAS)] + auto + [(_variant_label(v), v.name) for v in variants]
        gallery = [(v.thumbnails[0], f"{v.label} · {plural(v.faces, 'face')}")
                   for v in variants if v.thumbnails]
        acts = [a.label for a in actions_for(name)]
        return (
            gr.update(choices=acts, value=acts[0] if acts else None),
            gr.update(choices=choices, value=ALL_ERAS),
            gallery,
            _original_fsz(context, name),
            [(v.name, _swap_file(v)) for v in variants],
        )

    def on_target(name, chosen, variants, into):
        """(the file the swap loads, why Auto chose it)."""
        if chosen == AUTO and name:
            if not into:
                return "", "Auto: give a target image or video; its face's apparent age picks the era."
            picked = pm.hook.era_for_target(context=context, faceset=name, target=str(into), face=None)
            if picked is None or not picked.era:
                why = picked.why if picked is not None else "no plugin picks eras by age"
                return "", f"Auto picked no era: {why}. Pick one by hand."
            return picked.fsz or "", f"Auto: **{picked.label}**: {picked.why}."
        if not name or not chosen or chosen == ALL_ERAS:
            return (_original_fsz(context, name) if name else ""), ""
        return next((fsz for vname, fsz in variants if vname == chosen), ""), ""

    def chosen_action(name, label):
        if not name or not label:
            raise gr.Error("Pick a faceset and an action first.")
        chosen = next((a for a in actions_for(name) if a.label == label), None)
        if chosen is None:
            raise gr.Error(f"The action {label!r} is not offered for {name}.")
        return chosen

    def on_ask(name, label):
        """An action that asks first shows what it will do and is remembered as
        pending (so a later change of the dropdown cannot swap it); the others run."""
        chosen = chosen_action(name, label)
        if chosen.confirm is None:
            return gr.update(visible=False), "", None
        return gr.update(visible=True), chosen.confirm(), (name, label)

    def on_run(name, label, pending, progress=gr.Progress()):
        """Run the picked action unless it waits for confirmation; (result, ran)."""
        if pending is not None:
            return gr.update(), False
        chosen = chosen_action(name, label)
        result = chosen.run(progress=progress_adapter(progress))
        if not result.ok:
            raise gr.Error(result.message)
        return f"**{chosen.label}**: {result.message}", True

    def on_confirmed(pending, progress=gr.Progress()):
        if pending is None:
            return gr.update(), False
        return on_run(*pending, None, progress)

    def after(name, ran):
        return on_source(name) if ran else (gr.update(),) * len(outputs)

    pending = gr.State(None)
    ran = gr.State(False)
    outputs = [action, target, eras, loads, variants_state]
    source.change(on_source, [source], outputs)
    refresh.click(lambda: gr.update(choices=host_faceset_names(context.library)), None, [source])
    target.change(on_target, [source, target, variants_state, swap_into], [loads, auto_why])
    swap_into.change(on_target, [source, target, variants_state, swap_into], [loads, auto_why])
    run.click(on_ask, [source, action], [confirm_box, confirm_text, pending]).then(
        on_run, [source, action, pending], [action_result, ran]).then(after, [source, ran], outputs)
    confirm_no.click(lambda: (gr.update(visible=False), None), None, [confirm_box, pending])
    confirm_yes.click(lambda: gr.update(visible=False), None, [confirm_box]).then(
        on_confirmed, [pending], [action_result, ran]).then(
        lambda: None, None, [pending]).then(after, [source, ran], outputs)
    return on_source, [source], outputs


@dataclass
class BatchTab:
    changed: gr.Textbox  # a new value after every batch run


def build_batch_tab(context: HostContext, pm: pluggy.PluginManager) -> BatchTab:
    actions = flatten(pm.hook.batch_actions(context=context))
    labels = [a.label for a in actions]
    with gr.Row():
        choice = gr.Dropdown(labels, value=labels[0] if labels else None, label="Batch action",
                             elem_id="batch-action", scale=3)
        run = gr.Button("Run batch", variant="primary", elem_id="batch-run", scale=1)
    with gr.Group(visible=False, elem_id="batch-confirm") as confirm_box:
        confirm_text = gr.Markdown(elem_id="batch-confirm-text")
        with gr.Row():
            confirm_yes = gr.Button("Yes, run it", variant="primary", elem_id="batch-confirm-yes")
            confirm_no = gr.Button("Cancel", elem_id="batch-confirm-no")
    summary = gr.Markdown(elem_id="batch-summary")
    table = gr.Dataframe(headers=["faceset", "result", "message"], interactive=False, elem_id="batch-results")

    def chosen_action(label):
        chosen = next((a for a in actions if a.label == label), None)
        if chosen is None:
            raise gr.Error("Pick a batch action first.")
        return chosen

    def on_ask(label):
        chosen = chosen_action(label)
        text = chosen.confirm() if chosen.confirm else f"Run **{chosen.label}**? {chosen.description}."
        return gr.update(visible=True), text

    def on_run(label, progress=gr.Progress()):
        chosen = chosen_action(label)
        items = chosen.run(progress=progress_adapter(progress))
        failed = sum(1 for i in items if not i.ok)
        noted = {}
        for i in items:
            if i.ok and i.status:
                noted[i.status] = noted.get(i.status, 0) + 1
        rows = [[i.faceset, i.status or ("ok" if i.ok else "FAILED"), i.message] for i in items]
        notes = "".join(f", {n} {status}" for status, n in noted.items())
        return f"**{chosen.label}**: {len(items) - failed} done, {failed} failed{notes}", rows

    run.click(on_ask, [choice], [confirm_box, confirm_text])
    confirm_no.click(lambda: gr.update(visible=False), None, [confirm_box])
    rows = gr.State([])
    changed = gr.Textbox(visible=False, elem_id="batch-changed")
    confirm_yes.click(lambda: gr.update(visible=False), None, [confirm_box]).then(
        on_run, [choice], [summary, rows], show_progress="full").then(
        lambda r: (r, str(time.time())), [rows], [table, changed], show_progress="hidden")
    return BatchTab(changed)


def build_plugin_tabs(context: HostContext, pm: pluggy.PluginManager) -> list:
    """Every plugin tab; a broken plugin shows its error instead of killing the app.
    Returns what each tab's build() returned (the era tab's handles, say)."""
    try:
        tabs = flatten(pm.hook.register_tabs(context=context))
    except Exception as exc:
        with gr.Tab("Plugin error"):
            gr.Markdown(f"A plugin failed to list its tabs: `{exc}`")
        return []
    built = []
    for tab in tabs:
        with gr.Tab(tab.title, id=tab.title):
            try:
                built.append(tab.build())
            except Exception as exc:
                gr.Markdown(f"**The plugin tab {tab.title!r} failed to load:** `{exc}`")
                traceback.print_exc()
    return built


def build_host_app(context: HostContext, pm: pluggy.PluginManager | None = None) -> gr.Blocks:
    """The reference host. It opens on the Era split tab, where the README sends a
    user; the Face swap tab's picker is refreshed whenever a split changes."""
    pm = pm or get_plugin_manager()
    with gr.Blocks(title="Face swap host (Era Split reference)") as app:
        gr.Markdown(f"### Face swap — library `{context.library}`")
        with gr.Tabs(selected="Era split"):
            with gr.Tab("Face swap", id="Face swap") as swap_tab:
                refresh = build_face_swap_tab(context, pm)
            with gr.Tab("Batch", id="Batch"):
                batch = build_batch_tab(context, pm)
            built = build_plugin_tabs(context, pm)
        swap_tab.select(*refresh)
        for handles in [batch, *built]:
            if hasattr(handles, "changed"):  # a tab that signals when it changes a split
                handles.changed.change(*refresh, show_progress="hidden")
    return app


def serve(
    library: str, cache: str | None, remaps: tuple[str, ...] = (), roots: tuple[str, ...] = (),
    *, host: str = "127.0.0.1", port: int = 7860, auth: list[tuple[str, str]] | None = None,
    models: str | None = None,
) -> None:
    """``era-split ui``: the reference host on ``host:port`` (loopback unless asked;
    the CLI requires ``auth`` off loopback)."""
    from ..plugin.exposure import Login

    app = build_host_app(HostContext(library, cache, remaps, roots, models))
    app.queue().launch(server_name=host, server_port=port, inbrowser=False, show_error=True,
                       auth=Login(auth) if auth else None)
