"""The era tab's pure parts: parameter parsing and what the tab shows."""

import pytest
from PIL import Image

from era_split.plugin import api
from era_split.plugin.params import SplitParams
from era_split.plugin.paths import parse_remap
from era_split.ui import views


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
    values[0] = None
    with pytest.raises(ValueError, match="Recovery radius is empty"):
        views.params_from_values(values)
    values[0] = 9
    with pytest.raises(ValueError, match=r"Recovery radius: must be a finite number in \[0, 2\], got 9.0"):
        views.params_from_values(values)


def test_views_of_a_real_plan(synth_lib):
    result = api.plan(synth_lib.root, "faceset_001", synth_lib.cache_file,
                      remaps=[parse_remap(r) for r in synth_lib.remaps])
    rows = views.bucket_rows(result.eras)
    assert [r[0] for r in rows] == [b.name for b in result.eras]
    assert all(r[1] == len(b.faces) for r, b in zip(rows, result.eras))
    md = views.summary_markdown(result)
    assert f"{len(result.eras)} eras" in md and "survivors" in md
    html = views.timeline_html(result.buckets)
    assert html.count("era-timeline-row") == len(result.buckets)
    dom = result.eras[0].dom_year
    assert f"title='{dom}: " in html
    gallery = views.preview_gallery(result.eras[:2], per_bucket=2, size=64)
    assert len(gallery) == 4
    image, caption = gallery[0]
    assert isinstance(image, Image.Image) and image.size == (64, 64)
    assert caption == f"{result.eras[0].name} #1"
