"""Evidence images with real files: formats, bombs, EXIF/GPS stripping, the original and its hash."""

from __future__ import annotations

import hashlib
import io

import pytest
from django.core.files.storage import default_storage
from django.test import Client
from PIL import Image

from reports.images import ImageRefused, image_process
from reports.services import report_create
from tests.cast import Cast
from tests.reports.files import image_bytes, jpeg_with_gps, png_bomb, upload


def _exif(data: bytes) -> Image.Exif:
    with Image.open(io.BytesIO(data)) as image:
        return image.getexif()


def test_it_strips_gps_and_applies_orientation_in_the_copies() -> None:
    original = jpeg_with_gps(size=(64, 48), orientation=6)
    assert _exif(original).get_ifd(0x8825)  # the phone's GPS is really in the file

    processed = image_process(data=original)

    for copy in (processed.display, processed.thumb):
        exif = _exif(copy)
        assert not exif.get_ifd(0x8825)
        assert 0x0112 not in exif
    with Image.open(io.BytesIO(processed.display)) as shown:
        assert shown.format == "JPEG"
        assert shown.size == (48, 64)  # rotated upright, as the phone meant it
    assert processed.sha256 == hashlib.sha256(original).hexdigest()
    assert processed.original == original


@pytest.mark.parametrize(("fmt", "mode", "content_type"), [
    ("PNG", "RGBA", "image/png"), ("WEBP", "RGB", "image/webp"), ("JPEG", "RGB", "image/jpeg"),
])
def test_it_accepts_jpeg_png_and_webp(fmt: str, mode: str, content_type: str) -> None:
    processed = image_process(data=image_bytes(fmt, size=(600, 400), mode=mode))
    assert processed.content_type == content_type
    with Image.open(io.BytesIO(processed.thumb)) as thumb:
        assert max(thumb.size) == 320


@pytest.mark.parametrize("data", [
    image_bytes("GIF"),
    image_bytes("BMP"),
    b"%PDF-1.4 not an image at all",
    b"GIF89a" + b"\x00" * 100,
], ids=["gif", "bmp", "pdf", "garbage"])
def test_it_refuses_wrong_formats(data: bytes) -> None:
    with pytest.raises(ImageRefused, match="not a JPEG, PNG or WebP"):
        image_process(data=data)


def test_it_refuses_a_decompression_bomb() -> None:
    bomb = png_bomb()
    assert len(bomb) < 200_000  # tiny on the wire, ten billion pixels once decoded
    with pytest.raises(ImageRefused, match="too many pixels"):
        image_process(data=bomb)


def test_it_refuses_images_over_the_configured_pixel_cap(settings: object) -> None:
    settings.REPORT_IMAGE_MAX_PIXELS = 1_000_000  # type: ignore[attr-defined]
    with pytest.raises(ImageRefused, match="over the limit of 1,000,000 pixels"):
        image_process(data=image_bytes("PNG", size=(1200, 1000)))
    assert image_process(data=image_bytes("PNG", size=(1000, 1000))).width == 1000


def test_it_refuses_a_truncated_image() -> None:
    data = jpeg_with_gps(size=(400, 300))
    with pytest.raises(ImageRefused):
        image_process(data=data[: len(data) // 2])


def test_it_keeps_the_report_when_one_image_is_bad(cast: Cast) -> None:
    result = report_create(
        reporter=cast.alice, kind="graffiti", description="Tag on the shutter.",
        files=[upload("good.jpg", jpeg_with_gps()), upload("evil.gif", image_bytes("GIF"), "image/gif"),
               upload("bomb.png", png_bomb(), "image/png")],
    )
    assert result.created
    assert result.report.files.count() == 1
    assert [(r.name, r.reason) for r in result.refused] == [
        ("evil.gif", "it is not a JPEG, PNG or WebP image"),
        ("bomb.png", "it has too many pixels to be a real photo (refused as unsafe)"),
    ]


def test_it_serves_members_the_stripped_copy_and_officers_the_original(cast: Cast) -> None:
    original = jpeg_with_gps()
    result = report_create(
        reporter=cast.alice, kind="graffiti", description="Tag on the shutter.", files=[upload("tag.jpg", original)]
    )
    item = result.report.files.get()
    assert item.sha256 == hashlib.sha256(original).hexdigest()
    with default_storage.open(item.original_path) as stored:
        assert stored.read() == original  # kept byte for byte

    alice = Client()
    alice.force_login(cast.alice)
    shown = b"".join(alice.get(f"/reports/files/{item.pk}/display/").streaming_content)
    assert not _exif(shown).get_ifd(0x8825)
    assert alice.get(f"/reports/files/{item.pk}/original/").status_code == 404

    officer = Client()
    officer.force_login(cast.officer)
    response = officer.get(f"/reports/files/{item.pk}/original/")
    assert response.status_code == 200
    fetched = b"".join(response.streaming_content)
    assert hashlib.sha256(fetched).hexdigest() == item.sha256
    assert _exif(fetched).get_ifd(0x8825)  # evidence keeps its metadata
    assert response["Cache-Control"] == "private, no-store"


def test_it_stores_files_in_private_storage_only(cast: Cast, media: object) -> None:
    result = report_create(reporter=cast.alice, kind="graffiti", description="Tag.", files=[upload("t.jpg", jpeg_with_gps())])
    item = result.report.files.get()
    assert str(default_storage.path(item.original_path)).startswith(str(media))
    client = Client()
    client.force_login(cast.alice)
    # There is no MEDIA_URL: nothing under the storage folder is reachable except through the checked view.
    assert client.get(f"/media/{item.original_path}").status_code == 404
