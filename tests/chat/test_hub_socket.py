"""The hub socket in-process (WebsocketCommunicator): connect, send/ack/fan-out, idempotency, access."""

from __future__ import annotations

import uuid

import pytest
from asgiref.sync import sync_to_async

from chat.models import Message
from members.models import GroupMember
from members.sessions import user_sessions_end_all
from tests.cast import Cast
from tests.chat.test_hub_kit import (  # noqa: F401 (fixture)
    Closed,
    communicator_for,
    fresh_channel_layer,
    kit_device_id,
    open_hub,
    seqs,
    session_cookie,
)

pytestmark = pytest.mark.django_db(transaction=True)


async def test_it_sends_acks_and_fans_out_to_every_member(cast: Cast) -> None:
    alice = await open_hub(cast.alice)
    bob = await open_hub(cast.bob)
    warden = await open_hub(cast.warden)
    assert set(alice.groups) == {cast.gold_group.pk}
    ack = await alice.post(cast.gold_group.pk, b"lad in grey hoodie", urgent=True)
    assert ack["type"] == "ack" and ack["seq"] == 1 and ack["duplicate"] is False
    for hub in (alice, bob, warden):
        frame = await hub.recv("message")
        assert frame["seq"] == 1 and frame["group"] == cast.gold_group.pk
        assert frame["urgent"] is True and frame["retracted"] is False
        assert frame["sender"] == {"id": cast.alice.pk, "name": "Alice Archer", "business": "Gold Street Books",
                                   "role": "manager"}
        assert frame["device"] == kit_device_id(cast.alice.pk)
        assert frame["envelope"] is not None and frame["franking"]["kid"]
    second = await bob.post(cast.gold_group.pk, b"he went into the bakery")
    assert second["seq"] == 2
    assert [f["seq"] for f in await alice.barrier() if f["type"] == "message"] == [2]
    for hub in (alice, bob, warden):
        await hub.close()


async def test_it_stores_the_envelope_as_opaque_bytes(cast: Cast) -> None:
    alice = await open_hub(cast.alice)
    await alice.post(cast.gold_group.pk, "every byte kept: \u0000 \u2028 🧢")
    stored = await sync_to_async(Message.objects.get)(group=cast.gold_group, seq=1)
    assert bytes(stored.envelope) == alice.last_envelope
    await alice.close()


async def test_it_returns_the_original_seq_when_a_send_is_retried(cast: Cast) -> None:
    alice = await open_hub(cast.alice)
    bob = await open_hub(cast.bob)
    client_id = str(uuid.uuid4())
    first = await alice.post(cast.gold_group.pk, b"once", client_id=client_id)
    # The connection drops before the ack arrives; the client reconnects and retries with the same id.
    await alice.close()
    alice = await open_hub(cast.alice, resume={cast.gold_group.pk: 0})
    again = await alice.post(cast.gold_group.pk, b"once", client_id=client_id)
    assert (again["seq"], again["duplicate"]) == (first["seq"], True)
    assert await sync_to_async(Message.objects.filter(group=cast.gold_group).count)() == 1
    assert seqs(await bob.barrier()) == [1]
    await alice.close()
    await bob.close()


async def test_it_refuses_a_client_id_reused_in_another_group(cast: Cast) -> None:
    await sync_to_async(GroupMember.objects.create)(group=cast.abington_group, user=cast.alice)
    alice = await open_hub(cast.alice)
    client_id = str(uuid.uuid4())
    await alice.post(cast.gold_group.pk, client_id=client_id)
    refused = await alice.post(cast.abington_group.pk, client_id=client_id)
    assert refused["type"] == "error" and refused["code"] == "conflict" and refused["retryable"] is False
    await alice.close()


async def test_it_keeps_non_members_out_of_a_group(cast: Cast) -> None:
    charlie = await open_hub(cast.charlie)
    alice = await open_hub(cast.alice)
    assert set(charlie.groups) == {cast.abington_group.pk}
    refused = await charlie.post(cast.gold_group.pk, b"let me in")
    assert refused["code"] == "not_member" and refused["retryable"] is False
    await alice.post(cast.gold_group.pk, b"for gold only")
    assert await charlie.barrier() == []
    assert await sync_to_async(Message.objects.filter(group=cast.gold_group).count)() == 1
    # Resuming a group you are not in replays nothing of it.
    await charlie.close()
    charlie = await open_hub(cast.charlie, resume={cast.gold_group.pk: 0})
    assert charlie.replayed == [] and cast.gold_group.pk not in charlie.caught_up
    await charlie.close()
    await alice.close()


@pytest.mark.parametrize("origin", [None, "http://evil.example", "http://127.0.0.1:1"])
async def test_it_refuses_a_socket_without_the_right_origin(cast: Cast, origin: str | None) -> None:
    cookie = await sync_to_async(session_cookie)(cast.bob)
    communicator = communicator_for(cookie, origin=origin)
    connected, _ = await communicator.connect()
    assert not connected


async def test_it_refuses_a_socket_without_a_session(cast: Cast) -> None:
    communicator = communicator_for(None)
    connected, code = await communicator.connect()
    assert not connected and code == 4401
    communicator = communicator_for("not-a-session")
    connected, code = await communicator.connect()
    assert not connected and code == 4401


async def test_it_requires_hello_before_send(cast: Cast) -> None:
    alice = await open_hub(cast.alice, hello=False)
    refused = await alice.post(cast.gold_group.pk)
    assert refused["code"] == "hello_required"
    await alice.send({"type": "hello", "v": 2})
    assert (await alice.recv("error"))["code"] == "unsupported_version"
    await alice.hello()
    await alice.send({"type": "hello", "v": 1})
    assert (await alice.recv("error"))["code"] == "duplicate_hello"
    assert (await alice.post(cast.gold_group.pk))["type"] == "ack"
    await alice.close()


async def test_it_closes_sockets_when_sessions_are_revoked(cast: Cast) -> None:
    bob = await open_hub(cast.bob)
    await sync_to_async(user_sessions_end_all)(user_id=cast.bob.pk, reason="account_disabled")
    assert (await bob.recv("revoked"))["reason"] == "account_disabled"
    with pytest.raises(Closed) as closed:
        await bob.recv()
    assert closed.value.code == 4401


async def test_it_answers_ping(cast: Cast) -> None:
    bob = await open_hub(cast.bob, hello=False)
    pong = await bob.ping()
    assert pong["server_time"].endswith("Z")
    await bob.close()


async def test_it_disconnects_cleanly_without_falling_back_to_the_retry_close(
    cast: Cast, caplog: pytest.LogCaptureFixture
) -> None:
    alice = await open_hub(cast.alice)
    await alice.close()
    assert not [r for r in caplog.records if "hub socket ended by" in r.getMessage()]
