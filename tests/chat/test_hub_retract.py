"""Retraction: the sender or a group moderator withdraws a message; a tombstone fans out with its own seq."""

from __future__ import annotations

import uuid

import pytest
from asgiref.sync import sync_to_async

from chat.models import Message
from tests.cast import Cast
from tests.chat.test_hub_kit import fresh_channel_layer, open_hub, seqs  # noqa: F401 (fixture)

pytestmark = pytest.mark.django_db(transaction=True)


async def test_it_lets_the_sender_retract_and_blanks_the_envelope(cast: Cast) -> None:
    alice = await open_hub(cast.alice)
    bob = await open_hub(cast.bob)
    await alice.post(cast.gold_group.pk, b"wrong shop, sorry")
    assert seqs(await bob.barrier()) == [1]
    client_id = str(uuid.uuid4())
    await alice.send({"type": "retract", "group": cast.gold_group.pk, "seq": 1, "client_id": client_id})
    ack = await alice.reply_for(client_id)
    assert ack["type"] == "ack" and ack["seq"] == 2 and ack["duplicate"] is False
    tombstone = await bob.recv("retracted")
    assert tombstone == {**tombstone, "seq": 2, "target_seq": 1, "by": cast.alice.pk}
    stored = await sync_to_async(Message.objects.get)(group=cast.gold_group, seq=1)
    assert bytes(stored.envelope) == b"" and stored.retracted_at is not None
    # Replayed later, the message has no envelope any more and the tombstone follows it.
    late = await open_hub(cast.warden)
    assert [(f["type"], f["seq"]) for f in late.replayed] == [("message", 1), ("retracted", 2)]
    assert late.replayed[0]["envelope"] is None and late.replayed[0]["retracted"] is True
    # Retracting again is idempotent: the same tombstone.
    again = str(uuid.uuid4())
    await alice.send({"type": "retract", "group": cast.gold_group.pk, "seq": 1, "client_id": again})
    assert (await alice.reply_for(again))["seq"] == 2
    assert await sync_to_async(Message.objects.filter(kind="retraction").count)() == 1
    for hub in (alice, bob, late):
        await hub.close()


async def test_it_lets_a_group_moderator_retract_anyones_message(cast: Cast) -> None:
    alice = await open_hub(cast.alice)
    warden = await open_hub(cast.warden)
    await alice.post(cast.gold_group.pk, b"names and addresses")
    await warden.send({"type": "retract", "group": cast.gold_group.pk, "seq": 1})
    tombstone = await alice.recv("retracted")
    assert tombstone["by"] == cast.warden.pk and tombstone["target_seq"] == 1
    await alice.close()
    await warden.close()


async def test_it_refuses_retraction_by_anyone_else(cast: Cast) -> None:
    alice = await open_hub(cast.alice)
    bob = await open_hub(cast.bob)
    charlie = await open_hub(cast.charlie)
    await alice.post(cast.gold_group.pk)
    for hub, code in ((bob, "forbidden"), (charlie, "not_member")):
        ref = str(uuid.uuid4())
        await hub.send({"type": "retract", "group": cast.gold_group.pk, "seq": 1, "client_id": ref})
        refused = await hub.reply_for(ref)
        assert refused["type"] == "error" and refused["code"] == code
    ref = str(uuid.uuid4())
    await alice.send({"type": "retract", "group": cast.gold_group.pk, "seq": 99, "client_id": ref})
    assert (await alice.reply_for(ref))["code"] == "not_found"
    stored = await sync_to_async(Message.objects.get)(group=cast.gold_group, seq=1)
    assert bytes(stored.envelope) == alice.last_envelope and stored.retracted_at is None
    assert [f for f in await alice.barrier() if f["type"] == "retracted"] == []
    for hub in (alice, bob, charlie):
        await hub.close()
