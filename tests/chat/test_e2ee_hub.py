"""The hub with E2EE: hello names an approved device; key and epoch events reach members; broadcasts and report
statuses are relayed; urgent messages are pushed as ciphertext; a socket ends when its HTTP session does."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.utils import timezone
from pytest_django.fixtures import Settings

from alerts.models import AlertPrefs, BroadcastRecipient, PushDelivery, PushSubscription
from alerts.services import broadcast_create
from chat import crypto, services
from chat.models import Device
from members.events import user_channel_group
from tests.cast import Cast
from tests.chat.test_hub_kit import (  # noqa: F401 (fixture)
    Closed,
    fresh_channel_layer,
    kit_device,
    open_hub,
    seal,
    unseal,
)

pytestmark = pytest.mark.django_db(transaction=True)


async def test_it_accepts_hello_only_from_an_approved_device_of_the_user(cast: Cast) -> None:
    alice = await open_hub(cast.alice, hello=False)
    pending = await sync_to_async(Device.objects.create)(
        device_id=str(uuid.uuid4()), user=cast.alice, sign_pub="x", dh_pub="x", status=Device.Status.PENDING)
    bobs = await sync_to_async(kit_device)(cast.bob.pk)
    for device in (str(uuid.uuid4()), pending.device_id, bobs):
        await alice.send({"type": "hello", "v": 1, "device": device})
        refused = await alice.recv("error")
        assert (refused["code"], refused["retryable"]) == ("unknown_device", False)
        assert "ref" not in refused
    await alice.hello()  # the socket stayed open; her own approved device is welcome
    assert (await alice.post(cast.gold_group.pk))["type"] == "ack"
    await alice.close()
    # Revoked since: refused at hello, and its sends are refused too.
    await sync_to_async(services.device_revoke)(user=cast.alice, device_id=await sync_to_async(kit_device)(cast.alice.pk))
    again = await open_hub(cast.alice, hello=False)
    await again.send({"type": "hello", "v": 1, "device": await sync_to_async(kit_device)(cast.alice.pk)})
    assert (await again.recv("error"))["code"] == "unknown_device"
    await again.close()


async def test_it_lets_a_device_less_socket_listen_but_not_send(cast: Cast) -> None:
    bob = await open_hub(cast.bob, hello=False)
    await bob.send({"type": "hello", "v": 1})
    await bob.recv("ready")
    refused = await bob.post(cast.gold_group.pk)
    assert refused["code"] == "unknown_device"
    alice = await open_hub(cast.alice)
    await alice.post(cast.gold_group.pk, "read by a listener")
    assert (await bob.recv("message"))["sender"]["id"] == cast.alice.pk
    await alice.close()
    await bob.close()


async def test_it_asks_for_a_new_envelope_when_the_epoch_moved_on(cast: Cast) -> None:
    alice = await open_hub(cast.alice)
    bob = await open_hub(cast.bob)
    old = await sync_to_async(seal)(cast.bob.pk, cast.gold_group.pk, "old epoch")
    await sync_to_async(Device.objects.filter(pk=await sync_to_async(kit_device)(cast.warden.pk)).update)(
        status=Device.Status.REVOKED)
    required = await bob.post_raw(cast.gold_group.pk, old)
    assert (required["code"], required["retryable"]) == ("rotation_required", True)
    await alice.post(cast.gold_group.pk, "alice rotates first")  # the kit rotates to epoch 2
    rotated = await bob.recv("epoch.rotated")
    assert rotated == {"type": "epoch.rotated", "group": cast.gold_group.pk, "epoch": 2}
    stale = await bob.post_raw(cast.gold_group.pk, old)
    assert (stale["code"], stale["retryable"]) == ("stale_epoch", True)
    assert (await bob.post(cast.gold_group.pk, "re-encrypted"))["type"] == "ack"
    await alice.close()
    await bob.close()


async def test_it_tells_members_and_only_members_when_keys_change(cast: Cast) -> None:
    alice = await open_hub(cast.alice)
    charlie = await open_hub(cast.charlie)
    await sync_to_async(services.device_revoke)(user=cast.bob, device_id=await sync_to_async(kit_device)(cast.bob.pk))
    changed = await alice.recv("keys.changed")
    assert changed == {"type": "keys.changed", "group": cast.gold_group.pk, "user": cast.bob.pk}
    await alice.post(cast.gold_group.pk, "after bob's phone was revoked")  # rotates: epoch.rotated to gold only
    await alice.barrier()
    assert {"type": "epoch.rotated", "group": cast.gold_group.pk, "epoch": 1} in alice.key_events
    assert await charlie.barrier() == [] and charlie.key_events == []
    await alice.close()
    await charlie.close()


async def test_it_relays_a_broadcast_and_records_its_delivery(cast: Cast) -> None:
    bob = await open_hub(cast.bob, hello=False)  # banners come before (or without) hello too
    broadcast = await sync_to_async(broadcast_create)(
        author=cast.warden, title="Shop thief on Gold Street", text="Grey hoodie, heading north.",
        priority="urgent", group_ids=[cast.gold_group.pk])
    frame = await bob.recv("alert")
    assert frame["broadcast"]["id"] == broadcast.pk and frame["broadcast"]["title"] == "Shop thief on Gold Street"
    await bob.barrier()

    def delivered() -> tuple[Any, str]:
        row = BroadcastRecipient.objects.get(broadcast=broadcast, user=cast.bob)
        return row.delivered_at, row.delivered_via

    at, via = await sync_to_async(delivered)()
    assert at is not None and via == BroadcastRecipient.Via.SOCKET
    await bob.close()


async def test_it_relays_report_status_changes_to_the_reporter(cast: Cast) -> None:
    bob = await open_hub(cast.bob)
    event = {"type": "report.status", "report": 7, "status": "closed", "label": "Closed",
             "at": timezone.now().isoformat()}
    await get_channel_layer().group_send(user_channel_group(cast.bob.pk), event)
    frame = await bob.recv("report_status")
    assert frame == {**event, "type": "report_status"}
    await bob.close()


async def test_it_pushes_urgent_messages_as_ciphertext_to_the_other_members(cast: Cast) -> None:
    for user in (cast.alice, cast.bob, cast.charlie):
        await sync_to_async(PushSubscription.objects.create)(
            user=user, endpoint=f"https://push.example.net/{user.pk}", p256dh="k", auth="a")
    alice = await open_hub(cast.alice)
    secret = f"canary {uuid.uuid4()}"
    ack = await alice.post(cast.gold_group.pk, secret, urgent=True)
    envelope = alice.last_envelope
    await alice.post(cast.gold_group.pk, "not urgent")
    rows = await sync_to_async(lambda: list(PushDelivery.objects.select_related("subscription")))()
    assert [row.user_id for row in rows] == [cast.bob.pk]  # not the sender, not outside the group
    row = rows[0]
    assert row.urgency == "high" and secret.encode() not in bytes(row.payload)
    assert row.topic == f"group-{cast.gold_group.pk}"  # a newer urgent message replaces one still waiting
    payload = json.loads(bytes(row.payload))
    assert payload == {"kind": "chat", "group": cast.gold_group.pk, "group_name": "Gold Street", "seq": ack["seq"],
                       "urgent": True, "envelope": crypto.b64e(envelope)}
    # bob's phone can open it with the epoch key it holds.
    opened = await sync_to_async(unseal)(cast.bob.pk, cast.gold_group.pk, crypto.b64d(payload["envelope"]))
    assert opened.text == secret
    await alice.close()


async def test_it_pushes_no_envelope_to_people_who_chose_no_preview(cast: Cast) -> None:
    for user in (cast.bob, cast.warden):
        await sync_to_async(PushSubscription.objects.create)(
            user=user, endpoint=f"https://push.example.net/{user.pk}", p256dh="k", auth="a")
    await sync_to_async(AlertPrefs.objects.create)(user=cast.warden, no_preview=True)
    alice = await open_hub(cast.alice)
    secret = f"canary {uuid.uuid4()}"
    ack = await alice.post(cast.gold_group.pk, secret, urgent=True)
    rows = await sync_to_async(lambda: {row.user_id: json.loads(bytes(row.payload))
                                        for row in PushDelivery.objects.all()})()
    assert set(rows) == {cast.bob.pk, cast.warden.pk}
    assert rows[cast.bob.pk]["envelope"] == crypto.b64e(alice.last_envelope) and "preview" not in rows[cast.bob.pk]
    assert rows[cast.warden.pk] == {"kind": "chat", "group": cast.gold_group.pk, "group_name": "Gold Street",
                                    "seq": ack["seq"], "urgent": True, "preview": False}
    await alice.close()


async def test_it_leaves_out_an_envelope_too_big_for_a_push(cast: Cast) -> None:
    await sync_to_async(PushSubscription.objects.create)(
        user=cast.bob, endpoint="https://push.example.net/bob", p256dh="k", auth="a")
    alice = await open_hub(cast.alice)
    await alice.post(cast.gold_group.pk, "x" * 5000, urgent=True)
    payload = json.loads(bytes(await sync_to_async(lambda: PushDelivery.objects.get().payload)()))
    assert "envelope" not in payload and payload["kind"] == "chat" and payload["urgent"] is True
    await alice.close()


async def reconcile(user: Any) -> None:
    await get_channel_layer().group_send(user_channel_group(user.pk), {"type": "hub.reconcile"})


async def test_it_ends_a_socket_whose_session_went_idle(cast: Cast, settings: Settings) -> None:
    settings.SESSION_COOKIE_AGE = 30 * 60
    with time_machine.travel(timezone.now(), tick=True) as traveller:
        bob = await open_hub(cast.bob)
        traveller.shift(timedelta(minutes=29))
        await reconcile(cast.bob)
        await bob.barrier()  # still open: the session has a minute left
        traveller.shift(timedelta(minutes=2))
        await reconcile(cast.bob)
        assert (await bob.recv("revoked"))["reason"] == "session_expired"
        with pytest.raises(Closed) as closed:
            await bob.recv()
    assert closed.value.code == 4401


async def test_it_ends_a_socket_whose_session_reached_its_absolute_limit(cast: Cast, settings: Settings) -> None:
    settings.SESSION_ABSOLUTE_SECONDS = 10 * 60  # below the idle limit: only the absolute one can end it
    with time_machine.travel(timezone.now(), tick=True) as traveller:
        bob = await open_hub(cast.bob, hello=False)  # even a socket that never said hello
        traveller.shift(timedelta(minutes=9))
        await reconcile(cast.bob)
        await bob.ping()
        traveller.shift(timedelta(minutes=1, seconds=1))
        await reconcile(cast.bob)
        assert (await bob.recv("revoked"))["reason"] == "session_expired"
        with pytest.raises(Closed) as closed:
            await bob.recv()
    assert closed.value.code == 4401


async def test_it_ends_a_socket_whose_session_was_deleted(cast: Cast) -> None:
    from django.contrib.sessions.models import Session

    bob = await open_hub(cast.bob)
    await sync_to_async(Session.objects.all().delete)()  # e.g. signed out in another tab
    await reconcile(cast.bob)
    assert (await bob.recv("revoked"))["reason"] == "session_expired"


async def test_it_refuses_a_new_socket_on_a_session_past_its_absolute_limit(cast: Cast, settings: Settings) -> None:
    from tests.chat.test_hub_kit import communicator_for, session_cookie

    settings.SESSION_ABSOLUTE_SECONDS = 10 * 60
    with time_machine.travel(timezone.now(), tick=True) as traveller:
        cookie = await sync_to_async(session_cookie)(cast.bob)
        traveller.shift(timedelta(minutes=11))  # still within the idle limit, past the absolute one
        connected, code = await communicator_for(cookie).connect()
    assert not connected and code == 4401
