"""The ``faceset_tools`` contract: the hooks a face-swap host calls.

Hosts call every hook with keyword arguments; an implementation may accept
fewer arguments than the spec names, so specs can grow without breaking
plugins. List hooks return a list per plugin; the host flattens them.
"""

from pluggy import HookimplMarker, HookspecMarker

PROJECT = "faceset_tools"

hookspec = HookspecMarker(PROJECT)
hookimpl = HookimplMarker(PROJECT)


@hookspec
def faceset_actions(context, faceset):
    "Actions offered on one faceset (e.g. 'Split by era'): a list of FacesetAction"


@hookspec
def register_tabs(context):
    "UI tabs: a list of UiTab whose build() the host calls inside its gr.Blocks, in a gr.Tab"


@hookspec
def batch_actions(context):
    "Entries of the host's batch menu (e.g. 'Split all facesets by era'): a list of BatchAction"


@hookspec
def era_variants(context, faceset):
    "Era variants of a faceset for the swap UI's target-era picker: a list of EraVariant, oldest first"


@hookspec(firstresult=True)
def era_for_target(context, faceset, target, face):
    """The era of a faceset whose apparent age matches the face in ``target`` (an
    image or video file; ``face``: 1 = the largest, None: the largest):
    the first plugin's answer, an EraPick, whose ``era`` is None when no choice is clear"""
