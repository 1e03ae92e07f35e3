import datetime as dt
import json
import os

import pytest
from conftest import save_jpeg
from era_split.plugin.host.crops import open_displayed
from era_split.plugin.host.photos import (
    MISSING,
    OK,
    UNREADABLE,
    PhotoCache,
    parse_year,
    read_photo,
    read_photos,
)
from PIL import Image


@pytest.mark.parametrize(
    "tags, year",
    [
        ({"original": "2011:05:03 12:00:00"}, 2011),
        ({"original": "2011:05:03 12:00:00", "ifd0": "2015:01:01 00:00:00"}, 2011),
        ({"digitized": "2012:01:02 10:00:00", "ifd0": "2015:01:01 00:00:00"}, 2012),
        ({"ifd0": "2015:07:08 09:10:11"}, 2015),
        ({}, 0),
        ({"original": "0000:00:00 00:00:00"}, 0),
        ({"original": "1970:01:01 00:00:00"}, 0),
        ({"original": "2099:12:31 23:59:59"}, 0),
        ({"original": "2011:05:03 12:00:00 garbage"}, 0),
        ({"original": "2011:13:03 12:00:00"}, 0),
        ({"original": "2011:05:03 12:00:00\x00\x00"}, 2011),  # padded, as some cameras do
        ({"original": "0000:00:00 00:00:00", "ifd0": "2009:02:03 04:05:06"}, 2009),  # next tag
    ],
)
def test_exif_year_as_cameras_write_it(tmp_path, tags, year):
    path = save_jpeg(str(tmp_path / "a.jpg"), **tags)
    info = read_photo(path)
    assert info.status == OK and info.year == year


def test_parse_year_bounds():
    this_year = dt.date.today().year
    assert parse_year(f"{this_year}:01:01 00:00:00") == this_year
    assert parse_year(f"{this_year + 1}:01:01 00:00:00") == 0
    assert parse_year("1990:01:01") == 1990 and parse_year("1989:12:31") == 0
    assert parse_year(b"2011:05:03 12:00:00") == 2011 and parse_year(None) == 0


def test_orientation_swaps_displayed_size_and_crops_upright(tmp_path):
    shown = Image.new("RGB", (300, 200), (0, 0, 255))
    shown.paste((255, 0, 0), (0, 0, 50, 50))  # red mark top-left as displayed
    stored = shown.transpose(Image.Transpose.ROTATE_90)  # camera held sideways
    path = save_jpeg(str(tmp_path / "r.jpg"), image=stored, orientation=6, original="2011:01:01 00:00:00")
    info = read_photo(path)
    assert (info.width, info.height) == (300, 200)
    upright = open_displayed(path)
    assert upright.size == (300, 200)
    r, g, b = upright.getpixel((10, 10))
    assert r > 200 and b < 60


def test_missing_truncated_and_not_an_image(tmp_path):
    assert read_photo(str(tmp_path / "nope.jpg")).status == MISSING
    path = save_jpeg(str(tmp_path / "t.jpg"), original="2011:01:01 00:00:00")
    data = open(path, "rb").read()
    with open(path, "wb") as fh:
        fh.write(data[:40])
    assert read_photo(path).status == UNREADABLE
    bad = tmp_path / "x.jpg"
    bad.write_bytes(b"not a jpeg at all")
    assert read_photo(str(bad)).status == UNREADABLE


def test_png_and_odd_file_names(tmp_path):
    path = str(tmp_path / "ünïcode name #1.png")
    im = Image.new("RGB", (40, 30))
    exif = Image.Exif()
    exif[0x0132] = "2013:03:03 03:03:03"
    im.save(path, exif=exif)
    assert read_photo(path).year == 2013


def test_cache_is_invalidated_by_size_or_mtime(tmp_path):
    cache_file = str(tmp_path / "state" / "photos.json")
    path = save_jpeg(str(tmp_path / "a.jpg"), original="2011:05:03 12:00:00")
    assert read_photos([path], PhotoCache(cache_file))[path].year == 2011
    stored = json.load(open(cache_file))["photos"][path]
    assert stored[2:4] == ["ok", 2011]
    # a cached answer is used as long as size and mtime match ...
    st = os.stat(path)
    data = json.load(open(cache_file))
    data["photos"][path][3] = 1999
    json.dump(data, open(cache_file, "w"))
    assert PhotoCache(cache_file).get(path).year == 1999
    # ... and re-read when the file changes
    save_jpeg(path, original="2016:05:03 12:00:00", size=(641, 480))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert read_photos([path], PhotoCache(cache_file))[path].year == 2016


def test_broken_cache_file_is_only_slower(tmp_path):
    cache_file = tmp_path / "photos.json"
    cache_file.write_text("{not json")
    path = save_jpeg(str(tmp_path / "a.jpg"), original="2011:05:03 12:00:00")
    assert PhotoCache(str(cache_file)).get(path).year == 2011
