"""Franking: every relayed message carries the server's tag; chat_proof_verify proves a reported message's sender,
group and time (and refuses anything altered); server franking keys rotate daily and are destroyed later."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.utils import timezone

from chat import crypto, jobs, selectors, services
from chat.models import FrankingKey, Message
from chat.services import chat_proof_verify, franking_keys_rotate
from members.jobs import registered_jobs
from members.models import AuditEvent
from tests.cast import Cast
from tests.chat.test_hub_kit import kit_device, seal, send_as, unseal

pytestmark = pytest.mark.django_db

TEXT = "Tony took two bottles of gin from the shelf by the door"


def sent_and_read(cast: Cast, text: str = TEXT) -> tuple[Message, crypto.Message]:
    """alice sends; bob decrypts it as his device would: (stored message, what bob read)."""
    stored = send_as(cast.alice.pk, cast.gold_group.pk, text)
    message = Message.objects.get(group=cast.gold_group, seq=stored.seq)
    return message, unseal(cast.bob.pk, cast.gold_group.pk, bytes(message.envelope))


def test_it_tags_every_message_with_the_current_franking_key(cast: Cast) -> None:
    message, _ = sent_and_read(cast)
    key = FrankingKey.objects.get()
    assert message.franking_kid == key.kid and len(bytes(message.franking_tag)) == 32
    frame = selectors.event_frame(message)
    assert frame["franking"] == {"kid": key.kid, "tag": crypto.b64e(bytes(message.franking_tag)),
                                 "server_time": message.franking_time}
    # The tag is the server's HMAC over the header's commitment, sender, device, group, msg id and time.
    expected = crypto.envelope_franking_tag(server_key=bytes(key.secret), kid=key.kid,
                                            envelope=bytes(message.envelope), server_time=message.franking_time)
    assert bytes(message.franking_tag) == expected
    assert datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=message.franking_time) == message.created_at.replace(
        microsecond=message.created_at.microsecond // 1000 * 1000)


def test_it_verifies_a_genuine_report(cast: Cast) -> None:
    message, read = sent_and_read(cast)
    result = chat_proof_verify(reporter=cast.bob, group_id=cast.gold_group.pk, seq=message.seq, body=read.body,
                               message_key=read.key_material, envelope=bytes(message.envelope))
    assert result.verified, result.reason
    assert (result.sender_name, result.sender_business, result.group_name, result.text) == (
        "Alice Archer", "Gold Street Books", "Gold Street", TEXT)
    assert abs(result.sent_at - message.created_at) < timedelta(milliseconds=1)
    assert result.proof is not None and result.proof.device == kit_device(cast.alice.pk)
    verification = result.as_verification()
    assert verification["verified"] is True
    assert verification["label"].startswith("sent by Alice Archer (Gold Street Books) in Gold Street at ")
    # The sender may revoke that device since: the proof uses the key it had when it sent.
    services.device_revoke(user=cast.alice, device_id=kit_device(cast.alice.pk))
    assert chat_proof_verify(reporter=cast.warden, group_id=cast.gold_group.pk, seq=message.seq, body=read.body,
                             message_key=read.key_material).verified


def _other_text(body: bytes) -> bytes:
    value = crypto.parse_canonical(body)
    return crypto.canonical_json({**value, "text": "Bob took the gin"})


def _flip(data: bytes, at: int = 0) -> bytes:
    return data[:at] + bytes([data[at] ^ 1]) + data[at + 1:]


@pytest.mark.parametrize(
    "alteration",
    ["body text", "body bytes", "message key", "commitment key", "seq", "group", "envelope", "body not canonical"],
)
def test_it_refuses_a_report_with_any_field_altered(cast: Cast, alteration: str) -> None:
    message, read = sent_and_read(cast)
    other, _ = sent_and_read(cast, "Another message, for the seq test")
    proof: dict[str, Any] = {"reporter": cast.bob, "group_id": cast.gold_group.pk, "seq": message.seq,
                             "body": read.body, "message_key": read.key_material}
    changes: dict[str, dict[str, Any]] = {
        "body text": {"body": _other_text(read.body)},
        "body bytes": {"body": read.body.replace(b'"urgent"', b'"Urgent"') if b'"urgent"' in read.body
                       else read.body[:-1] + b' }'},
        "message key": {"message_key": _flip(read.key_material, 0)},
        "commitment key": {"message_key": _flip(read.key_material, 40)},
        "seq": {"seq": other.seq},
        "group": {"group_id": cast.abington_group.pk},
        "envelope": {"envelope": _flip(bytes(message.envelope), 30)},
        "body not canonical": {"body": read.body.replace(b":", b": ", 1)},
    }
    result = chat_proof_verify(**{**proof, **changes[alteration]})
    assert result.verified is False and result.reason, alteration
    assert result.as_verification() == {"verified": False, "reason": result.reason}
    assert chat_proof_verify(**proof).verified  # the genuine proof still holds


def test_it_accepts_reports_only_from_members_who_could_read_the_message(cast: Cast) -> None:
    message, read = sent_and_read(cast)

    def verify(reporter: Any) -> services.ChatProofResult:
        return chat_proof_verify(reporter=reporter, group_id=cast.gold_group.pk, seq=message.seq, body=read.body,
                                 message_key=read.key_material)

    assert "not a member" in verify(cast.charlie).reason
    assert "not a member" in verify(cast.officer).reason
    # charlie's bakery joins Gold Street later: a member now, but no device of his had that epoch's key.
    cast.gold_group.businesses.add(cast.bakery)
    seal(cast.charlie.pk, cast.gold_group.pk)  # his device gets the keys from now on
    assert "could not read" in verify(cast.charlie).reason
    assert verify(cast.bob).verified and verify(cast.warden).verified


def test_it_refuses_withdrawn_and_expired_messages(cast: Cast) -> None:
    message, read = sent_and_read(cast)
    kept, kept_read = sent_and_read(cast, "kept")
    services.message_retract(user_id=cast.alice.pk, group_id=cast.gold_group.pk, seq=message.seq)
    withdrawn = chat_proof_verify(reporter=cast.bob, group_id=cast.gold_group.pk, seq=message.seq, body=read.body,
                                  message_key=read.key_material)
    assert "withdrawn" in withdrawn.reason
    with time_machine.travel(kept.expires_at + timedelta(seconds=1)):
        gone = chat_proof_verify(reporter=cast.bob, group_id=cast.gold_group.pk, seq=kept.seq, body=kept_read.body,
                                 message_key=kept_read.key_material)
    assert "no longer exists" in gone.reason


def test_it_rotates_franking_keys_daily_and_destroys_them_after_the_report_window(
    cast: Cast, settings: Any
) -> None:
    settings.FRANKING_KEY_DAYS = 2
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        message, read = sent_and_read(cast)
        first = FrankingKey.objects.get()
        assert franking_keys_rotate() == {"created": 0, "destroyed": 0}  # still fresh
        traveller.shift(timedelta(days=1, seconds=1))
        assert franking_keys_rotate() == {"created": 1, "destroyed": 0}
        assert FrankingKey.objects.get(pk=first.pk).retired_at is not None
        newer, _ = sent_and_read(cast, "tagged with the new key")
        assert newer.franking_kid != first.kid
        # Old messages still prove with their (retired) key.
        assert chat_proof_verify(reporter=cast.bob, group_id=cast.gold_group.pk, seq=message.seq, body=read.body,
                                 message_key=read.key_material).verified
        traveller.shift(timedelta(days=2))  # three days after the first key was made: past 2 + 1 days
        result = franking_keys_rotate()
        assert result["destroyed"] == 1 and not FrankingKey.objects.filter(pk=first.pk).exists()
        assert AuditEvent.objects.get(action="chat.franking_keys_destroyed").detail == {"keys": 1}
        too_old = chat_proof_verify(reporter=cast.bob, group_id=cast.gold_group.pk, seq=message.seq, body=read.body,
                                    message_key=read.key_material)
    assert too_old.verified is False and "too old" in too_old.reason
    job = registered_jobs()["chat.franking_keys"]
    assert job.func is jobs.franking_keys and job.every_seconds <= 3600
