"""The era tab's pure parts: parameter parsing and what the tab shows."""

import pytest
from era_split.plugin import api
from era_split.plugin.host.paths import parse_remap
from era_split.plugin.split.params import SplitParams
from era_split.ui import views
from PIL import Image


def test_default_inputs_give_the_seeds_parameters():
    assert views.params_from_values(views.default_values()) == SplitParams()
    assert len(views.PARAM_FIELDS) == len(views.default_values())


def test_inputs_are_parsed_and_checked():
    values = views.default_values()
    values[3] = 12.0  # gradio Numbers arrive as floats
    assert views.params_from_values(values, "attach") == SplitParams(anchor_min=12, undated_fragments="attach")
    values[3] = 0
    assert views.params_from_values(values).anchor_min is None  # blank arrives as 0
    assert views.params_from_values(values, "standalone", "seed").method == "seed"
    values[3] = 12.5
    with pytest.raises(ValueError, match="whole number"):
        views.params_from_values(values)
    values = views.default_values()
    values[0], values[2] = 0, ""  # blank: calibrated per identity
    assert views.params_from_values(values).recovery is None
    assert views.params_from_values(values).subcluster is None
    values[2] = 0.6
    assert views.params_from_values(values).subcluster == 0.6
    values[0] = 9
    with pytest.raises(ValueError, match=r"Recovery radius: must be a finite number in \[0, 2\], got 9.0"):
        views.params_from_values(values)
    values = views.default_values()
    assert values[11] == "" and values[10] == ""  # the gate's limits: blank, worked out per faceset
    values[11] = "0"  # but a sharpness limit of 0 is a wish: no sharpness gate
    assert views.params_from_values(values).min_blur == 0
    values[11] = " 12.5 "
    assert views.params_from_values(values).min_blur == 12.5
    # the boxes of stored settings give back the same settings
    stored = {"min_blur": 0.0, "era_years": 3, "subcluster": 0.5}
    assert views.params_from_values(views.values_from_settings(stored)).settings() == stored
    values = views.default_values()
    values[6] = None  # the year weight has no derived value
    with pytest.raises(ValueError, match="Year weight .* is empty"):
        views.params_from_values(values)


def test_views_of_a_real_plan(synth_lib):
    result = api.plan(synth_lib.root, "faceset_001", synth_lib.cache_file,
                      remaps=[parse_remap(r) for r in synth_lib.remaps])
    rows = views.bucket_rows(result.eras)
    assert sorted(r[0] for r in rows) == sorted(b.name for b in result.eras)
    spans = [next(b.span for b in result.eras if b.name == r[0]) for r in rows]
    assert spans == sorted(spans)  # oldest first, not largest first
    assert all(r[1] == len(next(b for b in result.eras if b.name == r[0]).faces) for r in rows)
    assert not any("-" in str(r[3]) and r[3].split("-")[0] == r[3].split("-")[1] for r in rows)
    md = views.summary_markdown(result)
    assert f"{len(result.eras)} eras" in md and "of the person" in md and "Left out:" in md
    words, method = md.split("<details>")
    assert "survivors" in method and "survivors" not in words  # the method's terms only under Method figures
    html = views.timeline_html(result.buckets)
    assert html.count("era-timeline-row") == len(result.buckets)
    dom = result.eras[0].dom_year
    assert f"title='{dom}: " in html
    cards = views.era_cards_html(result.eras[:2], per_bucket=2, size=64)
    assert cards.count("class='era-card'") == 2 and cards.count("<img ") == 4
    first = min(result.eras[:2], key=lambda b: b.span)
    assert cards.index(first.name) < cards.index(max(result.eras[:2], key=lambda b: b.span).name)
    import base64
    import io
    import re

    data = re.search(r"base64,([A-Za-z0-9+/=]+)", cards).group(1)
    image = Image.open(io.BytesIO(base64.b64decode(data)))
    assert image.format == "PNG" and image.size == (64, 64)


def test_plural_and_spans():
    from era_split.plugin.labels import plural, span_text

    assert plural(1, "face") == "1 face" and plural(0, "face") == "0 faces" and plural(2, "era") == "2 eras"
    assert span_text((2015, 2015)) == "2015" and span_text((2012, 2014)) == "2012-14"


def test_split_status_and_undo_summary(synth_lib):
    from era_split.plugin.host.status import split_status, undo_summary

    assert "not split yet" in split_status(synth_lib.root, "faceset_001")
    assert undo_summary(synth_lib.root, "faceset_001") is None
    report = api.apply(synth_lib.root, "faceset_001", synth_lib.cache_file,
                       remaps=[parse_remap(r) for r in synth_lib.remaps])
    text = split_status(synth_lib.root, "faceset_001")
    assert text.startswith("**faceset_001** is already split") and f"{len(report.result.eras)} eras" in text
    ask = undo_summary(synth_lib.root, "faceset_001")
    assert all(b.name in ask for b in report.result.eras) and "The original faceset faceset_001 is kept" in ask


def test_variant_cards_show_each_era_with_its_best_crop(synth_lib):
    from era_split.hooks import impl
    from era_split.hooks.types import HostContext

    api.apply(synth_lib.root, "faceset_001", synth_lib.cache_file, remaps=[parse_remap(r) for r in synth_lib.remaps])
    found = impl.era_variants(HostContext(synth_lib.root), "faceset_001")
    cards = views.variant_cards_html(found)
    assert cards.count("class='era-card'") == len(found) >= 2
    assert cards.count("<img ") == len(found)
    assert [cards.index(v.name) for v in found] == sorted(cards.index(v.name) for v in found)
