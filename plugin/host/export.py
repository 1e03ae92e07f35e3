"""Build one era or thin faceset folder: crops, bundles, manifest, markers.

The folder has the host's faceset shape, so the host and roop-unleashed read it
like any other: ``0000.png``... ranked best first, ``<name>_all.fsz`` (a flat zip
of every PNG), ``<name>_top<N>.fsz``, ``manifest.json`` and ``<name>.txt``.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import zipfile
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from ..results import Bucket, Face, SplitResult
from .crops import png_problem
from .cropworker import render_task
from .fsutil import atomic_write_bytes, dump_json

if TYPE_CHECKING:
    from ..split.params import SplitParams

FSZ_WARN_BYTES = 100 * 1024 * 1024
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # fixed stamps: same crops give the same bytes

Progress = Callable[[str, int, int], None]


def crop_file(index: int) -> str:
    return f"{index:04d}.png"


def crop_name(face: Face, size: int, st: os.stat_result) -> str:
    """Cache name of a crop: source file, its size and mtime, the crop box, the output size."""
    ident = f"{face.path}\0{st.st_size}\0{st.st_mtime_ns}\0{face.box}\0{size}"
    return hashlib.sha1(ident.encode("utf-8", "surrogateescape")).hexdigest()[:24] + ".png"


def render_crops(
    faces: Sequence[Face],
    cache_dir: str,
    size: int,
    progress: Progress | None = None,
    workers: int | None = None,
) -> tuple[dict[str, str], dict[str, str]]:
    """Crop files in ``cache_dir`` for ``faces``, rendering only those not cached.

    Returns ({key: crop file}, {key: reason} for faces whose photo failed, the
    crop files rendered in this call). A cached crop is used only if it is a
    regular file that decodes as a ``size``² PNG; a damaged one is rendered again.
    Photos are decoded in worker subprocesses when there are enough of them.
    """
    os.makedirs(cache_dir, exist_ok=True)
    stats: dict[str, os.stat_result | None] = {}
    files: dict[str, str] = {}
    failed: dict[str, str] = {}
    todo: dict[str, list] = defaultdict(list)
    keys_of: dict[str, list[str]] = defaultdict(list)
    for face in faces:
        if face.path not in stats:
            try:
                stats[face.path] = os.stat(face.path)
            except (OSError, ValueError):  # ValueError: a NUL byte in the path
                stats[face.path] = None
        st = stats[face.path]
        if st is None or not stat.S_ISREG(st.st_mode):
            failed[face.key] = "missing_photo" if st is None else "unreadable_photo"
            continue
        name = crop_name(face, size, st)
        files[face.key] = os.path.join(cache_dir, name)
        keys_of[face.path].append(face.key)
        if png_problem(files[face.key], size):  # missing or damaged: render it again
            todo[face.path].append((name, face.box))
    tasks = [(path, jobs, size, cache_dir) for path, jobs in sorted(todo.items())]
    workers = workers if workers is not None else min(os.cpu_count() or 1, 4)
    done = 0
    rendered = {os.path.join(cache_dir, name) for _, jobs, _, _ in tasks for name, _ in jobs}
    for path, reason in _run(tasks, workers, cache_dir):
        if reason:
            for key in keys_of[path]:
                failed[key] = reason
                files.pop(key, None)
        done += 1
        if progress:
            progress("crops", done, len(tasks))
    return files, failed, rendered


def _run(tasks: list[tuple], workers: int, scratch: str):
    """(path, failure reason or None) for each task, in any order: in worker
    subprocesses when it pays, and in this process for whatever they did not do."""
    done: set[str] = set()
    if workers > 1 and len(tasks) >= 16 and sys.executable:
        try:
            for result in _run_workers(tasks, workers, scratch):
                done.add(result[0])
                yield result
        except OSError:
            pass  # could not start workers: finish here
    for task in tasks:
        if task[0] not in done:
            yield render_task(task)


def _run_workers(tasks: list[tuple], workers: int, scratch: str):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    procs, files = [], []
    try:
        for i in range(workers):
            part = tasks[i::workers]
            fd, name = tempfile.mkstemp(prefix=".crop-tasks-", suffix=".json", dir=scratch)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(part, fh)
            files.append(name)
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "era_split.plugin.host.cropworker", name],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True,
            ))
        results: queue.Queue = queue.Queue()

        def read(proc: subprocess.Popen) -> None:
            for line in proc.stdout:
                try:
                    results.put(tuple(json.loads(line)))
                except ValueError:
                    pass
            proc.wait()
            results.put(None)

        threads = [threading.Thread(target=read, args=(p,), daemon=True) for p in procs]
        for t in threads:
            t.start()
        finished = 0
        while finished < len(procs):
            item = results.get()
            if item is None:
                finished += 1
            else:
                yield item
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for name in files:
            try:
                os.unlink(name)
            except OSError:
                pass


def prune_crop_cache(cache_dir: str, keep: set[str]) -> None:
    """Drop cached crops this faceset's latest split no longer uses."""
    try:
        names = os.listdir(cache_dir)
    except OSError:
        return
    for name in names:
        path = os.path.join(cache_dir, name)
        if path not in keep:
            try:
                os.unlink(path)
            except OSError:
                pass


def bundle_key(names: Sequence[str]) -> str:
    """Content key of a bundle: its crops (cache names) in order."""
    return hashlib.sha1("\n".join(names).encode()).hexdigest()[:16]


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def write_fsz(path: str, files: Sequence[tuple[str, str]]) -> int:
    """Flat, stored (PNGs are already compressed) zip of (arcname, file) pairs; its size."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for arcname, src in files:
            info = zipfile.ZipInfo(arcname, date_time=_ZIP_EPOCH)
            info.external_attr = 0o644 << 16
            with open(src, "rb") as fh:
                zf.writestr(info, fh.read())
    return os.path.getsize(path)


def face_entry(face: Face, file: str) -> dict:
    return {
        "key": face.key,
        "file": file,
        "source": face.recorded,
        "bbox": [round(v, 2) for v in face.bbox],
        "det_score": round(face.det_score, 4),
        "blur": round(face.blur, 2),
        "face_short": round(face.face_short, 2),
        "year": face.year or None,
        "quality": round(face.quality, 4),
        **({"age": round(face.age, 1)} if face.age is not None else {}),
        **({"year_estimate": face.year_estimate} if face.year_estimate is not None else {}),
    }


def ownership(bucket: Bucket, result: SplitResult) -> dict:
    """The ``era_split`` object that marks an entry as ours (library and faceset manifests)."""
    return {
        "parent": result.faceset,
        "kind": bucket.kind,
        "reason": bucket.reason,
        "dom_year": bucket.dom_year,
        "span": list(bucket.span) if bucket.span else None,
        "anchor": bucket.anchor,
        "params_key": result.params.cache_key(),
        "settings": result.settings,
        **({"look": bucket.look} if bucket.look > 1 else {}),
        **({"apparent_age": bucket.apparent_age} if bucket.apparent_age else {}),
    }


def library_entry(bucket: Bucket, result: SplitResult, relpath: str) -> dict:
    return {
        "name": bucket.name,
        "relpath": relpath,
        "faces": len(bucket.faces),
        "era_split": ownership(bucket, result),
    }


def _marker_text(bucket: Bucket, result: SplitResult) -> str:
    when = f"around {bucket.span[0]}" if bucket.span and bucket.span[0] == bucket.span[1] else (
        f"around {bucket.span[0]}-{bucket.span[1]}" if bucket.span else "undated"
    )
    return f"{bucket.name}: {result.faceset} {when}, {len(bucket.faces)} faces ({bucket.kind})\n"


def _thin_text(bucket: Bucket, params: SplitParams) -> str:
    return (
        f"THIN: {len(bucket.faces)} faces, fewer than the anchor size {params.anchor_min} "
        f"used for this split ({bucket.reason}).\n"
        "Kept apart so it does not dilute an era; useful only for narrow, targeted swaps.\n"
    )


def write_bucket(
    folder: str,
    bucket: Bucket,
    result: SplitResult,
    crops: Sequence[str],
    reuse: dict[str, str] | None = None,
) -> int:
    """Fill an empty ``folder`` for ``bucket``; ``crops`` are cached PNGs in rank
    order (hard-linked in). A bundle whose key is in ``reuse`` (key -> existing
    .fsz) is linked rather than rewritten. Returns the size of ``_all.fsz``."""
    params = result.params
    reuse = reuse or {}
    os.makedirs(folder, exist_ok=True)
    entries, files = [], []
    for rank, (face, src) in enumerate(zip(bucket.faces, crops)):
        name = crop_file(rank)
        dst = os.path.join(folder, name)
        _link_or_copy(src, dst)
        files.append((name, dst))
        entries.append(face_entry(face, name))
    cache_names = [os.path.basename(c) for c in crops]
    keys = {"all": bundle_key(cache_names), "top": bundle_key(cache_names[: params.top])}
    for kind, name, members in (("all", f"{bucket.name}_all.fsz", files),
                                ("top", f"{bucket.name}_top{params.top}.fsz", files[: params.top])):
        target = os.path.join(folder, name)
        old = reuse.get(keys[kind])
        if old and os.path.isfile(old) and not os.path.islink(old):
            _link_or_copy(old, target)
        else:
            write_fsz(target, members)
    all_size = os.path.getsize(os.path.join(folder, f"{bucket.name}_all.fsz"))
    # Every file this folder holds, so a later re-split or undo can prove on disk
    # which files are ours (and refuse to delete a user's own).
    written = sorted([name for name, _ in files] + [
        f"{bucket.name}_all.fsz", f"{bucket.name}_top{params.top}.fsz", "manifest.json",
        f"{bucket.name}.txt", *(["THIN.txt"] if bucket.kind == "thin" else []),
    ])
    manifest = {
        "name": bucket.name,
        "faces": entries,
        "era_split": {**ownership(bucket, result), "fragments": bucket.fragments,
                      "params": params.as_dict(), "bundles": keys, "files": written},
    }
    atomic_write_bytes(os.path.join(folder, "manifest.json"), dump_json(manifest))
    atomic_write_bytes(os.path.join(folder, f"{bucket.name}.txt"), _marker_text(bucket, result).encode())
    if bucket.kind == "thin":
        atomic_write_bytes(os.path.join(folder, "THIN.txt"), _thin_text(bucket, params).encode())
    return all_size
