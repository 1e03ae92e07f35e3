"""``era-split validate``: load bundles the way roop-unleashed's faceset loader does.

roop unzips a ``.fsz``, keeps the names ending in lowercase ``.png``, runs its
analyser on each and adds *every* face it finds to the identity. A crop with no
face adds nothing; one with two faces adds a stranger; a bundle with no crop
gives roop nothing to swap with. This reports all three, and how far each
re-detected face lies from the embedding the cache holds for it. Detection is
one pass, as roop does it (:meth:`Analyser.as_host_loads`), at the detection
size the cache was scanned with unless one is given.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..errors import EraSplitError
from ..host.bundles import Bundle
from ..host.photos import open_photo


@dataclass
class BundleReport:
    path: str
    crops: int = 0
    no_face: list[str] = field(default_factory=list)
    several: list[str] = field(default_factory=list)
    distances: list[float] = field(default_factory=list)  # re-detected vs cached embedding

    @property
    def ok(self) -> bool:
        return self.crops > 0 and not self.no_face and not self.several

    def summary(self) -> str:
        if not self.crops:
            return f"{self.path}: no crop roop-unleashed would load (no .png member): it swaps with nothing"
        d = np.array(self.distances)
        dist = (f"distance to the cache median {np.median(d):.3f}, max {d.max():.3f}" if len(d)
                else "no cache distances")
        return (f"{self.path}: {self.crops} crops, {len(self.no_face)} with no face, "
                f"{len(self.several)} with 2+ faces; {dist}")


def validate_bundle(
    path: str, analyser, expected: Callable[[str], np.ndarray | None] | None = None
) -> BundleReport:
    """Check one ``.fsz``; ``expected(member)`` gives the cached embedding of a crop."""
    report = BundleReport(path)
    with Bundle(path) as bundle:
        for member, image in bundle.images():
            report.crops += 1
            if image is None:
                report.no_face.append(member.name)
                continue
            found = analyser.as_host_loads(image)
            if not found:
                report.no_face.append(member.name)
            elif len(found) > 1:
                report.several.append(member.name)
            want = expected(member.name) if expected else None
            if found and want is not None:
                report.distances.append(float(1.0 - found[0].embedding @ want))
    return report


def crop_checker(analyser) -> Callable[[str], str | None]:
    """For ``apply --validate``: a crop file's failure reason, or None when roop
    would find exactly one face in it."""

    def check(path: str) -> str | None:
        try:
            with open_photo(path) as (im, _):
                im.load()
                found = analyser.as_host_loads(im.convert("RGB"))
        except Exception:
            return "unreadable_crop"
        if not found:
            return "no_face_in_crop"
        if len(found) > 1:
            return "several_faces_in_crop"
        return None

    return check


def bundles_of(library: str, faceset: str) -> list[tuple[str, dict]]:
    """(bundle path, {png name: key}) for every era and thin bundle of ``faceset``."""
    from ..host.library import MANIFEST, open_library, owned_by, read_json

    lib = open_library(library)
    entries = [e for e in lib.facesets + lib.thin_eras if owned_by(e, faceset)]
    if not entries:
        lib.find_faceset(faceset)  # an unknown name is named as such
        raise EraSplitError(lib.manifest_file, f"{faceset!r} has no era split to validate (apply it first)")
    out = []
    for entry in entries:
        folder = lib.folder_of(entry)
        manifest = os.path.join(folder, MANIFEST)
        data = read_json(manifest)
        faces = data.get("faces") if isinstance(data, dict) else None
        if not isinstance(faces, list):
            raise EraSplitError(manifest, "an era manifest must be an object with a 'faces' list")
        keys = {}
        for i, f in enumerate(faces):
            if not isinstance(f, dict) or not isinstance(f.get("file"), str) or not isinstance(f.get("key"), str):
                raise EraSplitError(manifest, f"faces[{i}] needs a 'file' and a 'key' string")
            keys[f["file"]] = f["key"]
        try:
            names = sorted(os.listdir(folder))
        except OSError as exc:
            raise EraSplitError(folder, f"cannot be listed: {exc.strerror}") from None
        for name in names:
            if name.endswith(".fsz"):
                out.append((os.path.join(folder, name), keys))
    return out
