"""Retention: expires_at from the group's period at send; never served once expired; purged and audited."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
import time_machine
from asgiref.sync import sync_to_async
from django.utils import timezone

from chat import jobs, services
from chat.models import Message
from chat.selectors import stream_frames_after
from members.jobs import registered_jobs
from members.models import AuditEvent, StreetGroup
from tests.cast import Cast
from tests.chat.test_hub_kit import fresh_channel_layer, open_hub, send_as, seqs  # noqa: F401 (fixture)

pytestmark = pytest.mark.django_db(transaction=True)
HOUR = 3600


def set_retention(group: StreetGroup, seconds: int) -> None:
    StreetGroup.objects.filter(pk=group.pk).update(retention_seconds=seconds)


async def test_it_sets_expiry_from_the_group_retention_at_send(cast: Cast) -> None:
    await sync_to_async(set_retention)(cast.gold_group, 2 * HOUR)
    with time_machine.travel(timezone.now(), tick=False):
        stored = await sync_to_async(send_as)(cast.alice.pk, cast.gold_group.pk)
        message = await sync_to_async(Message.objects.get)(group=cast.gold_group, seq=stored.seq)
        assert message.expires_at == timezone.now() + timedelta(hours=2)


async def test_it_never_serves_an_expired_message(cast: Cast) -> None:
    await sync_to_async(set_retention)(cast.gold_group, HOUR)
    start = timezone.now()
    with time_machine.travel(start, tick=True) as traveller:
        await sync_to_async(send_as)(cast.alice.pk, cast.gold_group.pk)  # seq 1, expires in an hour
        traveller.shift(timedelta(minutes=50))
        await sync_to_async(set_retention)(cast.gold_group, 10 * HOUR)
        await sync_to_async(send_as)(cast.alice.pk, cast.gold_group.pk)  # seq 2, lives on
        traveller.shift(timedelta(minutes=20))
        # Not purged yet, but expired: not replayed, not gap-filled, not retractable.
        assert await sync_to_async(Message.objects.count)() == 2
        bob = await open_hub(cast.bob, resume={cast.gold_group.pk: 0})
        assert seqs(bob.replayed) == [2]
        assert bob.caught_up == {cast.gold_group.pk: 2}
        assert [f["seq"] for f in await sync_to_async(stream_frames_after)(group_id=cast.gold_group.pk,
                                                                          after_seq=0, before_seq=3)] == [2]
        alice = await open_hub(cast.alice)
        ref = str(uuid.uuid4())
        await alice.send({"type": "retract", "group": cast.gold_group.pk, "seq": 1, "client_id": ref})
        assert (await alice.reply_for(ref))["code"] == "not_found"
        await bob.close()
        await alice.close()


async def test_it_purges_expired_messages_and_audits_the_count(cast: Cast) -> None:
    await sync_to_async(set_retention)(cast.gold_group, HOUR)
    with time_machine.travel(timezone.now(), tick=True) as traveller:
        for _ in range(3):
            await sync_to_async(send_as)(cast.alice.pk, cast.gold_group.pk)
        await sync_to_async(services.message_retract)(user_id=cast.alice.pk, group_id=cast.gold_group.pk, seq=1)
        assert await sync_to_async(jobs.purge_expired)() == {"messages": 0, "blobs": 0, "epochs": 0}
        assert not await sync_to_async(AuditEvent.objects.filter(action="chat.purge").exists)()
        traveller.shift(timedelta(hours=1, seconds=1))
        await sync_to_async(set_retention)(cast.gold_group, 10 * HOUR)
        await sync_to_async(send_as)(cast.alice.pk, cast.gold_group.pk)  # seq 5 stays
        assert await sync_to_async(jobs.purge_expired)() == {"messages": 4, "blobs": 0, "epochs": 0}  # 3 messages and the tombstone
        assert await sync_to_async(lambda: list(Message.objects.values_list("seq", flat=True)))() == [5]
        audit = await sync_to_async(AuditEvent.objects.get)(action="chat.purge")
        assert audit.detail == {"messages": 4}
        # The sequence continues where it was: purging never reuses a seq.
        assert (await sync_to_async(send_as)(cast.alice.pk, cast.gold_group.pk)).seq == 6


def test_it_registers_the_purge_to_run_every_minute() -> None:
    jobs_by_name = registered_jobs()
    assert jobs_by_name["chat.purge_expired"].every_seconds <= 60
    assert jobs_by_name["chat.purge_expired"].func is jobs.purge_expired
