"""Shared helpers for the hub tests (no tests here): a socket wrapper over WebsocketCommunicator.

Every frame a test receives is checked against its JSON Schema in chat/schemas.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.layers import channel_layers, get_channel_layer
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client
from pytest_django.fixtures import Settings

from chat import services
from chat.protocol import envelope_encode, validate_server_frame
from members.events import user_channel_group
from members.models import User
from ntars.asgi import application

ORIGIN = settings.ALLOWED_ORIGINS[0]
TIMEOUT = 10


IN_MEMORY_LAYER = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer", "CONFIG": {"capacity": 1000}}}


@pytest.fixture(autouse=True)
def fresh_channel_layer(settings: Settings) -> Iterator[None]:
    """Each in-process test gets its own in-memory channel layer (its queues belong to the test's loop).

    In-memory even when REDIS_URL is set: these tests drive the consumer's logic; test_hub_redis.py covers Redis.
    """
    settings.CHANNEL_LAYERS = IN_MEMORY_LAYER
    channel_layers.backends.pop("default", None)
    yield
    channel_layers.backends.pop("default", None)


def session_cookie(user: User) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies[settings.SESSION_COOKIE_NAME].value


class Hub:
    """One test socket. `recv` passes over presence frames (kept in .presence) unless asked for them."""

    def __init__(self, communicator: WebsocketCommunicator, user: User) -> None:
        self.communicator = communicator
        self.user = user
        self.presence: list[dict[str, Any]] = []
        self.skipped: list[dict[str, Any]] = []
        self.caught_up: dict[int, int] = {}
        self.groups: dict[int, str] = {}

    async def send(self, frame: dict[str, Any]) -> None:
        await self.communicator.send_to(text_data=json.dumps(frame))

    async def send_raw(self, text: str | None = None, data: bytes | None = None) -> None:
        message: dict[str, Any] = {"type": "websocket.receive"}
        if data is not None:
            message["bytes"] = data
        else:
            message["text"] = text
        await self.communicator.send_input(message)

    async def recv_any(self, timeout: float = TIMEOUT) -> dict[str, Any]:
        output = await self.communicator.receive_output(timeout)
        if output["type"] == "websocket.close":
            raise Closed(output.get("code"))
        frame = json.loads(output["text"])
        validate_server_frame(frame)
        return frame

    async def recv(self, *types: str, timeout: float = TIMEOUT) -> dict[str, Any]:
        """The next frame (of one of `types`, if given); frames passed over are kept in .skipped."""
        while True:
            frame = await self.recv_any(timeout)
            if frame["type"] == "presence" and "presence" not in types:
                self.presence.append(frame)
            elif types and frame["type"] not in types:
                self.skipped.append(frame)
            else:
                return frame

    async def hello(self, resume: dict[int, int] | None = None, *, device: str = "test-device") -> list[dict[str, Any]]:
        """Say hello and read until every group is caught up; returns the replayed message/retracted frames."""
        frame: dict[str, Any] = {"type": "hello", "v": 1, "device": device}
        if resume is not None:
            frame["resume"] = {str(group): seq for group, seq in resume.items()}
        await self.send(frame)
        replayed: list[dict[str, Any]] = []
        while True:
            got = await self.recv("membership", "message", "retracted", "caught_up", "presence", "ready")
            if got["type"] == "membership":
                self.groups[got["group"]] = got["name"]
            elif got["type"] == "caught_up":
                self.caught_up[got["group"]] = got["seq"]
            elif got["type"] == "presence":
                self.presence.append(got)
            elif got["type"] == "ready":
                assert got["groups"] == sorted(self.groups)
                assert set(self.caught_up) == set(self.groups)
                return replayed
            else:
                replayed.append(got)

    async def post(self, group: int, envelope: bytes = b"sealed", *, client_id: str | None = None,
                   urgent: bool = False) -> dict[str, Any]:
        """Send and wait for the ack (or error) about this client_id, returning it; other frames are kept."""
        client_id = client_id or str(uuid.uuid4())
        frame: dict[str, Any] = {"type": "send", "group": group, "client_id": client_id,
                                 "envelope": envelope_encode(envelope)}
        if urgent:
            frame["urgent"] = True
        await self.send(frame)
        return await self.reply_for(client_id)

    async def reply_for(self, ref: str) -> dict[str, Any]:
        while True:
            got = await self.recv()
            if (got["type"] == "ack" and got["client_id"] == ref) or (got["type"] == "error" and got.get("ref") == ref):
                return got

    async def barrier(self) -> list[dict[str, Any]]:
        """Every frame the socket delivers before an event sent now through the channel layer is handled."""
        nonce = uuid.uuid4().hex
        await get_channel_layer().group_send(user_channel_group(self.user.pk), {"type": "hub.ping", "nonce": nonce})
        seen: list[dict[str, Any]] = []
        while True:
            got = await self.recv()
            if got["type"] == "pong" and got.get("nonce") == nonce:
                return seen
            if got["type"] != "pong":
                seen.append(got)

    async def ping(self) -> dict[str, Any]:
        nonce = uuid.uuid4().hex
        await self.send({"type": "ping", "nonce": nonce})
        while True:
            got = await self.recv()
            if got["type"] == "pong" and got.get("nonce") == nonce:
                return got

    async def close(self) -> None:
        await self.communicator.disconnect()


class Closed(Exception):  # noqa: N818 (reads as `raises Closed`)
    def __init__(self, code: int | None) -> None:
        super().__init__(f"socket closed with {code}")
        self.code = code


def communicator_for(cookie: str | None, origin: str | None = ORIGIN) -> WebsocketCommunicator:
    headers: list[tuple[bytes, bytes]] = []
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    if cookie is not None:
        headers.append((b"cookie", f"{settings.SESSION_COOKIE_NAME}={cookie}".encode()))
    return WebsocketCommunicator(application, "/ws/", headers=headers)


async def open_hub(user: User, *, hello: bool = True, resume: dict[int, int] | None = None) -> Hub:
    cookie = await sync_to_async(session_cookie)(user)
    communicator = communicator_for(cookie)
    connected, _ = await communicator.connect(timeout=TIMEOUT)
    assert connected, f"{user} could not connect"
    hub = Hub(communicator, user)
    welcome = await hub.recv("welcome")
    assert welcome["user"] == user.pk
    if hello:
        hub.replayed = await hub.hello(resume)  # type: ignore[attr-defined]
    return hub


def send_as(user_id: int, group_id: int, envelope: bytes = b"sealed") -> services.Stored:
    """Store a message through the service, as a socket would (sync: call through sync_to_async)."""
    return services.message_send(user_id=user_id, group_id=group_id, client_id=uuid.uuid4(), envelope=envelope)


def send_held_back(user_id: int, group_id: int, count: int) -> list[dict[str, Any]]:
    """Store `count` messages but keep their channel-layer events back: returned, to publish later or never."""
    held: list[dict[str, Any]] = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(services, "publish_on_commit", lambda group, event: held.append(event))
        for _ in range(count):
            send_as(user_id, group_id)
    return held


def seqs(frames: list[dict[str, Any]], *types: str) -> list[int]:
    types = types or ("message", "retracted")
    return [f["seq"] for f in frames if f["type"] in types]
