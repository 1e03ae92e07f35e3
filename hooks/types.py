"""What the hooks pass and return: small dataclasses a host can read without
knowing the plugin."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

# progress(stage, done, total): how far a long action is
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class HostContext:
    """Where the host keeps its data; handed to every hook."""

    library: str  # folder holding the library manifest.json
    cache: str | None = None  # embedding cache (.npz)
    remaps: tuple[str, ...] = ()  # OLD=NEW: where recorded photo paths live now
    roots: tuple[str, ...] = ()  # scan roots, as the cache records paths
    models: str | None = None  # folder holding models/<pack>/ (roop: its install folder), for era_for_target

    def sources(self) -> dict:
        """The core's ``remaps``/``roots`` keyword arguments for this host's data."""
        from ..plugin.host.paths import parse_remap

        return {"remaps": [parse_remap(r) for r in self.remaps], "roots": list(self.roots) or None}


@dataclass(frozen=True)
class ActionResult:
    ok: bool
    message: str
    details: dict = field(default_factory=dict)


@dataclass(frozen=True)
class FacesetAction:
    """An action on one faceset; ``run(progress=None)`` does it. When ``confirm`` is
    given, a host shows ``confirm()`` (what will be removed or written) and runs the
    action only once the user agrees."""

    id: str
    label: str
    description: str
    run: Callable[..., ActionResult]
    confirm: Callable[[], str] | None = None


@dataclass(frozen=True)
class BatchItem:
    faceset: str
    ok: bool
    message: str
    status: str | None = None  # a short word the host shows instead of ok/FAILED (e.g. "no era")


@dataclass(frozen=True)
class BatchAction:
    """A batch-menu entry; ``run(progress=None)`` returns one BatchItem per faceset
    and carries on past failures."""

    id: str
    label: str
    description: str
    run: Callable[..., list[BatchItem]]
    confirm: Callable[[], str] | None = None  # as for FacesetAction


@dataclass(frozen=True)
class UiTab:
    """A tab: the host opens ``gr.Tab(title)`` inside its Blocks and calls ``build()``."""

    title: str
    build: Callable[[], object]


@dataclass(frozen=True)
class EraVariant:
    """One era faceset of a parent, as the swap UI's target-era picker shows it."""

    name: str
    parent: str
    dom_year: int | None
    span: tuple[int, int] | None
    faces: int
    fsz: str  # path of <name>_all.fsz
    top_fsz: str | None  # path of <name>_top<N>.fsz
    thumbnails: tuple[str, ...]  # paths of the best crops, best first
    look: int = 1  # 2, 3...: another era of the same years that looks apart
    apparent_age: dict | None = None  # {"median", "low", "high", "faces", "model"}; None: not measured
    born: int | None = None  # the birth year the split was applied with

    @property
    def label(self) -> str:
        """``2013-15 · looks about 45`` (or ``· aged 52-54`` with a birth year)."""
        from ..plugin.labels import era_text

        return era_text(self.span, self.look, self.apparent_age, self.born)

    @property
    def age(self) -> float | None:
        """The era's median apparent age, when measured."""
        from ..plugin.labels import apparent_median

        return apparent_median(self.apparent_age)


@dataclass(frozen=True)
class EraPick:
    """The era the ``era_for_target`` hook picked for a target file."""

    era: str | None  # None: no clear choice (``why`` says why); the host keeps the user's pick
    why: str  # "the target looks about 30 (±4); era 1998-2001 · looks about 31; next nearest ..."
    target_age: float | None = None
    fsz: str | None = None  # the picked era's bundle to load (its top-N .fsz, else _all.fsz)
    label: str = ""  # the picked era as the picker names it
