"""Membership is checked on every frame and every fan-out, not only at connect."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from pytest_django.fixtures import Settings

from chat.protocol import group_channel
from members.events import publish_on_commit, user_channel_group
from members.models import Business, GroupMember
from members.services import user_disable
from tests.cast import Cast
from tests.chat.test_hub_kit import Closed, fresh_channel_layer, open_hub, seqs  # noqa: F401 (fixture)

pytestmark = pytest.mark.django_db(transaction=True)


def seat(cast: Cast) -> GroupMember:
    return GroupMember.objects.create(group=cast.gold_group, user=cast.charlie)


def unseat(cast: Cast, *, announce: bool) -> None:
    GroupMember.objects.filter(group=cast.gold_group, user=cast.charlie).delete()
    if announce:  # what members services do when they remove someone
        publish_on_commit(user_channel_group(cast.charlie.pk),
                          {"type": "membership.changed", "group": cast.gold_group.pk, "member": False})


async def test_it_stops_delivery_at_once_when_a_member_is_removed(cast: Cast) -> None:
    await sync_to_async(seat)(cast)
    charlie = await open_hub(cast.charlie)
    alice = await open_hub(cast.alice)
    assert cast.gold_group.pk in charlie.groups
    await alice.post(cast.gold_group.pk, b"before")
    assert seqs(await charlie.barrier()) == [1]
    await sync_to_async(unseat)(cast, announce=True)
    left = await charlie.recv("membership")
    assert left == {"type": "membership", "group": cast.gold_group.pk, "member": False}
    await alice.post(cast.gold_group.pk, b"after")
    assert await charlie.barrier() == []
    refused = await charlie.post(cast.gold_group.pk)
    assert refused["code"] == "not_member"
    await charlie.close()
    await alice.close()


async def test_it_rechecks_membership_on_fan_out_without_being_told(cast: Cast, settings: Settings) -> None:
    settings.HUB_MEMBERSHIP_TTL_SECONDS = 0  # every fan-out re-reads membership
    await sync_to_async(seat)(cast)
    charlie = await open_hub(cast.charlie)
    alice = await open_hub(cast.alice)
    await sync_to_async(unseat)(cast, announce=False)
    await alice.post(cast.gold_group.pk, b"after")
    assert await charlie.barrier() == [{"type": "membership", "group": cast.gold_group.pk, "member": False}]
    await charlie.close()
    await alice.close()


async def test_it_rechecks_membership_before_storing_a_send(cast: Cast, settings: Settings) -> None:
    settings.HUB_MEMBERSHIP_TTL_SECONDS = 3600  # the socket's cache still says member: the service must not
    await sync_to_async(seat)(cast)
    charlie = await open_hub(cast.charlie)
    await sync_to_async(unseat)(cast, announce=False)
    refused = await charlie.post(cast.gold_group.pk)
    assert refused["code"] == "not_member"
    await charlie.close()


async def test_it_ignores_events_of_a_group_the_socket_left(cast: Cast) -> None:
    charlie = await open_hub(cast.charlie)
    alice = await open_hub(cast.alice)
    # Even if charlie's channel were subscribed to gold (a stale subscription), nothing is forwarded.
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    for channel in list(layer.groups.get(user_channel_group(cast.charlie.pk), {})):
        await layer.group_add(group_channel(cast.gold_group.pk), channel)
    await alice.post(cast.gold_group.pk)
    assert await charlie.barrier() == []
    await charlie.close()
    await alice.close()


async def test_it_adds_a_group_joined_mid_connection(cast: Cast) -> None:
    charlie = await open_hub(cast.charlie)
    alice = await open_hub(cast.alice)
    await alice.post(cast.gold_group.pk, b"history")

    def join() -> None:
        seat(cast)
        publish_on_commit(user_channel_group(cast.charlie.pk),
                          {"type": "membership.changed", "group": cast.gold_group.pk, "member": True})

    await sync_to_async(join)()
    frames = await charlie.barrier()
    assert [f["type"] for f in frames] == ["membership", "message", "caught_up"]
    await alice.post(cast.gold_group.pk, b"live")
    assert seqs(await charlie.barrier()) == [2]
    await charlie.close()
    await alice.close()


async def test_it_cuts_a_disabled_user_at_once(cast: Cast) -> None:
    bob = await open_hub(cast.bob)
    await sync_to_async(user_disable)(actor=cast.admin, user=cast.bob, reason="left the business")
    assert (await bob.recv("revoked"))["reason"] == "account_disabled"
    with pytest.raises(Closed) as closed:
        await bob.recv()
    assert closed.value.code == 4401


async def test_it_cuts_a_suspended_business_on_the_next_check(cast: Cast, settings: Settings) -> None:
    settings.HUB_MEMBERSHIP_TTL_SECONDS = 0
    bob = await open_hub(cast.bob)
    alice = await open_hub(cast.alice)
    await sync_to_async(Business.objects.filter(pk=cast.books.pk).update)(status=Business.Status.SUSPENDED)
    await bob.send({"type": "ping"})
    await bob.ping()  # pings are not membership-checked; the next fan-out is
    await sync_to_async(GroupMember.objects.create)(group=cast.gold_group, user=cast.charlie)
    charlie = await open_hub(cast.charlie)
    await charlie.post(cast.gold_group.pk)
    assert (await bob.recv("revoked"))["reason"] == "inactive"
    with pytest.raises(Closed):
        await bob.recv()
    await alice.close()
    await charlie.close()


async def test_it_carries_at_most_hub_max_groups(cast: Cast, settings: Settings) -> None:
    settings.HUB_MAX_GROUPS = 1
    await sync_to_async(GroupMember.objects.create)(group=cast.abington_group, user=cast.warden)
    warden = await open_hub(cast.warden, hello=False)
    await warden.send({"type": "hello", "v": 1})
    frames = []
    while (frame := await warden.recv("membership", "caught_up", "presence", "ready"))["type"] != "ready":
        frames.append(frame)
    assert frame["truncated"] is True and len(frame["groups"]) == 1
    await warden.close()
