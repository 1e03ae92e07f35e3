"""The orchestrator: from cache arrays and a faceset's keys to labelled buckets.

Everything here is computed from the cache and the photos' headers only, so a
``plan`` and the ``apply`` that follows it give the same buckets.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from ..errors import EraSplitError
from ..host.cache import EmbeddingCache
from ..host.crops import plan_crop_box
from ..host.paths import Remap, remap_path, under_roots
from ..host.photos import MISSING, OK, PhotoInfo
from ..results import LOST_MOST, Box, Bucket, Draft, Face, SplitResult, label_buckets
from ..timing import Stopwatch, lap
from . import eras, method, recovery
from .calibrate import GATE, SEED, calibrate
from .params import SplitParams, scaled_anchor_min

Progress = Callable[[str, int, int], None]
PhotoReader = Callable[[Iterable[str]], dict[str, PhotoInfo]]

INSIDE_MIN = 0.5  # share of a face box that must lie inside its photo


def _inside_share(bbox, width: int, height: int) -> float:
    x1, y1, x2, y2 = (float(v) for v in bbox)
    inner = max(0.0, min(x2, width) - max(x1, 0.0)) * max(0.0, min(y2, height) - max(y1, 0.0))
    return inner / max((x2 - x1) * (y2 - y1), 1e-9)


def quality_score(det_score: float, face_short: float, blur: float, centroid_dist: float) -> float:
    """Composite rank of a crop: detector confidence x size x sharpness x typicality.

    Size saturates at 256 px and sharpness at a Laplacian variance of 300 (beyond
    those a 512 px crop gains nothing); typicality (1 - distance to the bucket's
    centroid) favours faces that look like the era they stand for.
    """
    size = min(1.0, face_short / 256.0)
    sharp = min(1.0, blur / 300.0)
    return float(det_score * size * sharp * max(0.0, 1.0 - centroid_dist))


def analyse(
    cache: EmbeddingCache,
    seed_keys: Sequence[str],
    params: SplitParams,
    *,
    faceset: str,
    read_photos: PhotoReader,
    remaps: Sequence[Remap] = (),
    roots: Sequence[str] | None = None,
    taken_names: Iterable[str] = (),
    source: str = "",
    clock: Stopwatch | None = None,
    force: bool = False,
) -> SplitResult:
    """Run the whole method; ``source`` names the faceset manifest in errors.

    When most survivors' photos cannot be read, the photos have moved or their
    drive is not mounted: that is refused (naming one photo and ``--remap``)
    rather than answered with a near-empty split, unless ``force``.
    """
    requested = params.settings()
    with lap(clock, "recover"):
        seed_rows, missing_keys = cache.rows_of(list(seed_keys))
    if len(seed_rows) == 0:
        raise EraSplitError(
            source or faceset,
            f"none of its {len(seed_keys)} face keys is in the embedding cache {cache.source}",
        )
    emb = cache.embeddings
    era = params.method == "era"
    with lap(clock, "recover"):
        seed_emb = np.asarray(emb[seed_rows])
        cal = calibrate(seed_emb, {k: getattr(params, k) for k in (*SEED, *GATE)}, measure=era,
                        quality={"min_face": np.asarray(cache.face_short[seed_rows]),
                                 "min_blur": np.asarray(cache.blur[seed_rows])})
        params = dataclasses.replace(params, **cal.values, **cal.gate)
        seed_c = method.centroid(seed_emb)
        scope = under_roots(cache.paths, roots)
        if era:
            found = recovery.recover(emb, seed_rows, scope, seed_c, radius=params.recovery, scale=cal.scale,
                                     look_dist=params.subcluster)
            recovered = found.rows
        else:
            recovered = method.recover(emb, seed_c, scope, params.recovery)
    left_out: Counter[str] = Counter()
    if missing_keys:
        left_out["key_not_in_cache"] = missing_keys
    with lap(clock, "gate"):
        why = method.gate_reasons(
            recovered, cache.face_short, cache.blur, cache.det_score,
            min_face=params.min_face, min_blur=params.min_blur, min_det=params.min_det,
        )
        gated = recovered[why == method.PASSED]
        left_out.update({method.GATE_REASONS[r]: int(n) for r, n in enumerate(np.bincount(why, minlength=4))
                         if r != method.PASSED and n})
        if era:
            survivors = recovery.tighten(emb, gated, seed_rows, seed_c, radius=params.tighten,
                                         mode_dist=params.subcluster)
        else:
            survivors = method.tighten(emb, gated, params.tighten)
        if len(gated) > len(survivors):
            left_out["unlike_the_person"] = int(len(gated) - len(survivors))

    recorded = cache.paths[survivors].tolist()
    actual = [remap_path(p, remaps) for p in recorded]
    with lap(clock, "dates"):
        infos = read_photos(actual)
    with lap(clock, "crop boxes"):
        same_photo = cache.rows_by_path(set(recorded))
        rows, boxes, years = [], [], []
        for row, rec, path in zip(survivors.tolist(), recorded, actual):
            info = infos[path]
            if info.status != OK:
                left_out["missing_photo" if info.status == MISSING else "unreadable_photo"] += 1
                continue
            if _inside_share(cache.bboxes[row], info.width, info.height) < INSIDE_MIN:
                left_out["box_outside_photo"] += 1  # a crop of it would be mostly fill
                continue
            others = [cache.bboxes[o] for o in same_photo[rec] if o != row]
            box = plan_crop_box(cache.bboxes[row], others, info.width, info.height, params.pad)
            if box is None:
                left_out["overlapping_face"] += 1
                continue
            rows.append(row)
            boxes.append(box)
            years.append(info.year)
    unread = left_out["missing_photo"] + left_out["unreadable_photo"]
    if not force and unread and unread > len(survivors) * LOST_MOST:
        example, recorded_as = next(
            (p, r) for p, r in zip(actual, recorded) if infos[p].status != OK
        )
        moved = f" (recorded as {recorded_as})" if recorded_as != example else ""
        raise EraSplitError(
            example,
            f"{unread} of {len(survivors)} faces' photos cannot be read, this one{moved} among them. "
            "Is the photo drive mounted? If the photos moved, say where with --remap OLD=NEW; "
            "--force splits the rest anyway",
        )
    rows_arr = np.array(rows, dtype=np.int64)
    years_arr = np.array(years, dtype=np.int64)

    anchor_min = params.anchor_min
    scaled = anchor_min is None
    if scaled:
        anchor_min = scaled_anchor_min(len(rows), floor=2 if era else 3)
    used = dataclasses.replace(params, anchor_min=anchor_min)

    clustered = np.asarray(emb[rows_arr])
    with lap(clock, "subcluster"):
        try:
            if era:
                labels, groups = eras.era_groups(
                    clustered, years_arr, np.isin(rows_arr, seed_rows), seed_c,
                    subcluster_dist=params.subcluster,
                    anchor_min=anchor_min,
                    fragment_dist=params.fragment_dist,
                    era_years=params.era_years,
                    undated_dist=params.undated_dist,
                    other_gap=params.other_gap,
                    year_weight=params.year_weight,
                )
            else:
                labels = method.subcluster(clustered, params.subcluster)
        except ValueError as exc:
            raise EraSplitError(source or faceset, str(exc)) from None
    with lap(clock, "assign"):
        if not era:
            groups = method.assign_fragments(
                labels, clustered, years_arr,
                anchor_min=anchor_min,
                fragment_dist=params.fragment_dist,
                fragment_years=params.fragment_years,
                undated_fragments=params.undated_fragments,
            )

    paths_used = set(actual)
    dated_paths = sum(1 for p in paths_used if infos[p].status == OK and infos[p].year)
    with lap(clock, "assign"):
        buckets = _make_buckets(
            groups, cache, rows_arr, boxes, years_arr, actual_of=dict(zip(survivors.tolist(), actual)),
            parent=faceset, anchor_min=anchor_min, taken=taken_names,
        )
    counts = {
        "cache": len(cache),
        "seed": int(len(seed_rows)),
        "candidates": int(scope.sum()),
        "recovered": int(len(recovered)),
        "claimed_by_others": found.claimed if era else 0,
        "gated": int(len(gated)),
        "survivors": int(len(survivors)),
        "clustered": int(len(rows_arr)),
        "subclusters": int(labels.max() + 1) if len(labels) else 0,
        "anchors": int((np.bincount(labels) >= anchor_min).sum()) if len(labels) else 0,
        "paths": len(paths_used),
        "dated_paths": dated_paths,
        "left_out": dict(sorted(left_out.items())),
    }
    sizes = tuple(sorted(np.bincount(labels).tolist(), reverse=True)) if len(labels) else ()
    return SplitResult(faceset, used, scaled, counts, tuple(buckets), sizes, cal, requested)


def _landmarks(cache: EmbeddingCache, row: int) -> tuple[float, ...] | None:
    if cache.landmarks is None:
        return None
    lm = cache.landmarks[row].reshape(-1)
    return tuple(float(v) for v in lm) if float(np.hypot(lm[2] - lm[0], lm[3] - lm[1])) >= 2.0 else None


def _age(cache: EmbeddingCache, row: int) -> float | None:
    if cache.age is None or not np.isfinite(cache.age[row]):
        return None
    return float(cache.age[row])


def _make_buckets(
    groups: list[method.Group],
    cache: EmbeddingCache,
    rows: np.ndarray,
    boxes: list[Box],
    years: np.ndarray,
    *,
    actual_of: dict[int, str],
    parent: str,
    anchor_min: int,
    taken: Iterable[str],
) -> list[Bucket]:
    emb = cache.embeddings
    drafts = []
    for g in groups:
        pos = np.array(g.members, dtype=np.int64)
        dists = method.distance_to(emb[rows[pos]], method.centroid(emb[rows[pos]]))
        faces = []
        for p, d in zip(pos.tolist(), dists.tolist()):
            row = int(rows[p])
            faces.append(
                Face(
                    key=str(cache.keys[row]),
                    recorded=str(cache.paths[row]),
                    path=actual_of[row],
                    bbox=tuple(float(v) for v in cache.bboxes[row]),  # type: ignore[arg-type]
                    det_score=float(cache.det_score[row]),
                    blur=float(cache.blur[row]),
                    face_short=float(cache.face_short[row]),
                    year=int(years[p]),
                    box=boxes[p],
                    quality=quality_score(
                        float(cache.det_score[row]), float(cache.face_short[row]),
                        float(cache.blur[row]), d,
                    ),
                    landmarks=_landmarks(cache, row),
                    age=_age(cache, row),
                )
            )
        faces.sort(key=lambda f: (-f.quality, f.key))
        drafts.append(Draft(g.reason, g.anchor, g.fragments, tuple(faces)))
    return label_buckets(drafts, parent=parent, anchor_min=anchor_min, taken=taken)
