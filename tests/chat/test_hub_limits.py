"""Limits: frame and envelope size, token-bucket rate limit, abuse close codes; bad frames never kill a socket."""

from __future__ import annotations

import base64
import json
import uuid

import pytest
from asgiref.sync import sync_to_async
from pytest_django.fixtures import Settings

from chat.models import Message
from tests.cast import Cast
from tests.chat.test_hub_kit import Closed, fresh_channel_layer, open_hub, seal  # noqa: F401 (fixture)

pytestmark = pytest.mark.django_db(transaction=True)


async def test_it_answers_bad_frames_with_errors_and_stays_up(cast: Cast, settings: Settings) -> None:
    settings.HUB_MAX_FRAME_BYTES = 4000
    alice = await open_hub(cast.alice)
    group = cast.gold_group.pk
    cases: list[tuple[str | None, bytes | None, str]] = [
        ("not json", None, "bad_json"),
        ("[1, 2]", None, "bad_frame"),
        ('{"type": 7}', None, "bad_frame"),
        ('{"type": "shout"}', None, "unknown_type"),
        ('{"type": "send", "group": "gold"}', None, "invalid_frame"),
        ('{"type": "send", "group": 1, "client_id": "x", "envelope": "AAAA"}', None, "invalid_frame"),
        ('{"type": "ping", "nonce": NaN}', None, "bad_json"),
        ('{"type": "retract", "group": 99999999999999999999999, "seq": 1}', None, "invalid_frame"),
        ("[" * 3000 + "]" * 3000, None, "too_large"),
        ('{"type": "ping", "nonce": "' + "é" * 1999 + '"}', None, "too_large"),  # under 4000 chars, over 4000 bytes
        (None, b"\x00\x01binary", "bad_frame"),
    ]
    for text, data, code in cases:
        await alice.send_raw(text, data)
        error = await alice.recv("error")
        assert error["code"] == code, (text, error)
        assert error["retryable"] is False
    # The socket is still up and a valid message right after the bad ones is stored and acked.
    assert (await alice.post(group, b"still here"))["type"] == "ack"
    await alice.close()


async def test_it_limits_envelope_size(cast: Cast, settings: Settings) -> None:
    alice = await open_hub(cast.alice)
    envelope = await sync_to_async(seal)(cast.alice.pk, cast.gold_group.pk, "x" * 100)
    settings.HUB_MAX_ENVELOPE_BYTES = len(envelope)
    assert (await alice.post_raw(cast.gold_group.pk, envelope))["type"] == "ack"
    too_big = await alice.post_raw(cast.gold_group.pk, envelope + b" ")
    assert too_big["code"] == "envelope_too_large"
    ref = str(uuid.uuid4())
    await alice.send({"type": "send", "group": cast.gold_group.pk, "client_id": ref, "envelope": "@@@@"})
    assert (await alice.reply_for(ref))["code"] in {"bad_envelope", "invalid_frame"}
    await alice.send({"type": "send", "group": cast.gold_group.pk, "client_id": ref, "envelope": "QUJD*A=="})
    assert (await alice.reply_for(ref))["code"] in {"bad_envelope", "invalid_frame"}
    assert await sync_to_async(Message.objects.count)() == 1
    await alice.close()


async def test_it_rate_limits_with_a_retryable_error(cast: Cast, settings: Settings) -> None:
    settings.HUB_RATE_BURST = 3
    settings.HUB_RATE_PER_SECOND = 0.001
    alice = await open_hub(cast.alice)  # hello took one token
    acks = [await alice.post(cast.gold_group.pk) for _ in range(2)]
    assert [a["type"] for a in acks] == ["ack", "ack"]
    client_id = str(uuid.uuid4())
    limited = await alice.post(cast.gold_group.pk, client_id=client_id)
    assert limited == {**limited, "code": "rate_limited", "retryable": True, "ref": client_id}
    assert await sync_to_async(Message.objects.count)() == 2
    await alice.close()


async def test_it_closes_a_socket_that_keeps_sending_bad_frames(cast: Cast, settings: Settings) -> None:
    settings.HUB_ABUSE_STRIKES = 3
    alice = await open_hub(cast.alice)
    for _ in range(3):
        await alice.send_raw("garbage")
    with pytest.raises(Closed) as closed:
        while True:
            await alice.recv()
    assert closed.value.code == 4400


async def test_it_closes_a_socket_that_keeps_flooding(cast: Cast, settings: Settings) -> None:
    settings.HUB_ABUSE_STRIKES = 3
    settings.HUB_RATE_BURST = 2
    settings.HUB_RATE_PER_SECOND = 0.001
    alice = await open_hub(cast.alice)
    for _ in range(5):
        await alice.send({"type": "ping"})
    with pytest.raises(Closed) as closed:
        while True:
            await alice.recv()
    assert closed.value.code == 4429


async def test_it_does_not_count_refusals_a_member_cannot_avoid_as_abuse(cast: Cast, settings: Settings) -> None:
    settings.HUB_ABUSE_STRIKES = 2
    charlie = await open_hub(cast.charlie)
    for _ in range(3):
        assert (await charlie.post(cast.gold_group.pk))["code"] == "not_member"
    await charlie.ping()
    await charlie.close()


def test_it_refuses_nesting_deeper_than_the_parser_allows() -> None:
    from chat.protocol import ProtocolError, parse_client_frame

    with pytest.raises(ProtocolError) as refused:
        parse_client_frame("[" * 50_000 + "]" * 50_000, max_bytes=1_000_000)
    assert refused.value.code == "bad_json"


def test_it_keeps_envelopes_out_of_errors() -> None:
    from chat.protocol import ProtocolError, parse_client_frame

    secret = base64.b64encode(b"the plaintext would never be here anyway").decode()
    with pytest.raises(ProtocolError) as refused:
        parse_client_frame(json.dumps({"type": "send", "group": 1, "client_id": "x", "envelope": secret}),
                           max_bytes=10_000)
    assert secret not in refused.value.detail
