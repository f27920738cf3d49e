"""Evidence images: accept JPEG, PNG and WebP only, refuse bombs, hash the original, re-encode what people see.

The original bytes are kept untouched (their SHA-256 is the evidence-integrity record) for case officers and
police. Everyone else gets a re-encoded copy: orientation applied, no EXIF (so no GPS), plus a thumbnail.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

from django.conf import settings
from PIL import Image, ImageOps, UnidentifiedImageError

# Pillow format name -> (content type, file extension).
ACCEPTED_FORMATS: dict[str, tuple[str, str]] = {
    "JPEG": ("image/jpeg", "jpg"),
    "PNG": ("image/png", "png"),
    "WEBP": ("image/webp", "webp"),
}
DISPLAY_MAX_SIDE = 2048
THUMB_MAX_SIDE = 320


class ImageRefused(ValueError):
    """An upload that is not an image we accept; the message is safe to show to the person who sent it."""


@dataclass(frozen=True)
class ProcessedImage:
    original: bytes
    sha256: str
    content_type: str
    extension: str
    width: int
    height: int
    display: bytes
    thumb: bytes


def max_pixels() -> int:
    # Pillow's own cap (Image.MAX_IMAGE_PIXELS) stays in force too: it refuses outright at twice its value.
    return int(getattr(settings, "REPORT_IMAGE_MAX_PIXELS", None) or Image.MAX_IMAGE_PIXELS or 0)


def _encode_jpeg(image: Image.Image, max_side: int) -> bytes:
    copy = image.copy()
    copy.thumbnail((max_side, max_side))
    if copy.mode not in ("RGB", "L"):
        rgba = copy.convert("RGBA")
        copy = Image.new("RGB", rgba.size, (255, 255, 255))
        copy.paste(rgba, mask=rgba.getchannel("A"))
    out = io.BytesIO()
    # No exif= argument: the copy carries no EXIF, so no GPS, camera serial or original timestamp.
    copy.save(out, format="JPEG", quality=85, optimize=True)
    return out.getvalue()


def image_process(*, data: bytes) -> ProcessedImage:
    """Check one upload and make its member-safe copies; raises ImageRefused with a reason to show."""
    digest = hashlib.sha256(data).hexdigest()
    try:
        image = Image.open(io.BytesIO(data), formats=list(ACCEPTED_FORMATS))
    except Image.DecompressionBombError:
        raise ImageRefused("it has too many pixels to be a real photo (refused as unsafe)") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise ImageRefused("it is not a JPEG, PNG or WebP image") from None
    with image:
        fmt = image.format or ""
        if fmt not in ACCEPTED_FORMATS:
            raise ImageRefused("it is not a JPEG, PNG or WebP image")
        width, height = image.size
        if width * height > max_pixels():
            raise ImageRefused(
                f"it is {width}x{height} pixels, over the limit of {max_pixels():,} pixels"
            )
        try:
            image.load()
            upright = ImageOps.exif_transpose(image)
            display = _encode_jpeg(upright, DISPLAY_MAX_SIDE)
            thumb = _encode_jpeg(upright, THUMB_MAX_SIDE)
            shown_width, shown_height = upright.size
        except Image.DecompressionBombError:
            raise ImageRefused("it has too many pixels to be a real photo (refused as unsafe)") from None
        except (OSError, SyntaxError, ValueError):
            raise ImageRefused("the image is damaged or incomplete") from None
    content_type, extension = ACCEPTED_FORMATS[fmt]
    return ProcessedImage(
        original=data, sha256=digest, content_type=content_type, extension=extension,
        width=shown_width, height=shown_height, display=display, thumb=thumb,
    )
