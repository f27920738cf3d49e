"""Catch-up and ordering: no gap and no duplicate, whatever the channel layer does meanwhile."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from pytest_django.fixtures import Settings

from chat import selectors
from chat.models import HubConnection
from tests.cast import Cast
from tests.chat.test_hub_kit import (  # noqa: F401 (fixture)
    fresh_channel_layer,
    open_hub,
    send_as,
    send_held_back,
    seqs,
)

pytestmark = pytest.mark.django_db(transaction=True)


async def test_it_replays_what_a_client_missed_in_order(cast: Cast, settings: Settings) -> None:
    settings.HUB_REPLAY_LIMIT = 2  # several batches
    for _ in range(5):
        await sync_to_async(send_as)(cast.alice.pk, cast.gold_group.pk)
    bob = await open_hub(cast.bob, resume={cast.gold_group.pk: 2})
    assert seqs(bob.replayed) == [3, 4, 5]
    assert bob.caught_up == {cast.gold_group.pk: 5}
    await bob.close()
    # A client with no resume point for a group gets all of its unexpired history.
    fresh = await open_hub(cast.bob)
    assert seqs(fresh.replayed) == [1, 2, 3, 4, 5]
    await fresh.close()


async def test_it_clamps_a_resume_point_ahead_of_the_server(cast: Cast) -> None:
    await sync_to_async(send_as)(cast.alice.pk, cast.gold_group.pk)
    bob = await open_hub(cast.bob, resume={cast.gold_group.pk: 40})
    assert bob.caught_up == {cast.gold_group.pk: 1}
    await sync_to_async(send_as)(cast.alice.pk, cast.gold_group.pk)
    assert seqs(await bob.barrier()) == [2]
    await bob.close()


async def test_it_loses_and_repeats_nothing_when_messages_arrive_during_replay(
    cast: Cast, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.HUB_REPLAY_LIMIT = 2
    for _ in range(5):
        await sync_to_async(send_as)(cast.alice.pk, cast.gold_group.pk)
    injected: list[int] = []
    original = selectors.stream_frames_after

    def racing(**kwargs: Any) -> list[dict[str, Any]]:
        # Each replay query is followed by a new message committed (and published) before the next one, the
        # last of them after the final query: only the live stream can deliver that one.
        frames = original(**kwargs)
        if len(injected) < 5:
            injected.append(send_as(cast.alice.pk, cast.gold_group.pk).seq)
        return frames

    monkeypatch.setattr(selectors, "stream_frames_after", racing)
    bob = await open_hub(cast.bob, resume={cast.gold_group.pk: 0})
    monkeypatch.setattr(selectors, "stream_frames_after", original)
    assert injected == [6, 7, 8, 9, 10]
    live = await bob.barrier()
    assert seqs(bob.replayed) + seqs(live) == list(range(1, 11))
    assert seqs(live) == [10]
    await bob.close()


async def test_it_fills_a_gap_left_by_a_dropped_event_from_the_database(
    cast: Cast, monkeypatch: pytest.MonkeyPatch
) -> None:
    bob = await open_hub(cast.bob)

    await sync_to_async(send_held_back)(cast.alice.pk, cast.gold_group.pk, 1)  # the layer never carries seq 1
    await sync_to_async(send_as)(cast.alice.pk, cast.gold_group.pk)
    delivered = await bob.barrier()
    assert seqs(delivered) == [1, 2]
    assert delivered[0]["envelope"] is not None
    await bob.close()


async def test_it_delivers_events_that_overtook_each_other_in_seq_order(cast: Cast) -> None:
    bob = await open_hub(cast.bob)
    frames = await sync_to_async(send_held_back)(cast.alice.pk, cast.gold_group.pk, 3)
    layer = get_channel_layer()
    for event in reversed(frames):  # 3, 2, 1: as if three processes published out of order
        await layer.group_send(f"group.{cast.gold_group.pk}", event)
    assert seqs(await bob.barrier()) == [1, 2, 3]
    await bob.close()


async def test_it_recovers_lost_subscriptions_on_reconcile(cast: Cast) -> None:
    bob = await open_hub(cast.bob)
    layer = get_channel_layer()
    layer.groups.clear()  # what a Redis restart does to every subscription
    await sync_to_async(send_as)(cast.alice.pk, cast.gold_group.pk)
    channel = await sync_to_async(lambda: HubConnection.objects.get(user=cast.bob).channel_name)()
    await layer.send(channel, {"type": "hub.reconcile"})
    frame = await bob.recv("message")
    assert frame["seq"] == 1
    # Subscribed again: the next message arrives live.
    await sync_to_async(send_as)(cast.alice.pk, cast.gold_group.pk)
    assert (await bob.recv("message"))["seq"] == 2
    await bob.close()
