"""What a split left out and why, in the user's words: one source for the CLI
report, the era tab, the roop panel and batch results.

Every face the method took for the person and that is in no bucket is counted
under one reason in ``counts["left_out"]``; this turns those counts into text,
and when one limit alone drops most of the person's faces, into a hint that
names the limit and the setting that changes it.
"""

from __future__ import annotations

from .labels import plural

# reason -> (what happened, in words; the setting that changes it, or None)
LEFT_OUT = {
    "blurry": ("blurry", "min_blur"),
    "small_face": ("too small", "min_face"),
    "low_detector_score": ("unsure detections", "min_det"),
    "unlike_the_person": ("unlike the person's other faces", "tighten"),
    "overlapping_face": ("too close to another face to crop alone", None),
    "box_outside_photo": ("boxes outside their photo", None),
    "missing_photo": ("photo missing", None),
    "unreadable_photo": ("photo unreadable", None),
    "key_not_in_cache": ("not in the embedding cache", None),
    "no_face_in_crop": ("crop not seen as a face by the host", None),
    "several_faces_in_crop": ("crop shows two faces to the host", None),
    "unreadable_crop": ("crop unreadable", None),
}
# why a bucket exists (results.REASONS in the method's terms, for --verbose)
BUCKET_WORDS = {
    "anchor": "photos that look alike and share their years",
    "anchor_with_fragments": "photos that look alike and share their years, with a few more of those years",
    "split_by_years": "one look over many years, cut into its years",
    "merged_fragments": "small groups of the same years and close looks, together",
    "fragment_no_anchor": "a small group; no group is big enough to be an era",
    "fragment_far": "a small group that looks unlike every era",
    "fragment_other_years": "a small group whose years match no era",
    "fragment_undated": "undated photos that match no era",
    "suspected_other_person": "probably another person: looks apart, with almost none of your faceset's faces",
}


def bucket_words(reason: str) -> str:
    return BUCKET_WORDS.get(reason, reason.replace("_", " "))


# setting -> (CLI flag, the tab's field)
SETTINGS = {
    "min_blur": ("--min-blur", "Min sharpness"),
    "min_face": ("--min-face", "Min face size"),
    "min_det": ("--min-det", "Min detector score"),
    "tighten": ("--tighten", "Tighten radius"),
}
MOST = 0.5


def reason_words(reason: str) -> str:
    return LEFT_OUT.get(reason, (reason.replace("_", " "), None))[0]


def left_out_text(left_out: dict[str, int]) -> str:
    """``12 blurry, 3 too small`` (largest first), or ``none``."""
    items = sorted(left_out.items(), key=lambda kv: (-kv[1], kv[0]))
    return ", ".join(f"{n} {reason_words(k)}" for k, n in items if n) or "none"


def hints(counts: dict, params) -> list[str]:
    """One line per limit that alone left out most of the person's faces found."""
    found = int(counts.get("recovered", 0))
    out = []
    for reason, n in sorted(counts.get("left_out", {}).items(), key=lambda kv: -kv[1]):
        words, setting = LEFT_OUT.get(reason, (reason, None))
        if not found or n <= found * MOST or setting is None:
            continue
        flag, field = SETTINGS[setting]
        value = getattr(params, setting, None)
        lower = f"{flag} {_lower(setting, value)}" if value is not None else flag
        out.append(f"Most of the person's faces ({n} of {found}) were left out as {words} "
                   f"(limit {value:g}): {lower} keeps more ({field} in the era tab).")
    return out


def _lower(setting: str, value: float) -> str:
    if setting == "tighten":
        return f"{min(0.8, value * 1.25):.2f}"
    return f"{value / 2:g}"


def era_spans(result) -> str:
    """The eras oldest first as the pickers name them: ``2008-10 · looks about 25, 2015``."""
    from .labels import era_text
    from .results import by_years

    return ", ".join(era_text(b.span, b.look, b.apparent_age, result.params.born) for b in by_years(result.eras))


def summary_line(result) -> str:
    """``3 eras (2008-10, 2011-13, 2015), 2 thin groups; left out: 4 blurry``."""
    spans = era_spans(result)
    return (f"{plural(len(result.eras), 'era')}" + (f" ({spans})" if spans else "")
            + f", {plural(len(result.thin), 'thin group')}; left out: {left_out_text(result.counts['left_out'])}")
