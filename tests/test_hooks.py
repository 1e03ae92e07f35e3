"""The faceset_tools contract: the manager, our implementations, inline plugins."""

import json
import os

import pytest
from era_split.hooks import hookspecs, impl
from era_split.hooks.hookspecs import hookimpl
from era_split.hooks.manager import flatten, get_plugin_manager
from era_split.hooks.types import HostContext, UiTab

HOOKS = ["faceset_actions", "register_tabs", "batch_actions", "era_variants", "era_for_target"]


def context_of(lib):
    return HostContext(lib.root, lib.cache_file, tuple(lib.remaps))


def test_manager_loads_the_entry_point_once():
    pm = get_plugin_manager()
    plugins = [p for p in pm.get_plugins() if getattr(p, "__name__", "") == "era_split.hooks.impl"]
    assert len(plugins) == 1
    assert pm.get_plugin("era_split") is impl  # registered through the faceset_tools entry point
    assert sorted(h for h in dir(pm.hook) if not h.startswith("_")) == sorted(HOOKS)
    pm.check_pending()


def test_manager_without_entry_points_registers_builtins():
    pm = get_plugin_manager(entry_points=False)
    assert pm.is_registered(impl)


def test_inline_plugin_with_fewer_arguments(synth_lib):
    pm = get_plugin_manager()

    class Extra:
        __name__ = "extra"

        @hookimpl
        def batch_actions(self):  # takes none of the spec's arguments
            return []

        @hookimpl
        def register_tabs(self, context):
            return [UiTab("Extra", lambda: None)]

    pm.register(Extra(), name="extra")
    try:
        pm.check_pending()
        tabs = flatten(pm.hook.register_tabs(context=context_of(synth_lib)))
        assert [t.title for t in tabs] == ["Extra", "Era split"]  # LIFO: later plugins first
        assert len(flatten(pm.hook.batch_actions(context=context_of(synth_lib)))) == 1
    finally:
        pm.unregister(name="extra")
    assert [t.title for t in flatten(pm.hook.register_tabs(context=context_of(synth_lib)))] == ["Era split"]


def test_misspelt_hook_is_caught():
    pm = get_plugin_manager()

    class Typo:
        @hookimpl
        def faceset_action(self, faceset):
            return []

    pm.register(Typo(), name="typo")
    try:
        with pytest.raises(Exception, match="faceset_action"):
            pm.check_pending()
    finally:
        pm.unregister(name="typo")


def test_split_action_then_variants(synth_lib):
    pm = get_plugin_manager()
    ctx = context_of(synth_lib)
    actions = flatten(pm.hook.faceset_actions(context=ctx, faceset="faceset_001"))
    assert [a.label for a in actions] == ["Split by era"]
    assert flatten(pm.hook.era_variants(context=ctx, faceset="faceset_001")) == []
    seen = []
    result = actions[0].run(progress=lambda *a: seen.append(a))
    assert result.ok, result.message
    assert any(stage == "crops" for stage, _, _ in seen)
    variants = flatten(pm.hook.era_variants(context=ctx, faceset="faceset_001"))
    assert variants and all(v.parent == "faceset_001" for v in variants)
    years = [v.dom_year for v in variants]
    assert years == sorted(years)
    for v in variants:
        assert os.path.isfile(v.fsz) and v.fsz.endswith(f"{v.name}_all.fsz")
        assert v.top_fsz.endswith(f"{v.name}_top8.fsz") and os.path.isfile(v.top_fsz)
        assert v.thumbnails and all(os.path.isfile(t) for t in v.thumbnails)
    # now undo is offered; an era variant itself offers nothing
    labels = [a.label for a in flatten(pm.hook.faceset_actions(context=ctx, faceset="faceset_001"))]
    assert labels == ["Split by era", "Undo era split"]
    assert flatten(pm.hook.faceset_actions(context=ctx, faceset=variants[0].name)) == []
    undo = flatten(pm.hook.faceset_actions(context=ctx, faceset="faceset_001"))[1].run()
    assert undo.ok and flatten(pm.hook.era_variants(context=ctx, faceset="faceset_001")) == []


def test_batch_splits_every_host_faceset_and_reports_failures(synth_lib):
    manifest_path = os.path.join(synth_lib.root, "manifest.json")
    manifest = json.load(open(manifest_path))
    os.makedirs(os.path.join(synth_lib.root, "broken"))
    with open(os.path.join(synth_lib.root, "broken", "manifest.json"), "w") as fh:
        fh.write("{oops")
    manifest["facesets"].insert(1, {"name": "broken", "relpath": "broken"})
    json.dump(manifest, open(manifest_path, "w"))

    pm = get_plugin_manager()
    ctx = context_of(synth_lib)
    (batch,) = flatten(pm.hook.batch_actions(context=ctx))
    assert batch.label == "Split all facesets by era"
    items = batch.run()
    assert [i.faceset for i in items] == ["faceset_001", "broken", "faceset_002"]
    assert [i.ok for i in items] == [True, False, True]
    assert "is not valid JSON" in items[1].message
    # a second batch never splits the era variants themselves
    again = batch.run()
    assert [i.faceset for i in again] == ["faceset_001", "broken", "faceset_002"]


def test_actions_without_a_cache_fail_cleanly(synth_lib):
    ctx = HostContext(synth_lib.root)
    result = impl.split_faceset(ctx, "faceset_001")
    assert not result.ok and "no embedding cache configured" in result.message


def test_every_spec_has_a_docstring_saying_what_it_returns():
    for name in HOOKS:
        doc = getattr(hookspecs, name).__doc__
        first = getattr(hookspecs, name).faceset_tools_spec["firstresult"]
        assert doc and (("the first plugin's answer" in doc) if first else ("list of" in doc)), name


def test_batch_progress_moves_by_faces_across_the_library(synth_lib):
    """One bar for the whole batch, counted in faces: it moves inside the first
    faceset already, never goes back, and ends at the library's face total."""
    from era_split.hooks.impl import split_all
    from era_split.plugin.host.library import open_library

    lib = open_library(synth_lib.root)
    sizes = [len(lib.faceset_keys(e)[0]) for e in lib.host_facesets()]
    seen = []
    items = split_all(HostContext(synth_lib.root, synth_lib.cache_file, tuple(synth_lib.remaps)),
                      progress=lambda stage, done, total: seen.append((stage, done, total)))
    assert [i.ok for i in items] == [True, True]
    assert {t for _, _, t in seen} == {sum(sizes)}
    done = [d for _, d, _ in seen]
    assert done == sorted(done) and done[-1] == sum(sizes)
    inside_first = [d for s, d, _ in seen if s.startswith("faceset_001") and 0 < d < sizes[0]]
    assert len(set(inside_first)) >= 3  # moves while the first faceset is cropped


def test_undo_action_asks_first_with_what_it_removes(synth_lib):
    from era_split.hooks.impl import batch_actions, faceset_actions

    context = HostContext(synth_lib.root, synth_lib.cache_file, tuple(synth_lib.remaps))
    split = faceset_actions(context, "faceset_001")[0]
    assert split.confirm is None and split.run().ok
    undo = next(a for a in faceset_actions(context, "faceset_001") if a.id == "era_split.undo")
    text = undo.confirm()
    assert "Undo the split of **faceset_001**" in text and "faceset_001_" in text
    batch = batch_actions(context)[0]
    assert "Split 2 facesets by era (faceset_001, faceset_002)" in batch.confirm()
    assert "1 faceset already split (faceset_001)" in batch.confirm()
