"""Real JPEGs with Pillow: the facts of an uploaded image, baseUrl renditions, and generated
pictures colourful but flat enough that an "enhance" job (auto-contrast, sharpen) visibly
changes them.
"""

from __future__ import annotations

import io
import random

from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, UnidentifiedImageError


def image_facts(content: bytes) -> tuple[str, int, int] | None:
    """(MIME type, width, height) of an image Pillow can read, else ``None``."""
    try:
        with Image.open(io.BytesIO(content)) as image:
            mime = Image.MIME.get(image.format or "")
            width, height = image.size
    except (UnidentifiedImageError, OSError, ValueError):
        return None
    return (mime, width, height) if mime else None


def rendition(content: bytes, options: str) -> bytes:
    """The bytes a ``baseUrl=<options>`` answer carries.

    ``d`` is the original; ``wN``, ``hN`` (``w200-h100``) scale the picture down to fit, keeping
    its aspect ratio as Google does without ``-c``; anything else gets the original.
    """
    parts = {p[:1]: p[1:] for p in options.split("-") if p}
    if "d" in parts or not ({"w", "h"} & parts.keys()):
        return content
    try:
        width = int(parts.get("w") or 0)
        height = int(parts.get("h") or 0)
    except ValueError:
        return content
    with Image.open(io.BytesIO(content)) as image:
        box = (width or image.width, height or image.height)
        if box[0] >= image.width and box[1] >= image.height:
            return content
        fitted = image.convert("RGB")
        fitted.thumbnail(box)
        out = io.BytesIO()
        fitted.save(out, "JPEG", quality=85)
        return out.getvalue()


def generate_photo(seed: int, width: int = 640, height: int = 480) -> bytes:
    """A colourful but flat (low-contrast, slightly soft) JPEG, the same for the same seed.

    Auto-contrast and sharpening change such a picture a lot, which is what a demo of an
    "enhance" job needs to show.
    """
    rng = random.Random(seed)  # noqa: S311 -- pictures, not secrets; repeatable by seed

    def colour() -> tuple[int, int, int]:
        hue = rng.random()
        # Vivid colours from a hue, via the HSV cone (Pillow has no direct helper for one).
        rgb = Image.new("HSV", (1, 1), (int(hue * 255), 200, 230)).convert("RGB").getpixel((0, 0))
        assert isinstance(rgb, tuple)
        return (int(rgb[0]), int(rgb[1]), int(rgb[2]))

    mask = Image.linear_gradient("L").rotate(rng.uniform(0, 360)).resize((width, height))
    picture = Image.composite(
        Image.new("RGB", (width, height), colour()),
        Image.new("RGB", (width, height), colour()),
        mask,
    )
    draw = ImageDraw.Draw(picture)
    for _ in range(rng.randint(5, 9)):
        x, y = rng.randrange(width), rng.randrange(height)
        radius = rng.randint(min(width, height) // 12, min(width, height) // 3)
        box = (x - radius, y - radius, x + radius, y + radius)
        if rng.random() < 0.5:
            draw.ellipse(box, fill=colour())
        else:
            draw.rectangle(box, fill=colour())
    picture = picture.filter(ImageFilter.GaussianBlur(1.5))
    picture = ImageEnhance.Contrast(picture).enhance(0.35)
    exif = Image.Exif()
    exif[0x010F] = "grantkeeper"  # Make
    exif[0x0110] = "emulator"  # Model
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=88, exif=exif)
    return out.getvalue()
