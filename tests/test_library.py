import copy
import json
import os

import pytest
from era_split.plugin.errors import EraSplitError
from era_split.plugin.host.library import open_library, remove_split, replace_split


def era(name, parent="fs1", kind="era"):
    return {"name": name, "relpath": name if kind == "era" else f"_thin/{name}", "faces": 3,
            "era_split": {"parent": parent, "kind": kind}}


HOST = {
    "version": 3,
    "facesets": [
        {"name": "fs0", "relpath": "fs0", "faces": 1, "custom": {"a": 1}},
        {"name": "fs1", "relpath": "fs1", "faces": 9},
        {"name": "fs2", "relpath": "fs2", "faces": 4, "zz": True},
    ],
}


def test_first_merge_places_eras_after_parent_and_creates_thin_eras():
    out = replace_split(HOST, "fs1", [era("fs1_2011"), era("fs1_2019")], [era("fs1_2007", kind="thin")])
    assert [e["name"] for e in out["facesets"]] == ["fs0", "fs1", "fs1_2011", "fs1_2019", "fs2"]
    assert [e["name"] for e in out["thin_eras"]] == ["fs1_2007"]
    assert out["version"] == 3 and out["facesets"][0]["custom"] == {"a": 1}
    assert HOST["facesets"][1] == {"name": "fs1", "relpath": "fs1", "faces": 9}  # input untouched
    assert list(out) == ["version", "facesets", "thin_eras"]


def test_remerge_replaces_in_place_and_is_idempotent():
    once = replace_split(HOST, "fs1", [era("fs1_2011")], [era("fs1_2007", kind="thin")])
    once = replace_split(once, "fs2", [era("fs2_2015", "fs2")], [era("fs2_2001", "fs2", "thin")])
    host_added = copy.deepcopy(once)
    host_added["facesets"].append({"name": "fs3", "relpath": "fs3"})
    host_added["thin_eras"].append({"name": "mine", "relpath": "mine"})
    again = replace_split(host_added, "fs1", [era("fs1_2011")], [era("fs1_2007", kind="thin")])
    assert again == host_added
    changed = replace_split(host_added, "fs1", [era("fs1_2012")], [])
    assert [e["name"] for e in changed["facesets"]] == ["fs0", "fs1", "fs1_2012", "fs2", "fs2_2015", "fs3"]
    assert [e["name"] for e in changed["thin_eras"]] == ["fs2_2001", "mine"]


def test_undo_restores_the_manifest_json_equal():
    before = copy.deepcopy(HOST)
    m = replace_split(HOST, "fs1", [era("fs1_2011")], [era("fs1_2007", kind="thin")])
    m = replace_split(m, "fs2", [era("fs2_2015", "fs2")], [era("fs2_2001", "fs2", "thin")])
    m = replace_split(m, "fs1", [era("fs1_2012")], [era("fs1_2008", kind="thin")])
    m = remove_split(m, "fs1")
    assert [e["name"] for e in m["thin_eras"]] == ["fs2_2001"]
    assert remove_split(m, "fs2") == before


def test_host_thin_eras_array_is_kept_on_undo():
    host = copy.deepcopy(HOST)
    host["thin_eras"] = []
    m = replace_split(host, "fs1", [], [era("fs1_2007", kind="thin")])
    assert remove_split(m, "fs1") == host


def write_manifest(root, data):
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, "manifest.json"), "w") as fh:
        fh.write(data if isinstance(data, str) else json.dumps(data))


@pytest.mark.parametrize(
    "data, message",
    [
        ("{not json", "is not valid JSON"),
        ([], "must be a JSON object"),
        ({"thin_eras": []}, "has no 'facesets' array"),
        ({"facesets": {}}, "'facesets' must be an array"),
        ({"facesets": ["fs"]}, "entry must be an object"),
        ({"facesets": [{"name": "../up", "relpath": "x"}]}, "not a plain folder name"),
        ({"facesets": [{"name": "a", "relpath": "../outside"}]}, "leaves the library"),
        ({"facesets": [{"name": "a", "relpath": "/etc"}]}, "must be relative"),
        ({"facesets": [{"name": "a", "relpath": "C:\\x"}]}, "must be relative"),
        ({"facesets": [{"name": 5, "relpath": "a"}]}, "non-empty string"),
    ],
)
def test_bad_library_manifests_are_named(tmp_path, data, message):
    write_manifest(str(tmp_path), data)
    with pytest.raises(EraSplitError) as err:
        open_library(tmp_path)
    assert message in str(err.value) and "manifest.json" in str(err.value)


def test_symlink_out_of_the_library_is_refused(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    lib = tmp_path / "lib"
    write_manifest(str(lib), {"facesets": [{"name": "a", "relpath": "a"}]})
    os.symlink(outside, lib / "a")
    with pytest.raises(EraSplitError, match="outside the library"):
        open_library(lib)


def test_non_utf8_manifest(tmp_path):
    tmp_path.joinpath("manifest.json").write_bytes(b'{"facesets": ["\xff"]}')
    with pytest.raises(EraSplitError, match="not UTF-8"):
        open_library(tmp_path)
