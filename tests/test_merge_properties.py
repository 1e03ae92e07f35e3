"""Property tests for the library manifest merge: whatever the host wrote survives."""

import copy

from era_split.plugin.host.library import owned_by, remove_split, replace_split
from hypothesis import given, settings
from hypothesis import strategies as st

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)
names = st.text(alphabet="abcdefgh_0123", min_size=1, max_size=6)


@st.composite
def host_manifests(draw):
    facesets = draw(st.lists(names, min_size=1, max_size=6, unique=True))
    entries = []
    for name in facesets:
        extra = draw(st.dictionaries(st.sampled_from(["faces", "note", "tags", "x"]), json_values, max_size=3))
        entries.append({"name": name, "relpath": name, **extra})
    manifest = {"facesets": entries}
    for key in draw(st.lists(st.sampled_from(["version", "host", "zeta"]), unique=True, max_size=2)):
        manifest[key] = draw(json_values)
    if draw(st.booleans()):
        manifest["thin_eras"] = [{"name": f"host_thin_{i}", "relpath": f"t{i}"} for i in range(draw(st.integers(0, 2)))]
    return manifest


def ours(parent, label, kind):
    return {"name": f"{parent}_{label}", "relpath": f"{parent}_{label}",
            "era_split": {"parent": parent, "kind": kind}}


@st.composite
def operations(draw, parents):
    ops = []
    for _ in range(draw(st.integers(1, 6))):
        parent = draw(st.sampled_from(parents))
        if draw(st.integers(0, 3)) == 0:
            ops.append(("undo", parent, [], []))
        else:
            eras = [ours(parent, f"e{y}", "era") for y in draw(st.lists(st.integers(0, 9), unique=True, max_size=3))]
            thin = [ours(parent, f"t{y}", "thin") for y in draw(st.lists(st.integers(0, 9), unique=True, max_size=3))]
            ops.append(("apply", parent, eras, thin))
    return ops


def foreign(manifest):
    return {k: (v if k not in ("facesets", "thin_eras") else [e for e in v if not owned_by(e)])
            for k, v in manifest.items()}


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_host_entries_keys_and_order_survive_and_undo_restores(data):
    host = data.draw(host_manifests())
    original = copy.deepcopy(host)
    parents = [e["name"] for e in host["facesets"]]
    manifest = host
    for op, parent, eras, thin in data.draw(operations(parents)):
        manifest = replace_split(manifest, parent, eras, thin) if op == "apply" else remove_split(manifest, parent)
        # the host's part is untouched, in order; the input object was not mutated
        view = foreign(manifest)
        expected = foreign(original)
        if "thin_eras" not in original and "thin_eras" in view:
            assert view.pop("thin_eras") == []
        assert view == expected
        assert host == original
        mine = [e["name"] for e in manifest["facesets"] + manifest.get("thin_eras", []) if owned_by(e)]
        assert len(mine) == len(set(mine))
        if op == "apply":
            got = [e for e in manifest["facesets"] if owned_by(e, parent)]
            assert [e["name"] for e in got] == [e["name"] for e in eras]
            # eras sit right after their parent the first time, and stay together
            idx = [i for i, e in enumerate(manifest["facesets"]) if owned_by(e, parent)]
            assert idx == list(range(idx[0], idx[0] + len(idx))) if idx else True
            again = replace_split(manifest, parent, eras, thin)
            assert again == manifest  # idempotent
    for parent in parents:
        manifest = remove_split(manifest, parent)
    assert manifest == original
