"""The host side: one factory builds a plugin manager (cf. pluggy's eggsample)."""

from __future__ import annotations

import importlib
from collections.abc import Iterable

import pluggy

from . import hookspecs

BUILTINS = ("era_split.hooks.impl",)


def get_plugin_manager(builtins: Iterable[str] = BUILTINS, *, entry_points: bool = True) -> pluggy.PluginManager:
    """Specs, then plugins from the ``faceset_tools`` entry-point group, then the
    built-ins that entry points did not already register (registering one module
    twice under two names makes pluggy raise)."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    if entry_points:
        pm.load_setuptools_entrypoints(hookspecs.PROJECT)
    for name in builtins:
        module = importlib.import_module(name)
        if not pm.is_registered(module):
            pm.register(module, name=name)
    pm.check_pending()
    return pm


def flatten(results: Iterable[list | None]) -> list:
    """One list from a list hook's per-plugin lists."""
    return [item for result in results if result for item in result]
