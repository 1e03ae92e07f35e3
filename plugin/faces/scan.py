"""``era-split scan``: detect and embed every face of a photo archive into the cache.

Incremental: a file whose path, size and modification time are unchanged keeps
its records; new and changed files are scanned; records of deleted files are
dropped. Resumable: every few hundred files, what was scanned since is kept as
one more part in ``<cache stem>.partial/`` (:class:`.store.Checkpoints`); a later
scan picks them up. The work runs in worker processes here, or on a Ray
cluster whose nodes need nothing of this machine's disk (:mod:`.cluster`). The
cache itself is only ever replaced whole (temp file + rename), by one scan at a
time (``<cache>.lock``, there while a scan runs).

Refused unless forced: a re-scan that would drop most of the files the cache
knows under the scanned folders (an unmounted drive, an emptied folder) — the
cache is the work of hours.

Bookkeeping lives in the cache as extra arrays that readers ignore: ``scan_files``,
``scan_sizes``, ``scan_mtimes``, ``scan_status`` (one row per file, faces or not),
``scan_model`` (the model pack and detection size, so two models' faces are
never mixed) and ``scan_detector`` (how faces were found: a cache from an older
detector is scanned again once, keeping the keys of the faces it already had).

Never scanned as photos: an era-split library (a folder holding ``.era_split/``
or a library or faceset ``manifest.json``) — its face crops are not photos.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import EraSplitError
from ..host.lock import file_lock
from ..results import LOST_MOST
from .models import DETECTOR, ModelSpec, check_models, load_analyser
from .photo import FileResult, scan_file
from .store import (
    Checkpoints,
    detector_of,
    from_results,
    merged,
    model_of,
    read_arrays,
    records,
    select,
    write_arrays,
)

EXTENSIONS = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".heic", ".heif"}
CHECKPOINT_FILES = 200
CHECKPOINT_SECONDS = 60.0
EXAMPLES = 3  # example paths kept per reason


@dataclass
class ScanReport:
    files: int = 0  # photos found under the folders
    scanned: int = 0  # decoded and run through the models this time (new and changed files)
    unchanged: int = 0  # skipped: same path, size and mtime as the last scan
    resumed: int = 0  # taken from an interrupted scan's checkpoint
    redetected: int = 0  # unchanged files scanned again: the cache's detector was an older one
    dropped: int = 0  # records of files that no longer exist (a changed file's are replaced)
    faces: int = 0  # records in the cache now
    new_faces: int = 0
    no_face: int = 0  # photos scanned this time in which no face was found
    workers: int = 1  # worker processes used (scanners on a Ray cluster)
    nodes: int = 1  # machines that scanned
    skipped: Counter = field(default_factory=Counter)  # reason -> files (or folders)
    examples: dict[str, list[str]] = field(default_factory=dict)  # reason -> a few paths

    def example(self, reason: str, path: str) -> None:
        got = self.examples.setdefault(reason, [])
        if len(got) < EXAMPLES:
            got.append(path)


@dataclass
class Listing:
    files: list[tuple[str, int, int]]  # (absolute path, size, mtime_ns), sorted
    skipped: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)


MANIFEST_PEEK = 1 << 20  # a library manifest larger than this is not sniffed


def _is_library(dirpath: str, dirnames: list[str], files: list[str]) -> bool:
    """An era-split library or one of its faceset folders: crops, not photos."""
    if ".era_split" in dirnames:
        return True
    if "manifest.json" not in files:
        return False
    from ..host.fsutil import open_regular

    try:
        with open_regular(os.path.join(dirpath, "manifest.json")) as fh:
            data = json.loads(fh.read(MANIFEST_PEEK + 1)[:MANIFEST_PEEK] or b"null")
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(data, dict) and (isinstance(data.get("facesets"), list) or isinstance(data.get("faces"), list))


def walk_photos(folders: Sequence[str]) -> Listing:
    """Every photo file under ``folders``, and what was skipped by reason: files
    that are not regular (a FIFO, a device), folders that cannot be read, and
    era-split libraries. Links to folders are not followed (no loops)."""
    out: dict[str, tuple[str, int, int]] = {}
    listing = Listing([])

    def skip(reason: str, path: str) -> None:
        listing.skipped[reason] += 1
        got = listing.examples.setdefault(reason, [])
        if len(got) < EXAMPLES:
            got.append(path)

    for folder in folders:
        folder = os.path.abspath(folder)
        if not os.path.isdir(folder):
            raise EraSplitError(folder, "photo folder not found")
        for dirpath, dirnames, files in os.walk(folder, onerror=lambda e: skip("unreadable_folder", e.filename)):
            dirnames.sort()
            if os.path.basename(dirpath) == ".era_split" or _is_library(dirpath, dirnames, files):
                skip("library_folder", dirpath)
                dirnames[:] = []
                continue
            for name in files:
                if os.path.splitext(name)[1].lower() not in EXTENSIONS:
                    continue
                path = os.path.join(dirpath, name)
                try:
                    st = os.stat(path)
                except OSError:
                    skip("unreadable", path)
                    continue
                if not os.path.isfile(path):
                    skip("not_a_file", path)
                    continue
                out[path] = (path, st.st_size, st.st_mtime_ns)
    listing.files = [out[p] for p in sorted(out)]
    return listing


def list_photos(folders: Sequence[str]) -> list[tuple[str, int, int]]:
    """(absolute path, size, mtime_ns) of every photo file under ``folders``, sorted."""
    return walk_photos(folders).files


# --- worker processes: one inference session each ---------------------------------

_APP = None


def _watch_parent(parent: int) -> None:
    """End this worker when the scan that started it is gone (killed, even with
    SIGKILL): an orphaned worker would hold a model's memory for nothing."""
    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _worker_init(spec: ModelSpec, parent: int) -> None:
    global _APP
    _watch_parent(parent)
    _APP = load_analyser(spec)


def _worker_run(batch: list[tuple]) -> list[FileResult]:
    return [scan_file(_APP, *item) for item in batch]


def _run_local(todo, spec: ModelSpec, workers: int) -> Iterable[FileResult]:
    if not todo:
        return  # no model loaded for nothing
    if workers <= 1 or len(todo) < 2:
        app = load_analyser(spec)
        for item in todo:
            yield scan_file(app, *item)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    batches = [todo[i:i + 4] for i in range(0, len(todo), 4)]
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_worker_init, initargs=(spec, os.getpid())) as pool:
        futures = [pool.submit(_worker_run, b) for b in batches]
        for fut in as_completed(futures):
            yield from fut.result()


# --- the cache: read, merge, write -------------------------------------------------


def _load(path: str) -> dict[str, np.ndarray] | None:
    """Every array of the cache, validated first (a broken cache is named, not
    merged); read once."""
    if not os.path.exists(path):
        return None
    from ..host.cache import check_npz, validate_cache

    check_npz(path)
    try:
        arrays = read_arrays(path)
    except Exception as exc:
        raise EraSplitError(path, f"not a readable .npz: {exc}") from None
    if not ("keys" in arrays and arrays["keys"].shape == (0,)):
        validate_cache(arrays, path, normalise=False)
    return arrays


def recorded_model(cache_file: str) -> str | None:
    """The ``scan_model`` tag of a cache (``buffalo_l@640``), None when it has none;
    read without loading the arrays."""
    try:
        with np.load(cache_file, allow_pickle=False) as npz:
            if "scan_model" in npz.files:
                tag = npz["scan_model"]
                if tag.dtype.kind in "US" and tag.shape == (1,):
                    return str(tag[0])
    except Exception:
        return None
    return None


def spec_for(root: str, cache_file: str | None, name: str | None = None, det_size: int | None = None) -> ModelSpec:
    """The model pack under ``root``: ``name`` and ``det_size`` as given, else as
    the cache was scanned with (so import and validate find faces as the scan
    did), else the defaults (buffalo_l at 640, as roop-unleashed)."""
    from .models import DEFAULT_DET_SIZE, DEFAULT_MODEL, parse_tag

    tag = recorded_model(cache_file) if cache_file and os.path.isfile(cache_file) else None
    recorded = parse_tag(tag) if tag else None
    det_size = det_size or (recorded[1] if recorded else DEFAULT_DET_SIZE)
    if not 32 <= det_size <= 4096 or det_size % 32:
        raise EraSplitError(None, f"--det-size must be a multiple of 32 in 32..4096, got {det_size}")
    return ModelSpec(os.path.abspath(os.path.expanduser(root)), name or (recorded[0] if recorded else DEFAULT_MODEL),
                     det_size)


def _known_faces(old: dict[str, np.ndarray], paths: set[str]) -> dict[str, list[dict]]:
    """The old records of ``paths``, for scan_file's ``known``."""
    out: dict[str, list[dict]] = {}
    for row, p in enumerate(old["paths"].tolist()):
        if p in paths:
            rec = {"key": str(old["keys"][row]), "bbox": old["bboxes"][row].astype(np.float32),
                   "embedding": old["embeddings"][row].astype(np.float32),
                   "det_score": float(old["det_score"][row]), "face_short": float(old["face_short"][row])}
            rec["landmarks"] = (old["landmarks"][row].astype(np.float32) if "landmarks" in old
                                else np.zeros((5, 2), np.float32))
            rec["age"] = float(old["age"][row]) if "age" in old else float("nan")
            out.setdefault(p, []).append(rec)
    return out


def scan(
    folders: Sequence[str],
    cache_file: str,
    spec: ModelSpec,
    *,
    workers: int = 1,
    ray_address: str | None = None,
    ray_photos: str = "auto",
    progress: Callable[[int, int, int], None] | None = None,
    force: bool = False,
) -> ScanReport:
    """Bring ``cache_file`` up to date with the photos under ``folders``: with
    ``workers`` processes here, or on the Ray cluster at ``ray_address``
    (:mod:`.cluster`; ``ray_photos``: "auto" lets a node read a photo by its path
    where it sees the same file, "send" always sends the bytes)."""
    check_models(spec)  # before any work, and never a download
    cache_file = os.path.abspath(cache_file)
    if not os.path.isdir(os.path.dirname(cache_file)):
        raise EraSplitError(cache_file, "its folder does not exist (create it first)")
    if os.path.lexists(cache_file) and not os.path.isfile(cache_file):
        raise EraSplitError(cache_file, "embedding cache is not a regular file")
    with file_lock(cache_file + ".lock", timeout=0, remove=True,
                   busy="another era-split scan is updating this cache; wait until it ends "
                        "(one scan of a cache at a time)"):
        return _scan_locked(folders, cache_file, spec, workers, ray_address, ray_photos, progress, force)


def _scan_locked(folders, cache_file, spec, workers, ray_address, ray_photos, progress, force) -> ScanReport:
    checkpoints = Checkpoints(cache_file)
    listing = walk_photos(folders)
    photos = listing.files
    report = ScanReport(files=len(photos), skipped=Counter(listing.skipped), examples=dict(listing.examples))
    cores = os.cpu_count() or 1
    report.workers = max(1, min(workers, cores))
    old = _load(cache_file)
    tag = model_of(old, cache_file)
    if tag is not None and tag != spec.tag:
        raise EraSplitError(cache_file, f"holds faces of {tag}, not {spec.tag}: two models' embeddings "
                                        "cannot be compared; scan into a new cache file")
    redetect = old is not None and records(old) > 0 and detector_of(old) != DETECTOR

    roots = {os.path.abspath(f) for f in folders}
    current = {p: (s, m) for p, s, m in photos}
    inside: dict[str, bool] = {}  # folder -> under a scanned folder (a photo's folder is asked once)

    def under(path: str) -> bool:
        folder = os.path.dirname(path)
        if folder not in inside:
            parent = os.path.dirname(folder)
            inside[folder] = folder in roots or (parent != folder and under(folder))
        return inside[folder]

    # what the last scan already knows and is still true
    known: dict[str, tuple[int, int]] = {}
    if old is not None and "scan_files" in old:
        for p, s, m in zip(old["scan_files"].tolist(), old["scan_sizes"].tolist(), old["scan_mtimes"].tolist()):
            known[p] = (s, m)
    gone = [p for p in known if under(p) and p not in current]
    mine = sum(1 for p in known if under(p))
    if gone and not force and len(gone) > mine * LOST_MOST:
        empty = "the folder is empty" if not photos else f"only {len(photos)} photos are there now"
        raise EraSplitError(
            gone[0], f"{len(gone)} of the {mine} photos this cache knows under {', '.join(folders)} are gone, "
            f"this one among them ({empty}): is the drive mounted? Nothing was changed. "
            "--force drops their faces from the cache"
        )
    unchanged = {p for p, sm in known.items() if current.get(p) == sm}
    fresh = set() if redetect else unchanged

    # the old cache without files that changed or vanished under the scanned folders
    parts: list[dict[str, np.ndarray]] = []
    unkept = old is None  # something of the cache changes even when nothing is scanned
    if old is not None:
        paths = old["paths"]
        drop = np.array([under(p) and p not in fresh for p in paths.tolist()], dtype=bool)
        report.dropped = int(sum(1 for p in paths.tolist() if under(p) and p not in current))
        files = old.get("scan_files", np.zeros(0, dtype=str))
        keep_files = np.array([(not under(p)) or p in fresh for p in files.tolist()], dtype=bool)
        parts.append(select(old, ~drop, keep_files))
        unkept = bool(drop.any() or not keep_files.all())
    # an interrupted scan's parts, newest first: a file scanned twice keeps its latest records
    done: set[str] = set()
    for part in reversed(checkpoints.load(spec.tag)):
        take = {p for p, s, m in zip(part["scan_files"].tolist(), part["scan_sizes"].tolist(),
                                     part["scan_mtimes"].tolist())
                if current.get(p) == (s, m) and p not in fresh and p not in done}
        if take:
            parts.append(select(part, np.array([p in take for p in part["paths"].tolist()], dtype=bool),
                                np.array([p in take for p in part["scan_files"].tolist()], dtype=bool)))
            done |= take
    report.unchanged = len(fresh)
    report.resumed = len(done)
    olds = _known_faces(old, unchanged - done) if redetect else {}
    report.redetected = len(unchanged - done) if redetect else 0
    todo = [(p, s, m, olds.get(p)) for p, s, m in photos if p not in fresh and p not in done]
    old = olds = None  # what is kept is in parts

    dim = next((p["embeddings"].shape[1] for p in parts if len(p["embeddings"])), None)
    results: list[FileResult] = []
    last_checkpoint = time.monotonic()
    if ray_address:
        from .cluster import run_on_ray

        def started(scanners: int, nodes: int) -> None:
            report.workers, report.nodes = scanners, nodes

        runner = run_on_ray(todo, spec, ray_address, photos=ray_photos, local_cpus=report.workers,
                            started=started)
    else:
        runner = _run_local(todo, spec, report.workers)
    faces_seen = n = 0
    for n, result in enumerate(runner, 1):
        results.append(result)
        faces_seen += len(result.faces)
        if result.status != "ok":
            report.skipped[result.status] += 1
            report.example(result.status, result.path)
        elif not result.faces:
            report.no_face += 1
            report.example("no_face", result.path)
        if progress:
            progress(n, len(todo), faces_seen)
        if len(results) >= CHECKPOINT_FILES or time.monotonic() - last_checkpoint > CHECKPOINT_SECONDS:
            dim = _add_part(parts, results, spec.tag, dim, cache_file)
            checkpoints.add(parts[-1])
            results = []
            last_checkpoint = time.monotonic()
    report.scanned = n
    report.new_faces = faces_seen
    if results or not parts:
        _add_part(parts, results, spec.tag, dim, cache_file)
    if n or done or unkept:
        write_arrays(cache_file, merged(parts, spec.tag))
    checkpoints.clear()
    report.faces = sum(records(p) for p in parts)
    return report


def _add_part(parts: list[dict[str, np.ndarray]], results: list[FileResult], tag: str, dim: int | None,
              cache_file: str) -> int | None:
    """``results`` as one more part; the embedding size they all share."""
    part = from_results(results, tag, dim)
    if records(part):
        if dim is not None and part["embeddings"].shape[1] != dim:
            raise EraSplitError(cache_file, "the model's embedding size differs from the cache's")
        dim = part["embeddings"].shape[1]
    parts.append(part)
    return dim


class ScanProgress:
    """A progress bar on a terminal; a parseable line every few seconds elsewhere.
    The time left is shown once the rate is measured over a few files: the first
    ones include loading the models."""

    WARMUP = 5  # files before a time left is worth showing

    def __init__(self, stream=None) -> None:
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.start = time.monotonic()
        self.first: tuple[float, int] | None = None  # (time, files) when the first result came
        self.last = 0.0

    def __call__(self, done: int, total: int, faces: int) -> None:
        now = time.monotonic()
        if self.first is None:
            self.first = (now, done)
        if done < total and now - self.last < (0.2 if self.tty else 5.0):
            return
        self.last = now
        t0, d0 = self.first
        measured = done - d0
        rate = measured / (now - t0) if measured > 0 and now > t0 else 0.0
        eta = (total - done) / rate if rate > 0 and measured >= self.WARMUP else None
        eta_text = "ETA --" if eta is None else f"ETA {int(eta) // 60}m{int(eta) % 60:02d}s"
        if self.tty:
            width = 30
            filled = int(width * done / total) if total else width
            bar = "#" * filled + "-" * (width - filled)
            self.stream.write(f"\r[{bar}] {done}/{total} files, {faces} faces, {rate:.1f} files/s, {eta_text} ")
            if done >= total:
                self.stream.write("\n")
        else:
            self.stream.write(f"scan: files={done}/{total} faces={faces} rate={rate:.2f}/s "
                              f"eta_s={'-' if eta is None else f'{eta:.0f}'}\n")
        self.stream.flush()
