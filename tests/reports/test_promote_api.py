"""Promote a chat message to a report through the API: a genuine proof gives a verified report; an altered or
forged one (or a reporter who is not a member) is refused with 400 and nothing is saved; an expired message
still verifies while the server's franking key lives, and is kept unverified after; the reporter's own list of
reported messages; role x endpoint access."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.test import Client

from chat import services as chat_services
from chat.models import FrankingKey, GroupEpoch
from members.models import User
from reports.models import Report, ReportFile, Source
from tests.cast import Cast
from tests.reports.files import jpeg_with_gps, upload
from tests.reports.promote import TEXT, flip_b64, flip_b64url, message_sent, proof_of

pytestmark = pytest.mark.django_db

API = "/api/v1/reports/"


def client_of(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def promote(user: User, proof: Any, **extra: Any) -> Any:
    data = {"kind": "shop_theft", "description": TEXT, "client_id": str(uuid.uuid4()),
            "chat_proof": proof if isinstance(proof, str) else json.dumps(proof), **extra}
    return client_of(user).post(API, data=data)


def test_it_files_a_verified_report_from_a_genuine_proof(cast: Cast) -> None:
    message, read = message_sent(cast.alice, cast.bob, cast.gold_group.pk)
    response = promote(cast.bob, proof_of(message, read), photos=[upload("still.jpg", jpeg_with_gps())])
    assert response.status_code == 201, response.content
    body = response.json()["report"]
    assert body["source"] == Source.CHAT
    verification = body["verification"]
    assert verification["verified"] is True
    assert verification["label"].startswith("sent by Alice Archer (Gold Street Books) in Gold Street at ")
    assert verification["text"] == TEXT and verification["seq"] == message.seq
    report = Report.objects.get()
    assert report.chat_proof["seq"] == message.seq and report.files.count() == 1
    for viewer in (cast.officer, cast.bob):
        page = client_of(viewer).get(f"/reports/{report.pk}/").content.decode()
        assert "Verified: sent by Alice Archer (Gold Street Books) in Gold Street at" in page
        assert TEXT in page
    inbox = client_of(cast.officer).get("/reports/inbox/").content.decode()
    assert "Verified: sent by Alice Archer" in inbox
    # Sending the same outbox entry again files it once (and is not re-verified).
    again = client_of(cast.bob).post(API, data={"kind": "shop_theft", "description": TEXT,
                                                "client_id": str(report.client_id),
                                                "chat_proof": json.dumps(proof_of(message, read))})
    assert again.status_code == 200 and Report.objects.count() == 1


def _tampered(proof: dict[str, Any], field: str, other_seq: int) -> dict[str, Any] | str:
    franking = dict(proof["franking"])
    changes: dict[str, Any] = {
        "body": {"body": flip_b64url(proof["body"], 40)},
        "key_material": {"key_material": flip_b64url(proof["key_material"], 3)},
        "commitment key": {"key_material": flip_b64url(proof["key_material"], 40)},
        "envelope": {"envelope": flip_b64(proof["envelope"], 60)},
        "seq": {"seq": other_seq},
        "future seq": {"seq": other_seq + 1000},
        "group": {"group": proof["group"] + 1},
        "tag": {"franking": {**franking, "tag": flip_b64url(franking["tag"], 5)}},
        "kid": {"franking": {**franking, "kid": "0123456789abcdef"}},
        "server_time": {"franking": {**franking, "server_time": franking["server_time"] - 60_000}},
        "malformed key": {"key_material": proof["key_material"][:-4]},
        "no body": {"body": None},
    }
    if field == "not json":
        return "{not json"
    return {**proof, **changes[field]}


@pytest.mark.parametrize("field", [
    "body", "key_material", "commitment key", "envelope", "seq", "future seq", "group", "tag", "kid",
    "server_time", "malformed key", "no body", "not json",
])
def test_it_refuses_a_tampered_proof_and_saves_nothing(cast: Cast, media: Any, field: str) -> None:
    message, read = message_sent(cast.alice, cast.bob, cast.gold_group.pk)
    other, _ = message_sent(cast.alice, cast.bob, cast.gold_group.pk, "Another message")
    proof = _tampered(proof_of(message, read), field, other.seq)
    response = promote(cast.bob, proof, photos=[upload("still.jpg", jpeg_with_gps())])
    assert response.status_code == 400, (field, response.content)
    detail = response.json()["detail"]
    assert "not saved" in detail or "malformed" in detail
    assert Report.objects.count() == 0 and ReportFile.objects.count() == 0
    assert not any(path.is_file() for path in media.rglob("*") if "reports" in path.parts)


def test_it_refuses_a_reporter_who_is_not_a_member(cast: Cast) -> None:
    message, read = message_sent(cast.alice, cast.bob, cast.gold_group.pk)
    response = promote(cast.charlie, proof_of(message, read))
    assert response.status_code == 400
    assert "not a member of this group" in response.json()["detail"]
    assert Report.objects.count() == 0


def _gone(message: Any) -> time_machine.travel:
    """Past the message's retention, with the purge job run (message row and unneeded epoch records gone)."""
    traveller = time_machine.travel(message.expires_at + timedelta(minutes=1), tick=False)
    traveller.start()
    assert chat_services.messages_purge_expired() >= 1
    GroupEpoch.objects.filter(group_id=message.group_id).exclude(
        epoch=GroupEpoch.objects.filter(group_id=message.group_id).order_by("-epoch").values("epoch")[:1]
    ).delete()
    return traveller


def test_it_verifies_an_expired_message_while_the_franking_key_lives(cast: Cast) -> None:
    cast.gold_group.retention_seconds = 3600
    cast.gold_group.save(update_fields=["retention_seconds"])
    message, read = message_sent(cast.alice, cast.bob, cast.gold_group.pk)
    proof = proof_of(message, read)
    traveller = _gone(message)
    try:
        response = promote(cast.bob, proof)
        assert response.status_code == 201, response.content
        assert response.json()["report"]["verification"]["verified"] is True
        # Still nothing altered gets through once the server has no copy to compare with.
        for field in ("body", "envelope", "tag", "server_time", "future seq"):
            tampered = _tampered(proof, field, message.seq)
            assert promote(cast.bob, tampered).status_code == 400, field
        assert promote(cast.charlie, proof).status_code == 400
    finally:
        traveller.stop()
    assert Report.objects.count() == 1


def test_it_keeps_an_unverified_report_once_the_franking_key_is_destroyed(cast: Cast, settings: Any) -> None:
    settings.FRANKING_KEY_DAYS = 2
    message, read = message_sent(cast.alice, cast.bob, cast.gold_group.pk)
    proof = proof_of(message, read)
    with time_machine.travel(message.created_at + timedelta(days=3, minutes=1), tick=False):
        chat_services.messages_purge_expired()
        assert chat_services.franking_keys_rotate()["destroyed"] == 1
        assert not FrankingKey.objects.filter(pk=message.franking_kid).exists()
        response = promote(cast.bob, proof)
    assert response.status_code == 201, response.content
    verification = response.json()["report"]["verification"]
    assert verification["verified"] is False and "too old to be verified" in verification["reason"]
    report = Report.objects.get()
    page = client_of(cast.officer).get(f"/reports/{report.pk}/").content.decode()
    assert "Unverified: The message is too old to be verified" in page


def test_it_lists_the_chat_messages_i_reported(cast: Cast) -> None:
    message, read = message_sent(cast.alice, cast.bob, cast.gold_group.pk)
    message_sent(cast.alice, cast.bob, cast.gold_group.pk, "not reported")
    assert promote(cast.bob, proof_of(message, read)).status_code == 201
    url = f"{API}reported-messages?group={cast.gold_group.pk}"
    assert client_of(cast.bob).get(url).json() == {"group": cast.gold_group.pk, "seqs": [message.seq]}
    assert client_of(cast.alice).get(url).json()["seqs"] == []  # only the reporter's own reports
    other_group = f"{API}reported-messages?group={cast.abington_group.pk}"
    assert client_of(cast.bob).get(other_group).json()["seqs"] == []


@pytest.mark.parametrize(("who", "listed", "promoted"), [
    ("anonymous", 401, 401),
    ("alice", 200, 201),  # the sender herself may report it too
    ("bob", 200, 201),
    ("warden", 200, 201),
    ("charlie", 200, 400),  # not in Gold Street: refused, nothing saved
    ("officer", 200, 403),  # nothing of theirs to list
    ("police", 200, 403),
    ("admin", 200, 403),
    ("realm", 200, 403),
    ("dpo", 200, 403),
])
def test_it_checks_access(cast: Cast, who: str, listed: int, promoted: int) -> None:
    message, read = message_sent(cast.alice, cast.bob, cast.gold_group.pk)
    client = Client() if who == "anonymous" else client_of(getattr(cast, who))
    assert client.get(f"{API}reported-messages?group={cast.gold_group.pk}").status_code == listed
    # The key material is per message, not per reader: any member who could read it submits the same proof.
    data = {"kind": "shop_theft", "description": TEXT, "chat_proof": json.dumps(proof_of(message, read))}
    assert client.post(API, data=data).status_code == promoted
    assert Report.objects.count() == (1 if promoted == 201 else 0)
