"""Draw docs/eras.png, the README's picture: the demo's eras on a timeline, each
with its best crops. Run after the demo: ``python docs/figure.py era-split-demo``.

The faces are the demo's drawn faces, no real person's.
"""

from __future__ import annotations

import json
import os
import sys

from PIL import Image, ImageDraw, ImageFont

CROP = 96
PER_ERA = 3


def main(demo: str, out: str) -> None:
    root = os.path.join(demo, "facesets_swap_ready")
    with open(os.path.join(root, "manifest.json"), encoding="utf-8") as fh:
        manifest = json.load(fh)
    eras = [e for e in manifest["facesets"]
            if e.get("era_split", {}).get("parent") == "faceset_001" and e["era_split"].get("span")]
    eras.sort(key=lambda e: tuple(e["era_split"]["span"]))
    first = min(e["era_split"]["span"][0] for e in eras)
    last = max(e["era_split"]["span"][1] for e in eras)
    col = CROP + 24
    width, height = 40 + col * len(eras), 70 + PER_ERA * (CROP + 6) + 60
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    draw.text((20, 12), f"faceset_001 split into {len(eras)} eras, {first}-{last}", fill="black", font=font)
    axis = height - 40
    draw.line([20, axis, width - 20, axis], fill=(120, 120, 120), width=2)
    for i, e in enumerate(eras):
        x = 20 + i * col + 12
        folder = os.path.join(root, e["relpath"])
        for r in range(PER_ERA):
            path = os.path.join(folder, f"{r:04d}.png")
            if os.path.isfile(path):
                with Image.open(path) as im:
                    img.paste(im.convert("RGB").resize((CROP, CROP)), (x, 40 + r * (CROP + 6)))
        lo, hi = e["era_split"]["span"]
        label = str(lo) if lo == hi else f"{lo}-{str(hi)[2:]}"
        draw.line([x + CROP // 2, axis - 6, x + CROP // 2, axis + 6], fill=(59, 130, 246), width=3)
        draw.text((x + 4, axis + 10), f"{label}  {e['faces']} faces", fill="black", font=font)
    img.save(out, optimize=True)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "era-split-demo",
         sys.argv[2] if len(sys.argv) > 2 else os.path.join(os.path.dirname(__file__), "eras.png"))
