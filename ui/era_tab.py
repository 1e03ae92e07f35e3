"""The Era split tab: pick a faceset, tune the method, preview the buckets, apply.

``build_era_tab`` adds its components to the *current* Blocks, so one builder
serves a host tab, the standalone app and ``.render()``. Per-user data lives in
``gr.State``; handlers are thin wrappers around the core.

A faceset's settings travel with its split: picking a faceset fills the boxes
with the settings its current split was applied with (the CLI's included), so
Preview shows that split again and Apply writes it again unless a box is
changed. After an apply or an undo the tab's ``changed`` box takes a new value;
other views of the same faceset (the roop panel, a host's picker) listen to it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import gradio as gr

from ..hooks.types import HostContext
from ..plugin import api
from ..plugin.errors import EraSplitError
from ..plugin.host import status as library_status
from ..plugin.host.writer import apply_split, undo_report
from ..plugin.split.params import OPTIONAL
from . import views


@dataclass
class EraTab:
    """Handles to the tab's components, for a host that wires more events."""

    faceset: gr.Dropdown
    status: gr.Markdown
    preview: gr.Button
    apply: gr.Button
    undo: gr.Button
    summary: gr.Markdown
    buckets: gr.Dataframe
    gallery: gr.HTML
    timeline: gr.HTML
    thin: gr.Dataframe
    state: gr.State
    changed: gr.Textbox  # a new value after every apply or undo: "<faceset> <time>"
    pick: Callable  # pick(name) -> the updates of ``picked`` (status, settings boxes)
    picked: list  # the components pick() fills


def build_era_tab(
    context: HostContext,
    *,
    plan_fn: Callable = api.plan,
    apply_fn: Callable = apply_split,
    undo_fn: Callable = undo_report,
) -> EraTab:
    """Add the era tab's components and events to the current ``gr.Blocks``."""
    names = views.host_faceset_names(context.library)
    sources = context.sources()

    def stored(name):
        return api.settings_for(context.library, name) if name else None

    def status_text(name) -> str:
        text = library_status.split_status(context.library, name)
        settings = stored(name)
        if settings is not None and settings.problem:
            text += f"  \n{settings.problem}; the boxes show the defaults."
        elif settings is not None and settings.stored:
            text += f"  \nSettings below: those of the current split ({views.settings_words(settings.stored)})."
        return text

    first = names[0] if names else None
    start = stored(first)
    start_settings = start.params.settings() if start is not None else {}
    with gr.Row():
        faceset = gr.Dropdown(names, value=first, label="Faceset", scale=3)
        refresh = gr.Button("Refresh list", scale=1)
    status = gr.Markdown(status_text(first), elem_id="era-status")
    with gr.Accordion("Settings (they start from those of the faceset's current split; a blank box is "
                      "worked out from the faceset, and the summary shows the values used)", open=False,
                      elem_id="era-settings"):
        with gr.Row():
            inputs = []
            for (name, label, kind), value in zip(views.PARAM_FIELDS, views.values_from_settings(start_settings)):
                if name in OPTIONAL:
                    inputs.append(gr.Textbox(value=value, label=label, placeholder=views.blank_hint(name),
                                             min_width=140, elem_id=f"era-param-{name}"))
                else:
                    inputs.append(gr.Number(value=value, label=label, precision=0 if kind is int else None,
                                            min_width=140, elem_id=f"era-param-{name}"))
        with gr.Row():
            method_choice = gr.Radio(["era", "seed"], value=start_settings.get("method", "era"),
                                     elem_id="era-method",
                                     label="Method: era (eras hold their years) or seed (the write-up's rule)")
            undated = gr.Radio(["standalone", "attach"], value=start_settings.get("undated_fragments", "standalone"),
                               label="Seed method: undated fragments (year rule cannot be checked)")
    with gr.Row():
        preview = gr.Button("Preview", variant="secondary")
        apply = gr.Button("Apply", variant="primary")
        undo = gr.Button("Undo split", variant="stop")
    with gr.Group(visible=False, elem_id="era-undo-confirm") as confirm_box:
        confirm_text = gr.Markdown(elem_id="era-undo-text")
        with gr.Row():
            confirm_yes = gr.Button("Yes, undo the split", variant="stop", elem_id="era-undo-yes")
            confirm_no = gr.Button("Cancel", elem_id="era-undo-no")
    summary = gr.Markdown(elem_id="era-summary")
    buckets = gr.Dataframe(headers=views.BUCKET_HEADERS, label="Era buckets (oldest first)", interactive=False,
                           elem_id="era-buckets")
    gr.Markdown("**Best crops per era**")
    gallery = gr.HTML(elem_id="era-gallery")
    gr.Markdown("**Year timeline**: faces per year in each bucket (grey: thin)")
    timeline = gr.HTML(elem_id="era-timeline")
    with gr.Accordion("Thin fragments (kept apart in _thin/)", open=False, elem_id="era-thin-section"):
        thin = gr.Dataframe(headers=views.BUCKET_HEADERS, label="Thin fragments", interactive=False,
                            elem_id="era-thin")
    state = gr.State(None)  # (faceset, requested params, SplitResult) of the last preview
    changed = gr.Textbox(visible=False, elem_id="era-changed")

    def params_or_error(values: list, mode: str, how: str):
        try:
            return views.params_from_values(values, mode, how)
        except ValueError as exc:
            raise gr.Error(str(exc)) from None

    def settings_line(name, params) -> str:
        """Where the settings of a preview or apply came from, in the tab's words."""
        settings = stored(name)
        asked = params.settings()
        if settings is not None and settings.stored is not None:
            if asked == settings.stored:
                return f"Settings: those of the current split ({views.settings_words(asked)})."
            return (f"Settings: changed from the current split's ({views.settings_words(settings.stored)}) "
                    f"to {views.settings_words(asked)}.")
        return f"Settings: {views.settings_words(asked)}."

    def show(key, result):
        return (*key, result), views.summary_markdown(result, settings_line(key[0], key[1]))

    def render(last):
        """The views of the last preview or apply (a second step, so that only the
        summary carries the progress bar)."""
        if not last:
            return [], "", "", []
        result = last[2]
        return (views.bucket_rows(result.eras), views.era_cards_html(result.eras, born=result.params.born),
                views.timeline_html(result.buckets), views.bucket_rows(result.thin))

    def plan(name, how, mode, values, progress):
        if not name:
            raise gr.Error("Pick a faceset first.")
        params = params_or_error(list(values), mode, how)
        if not context.cache:
            raise gr.Error("No embedding cache configured: start with --cache FILE.")
        try:
            result = plan_fn(context.library, name, context.cache, params,
                             progress=views.progress_adapter(progress), **sources)
        except EraSplitError as exc:
            raise gr.Error(str(exc)) from None
        return (name, params), result

    def on_preview(name, how, mode, *values, progress=gr.Progress()):
        key, result = plan(name, how, mode, values, progress)
        if not result.eras:
            gr.Warning("No era: every bucket is thin. Try a lower anchor size or a higher sub-cluster threshold.")
        return show(key, result)

    def on_apply(last, name, how, mode, *values, progress=gr.Progress()):
        requested = (name, params_or_error(list(values), mode, how))
        if last and tuple(last[:2]) == requested:
            key, result = requested, last[2]  # write exactly what was previewed
        else:
            key, result = plan(name, how, mode, values, progress)
        try:
            report = apply_fn(context.library, result, progress=views.progress_adapter(progress),
                              ages=api.age_measure(context.models, context.cache))
        except EraSplitError as exc:
            raise gr.Error(str(exc)) from None
        for warning in report.warnings:
            gr.Warning(warning)
        gr.Info(f"Wrote {len(report.written)} facesets for {name}.")
        last, text = show(key, report.result)
        return (last, text + f"  \n**Applied**: wrote {views.plural(len(report.written), 'faceset')}.",
                f"{name} {time.time()}")

    def on_ask_undo(name):
        if not name:
            raise gr.Error("Pick a faceset first.")
        try:
            text = library_status.undo_summary(context.library, name)
        except EraSplitError as exc:
            raise gr.Error(str(exc)) from None
        if text is None:
            gr.Info(f"{name} is not split: nothing to undo.")
            return gr.update(visible=False), ""
        return gr.update(visible=True), text

    def on_undo(name):
        try:
            removed, warnings = undo_fn(context.library, name)
        except EraSplitError as exc:
            raise gr.Error(str(exc)) from None
        for warning in warnings:
            gr.Warning(warning)
        return (gr.update(visible=False),
                f"**Undone**: removed {views.plural(len(removed), 'era and thin faceset')} of {name}.",
                f"{name} {time.time()}")

    def pick(name):
        """The status and the settings boxes of a faceset (its current split's settings)."""
        settings = stored(name)
        asked = settings.params.settings() if settings is not None else {}
        return (status_text(name), *views.values_from_settings(asked),
                asked.get("method", "era"), asked.get("undated_fragments", "standalone"))

    picked = [status, *inputs, method_choice, undated]
    views_out = [buckets, gallery, timeline, thin]
    preview.click(on_preview, [faceset, method_choice, undated, *inputs], [state, summary],
                  show_progress="full").then(render, [state], views_out, show_progress="hidden")
    apply.click(on_apply, [state, faceset, method_choice, undated, *inputs], [state, summary, changed],
                show_progress="full").then(render, [state], views_out, show_progress="hidden").then(
                pick, [faceset], picked, show_progress="hidden")
    undo.click(on_ask_undo, [faceset], [confirm_box, confirm_text])
    confirm_no.click(lambda: gr.update(visible=False), None, [confirm_box])
    confirm_yes.click(on_undo, [faceset], [confirm_box, summary, changed]).then(
        pick, [faceset], picked, show_progress="hidden")
    faceset.change(pick, [faceset], picked, show_progress="hidden")
    refresh.click(lambda: gr.update(choices=views.host_faceset_names(context.library)), None, [faceset])
    return EraTab(faceset, status, preview, apply, undo, summary, buckets, gallery, timeline, thin, state,
                  changed, pick, picked)


def era_tab_app(context: HostContext) -> gr.Blocks:
    """The era tab alone, as a standalone app."""
    with gr.Blocks(title="Era Split") as app:
        build_era_tab(context)
    return app
