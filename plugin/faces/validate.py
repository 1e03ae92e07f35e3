"""``era-split validate``: load bundles the way roop-unleashed's faceset loader does.

roop unzips a ``.fsz``, keeps the names ending in lowercase ``.png``, runs its
analyser on each and adds *every* face it finds to the identity. A crop with no
face adds nothing; one with two faces adds a stranger. This reports both, and
how far each re-detected face lies from the embedding the cache holds for it.
"""

from __future__ import annotations

import io
import os
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from ..errors import EraSplitError
from ..host.fsutil import open_regular
from .models import detect


@dataclass
class BundleReport:
    path: str
    crops: int = 0
    no_face: list[str] = field(default_factory=list)
    several: list[str] = field(default_factory=list)
    distances: list[float] = field(default_factory=list)  # re-detected vs cached embedding

    @property
    def ok(self) -> bool:
        return not self.no_face and not self.several

    def summary(self) -> str:
        d = np.array(self.distances)
        dist = (f"distance to the cache median {np.median(d):.3f}, max {d.max():.3f}" if len(d)
                else "no cache distances")
        return (f"{self.path}: {self.crops} crops, {len(self.no_face)} with no face, "
                f"{len(self.several)} with 2+ faces; {dist}")


def validate_bundle(
    path: str, app, expected: Callable[[str], np.ndarray | None] | None = None
) -> BundleReport:
    """Check one ``.fsz``; ``expected(member)`` gives the cached embedding of a crop."""
    report = BundleReport(path)
    try:
        with open_regular(path) as fh, zipfile.ZipFile(fh) as zf:
            for name in sorted(n for n in zf.namelist() if n.endswith(".png")):
                report.crops += 1
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        image = Image.open(io.BytesIO(zf.read(name))).convert("RGB")
                except Exception:
                    report.no_face.append(name)
                    continue
                found = detect(app, image)
                if not found:
                    report.no_face.append(name)
                elif len(found) > 1:
                    report.several.append(name)
                want = expected(name) if expected else None
                if found and want is not None:
                    report.distances.append(float(1.0 - found[0].embedding @ want))
    except (OSError, zipfile.BadZipFile) as exc:
        raise EraSplitError(path, f"is not a readable .fsz: {exc}") from None
    return report


def crop_checker(app) -> Callable[[str], str | None]:
    """For ``apply --validate``: a crop file's failure reason, or None when roop
    would find exactly one face in it."""

    def check(path: str) -> str | None:
        try:
            with open_regular(path) as fh, Image.open(fh) as im:
                found = detect(app, im.convert("RGB"))
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
        raise EraSplitError(lib.manifest_file, f"{faceset!r} has no era split to validate (apply it first)")
    out = []
    for entry in entries:
        folder = lib.folder_of(entry)
        data = read_json(os.path.join(folder, MANIFEST))
        keys = {f.get("file"): f.get("key") for f in data.get("faces", []) if isinstance(f, dict)}
        for name in sorted(os.listdir(folder)):
            if name.endswith(".fsz"):
                out.append((os.path.join(folder, name), keys))
    return out
