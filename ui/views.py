"""What the era tab shows, computed from a SplitResult. No Gradio here, so every
piece can be tested on its own."""

from __future__ import annotations

import base64
import html
import io
import math
from collections import Counter
from collections.abc import Callable, Sequence

from PIL import Image

from ..plugin import explain
from ..plugin.errors import EraSplitError
from ..plugin.host.crops import open_displayed, render_crop
from ..plugin.host.library import open_library
from ..plugin.labels import era_text, plural
from ..plugin.results import Bucket, SplitResult, by_years
from ..plugin.split.calibrate import SEED
from ..plugin.split.params import OPTIONAL, ParamError, SplitParams

# (field, label, kind) in the order the tab shows them; the fields in OPTIONAL are
# text boxes that may stay blank (derived per faceset), the others numbers
PARAM_FIELDS = [
    ("recovery", "Recovery radius", float),
    ("tighten", "Tighten radius", float),
    ("subcluster", "Sub-cluster threshold", float),
    ("anchor_min", "Anchor size", int),
    ("fragment_dist", "Fragment max distance", float),
    ("fragment_years", "Seed method: fragment max years apart", int),
    ("year_weight", "Year weight (distance per year apart)", float),
    ("era_years", "Era half-width (years)", int),
    ("undated_dist", "Undated face max distance", float),
    ("other_gap", "Other-person gap", float),
    ("min_face", "Min face size (px)", float),
    ("min_blur", "Min sharpness", float),
    ("min_det", "Min detector score", float),
    ("pad", "Crop padding", float),
    ("size", "Crop size (px)", int),
    ("top", "Top-N bundle size", int),
    ("born", "Birth year (labels give real ages)", int),
]
BLANK = {"anchor_min": "blank: scaled to the faceset", "born": "blank: not given"}  # what a blank box means, per field
ZERO_IS_BLANK = {"anchor_min", "born", *SEED}  # a radius or an era size of 0 keeps nothing: never a wish


BUCKET_HEADERS = ["name", "faces", "dominant year", "span", "anchor", "why"]


def host_faceset_names(library: str) -> list[str]:
    """Facesets the host made (era variants excluded); none for an unreadable library."""
    try:
        return [e["name"] for e in open_library(library).host_facesets()]
    except EraSplitError:
        return []


AUTO = "Auto: match the target"  # the pickers' choice that lets the target's face pick the era


def auto_offered(variants: Sequence, installed: bool) -> bool:
    """Whether a picker offers :data:`AUTO`: there are eras, and the age model to
    read the target with (``installed``) or eras whose ages are recorded."""
    return bool(variants) and (installed or any(v.age is not None for v in variants))


def age_model_installed() -> bool:
    """Whether the pickers offer "Auto: match the target" (the age model is there)."""
    from ..plugin.faces.age import find_age_model

    try:
        return find_age_model() is not None
    except EraSplitError:
        return False  # a damaged model: no Auto, the picker works as before


def progress_adapter(progress: Callable[..., object]) -> Callable[[str, int, int], None]:
    """The core's ``progress(stage, done, total)`` feeding a ``gr.Progress``."""

    def update(stage: str, done: int, total: int) -> None:
        progress(done / total if total else 1.0, desc=stage)

    return update


def params_from_values(
    values: Sequence[object], undated_fragments: str = "standalone", method: str = "era"
) -> SplitParams:
    """SplitParams from the tab's inputs; raises ValueError with a readable message."""
    given: dict[str, object] = {"undated_fragments": undated_fragments, "method": method}
    for (name, label, kind), value in zip(PARAM_FIELDS, values):
        if isinstance(value, str):
            value = value.strip()
        if name in OPTIONAL and (value in (None, "") or (name in ZERO_IS_BLANK and value in (0, "0"))):
            continue  # derived per faceset
        if value is None or value == "":
            raise ValueError(f"{label} is empty")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{label} must be a number, got {value!r}") from None
        if not math.isfinite(number):
            raise ValueError(f"{label} must be a finite number, got {value}")
        if kind is int:
            if number != int(number):
                raise ValueError(f"{label} must be a whole number, got {value}")
            given[name] = int(number)
        else:
            given[name] = number
    try:
        return SplitParams(**given)  # type: ignore[arg-type]
    except ParamError as exc:
        label = next((lab for name, lab, _ in PARAM_FIELDS if name == exc.field), exc.field)
        raise ValueError(f"{label}: {exc.problem}") from None


def default_values() -> list[object]:
    return values_from_settings({})


def values_from_settings(settings: dict) -> list[object]:
    """The tab's boxes for ``settings`` (what differs from the defaults): a blank
    text for a derived field, the default number for the others."""
    p = SplitParams(**{k: v for k, v in settings.items() if k not in ("method", "undated_fragments")})
    return [("" if getattr(p, name) is None else f"{getattr(p, name):g}") if name in OPTIONAL
            else getattr(p, name) for name, _, _ in PARAM_FIELDS]


def settings_words(settings: dict) -> str:
    """``Min sharpness 0, Era half-width (years) 3`` in the tab's own labels."""
    labels = {name: label for name, label, _ in PARAM_FIELDS}
    labels.update({"method": "Method", "undated_fragments": "Seed method: undated fragments"})
    return ", ".join(f"{labels.get(k, k)} {v:g}" if isinstance(v, float) else f"{labels.get(k, k)} {v}"
                     for k, v in sorted(settings.items())) or "the defaults"


def blank_hint(name: str) -> str:
    return BLANK.get(name, "blank: calibrated from the faceset")


def bucket_rows(buckets: Sequence[Bucket]) -> list[list[object]]:
    """Table rows, oldest first (the order of the picker and the timeline)."""
    return [
        [b.name, len(b.faces), b.dom_year or "", era_text(b.span, b.look), "yes" if b.anchor else "",
         explain.bucket_words(b.reason)]
        for b in by_years(buckets)
    ]


def summary_markdown(result: SplitResult, settings: str = "") -> str:
    """The split in the user's words, hints when a limit dropped most faces, where
    the settings came from; the method's own figures in a collapsed section."""
    c = result.counts
    p = result.params
    spans = explain.era_spans(result)
    found = c["recovered"]
    thin = sum(len(b.faces) for b in result.thin)
    lines = [
        f"**{result.faceset}**: {plural(len(result.eras), 'era')}" + (f" ({spans})" if spans else "")
        + f" from {plural(found, 'face')} of the person ({c['seed']} in the faceset, "
        f"{max(0, found - c['seed'])} more found in the photos)",
        f"Kept apart: {plural(len(result.thin), 'thin fragment')} ({plural(thin, 'face')}). "
        f"Left out: {explain.left_out_text(c['left_out'])}. {c['dated_paths']} of {c['paths']} photos dated.",
    ]
    lines += [f"⚠ {hint}" for hint in explain.hints(c, p)]
    if settings:
        lines.append(settings)
    method = (
        f"cache {c['cache']} → candidates {c['candidates']} → recovered {c['recovered']} → "
        f"gated {c['gated']} → survivors {c['survivors']} → clustered {c['clustered']}<br>"
        f"{plural(c['subclusters'], 'sub-cluster')}, {plural(c['anchors'], 'anchor')}; "
        f"anchor size {p.anchor_min} ({'scaled to the identity' if result.anchor_min_scaled else 'given'})"
        + (f"<br>thresholds: {result.calibration.values_text()} ({result.calibration.why()})<br>"
           f"quality gate: {result.calibration.gate_text()}" if result.calibration else "")
    )
    return "  \n".join(lines) + f"\n\n<details><summary>Method figures</summary>{method}</details>"


def timeline_html(buckets: Sequence[Bucket]) -> str:
    """One row per bucket, oldest first, one bar per year: what each era holds."""
    buckets = by_years(buckets)
    per = [Counter(f.year for f in b.faces if f.year) for b in buckets]
    years = sorted(set().union(*per)) if per else []
    if not years:
        return "<p>No dated faces.</p>"
    years = list(range(years[0], years[-1] + 1))
    top = max(max(c.values(), default=0) for c in per) or 1
    head = "".join(f"<th style='font-size:10px;padding:0 1px'>{str(y)[2:]}</th>" for y in years)
    rows = []
    for b, counts in zip(buckets, per):
        undated = sum(1 for f in b.faces if not f.year)
        cells = "".join(
            "<td style='vertical-align:bottom;padding:0 1px' title='{y}: {n}'>"
            "<div style='width:12px;height:{h}px;background:{c}'></div></td>".format(
                y=y, n=counts.get(y, 0), h=max(1, round(40 * counts.get(y, 0) / top)) if counts.get(y) else 0,
                c="#3b82f6" if b.kind == "era" else "#9ca3af",
            )
            for y in years
        )
        rows.append(
            f"<tr class='era-timeline-row' data-bucket='{html.escape(b.name)}'>"
            f"<td style='white-space:nowrap;padding-right:8px'>{html.escape(b.name)}</td>{cells}"
            f"<td style='padding-left:8px;font-size:11px'>{undated} undated</td></tr>"
        )
    return (
        "<table class='era-timeline' style='border-collapse:collapse'>"
        f"<tr><th></th>{head}<th></th></tr>{''.join(rows)}</table>"
    )


def _png_uri(image: Image.Image) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def variant_cards_html(variants: Sequence, size: int = 72) -> str:
    """A compact row of era cards (thumbnail, years, faces) for a host's era picker;
    ``variants`` are the ``era_variants`` hook's EraVariant records."""
    cards = []
    for v in variants:
        thumb = ""
        if v.thumbnails:
            try:
                with Image.open(v.thumbnails[0]) as im:
                    small = im.convert("RGB").resize((size, size))
            except (OSError, ValueError, Image.DecompressionBombError):
                small = None  # a crop that vanished or was damaged: the card without it
            if small is not None:
                thumb = (f"<img src='{_png_uri(small)}' width='{size}' height='{size}' "
                         f"alt='{html.escape(v.name)}' style='border-radius:4px'>")
        cards.append(
            f"<div class='era-card' data-bucket='{html.escape(v.name)}' style='border:1px solid #d1d5db;"
            "border-radius:8px;padding:6px;display:flex;flex-direction:column;align-items:center;gap:4px'>"
            f"{thumb}<div style='font-weight:600'>{html.escape(v.label)}</div>"
            f"<div style='font-size:11px'>{plural(v.faces, 'face')}</div></div>"
        )
    return f"<div class='era-cards' style='display:flex;flex-wrap:wrap;gap:8px'>{''.join(cards)}</div>"


def era_cards_html(buckets: Sequence[Bucket], per_bucket: int = 4, size: int = 96, born: int | None = None) -> str:
    """One card per era, oldest first: its years (and age, where known), its size
    and its best crops, rendered in memory (a preview writes nothing). Cards
    wrap; nothing scrolls inside them, and no caption is cut."""
    if not buckets:
        return "<p>No era.</p>"
    cards = []
    for b in by_years(buckets):
        imgs = []
        for rank, face in enumerate(b.faces[:per_bucket]):
            try:
                crop = render_crop(open_displayed(face.path), face.box, size)
            except Exception:
                continue  # a photo that vanished since the plan: nothing to show
            imgs.append(f"<img src='{_png_uri(crop)}' width='{size}' height='{size}' "
                        f"alt='{html.escape(b.name)} #{rank + 1}' style='border-radius:4px'>")
        cards.append(
            f"<div class='era-card' data-bucket='{html.escape(b.name)}' style='border:1px solid #d1d5db;"
            "border-radius:8px;padding:8px;display:flex;flex-direction:column;gap:6px'>"
            f"<div style='font-weight:600'>{html.escape(era_text(b.span, b.look, b.apparent_age, born))} · "
            f"{plural(len(b.faces), 'face')}</div>"
            f"<div style='display:flex;gap:4px'>{''.join(imgs)}</div>"
            f"<div style='font-size:11px;color:#4b5563'>{html.escape(b.name)}</div></div>"
        )
    return f"<div class='era-cards' style='display:flex;flex-wrap:wrap;gap:10px'>{''.join(cards)}</div>"
