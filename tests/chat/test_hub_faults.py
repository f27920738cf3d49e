"""Faults in-process: a database outage refuses sends retryably (never acks them); nothing is lost after."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.db import OperationalError, connections

from chat.models import HubConnection, Message
from chat.protocol import group_channel
from tests.cast import Cast
from tests.chat.test_hub_kit import (  # noqa: F401 (fixture)
    Closed,
    fresh_channel_layer,
    open_hub,
    send_held_back,
    seqs,
)

pytestmark = pytest.mark.django_db(transaction=True)


@contextmanager
def database_down(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Opening a database connection fails, as when the server is unreachable (SQLite and PostgreSQL alike).

    The hub opens (or takes from the pool) a connection for every database call, so every call fails.
    """
    wrapper = type(connections["default"])

    def refuse(self: object) -> None:
        raise OperationalError("connection refused")

    with monkeypatch.context() as patch:
        patch.setattr(wrapper, "connect", refuse)
        yield


async def test_it_refuses_sends_retryably_while_the_database_is_down(
    cast: Cast, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = await open_hub(cast.alice)
    bob = await open_hub(cast.bob)
    client_id = str(uuid.uuid4())
    with database_down(monkeypatch):
        refused = await alice.post(cast.gold_group.pk, b"during the outage", client_id=client_id)
        assert refused == {**refused, "type": "error", "code": "unavailable", "retryable": True, "ref": client_id}
        await alice.ping()  # the socket stays up
    assert await sync_to_async(Message.objects.count)() == 0
    # The client retries with the same id once the database is back: stored once, delivered once.
    ack = await alice.post(cast.gold_group.pk, b"during the outage", client_id=client_id)
    assert ack["type"] == "ack" and ack["seq"] == 1 and ack["duplicate"] is False
    assert seqs(await bob.barrier()) == [1]
    await alice.close()
    await bob.close()


async def test_it_refuses_hello_retryably_while_the_database_is_down(
    cast: Cast, monkeypatch: pytest.MonkeyPatch
) -> None:
    warden = await open_hub(cast.warden, hello=False)
    with database_down(monkeypatch):
        await warden.send({"type": "hello", "v": 1})
        refused = await warden.recv("error")
        assert (refused["code"], refused["retryable"]) == ("unavailable", True)
    await warden.hello()  # and hello works once it is back
    await warden.close()


def bob_channel(cast: Cast) -> str:
    return HubConnection.objects.get(user=cast.bob).channel_name


async def test_it_holds_back_live_events_it_cannot_gap_fill_until_the_database_is_back(
    cast: Cast, monkeypatch: pytest.MonkeyPatch
) -> None:
    bob = await open_hub(cast.bob)
    captured = await sync_to_async(send_held_back)(cast.alice.pk, cast.gold_group.pk, 2)
    layer = get_channel_layer()
    with database_down(monkeypatch):
        await layer.group_send(group_channel(cast.gold_group.pk), captured[1])  # seq 2 arrives, seq 1 was lost
        assert await bob.barrier() == []  # never 2 before 1
    await layer.send(await sync_to_async(bob_channel)(cast), {"type": "hub.reconcile"})
    assert seqs(await bob.barrier()) == [1, 2]
    await bob.close()


async def test_it_asks_the_client_to_reconnect_when_the_channel_layer_fails(
    cast: Cast, monkeypatch: pytest.MonkeyPatch
) -> None:
    bob = await open_hub(cast.bob)
    layer = get_channel_layer()

    async def broken(*args: object, **kwargs: object) -> None:
        raise ConnectionError("redis went away")

    monkeypatch.setattr(layer, "group_add", broken)
    await layer.send(await sync_to_async(bob_channel)(cast), {"type": "hub.reconcile"})
    with pytest.raises(Closed) as closed:
        while True:
            await bob.recv()
    assert closed.value.code == 4503
