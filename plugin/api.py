"""One call per user action: plan (analyse, no writes but caches) and apply.

These are the functions the CLI, the hooks and the UI call; they read the host's
files, run the pure pipeline and hand the result to the writer.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

from .host.cache import EmbeddingCache, load_cache
from .host.library import open_library
from .host.paths import Remap
from .host.photos import PhotoCache, read_photos
from .host.writer import ApplyReport, apply_split
from .results import SplitResult
from .split.params import SplitParams
from .split.pipeline import Progress, analyse
from .timing import Stopwatch, lap

PHOTO_CACHE = "photos.json"
CACHE_STORE = "cache"


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
    return analyse(
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
) -> ApplyReport:
    """Plan and write one faceset's split into the library. Without ``force``,
    a split that lost most of its faces is refused and the old one kept;
    ``check_crop`` (see :func:`writer.apply_split`) leaves out crops the host
    would not read as one face."""
    result = plan(library, faceset, cache, params, remaps=remaps, roots=roots, progress=progress,
                  clock=clock, force=force)
    return apply_split(library, result, progress=progress, clock=clock, force=force, check_crop=check_crop)
