"""Across processes with the Redis channel layer: two Daphnes behind a balancer, kill -9, Redis restarts."""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import shutil
import signal
import subprocess
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import sync_to_async

from chat.client import HubClient, HubError
from chat.models import Message
from tests.cast import PASSWORD, Cast
from tests.chat.test_hub_kit import kit_device, seal
from tests.servers import DaphneProcess, free_port

pytestmark = [pytest.mark.redis, pytest.mark.slow, pytest.mark.django_db(transaction=True)]
WAIT = 60


@pytest.fixture(autouse=True)
def redis_only() -> None:
    if not os.environ.get("REDIS_URL"):
        pytest.skip("needs REDIS_URL=redis://... (CI sets it)")


class Balancer:
    """A TCP load balancer in front of the Daphne processes, as in production.

    Each new connection goes to the backend at `target` if it accepts, else to the next live one.
    """

    def __init__(self, backends: list[int]) -> None:
        self.backends = backends
        self.target = 0
        self.routes: list[int] = []
        self.port = 0
        self.server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        order = self.backends[self.target:] + self.backends[: self.target]
        for port in order:
            try:
                up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
                break
            except OSError:
                continue
        else:
            writer.close()
            return
        self.routes.append(port)

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except OSError:
                pass
            finally:
                with contextlib.suppress(Exception):
                    sink.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


@pytest.fixture
async def balancer() -> AsyncIterator[Balancer]:
    ports = [free_port(), free_port()]
    proxy = Balancer(ports)
    await proxy.start()
    yield proxy
    await proxy.stop()


def cluster(daphne_factory: Any, proxy: Balancer, **env: str) -> list[DaphneProcess]:
    shared = {"ALLOWED_ORIGINS": proxy.url, "CHANNEL_PREFIX": f"t{uuid.uuid4().hex[:10]}",
              "HUB_RECONCILE_SECONDS": "3", **env}
    # One process runs the background worker, as a deployment would have one `run_worker`.
    return [daphne_factory(port=port, worker=(n == 0), extra_env=shared) for n, port in enumerate(proxy.backends)]


async def signed_in(proxy: Balancer, user: Any, target: int) -> HubClient:
    proxy.target = target
    device = await sync_to_async(kit_device)(user.pk)
    client = await HubClient.sign_in(proxy.url, user.email, PASSWORD, max_backoff=1.0, device=device)
    await client.connect(timeout=WAIT)
    assert proxy.routes[-1] == proxy.backends[target]
    return client


class Collector:
    """Reads a client's message stream into a list; `wait_for(n)` returns once n frames arrived."""

    def __init__(self, client: HubClient) -> None:
        self.frames: list[dict[str, Any]] = []
        self.changed = asyncio.Event()
        self.task = asyncio.ensure_future(self._run(client))

    async def _run(self, client: HubClient) -> None:
        async for frame in client.messages():
            self.frames.append(frame)
            self.changed.set()

    async def wait_for(self, count: int) -> list[dict[str, Any]]:
        async with asyncio.timeout(WAIT):
            while len(self.frames) < count:
                self.changed.clear()
                await self.changed.wait()
        return self.frames


async def test_it_carries_messages_between_processes_and_survives_kill_9(
    cast: Cast, daphne_factory: Any, balancer: Balancer
) -> None:
    first, second = cluster(daphne_factory, balancer)
    alice = await signed_in(balancer, cast.alice, 0)
    bob = await signed_in(balancer, cast.bob, 1)
    received = Collector(bob)

    async def sealed(user: Any, text: str) -> bytes:
        return await sync_to_async(seal)(user.pk, cast.gold_group.pk, text)

    await alice.send(cast.gold_group.pk, await sealed(cast.alice, "1"))
    assert [f["seq"] for f in await received.wait_for(1)] == [1]  # across processes, through Redis
    second.kill()  # bob's process dies without a word
    for n in range(2, 6):
        assert (await alice.send(cast.gold_group.pk, await sealed(cast.alice, str(n)))).seq == n
    # bob's client reconnects through the balancer to the surviving process and catches up.
    assert [f["seq"] for f in await received.wait_for(5)] == [1, 2, 3, 4, 5]
    assert balancer.routes[-1] == first.port and bob.connections == 2
    ack = await bob.send(cast.gold_group.pk, await sealed(cast.bob, "back"))
    assert ack.seq == 6
    assert [f["seq"] for f in await Collector(alice).wait_for(6)] == [1, 2, 3, 4, 5, 6]
    await alice.close()
    await bob.close()


class RedisServer:
    """A private redis-server on a free loopback port that tests can kill -9 and start again."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.process: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is needed on the PATH"
        self.process = subprocess.Popen(  # noqa: S603
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        lines: queue.Queue[str | None] = queue.Queue()

        def pump() -> None:
            assert self.process is not None and self.process.stdout is not None
            for line in self.process.stdout:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        while (line := lines.get(timeout=30)) is not None:
            if "Ready to accept connections" in line:
                return
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.kill()


async def test_it_loses_no_acked_message_when_redis_restarts(
    cast: Cast, daphne_factory: Any, balancer: Balancer, private_redis: RedisServer
) -> None:
    cluster(daphne_factory, balancer, REDIS_URL=private_redis.url)
    alice = await signed_in(balancer, cast.alice, 0)
    bob = await signed_in(balancer, cast.bob, 1)
    received = Collector(bob)
    acked: dict[bytes, int] = {}
    refused: list[bytes] = []
    outcomes = asyncio.Queue[str]()

    async def keep_sending() -> None:
        n = 0
        while True:
            n += 1
            payload = await sync_to_async(seal)(cast.alice.pk, cast.gold_group.pk, f"m{n}")
            try:
                acked[payload] = (await alice.send(cast.gold_group.pk, payload, retry=False)).seq
                await outcomes.put("acked")
            except HubError as error:
                assert error.retryable, error  # every refusal says: try again
                refused.append(payload)
                await outcomes.put("refused")

    async def outcomes_seen(count: int, kind: str | None = None) -> None:
        async with asyncio.timeout(WAIT):
            seen = 0
            while seen < count:
                if kind is None or await outcomes.get() == kind:
                    seen += 1

    sender = asyncio.ensure_future(keep_sending())
    await outcomes_seen(5, "acked")
    private_redis.kill()  # mid-stream
    await outcomes_seen(3)  # sends go on being acked (stored) or refused retryably meanwhile
    private_redis.start()
    await outcomes_seen(10, "acked")  # and the hub recovers
    sender.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await sender
    # Every acked message reaches bob after recovery (live or by catch-up), once, in order.
    stored = await sync_to_async(lambda: dict(Message.objects.values_list("envelope", "seq")))()
    frames = await received.wait_for(len(stored))
    seqs = [f["seq"] for f in frames]
    assert seqs == sorted(set(seqs)) == sorted(stored.values())
    assert set(acked.values()) <= set(seqs)
    # A refused send was never acked; if the hub stored it before the connection dropped, bob has it too.
    assert not set(refused) & set(acked)
    await alice.close()
    await bob.close()
