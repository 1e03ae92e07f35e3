"""``era-split scan``: detect and embed every face of a photo archive into the cache.

Incremental: a file whose path, size and modification time are unchanged keeps
its records; new and changed files are scanned; records of deleted files are
dropped. Resumable: scanned files are checkpointed into ``<cache>.partial.npz``
every few hundred files; a later scan picks them up. The cache itself is only
ever replaced whole (temp file + rename), by one scan at a time (``<cache>.lock``,
there while a scan runs).

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

import hashlib
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
from ..host import heif
from ..host.exif import HostileExif
from ..host.lock import file_lock
from ..host.photos import PhotoTooLarge, open_displayed
from ..results import LOST_MOST
from .models import DETECTOR, ModelSpec, _iou, check_models, load_analyser, sharpness

EXTENSIONS = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".heic", ".heif"}
RECORD_ARRAYS = ("keys", "paths", "embeddings", "bboxes", "det_score", "blur", "face_short", "landmarks")
BOOK_ARRAYS = ("scan_files", "scan_sizes", "scan_mtimes", "scan_status")
CHECKPOINT_FILES = 200
CHECKPOINT_SECONDS = 60.0
EXAMPLES = 3  # example paths kept per reason
SAME_FACE_IOU = 0.5  # a face found again in an unchanged photo keeps its key

heif.register()


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
    workers: int = 1  # worker processes used
    skipped: Counter = field(default_factory=Counter)  # reason -> files (or folders)
    examples: dict[str, list[str]] = field(default_factory=dict)  # reason -> a few paths

    def example(self, reason: str, path: str) -> None:
        got = self.examples.setdefault(reason, [])
        if len(got) < EXAMPLES:
            got.append(path)


@dataclass
class FileResult:
    path: str
    size: int
    mtime: int
    status: str  # "ok" or why not
    faces: list[dict]


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


def face_key(path: str, size: int, mtime: int, index: int) -> str:
    """Stable while the file is unchanged; a changed file gets new keys."""
    digest = hashlib.sha1(f"{path}\0{size}\0{mtime}".encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return f"{digest}_{index}"


def _key_index(key: str) -> int:
    tail = key.rpartition("_")[2]
    return int(tail) if tail.isdigit() else -1


def scan_file(analyser, path: str, size: int, mtime: int, known: list[dict] | None = None) -> FileResult:
    """Decode one photo as displayed (EXIF orientation applied) and embed its faces;
    never raises for a bad file. ``known`` are the records an older detector made of
    this unchanged file: a face found again keeps its key, one not found again is
    kept as it was (its sharpness measured anew)."""
    try:
        shown = open_displayed(path)
    except FileNotFoundError:
        return FileResult(path, size, mtime, "missing", [])
    except HostileExif:
        return FileResult(path, size, mtime, "hostile_exif", [])
    except PhotoTooLarge:
        return FileResult(path, size, mtime, "too_large", [])
    except Exception:
        return FileResult(path, size, mtime, "unreadable", [])
    gray = np.asarray(shown.convert("L"))
    found = [d for d in analyser.find(shown) if d.bbox[2] > d.bbox[0] and d.bbox[3] > d.bbox[1]]
    known = known or []
    keys: list[str | None] = [None] * len(found)
    if known and found:
        iou = _iou(np.array([d.bbox for d in found]), np.array([k["bbox"] for k in known], dtype=np.float64))
        taken_new, taken_old = set(), set()
        for flat in np.argsort(-iou, axis=None, kind="stable"):
            i, j = divmod(int(flat), len(known))
            if iou[i, j] < SAME_FACE_IOU:
                break
            if i not in taken_new and j not in taken_old:
                keys[i] = known[j]["key"]
                taken_new.add(i)
                taken_old.add(j)
        lost = [k for j, k in enumerate(known) if j not in taken_old]
    else:
        lost = list(known)
    index = max([_key_index(k["key"]) for k in known] + [-1]) + 1
    faces = []
    for d, key in zip(found, keys):
        if key is None:
            key, index = face_key(path, size, mtime, index), index + 1
        x1, y1, x2, y2 = d.bbox
        faces.append({
            "key": key, "path": path, "embedding": d.embedding,
            "bbox": np.array(d.bbox, dtype=np.float32), "det_score": d.det_score,
            "blur": sharpness(gray, d.bbox), "face_short": float(min(x2 - x1, y2 - y1)),
            "landmarks": d.landmarks,
        })
    for k in lost:  # found by the older detector only: kept, with this scan's sharpness
        faces.append({**k, "path": path, "blur": sharpness(gray, k["bbox"])})
    return FileResult(path, size, mtime, "ok", faces)


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


def _run_ray(todo, spec: ModelSpec, address: str, workers: int) -> Iterable[FileResult]:
    """The same work on a Ray cluster: one actor per worker holds a model."""
    try:
        import ray  # type: ignore
    except ImportError:
        raise EraSplitError(None, "--ray needs Ray: pip install 'era-split[ray]'") from None
    if not ray.is_initialized():
        ray.init(address=None if address == "local" else address, num_cpus=workers if address == "local" else None,
                 include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    actor_cls = ray.remote(num_cpus=1)(_RayScanner)
    n = max(1, min(workers, int(ray.cluster_resources().get("CPU", 1))))
    actors = [actor_cls.remote(spec) for _ in range(n)]
    from ray.util import ActorPool  # type: ignore

    pool = ActorPool(actors)
    batches = [todo[i:i + 8] for i in range(0, len(todo), 8)]
    for results in pool.map_unordered(lambda a, b: a.run.remote(b), batches):
        yield from results


class _RayScanner:
    def __init__(self, spec: ModelSpec) -> None:
        self.app = load_analyser(spec)

    def run(self, batch):
        return [scan_file(self.app, *item) for item in batch]


# --- the cache: read, merge, write -------------------------------------------------


def _load(path: str) -> dict[str, np.ndarray] | None:
    if not os.path.exists(path):
        return None
    from ..host.cache import load_cache

    try:
        with np.load(path, allow_pickle=False) as npz:
            empty = "keys" in npz.files and npz["keys"].shape == (0,)
    except Exception:
        empty = False
    if not empty:
        load_cache(path)  # validated first: a broken cache is named, not merged
    with np.load(path, allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}


def _records(arrays: dict[str, np.ndarray] | None) -> int:
    return 0 if arrays is None else len(arrays["keys"])


def _write_npz(path: str, arrays: dict[str, np.ndarray]) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.tmp.npz")
    try:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _from_results(results: list[FileResult], model_tag: str, dim: int | None) -> dict[str, np.ndarray]:
    faces = [f for r in results for f in r.faces]
    d = dim or (len(faces[0]["embedding"]) if faces else 512)
    return {
        "keys": np.array([f["key"] for f in faces], dtype=str),
        "paths": np.array([f["path"] for f in faces], dtype=str),
        "embeddings": np.array([f["embedding"] for f in faces], dtype=np.float32).reshape(-1, d),
        "bboxes": np.array([f["bbox"] for f in faces], dtype=np.float32).reshape(-1, 4),
        "det_score": np.array([f["det_score"] for f in faces], dtype=np.float32),
        "blur": np.array([f["blur"] for f in faces], dtype=np.float32),
        "face_short": np.array([f["face_short"] for f in faces], dtype=np.float32),
        "landmarks": np.array([f["landmarks"] for f in faces], dtype=np.float32).reshape(-1, 5, 2),
        "scan_files": np.array([r.path for r in results], dtype=str),
        "scan_sizes": np.array([r.size for r in results], dtype=np.int64),
        "scan_mtimes": np.array([r.mtime for r in results], dtype=np.int64),
        "scan_status": np.array([r.status for r in results], dtype=str),
        "scan_model": np.array([model_tag]),
        "scan_detector": np.array([DETECTOR]),
    }


def _concat(parts: list[dict[str, np.ndarray]], model_tag: str) -> dict[str, np.ndarray]:
    out = {}
    for name in RECORD_ARRAYS + BOOK_ARRAYS:
        present = [p[name] for p in parts if name in p and len(p[name])]
        out[name] = np.concatenate(present) if present else parts[0][name][:0]
    out["scan_model"] = np.array([model_tag])
    out["scan_detector"] = np.array([DETECTOR])
    return out


def _select(arrays: dict[str, np.ndarray], keep_rows: np.ndarray, keep_files: np.ndarray) -> dict:
    """The records in ``keep_rows`` and the file bookkeeping in ``keep_files``."""
    n = len(arrays["keys"])
    out = {}
    for name, arr in arrays.items():
        if name in BOOK_ARRAYS:
            out[name] = arr[keep_files]
        elif name in ("scan_model", "scan_detector"):
            out[name] = arr
        elif arr.ndim and arr.shape[0] == n:
            out[name] = arr[keep_rows]  # per-record arrays, ours or another tool's
        else:
            out[name] = arr
    return out


def _model_of(arrays: dict[str, np.ndarray] | None, where: str) -> str | None:
    if arrays is None:
        return None
    if "scan_model" not in arrays:
        if _records(arrays):
            raise EraSplitError(where, "was not written by era-split scan (no scan_model): its faces may come "
                                       "from another face model; scan into a new cache file")
        return None
    return str(arrays["scan_model"][0])


def _detector_of(arrays: dict[str, np.ndarray] | None) -> str | None:
    if arrays is None or "scan_detector" not in arrays or not len(arrays["scan_detector"]):
        return None
    return str(arrays["scan_detector"][0])


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
            out.setdefault(p, []).append(rec)
    return out


def scan(
    folders: Sequence[str],
    cache_file: str,
    spec: ModelSpec,
    *,
    workers: int = 1,
    ray_address: str | None = None,
    progress: Callable[[int, int, int], None] | None = None,
    force: bool = False,
) -> ScanReport:
    """Bring ``cache_file`` up to date with the photos under ``folders``."""
    check_models(spec)  # before any work, and never a download
    cache_file = os.path.abspath(cache_file)
    if not os.path.isdir(os.path.dirname(cache_file)):
        raise EraSplitError(cache_file, "its folder does not exist (create it first)")
    if os.path.lexists(cache_file) and not os.path.isfile(cache_file):
        raise EraSplitError(cache_file, "embedding cache is not a regular file")
    with file_lock(cache_file + ".lock", timeout=0, remove=True,
                   busy="another era-split scan is updating this cache; wait until it ends "
                        "(one scan of a cache at a time)"):
        return _scan_locked(folders, cache_file, spec, workers, ray_address, progress, force)


def _scan_locked(folders, cache_file, spec, workers, ray_address, progress, force) -> ScanReport:
    partial_file = cache_file[:-4] + ".partial.npz" if cache_file.endswith(".npz") else cache_file + ".partial.npz"
    listing = walk_photos(folders)
    photos = listing.files
    report = ScanReport(files=len(photos), skipped=Counter(listing.skipped), examples=dict(listing.examples))
    cores = os.cpu_count() or 1
    report.workers = max(1, min(workers, cores))
    old = _load(cache_file)
    tag = _model_of(old, cache_file)
    if tag is not None and tag != spec.tag:
        raise EraSplitError(cache_file, f"holds faces of {tag}, not {spec.tag}: two models' embeddings "
                                        "cannot be compared; scan into a new cache file")
    redetect = old is not None and _records(old) > 0 and _detector_of(old) != DETECTOR
    partial = None
    if os.path.exists(partial_file):
        try:
            with np.load(partial_file, allow_pickle=False) as npz:
                partial = {name: npz[name] for name in npz.files}
            if _model_of(partial, partial_file) != spec.tag or _detector_of(partial) != DETECTOR:
                partial = None
        except Exception:  # a damaged checkpoint only costs the work it held
            partial = None

    roots = [os.path.abspath(f).rstrip(os.sep) + os.sep for f in folders]
    current = {p: (s, m) for p, s, m in photos}

    def under(path: str) -> bool:
        return any(path.startswith(r) for r in roots)

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
    done: set[str] = set()
    if partial is not None:
        for p, s, m in zip(partial["scan_files"].tolist(), partial["scan_sizes"].tolist(),
                           partial["scan_mtimes"].tolist()):
            if current.get(p) == (s, m) and p not in fresh:
                done.add(p)
    report.unchanged = len(fresh)
    report.resumed = len(done)
    olds = _known_faces(old, unchanged - done) if redetect else {}
    report.redetected = len(unchanged - done) if redetect else 0
    todo = [(p, s, m, olds.get(p)) for p, s, m in photos if p not in fresh and p not in done]

    # the old cache without files that changed or vanished under the scanned folders
    parts = []
    if old is not None:
        paths = old["paths"]
        drop = np.array([under(p) and p not in fresh for p in paths.tolist()], dtype=bool)
        report.dropped = int(sum(1 for p in paths.tolist() if under(p) and p not in current))
        files = old.get("scan_files", np.zeros(0, dtype=str))
        keep_files = np.array([(not under(p)) or p in fresh for p in files.tolist()], dtype=bool)
        parts.append(_select(old, ~drop, keep_files))
    if partial is not None and done:
        rows = np.array([p in done for p in partial["paths"].tolist()], dtype=bool)
        files = np.array([p in done for p in partial["scan_files"].tolist()], dtype=bool)
        parts.append(_select(partial, rows, files))

    dim = next((p["embeddings"].shape[1] for p in parts if len(p["embeddings"])), None)
    results: list[FileResult] = []
    last_checkpoint = time.monotonic()
    runner = (_run_ray(todo, spec, ray_address, report.workers) if ray_address
              else _run_local(todo, spec, report.workers))
    faces_seen = 0
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
        if len(results) % CHECKPOINT_FILES == 0 or time.monotonic() - last_checkpoint > CHECKPOINT_SECONDS:
            _checkpoint(partial_file, parts[1:] if old is not None else parts, results, spec.tag, dim)
            last_checkpoint = time.monotonic()
    report.scanned = len(results)
    report.new_faces = faces_seen
    new = _from_results(results, spec.tag, dim)
    if dim is not None and len(new["embeddings"]) and new["embeddings"].shape[1] != dim:
        raise EraSplitError(cache_file, "the model's embedding size differs from the cache's")
    merged = _concat(parts + [new], spec.tag) if parts else new
    _write_npz(cache_file, merged)
    if os.path.exists(partial_file):
        os.unlink(partial_file)
    report.faces = len(merged["keys"])
    return report


def _checkpoint(partial_file, earlier, results, tag, dim) -> None:
    """Everything scanned in this run (and a resumed checkpoint's files), so an
    interrupted scan loses at most the last few hundred files."""
    parts = list(earlier) + [_from_results(results, tag, dim)]
    _write_npz(partial_file, _concat(parts, tag) if len(parts) > 1 else parts[0])


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
