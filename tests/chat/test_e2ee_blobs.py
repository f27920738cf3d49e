"""Encrypted attachment blobs: stored privately as opaque bytes, served to group members only, expired with the
group's retention and purged by the chat purge job."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path

import pytest
import time_machine
from django.utils import timezone
from pytest_django.fixtures import Settings

from chat import crypto, jobs
from chat.models import Blob
from members.models import AuditEvent
from tests.cast import Cast
from tests.chat.test_hub_kit import API, api_client

pytestmark = pytest.mark.django_db

PHOTO = b"\xff\xd8\xff\xe0 a JPEG of the van, number plate and all"


@pytest.fixture(autouse=True)
def media(settings: Settings, tmp_path: Path) -> Path:
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


def upload(client: object, group: int, data: bytes, content_type: str = "application/octet-stream") -> object:
    return client.post(f"{API}blobs?group={group}", data=data, content_type=content_type)  # type: ignore[attr-defined]


def test_it_keeps_an_encrypted_photo_for_the_members_of_its_group(cast: Cast, media: Path) -> None:
    blob, key, digest = crypto.encrypt_blob(PHOTO)
    response = upload(api_client(cast.alice), cast.gold_group.pk, blob)
    assert response.status_code == 201
    blob_id = response.json()["blob_id"]
    stored = Blob.objects.get(pk=blob_id)
    assert (stored.size, stored.sha256, stored.sender) == (len(blob), hashlib.sha256(blob).hexdigest(), cast.alice)
    assert abs(stored.expires_at - (stored.created_at + timedelta(seconds=cast.gold_group.retention_seconds))) < timedelta(
        seconds=1)
    assert response.json()["expires_at"].endswith("Z")
    assert (media / "chat-blobs" / blob_id).read_bytes() == blob
    got = api_client(cast.bob).get(f"{API}blobs/{blob_id}")
    assert got.status_code == 200 and got["Content-Type"] == "application/octet-stream"
    assert got["Cache-Control"] == "private, no-store" and got["Content-Disposition"] == "attachment"
    fetched = b"".join(got.streaming_content)
    assert crypto.decrypt_blob(fetched, key=key, sha256=digest) == PHOTO
    assert PHOTO not in (media / "chat-blobs" / blob_id).read_bytes()


def test_it_limits_blob_size_and_type(cast: Cast, settings: Settings) -> None:
    settings.CHAT_BLOB_MAX_BYTES = 1000
    alice = api_client(cast.alice)
    for data, content_type, status, code in [
        (b"x" * 1001, "application/octet-stream", 413, "too_large"),
        (b"x" * 10, "application/json", 415, "unsupported_media_type"),
        (b"", "application/octet-stream", 400, "invalid"),
    ]:
        response = upload(alice, cast.gold_group.pk, data, content_type)
        assert (response.status_code, response.json()["error"]) == (status, code)  # type: ignore[attr-defined]
    assert alice.post(f"{API}blobs", data=b"x", content_type="application/octet-stream").status_code == 400
    assert upload(alice, cast.gold_group.pk, b"x" * 1000).status_code == 201  # type: ignore[attr-defined]


def test_it_expires_blobs_with_the_group_and_purges_them(cast: Cast, media: Path) -> None:
    alice = api_client(cast.alice)
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        blob_id = upload(alice, cast.gold_group.pk, b"sealed photo").json()["blob_id"]  # type: ignore[attr-defined]
        assert jobs.purge_expired() == {"messages": 0, "blobs": 0, "epochs": 0}
        traveller.shift(timedelta(seconds=cast.gold_group.retention_seconds + 1))
        bob = api_client(cast.bob)
        assert bob.get(f"{API}blobs/{blob_id}").status_code == 404  # expired: not served, even before the purge
        assert jobs.purge_expired() == {"messages": 0, "blobs": 1, "epochs": 0}
    assert not Blob.objects.exists() and not (media / "chat-blobs" / blob_id).exists()
    assert AuditEvent.objects.get(action="chat.purge", object_type="chat_blob").detail == {"blobs": 1}
