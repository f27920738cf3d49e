"""E2EE end to end over a real Daphne with chat.e2ee_client: Python clients chat, approve a device, shut a removed
member out of what follows; and a canary plaintext never reaches the database, files, logs, Redis or a push."""

from __future__ import annotations

import asyncio
import base64
import os
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db import connection
from pytest_django.fixtures import Settings

from alerts import push
from alerts.services import subscription_save
from chat import crypto
from chat.e2ee_client import E2EEClient, Received
from chat.models import EpochWrap, GroupEpoch, Message
from members.models import GroupMember
from members.services import group_member_remove
from tests.alerts.fake_push import FakePushService
from tests.cast import PASSWORD, Cast, totp_now
from tests.servers import DaphneProcess

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
WAIT = 30


async def client_for(server: DaphneProcess, user: Any, *, totp: bool = False, register: bool = True) -> E2EEClient:
    client = await E2EEClient.sign_in(server.url, user.email, PASSWORD, totp_now() if totp else None, max_backoff=1.0)
    if register:
        await client.register()
        await client.connect(timeout=WAIT)
    return client


async def next_received(client: E2EEClient, stream: Any) -> Received:
    return await asyncio.wait_for(anext(stream), WAIT)


async def test_it_chats_end_to_end_between_python_clients(cast: Cast, live_server_proc: DaphneProcess) -> None:
    gold = cast.gold_group.pk
    alice = await client_for(live_server_proc, cast.alice)
    bob = await client_for(live_server_proc, cast.bob)
    warden = await client_for(live_server_proc, cast.warden, totp=True)
    streams = {c: c.received() for c in (alice, bob, warden)}
    ack = await alice.send_text(gold, "Red cap at the cash machine", urgent=True)
    for client in (alice, bob, warden):
        got = await next_received(client, streams[client])
        assert (got.seq, got.text, got.error, got.sender_name) == (ack.seq, "Red cap at the cash machine", None,
                                                                    "Alice Archer")
        assert got.message is not None and got.message.urgent is True
        assert got.frame["franking"]["kid"]
    # Photos travel as encrypted blobs; their key and hash inside the message.
    photo = b"\xff\xd8 the red cap, from the shop's camera"
    attachment = await bob.upload(gold, photo)
    await bob.send_text(gold, "This him?", attachments=[attachment])
    seen = await next_received(alice, streams[alice])
    assert seen.text == "This him?" and await alice.download(seen.message.attachments[0]) == photo  # type: ignore[union-attr]
    # Both sides compute the same safety number.
    assert await alice.safety_number(gold, cast.bob.pk) == await bob.safety_number(gold, cast.alice.pk)
    # alice adds a laptop: pending until her phone approves it, then the next message is readable there too.
    laptop = await client_for(live_server_proc, cast.alice, register=False)
    assert await laptop.register("Laptop") == "pending"
    await alice.approve(laptop.device_id)
    await laptop.connect(timeout=WAIT)
    laptop_stream = laptop.received()
    await warden.send_text(gold, "Warden: he is on Gold Street now")  # rotates first: a device was added
    for _ in range(3):  # the history it cannot read (older epochs), then the new message
        got = await next_received(laptop, laptop_stream)
        if got.text is not None:
            break
        assert got.error == "unknown_epoch"
    assert got.text == "Warden: he is on Gold Street now"
    for client in (alice, bob, warden, laptop):
        await client.close()


async def test_it_shuts_a_removed_member_out_of_what_follows(cast: Cast, live_server_proc: DaphneProcess) -> None:
    gold = cast.gold_group.pk
    alice = await client_for(live_server_proc, cast.alice)
    bob = await client_for(live_server_proc, cast.bob)
    warden = await client_for(live_server_proc, cast.warden, totp=True)
    bob_stream, warden_stream = bob.received(), warden.received()
    await alice.send_text(gold, "before")
    assert (await next_received(warden, warden_stream)).text == "before"
    assert (await next_received(bob, bob_stream)).text == "before"
    before_epoch = await sync_to_async(lambda: GroupEpoch.objects.get(group_id=gold).epoch)()

    await sync_to_async(group_member_remove)(
        actor=cast.admin, member=await sync_to_async(GroupMember.objects.get)(group_id=gold, user=cast.warden))
    ack = await alice.send_text(gold, "after the warden left")  # refused until rotated; the client rotates
    assert (await next_received(bob, bob_stream)).text == "after the warden left"

    def latest() -> tuple[int, set[str]]:
        epoch = GroupEpoch.objects.filter(group_id=gold).order_by("-epoch").first()
        assert epoch is not None
        return epoch.epoch, set(EpochWrap.objects.filter(epoch=epoch).values_list("device_id", flat=True))

    epoch, recipients = await sync_to_async(latest)()
    assert epoch == before_epoch + 1 and recipients == {alice.device_id, bob.device_id}
    # Even holding the ciphertext, the warden's device cannot read it: no key was wrapped to it.
    stored = await sync_to_async(Message.objects.get)(group_id=gold, seq=ack.seq)
    frame = {"type": "message", "group": gold, "seq": ack.seq, "sender": None,
             "envelope": base64.b64encode(bytes(stored.envelope)).decode()}
    with pytest.raises(crypto.E2EEError) as refused:
        await warden.decrypt_frame(frame)
    assert refused.value.code == crypto.CODE_UNKNOWN_EPOCH
    for client in (alice, bob, warden):
        await client.close()


# --- the canary ----------------------------------------------------------------------------------------------


def variants(secret: bytes) -> list[bytes]:
    """The secret, and what any base64 encoding of text holding it would contain (for each alignment)."""
    found = [secret]
    for shift in range(3):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            # Drop the first and last 4-character groups: they mix in bytes from around the secret.
            found.append(encode(b"\x00" * shift + secret)[4:-4])
    return [f for f in found if len(f) >= 16]


def contains_any(data: bytes, needles: list[bytes]) -> bool:
    return any(needle in data for needle in needles)


def database_dump() -> bytes:
    """Every value of every table, as bytes."""
    out = bytearray()
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608 (table names from the db)
            for row in cursor.fetchall():
                for value in row:
                    if isinstance(value, bytes | bytearray | memoryview):
                        out += bytes(value)
                    else:
                        out += str(value).encode("utf-8", "surrogatepass")
                    out += b"\n"
    return bytes(out)


def files_under(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in folder.rglob("*") if p.is_file() and not p.name.endswith("sqlite3"))


class RedisMonitor:
    """Every command the Redis server runs while open (MONITOR), collected in a thread."""

    def __init__(self, url: str) -> None:
        import redis

        self.url = url
        self.client = redis.Redis.from_url(url)
        self.commands: list[str] = []
        self.started = threading.Event()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with self.client.monitor() as monitor:
            self.started.set()
            for command in monitor.listen():
                self.commands.append(command["command"])
                if self.stop.is_set():
                    return

    def __enter__(self) -> RedisMonitor:
        self.thread.start()
        assert self.started.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.client.ping()  # one more command, so listen() returns
        self.thread.join(10)


@pytest.fixture
def push_service(settings: Settings) -> Iterator[FakePushService]:
    settings.VAPID_PRIVATE_KEY = push.vapid_private_pem(push.vapid_private_key_generate()).decode()
    settings.PUSH_ENDPOINT_ALLOWLIST = ["127.0.0.1"]
    with FakePushService(vapid_public_key=push.vapid_public_key()) as service:
        yield service


async def send_the_canary(cast: Cast, server: DaphneProcess, fake: FakePushService) -> bytes:
    """alice sends an urgent message and a photo holding a unique canary; bob reads both. Returns the canary."""
    canary = f"CANARY-{uuid.uuid4().hex}-Tony-Smith-14-Gold-Street"
    gold = cast.gold_group.pk
    alice = await client_for(server, cast.alice)
    bob = await client_for(server, cast.bob)
    device = fake.subscribe()
    await sync_to_async(subscription_save)(user=cast.bob, endpoint=device.endpoint, p256dh=device.p256dh,
                                           auth=device.auth, label="bob's phone")
    stream = bob.received()
    photo = f"photo bytes {canary}".encode()
    attachment = await alice.upload(gold, photo)
    await alice.send_text(gold, f"Urgent: {canary} is back", urgent=True, attachments=[attachment])
    got = await next_received(bob, stream)
    assert got.text == f"Urgent: {canary} is back"  # it went through the whole system
    assert await bob.download(got.message.attachments[0]) == photo  # type: ignore[union-attr]
    [delivery] = await asyncio.to_thread(fake.wait_for, 1, WAIT)
    payload = delivery.json()
    assert payload["kind"] == "chat" and payload["urgent"] is True and "envelope" in payload
    assert not contains_any(delivery.plaintext or b"", variants(canary.encode()))
    for client in (alice, bob):
        await client.close()
    return canary.encode()


def assert_nowhere_on_the_server(canary: bytes, server: DaphneProcess) -> None:
    needles = variants(canary)
    assert not contains_any(database_dump(), needles), "the canary is in the database"
    assert not contains_any(files_under(server.data_dir), needles), "the canary is in the server's files"
    assert not contains_any("".join(server.output).encode(), needles), "the canary is in the server's logs"


def canary_server(daphne_factory: Any, settings: Settings, **env: str) -> DaphneProcess:
    return daphne_factory(extra_env={  # type: ignore[no-any-return]
        "VAPID_PRIVATE_KEY": settings.VAPID_PRIVATE_KEY, "PUSH_ENDPOINT_ALLOWLIST": "127.0.0.1",
        "LOG_LEVEL": "DEBUG", **env,
    })


async def test_it_keeps_a_canary_out_of_the_database_files_logs_and_pushes(
    cast: Cast, daphne_factory: Any, push_service: FakePushService, settings: Settings
) -> None:
    server = canary_server(daphne_factory, settings)
    canary = await send_the_canary(cast, server, push_service)
    await sync_to_async(assert_nowhere_on_the_server)(canary, server)


@pytest.mark.redis
async def test_it_keeps_a_canary_out_of_redis_traffic(
    cast: Cast, daphne_factory: Any, push_service: FakePushService, settings: Settings
) -> None:
    url = os.environ.get("REDIS_URL")
    if not url:
        pytest.skip("needs REDIS_URL=redis://... (CI sets it)")
    server = canary_server(daphne_factory, settings, REDIS_URL=url, CHANNEL_PREFIX=f"canary{uuid.uuid4().hex[:8]}")
    with RedisMonitor(url) as monitor:
        canary = await send_the_canary(cast, server, push_service)
    traffic = "\n".join(monitor.commands)
    assert "canary" in traffic  # the hub's traffic went through this Redis (its channel prefix)
    assert not contains_any(traffic.encode("utf-8", "surrogatepass"), variants(canary)), "the canary is in Redis"
    await sync_to_async(assert_nowhere_on_the_server)(canary, server)
