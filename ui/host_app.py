"""A small reference host: calls the ``faceset_tools`` hooks exactly as a real
face-swap host would. Tabs: Face swap (source faceset, its actions, target-era
picker), Batch (batch-menu entries) and every plugin tab."""

from __future__ import annotations

import traceback

import gradio as gr
import pluggy

from ..hooks.manager import flatten, get_plugin_manager
from ..hooks.types import HostContext
from ..plugin.library import open_library
from .views import host_faceset_names, progress_adapter

ALL_ERAS = "All eras (the original faceset)"


def _variant_label(v) -> str:
    span = f"{v.span[0]}–{v.span[1]}" if v.span else "undated"
    return f"{v.name} · {span} · {v.faces} faces"


def _original_fsz(context: HostContext, name: str) -> str:
    lib = open_library(context.library)
    entry = lib.find_faceset(name)
    return f"{lib.folder_of(entry)}/{name}_all.fsz"


def build_face_swap_tab(context: HostContext, pm: pluggy.PluginManager) -> None:
    names = host_faceset_names(context.library)
    with gr.Row():
        source = gr.Dropdown(names, value=None, label="Source faceset", elem_id="swap-source", scale=3)
        refresh = gr.Button("↻ Refresh", scale=1)
    with gr.Row():
        action = gr.Dropdown([], label="Faceset actions (from plugins)", elem_id="swap-actions", scale=3)
        run = gr.Button("Run action", elem_id="swap-run", scale=1)
    action_result = gr.Markdown(elem_id="swap-action-result")
    target = gr.Radio([], label="Target era", elem_id="swap-target")
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
        labels = [ALL_ERAS] + [_variant_label(v) for v in variants]
        gallery = [(v.thumbnails[0], _variant_label(v)) for v in variants if v.thumbnails]
        acts = [a.label for a in actions_for(name)]
        return (
            gr.update(choices=acts, value=acts[0] if acts else None),
            gr.update(choices=labels, value=ALL_ERAS),
            gallery,
            _original_fsz(context, name),
            [(v.name, v.fsz) for v in variants],
        )

    def on_target(name, label, variants):
        if not name or not label or label == ALL_ERAS:
            return _original_fsz(context, name) if name else ""
        for vname, fsz in variants:
            if label.startswith(vname + " ·"):
                return fsz
        return ""

    def on_run(name, label, progress=gr.Progress()):
        if not name or not label:
            raise gr.Error("Pick a faceset and an action first.")
        chosen = next((a for a in actions_for(name) if a.label == label), None)
        if chosen is None:
            raise gr.Error(f"The action {label!r} is not offered for {name}.")
        result = chosen.run(progress=progress_adapter(progress))
        if not result.ok:
            raise gr.Error(result.message)
        return f"**{chosen.label}**: {result.message}"

    outputs = [action, target, eras, loads, variants_state]
    source.change(on_source, [source], outputs)
    refresh.click(lambda: gr.update(choices=host_faceset_names(context.library)), None, [source])
    target.change(on_target, [source, target, variants_state], [loads])
    run.click(on_run, [source, action], [action_result]).then(on_source, [source], outputs)


def build_batch_tab(context: HostContext, pm: pluggy.PluginManager) -> None:
    actions = flatten(pm.hook.batch_actions(context=context))
    labels = [a.label for a in actions]
    with gr.Row():
        choice = gr.Dropdown(labels, value=labels[0] if labels else None, label="Batch action",
                             elem_id="batch-action", scale=3)
        run = gr.Button("Run batch", variant="primary", elem_id="batch-run", scale=1)
    summary = gr.Markdown(elem_id="batch-summary")
    table = gr.Dataframe(headers=["faceset", "result", "message"], interactive=False, elem_id="batch-results")

    def on_run(label, progress=gr.Progress()):
        chosen = next((a for a in actions if a.label == label), None)
        if chosen is None:
            raise gr.Error("Pick a batch action first.")
        items = chosen.run(progress=progress_adapter(progress))
        failed = sum(1 for i in items if not i.ok)
        rows = [[i.faceset, "ok" if i.ok else "FAILED", i.message] for i in items]
        return f"**{chosen.label}**: {len(items) - failed} done, {failed} failed", rows

    run.click(on_run, [choice], [summary, table])


def build_plugin_tabs(context: HostContext, pm: pluggy.PluginManager) -> None:
    """Every plugin tab; a broken plugin shows its error instead of killing the app."""
    try:
        tabs = flatten(pm.hook.register_tabs(context=context))
    except Exception as exc:
        with gr.Tab("Plugin error"):
            gr.Markdown(f"A plugin failed to list its tabs: `{exc}`")
        return
    for tab in tabs:
        with gr.Tab(tab.title):
            try:
                tab.build()
            except Exception as exc:
                gr.Markdown(f"**The plugin tab {tab.title!r} failed to load:** `{exc}`")
                traceback.print_exc()


def build_host_app(context: HostContext, pm: pluggy.PluginManager | None = None) -> gr.Blocks:
    pm = pm or get_plugin_manager()
    with gr.Blocks(title="Face swap host (Era Split reference)") as app:
        gr.Markdown(f"### Face swap — library `{context.library}`")
        with gr.Tab("Face swap"):
            build_face_swap_tab(context, pm)
        with gr.Tab("Batch"):
            build_batch_tab(context, pm)
        build_plugin_tabs(context, pm)
    return app


def serve(
    library: str, cache: str | None, remaps: tuple[str, ...] = (), roots: tuple[str, ...] = (),
    *, host: str = "127.0.0.1", port: int = 7860, auth: list[tuple[str, str]] | None = None,
) -> None:
    """``era-split ui``: the reference host on ``host:port`` (loopback unless asked;
    the CLI requires ``auth`` off loopback)."""
    app = build_host_app(HostContext(library, cache, remaps, roots))
    app.queue().launch(server_name=host, server_port=port, inbrowser=False, show_error=True, auth=auth)
