"""One call per user action: plan (analyse, no writes but caches) and apply.

These are the functions the CLI, the hooks and the UI call; they read the host's
files, run the pure pipeline and hand the result to the writer.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .faces.age import crop_ages
from .faces.models import load_analyser
from .faces.scan import spec_for
from .host.cache import EmbeddingCache, load_cache
from .host.library import open_library
from .host.paths import Remap
from .host.photos import PhotoCache, read_photos
from .host.writer import ApplyReport, apply_split
from .results import SplitResult, with_ages
from .split.params import ParamError, SplitParams, settings_text
from .split.pipeline import Progress, analyse
from .timing import Stopwatch, lap

PHOTO_CACHE = "photos.json"
CACHE_STORE = "cache"


@dataclass(frozen=True)
class Settings:
    """The parameters a plan or apply of one faceset runs with, and where they came
    from: the settings its current split was applied with (unless ``fresh``),
    then the changes given now."""

    params: SplitParams
    stored: dict | None = None  # the current split's settings; None: not split, or unknown
    given: dict = field(default_factory=dict)  # changed now
    fresh: bool = False  # the defaults asked for, not the stored settings
    problem: str = ""  # why stored settings were not used

    def words(self) -> str:
        """One line for the report, empty when there is nothing to say."""
        if self.problem:
            return f"settings: {self.problem}; the defaults are used"
        if self.stored and not self.fresh:
            text = f"settings: those of the current split ({settings_text(self.stored)})"
            if self.given:
                text += f", changed now: {settings_text(self.given)}"
            return text + "; --defaults starts from the defaults"
        if self.given:
            return f"settings: the defaults, changed: {settings_text(self.given)}"
        return ""

    def to_json(self) -> dict:
        return {"used": self.params.settings(), "stored": self.stored, "given": self.given,
                "from": "defaults" if self.fresh or not self.stored else "current split"}


def settings_for(
    library: str | os.PathLike, faceset: str, given: dict | None = None, *, fresh: bool = False
) -> Settings:
    """The parameters for ``faceset``: its current split's settings, with ``given``
    (field -> value) on top; the defaults with ``given`` when ``fresh`` or not
    split. Raises ParamError for a ``given`` value out of range."""
    given = dict(given or {})
    stored, problem = None, ""
    if not fresh:
        try:
            raw = open_library(library).split_settings(faceset)
        except Exception:  # an unreadable library is reported by the plan itself
            raw = None
        if raw is not None:
            try:
                stored = SplitParams.from_settings(raw).settings()
            except (ParamError, TypeError) as exc:
                problem = f"the current split's stored settings are not valid ({exc})"
    params = SplitParams(**{**(stored or {}), **given})
    return Settings(params, stored, given, fresh, problem)


def load_for(library: str | os.PathLike, cache: str | os.PathLike) -> EmbeddingCache:
    """Load ``cache`` once for many plans of ``library`` (a big one memory-mapped
    from the library's ``.era_split/cache/``)."""
    lib = open_library(library)
    lib.check_write_paths()
    return load_cache(cache, os.path.join(lib.state_dir, CACHE_STORE))


def plan(
    library: str | os.PathLike,
    faceset: str,
    cache: str | os.PathLike | EmbeddingCache,
    params: SplitParams = SplitParams(),
    *,
    remaps: Sequence[Remap] = (),
    roots: Sequence[str] | None = None,
    progress: Progress | None = None,
    clock: Stopwatch | None = None,
    force: bool = False,
) -> SplitResult:
    """Analyse one faceset; writes nothing but caches under ``.era_split/``.
    ``force`` splits even when most photos cannot be read."""
    lib = open_library(library)
    entry = lib.find_faceset(faceset)
    lib.check_write_paths()  # the caches below are written there
    keys, manifest = lib.faceset_keys(entry)
    if not isinstance(cache, EmbeddingCache):
        with lap(clock, "load"):
            cache = load_cache(cache, os.path.join(lib.state_dir, CACHE_STORE))
    photo_cache = PhotoCache(os.path.join(lib.state_dir, PHOTO_CACHE))
    result = analyse(
        cache,
        keys,
        params,
        faceset=faceset,
        read_photos=lambda paths: read_photos(paths, photo_cache, progress),
        remaps=remaps,
        roots=roots,
        taken_names=lib.taken_names(faceset),
        source=manifest,
        clock=clock,
        force=force,
    )
    return with_ages(result, {}, None)  # the ages the scan recorded, if any


def apply(
    library: str | os.PathLike,
    faceset: str,
    cache: str | os.PathLike | EmbeddingCache,
    params: SplitParams = SplitParams(),
    *,
    remaps: Sequence[Remap] = (),
    roots: Sequence[str] | None = None,
    progress: Progress | None = None,
    clock: Stopwatch | None = None,
    force: bool = False,
    check_crop: Callable[[str], str | None] | None = None,
    models: str | None = None,
) -> ApplyReport:
    """Plan and write one faceset's split into the library. Without ``force``,
    a split that lost most of its faces is refused and the old one kept;
    ``check_crop`` (see :func:`writer.apply_split`) leaves out crops the host
    would not read as one face. With the age model installed, each era gets its
    apparent age; ``models`` (the folder holding the model pack) lets faces the
    cache has no landmarks for be found in their crops for it."""
    result = plan(library, faceset, cache, params, remaps=remaps, roots=roots, progress=progress,
                  clock=clock, force=force)
    return apply_split(library, result, progress=progress, clock=clock, force=force, check_crop=check_crop,
                       ages=age_measure(models, cache))


def age_measure(models: str | None = None, cache: str | os.PathLike | EmbeddingCache | None = None):
    """What measures the eras' apparent ages at a write: None without the age
    model; with ``models``, faces the cache has no landmarks for are found in
    their crops (the detector loaded only if one is needed)."""
    source = os.fspath(cache) if isinstance(cache, str | os.PathLike) else None

    def detector():
        return load_analyser(spec_for(models, source), ages=False)

    return crop_ages(detector if models else None)
