"""Ground truth for judging a split: a generated archive whose answer is known,
and the scores of a split against it.

The archive is embedding-level (no pixels): one target whose face drifts with
age, shoots whose photos look alike, lookalike siblings near the target, many
unrelated people, quality spread around the gate, undated and bogus-dated
photos, group photos. It feeds :func:`pipeline.analyse` directly through its
injectable photo reader, so thousands of splits can be scored in seconds.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from .cache import EmbeddingCache, validate_cache
from .photos import OK, PhotoInfo
from .pipeline import SplitResult


@dataclass(frozen=True)
class TruthSpec:
    seed: int = 0
    dim: int = 512
    first_year: int = 2003
    last_year: int = 2022
    target_faces: int = 1500
    shoots_per_year: int = 8
    year_step: float = 0.20  # norm of the look's yearly random-walk step
    shoot: float = 0.32  # norm of a shoot's shared offset
    noise: float = 0.72  # norm of a face's own offset (pose, light, expression)
    noise_spread: float = 0.42  # log-normal spread of that norm: some faces are odd
    siblings: int = 2  # lookalikes
    sibling_gap: float = 0.36  # cosine distance of a sibling's base from the target's
    sibling_faces: int = 120
    others: int = 40  # unrelated people
    other_faces: int = 90
    undated: float = 0.10
    bogus: float = 0.01  # a wrong year (camera clock never set)
    group: float = 0.15  # faces that share their photo with another face
    curated: float = 0.45  # share of the target's good faces in the host faceset


@dataclass
class TruthArchive:
    cache: EmbeddingCache
    seed_keys: list[str]
    identity: np.ndarray  # (n,) "target", "sibling0", "other3", ...
    true_year: np.ndarray  # (n,) the year the photo was taken
    exif_year: np.ndarray  # (n,) what EXIF says: 0 undated, or a bogus year
    photos: dict[str, PhotoInfo] = field(default_factory=dict)

    def read_photos(self, paths: Iterable[str]) -> dict[str, PhotoInfo]:
        return {p: self.photos[p] for p in paths}


def _unit(rng: np.random.Generator, shape, norm: float = 1.0) -> np.ndarray:
    v = rng.standard_normal(shape)
    return v / np.linalg.norm(v, axis=-1, keepdims=True) * norm


def _towards(rng: np.random.Generator, base: np.ndarray, gap: float) -> np.ndarray:
    """A unit vector at cosine distance ``gap`` from the unit vector ``base``."""
    other = _unit(rng, base.shape)
    other -= (other @ base) * base
    other /= np.linalg.norm(other)
    cos = 1.0 - gap
    return cos * base + np.sqrt(1 - cos**2) * other


def generate(spec: TruthSpec = TruthSpec()) -> TruthArchive:
    rng = np.random.default_rng(spec.seed)
    years = np.arange(spec.first_year, spec.last_year + 1)
    target = _unit(rng, spec.dim)
    people = [("target", target, spec.target_faces)]
    people += [(f"sibling{i}", _towards(rng, target, spec.sibling_gap), spec.sibling_faces)
               for i in range(spec.siblings)]
    people += [(f"other{i}", _unit(rng, spec.dim), spec.other_faces) for i in range(spec.others)]

    emb, ident, true_year, quality = [], [], [], []
    for name, base, count in people:
        walk = np.cumsum(_unit(rng, (len(years), spec.dim), spec.year_step), axis=0)
        walk -= walk.mean(axis=0)  # the look drifts around the person's average face
        shoots = _unit(rng, (len(years), spec.shoots_per_year, spec.dim), spec.shoot)
        y_idx = rng.integers(0, len(years), count)
        s_idx = rng.integers(0, spec.shoots_per_year, count)
        noise = spec.noise * np.exp(rng.normal(0, spec.noise_spread, count))  # some faces are odd
        e = base + walk[y_idx] + shoots[y_idx, s_idx] + _unit(rng, (count, spec.dim)) * noise[:, None]
        emb.append(e)
        ident += [name] * count
        true_year.append(years[y_idx])
        quality.append(noise)
    emb = np.concatenate(emb).astype(np.float32)
    ident = np.array(ident)
    true_year = np.concatenate(true_year)
    noise = np.concatenate(quality)
    n = len(emb)

    # quality spread around the gate; noisier faces tend to be the worse ones
    face_short = np.exp(rng.normal(np.log(150), 0.45, n))
    blur = np.exp(rng.normal(np.log(110), 0.8, n)) / (noise / spec.noise)
    det = np.clip(rng.normal(0.78, 0.12, n), 0.3, 0.999)

    # photos: most faces alone, some in group photos of the same year
    photo_of = np.arange(n)
    grouped = np.flatnonzero(rng.random(n) < spec.group)
    for a, b in zip(grouped[::2], grouped[1::2]):
        photo_of[b] = photo_of[a]
        true_year[b] = true_year[a]
    r = rng.random(n)
    exif_year = true_year.copy()
    exif_year[r < spec.undated] = 0
    bogus = (r >= spec.undated) & (r < spec.undated + spec.bogus)
    exif_year[bogus] = rng.integers(spec.first_year, spec.last_year + 1, bogus.sum())
    for p in np.unique(photo_of):  # one photo, one EXIF date
        members = np.flatnonzero(photo_of == p)
        exif_year[members] = exif_year[members[0]]

    paths = np.array([f"/archive/{true_year[photo_of[i]]}/IMG_{photo_of[i]:06d}.JPG" for i in range(n)])
    bboxes = np.zeros((n, 4))
    slot = {}
    for i in range(n):  # faces of one photo side by side, well apart
        k = slot.get(paths[i], 0)
        slot[paths[i]] = k + 1
        x = 50 + k * (face_short[i] * 3 + 60)
        bboxes[i] = [x, 100, x + face_short[i], 100 + face_short[i] * 1.2]
    keys = np.array([f"{ident[i]}-{i:06d}" for i in range(n)])
    cache = validate_cache({
        "keys": keys, "paths": paths, "embeddings": emb, "bboxes": bboxes,
        "det_score": det, "blur": blur, "face_short": face_short,
    }, "truth")
    photos = {}
    for i in range(n):
        width = int(bboxes[i, 2] + face_short[i] * 3 + 200)
        prev = photos.get(paths[i])
        photos[paths[i]] = PhotoInfo(OK, int(exif_year[i]), max(width, prev.width if prev else 0), 2000)

    good = np.flatnonzero((ident == "target") & (face_short >= 130) & (det >= 0.7) & (blur >= 60))
    chosen = good[rng.random(len(good)) < spec.curated]
    return TruthArchive(cache, keys[chosen].tolist(), ident, true_year, exif_year, photos)


@dataclass(frozen=True)
class Scores:
    precision: float  # share of era faces that are the target
    recall: float  # share of the target's gated faces that end in an era
    purity: float  # share of dated era faces within 2 years of their era's dominant year
    span: int  # widest 10th-90th percentile year span over eras
    eras: int

    def meets(self) -> bool:
        return self.precision >= 0.99 and self.recall >= 0.90 and self.purity >= 0.95 and self.span <= 4


def score(result: SplitResult, archive: TruthArchive, params=None) -> Scores:
    """Scores over era buckets only (thin fragments are quarantined and do not count)."""
    p = params or result.params
    cache = archive.cache
    row = {k: i for i, k in enumerate(cache.keys.tolist())}
    gated_target = np.flatnonzero(
        (archive.identity == "target") & (cache.face_short >= p.min_face)
        & (cache.blur >= p.min_blur) & (cache.det_score >= p.min_det)
    )
    era_rows = [[row[f.key] for f in b.faces] for b in result.eras]
    all_rows = [r for rows in era_rows for r in rows]
    if not all_rows:
        return Scores(1.0, 0.0, 1.0, 0, 0)
    precision = float(np.mean(archive.identity[all_rows] == "target"))
    recall = len(set(all_rows) & set(gated_target.tolist())) / max(1, len(gated_target))
    near, dated, span = 0, 0, 0
    for bucket in result.eras:
        years = np.array([f.year for f in bucket.faces if f.year])
        if len(years) == 0:
            continue
        near += int(np.sum(np.abs(years - bucket.dom_year) <= 2))
        dated += len(years)
        lo, hi = np.percentile(years, 10), np.percentile(years, 90)
        span = max(span, int(np.ceil(hi) - np.floor(lo)))
    purity = near / dated if dated else 1.0
    return Scores(precision, recall, purity, span, len(result.eras))
