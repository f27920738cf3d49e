"""Presence: who in a group is connected now, told on join and leave; dead processes leave no ghosts."""

from __future__ import annotations

from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from chat import jobs
from chat.models import HubConnection
from chat.selectors import presence_online
from tests.cast import Cast
from tests.chat.test_hub_kit import fresh_channel_layer, open_hub  # noqa: F401 (fixture)

pytestmark = pytest.mark.django_db(transaction=True)


async def test_it_tells_the_group_who_joins_and_leaves(cast: Cast) -> None:
    alice = await open_hub(cast.alice)
    assert alice.presence == [{"type": "presence", "group": cast.gold_group.pk, "online": [cast.alice.pk]}]
    bob = await open_hub(cast.bob)
    assert bob.presence[0]["online"] == sorted([cast.alice.pk, cast.bob.pk])
    # alice hears her own arrival, then bob's.
    assert (await alice.recv("presence"))["online"] == [cast.alice.pk]
    assert (await alice.recv("presence"))["online"] == sorted([cast.alice.pk, cast.bob.pk])
    # A second socket of bob's changes nothing; closing one of two keeps him online.
    second = await open_hub(cast.bob)
    await second.close()
    await bob.close()
    left = await alice.recv("presence")
    assert left == {"type": "presence", "group": cast.gold_group.pk, "online": [cast.alice.pk]}
    # charlie, in another group, hears nothing of Gold Street's presence.
    charlie = await open_hub(cast.charlie)
    assert charlie.presence == [{"type": "presence", "group": cast.abington_group.pk, "online": [cast.charlie.pk]}]
    assert [f for f in await charlie.barrier() if f["type"] == "presence"] == []
    await alice.close()
    await charlie.close()


def ghost(cast: Cast) -> None:
    HubConnection.objects.create(channel_name="specific.dead!process", user=cast.bob,
                                 last_seen=timezone.now() - timedelta(minutes=5))


async def test_it_shows_no_ghosts_of_a_killed_process(cast: Cast) -> None:
    await sync_to_async(ghost)(cast)  # bob's socket on a process that was killed -9: it never said goodbye
    alice = await open_hub(cast.alice)
    assert alice.presence[0]["online"] == [cast.alice.pk]
    assert await sync_to_async(presence_online)(group_id=cast.gold_group.pk) == [cast.alice.pk]
    assert await sync_to_async(jobs.presence_sweep)() == {"stale_connections": 1}
    assert not await sync_to_async(HubConnection.objects.filter(user=cast.bob).exists)()
    await alice.close()
