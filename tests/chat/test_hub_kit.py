"""Shared helpers for the hub tests (no tests here): a socket wrapper over WebsocketCommunicator, and real
E2EE envelopes (chat/crypto.py) from one deterministic, approved device per user.

Every frame a test receives is checked against its JSON Schema in chat/schemas.
"""

from __future__ import annotations

import hashlib
import json
import os
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

from chat import crypto, selectors, services
from chat.models import Device, EpochWrap
from chat.protocol import envelope_encode, validate_server_frame
from members.events import user_channel_group
from members.models import StreetGroup, User
from members.selectors import street_group_members, user_is_group_member
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
        self.key_events: list[dict[str, Any]] = []  # keys.changed / epoch.rotated, unless asked for
        self.skipped: list[dict[str, Any]] = []
        self.last_envelope = b""
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
            elif frame["type"] in KEY_EVENTS and frame["type"] not in types:
                self.key_events.append(frame)
            elif types and frame["type"] not in types:
                self.skipped.append(frame)
            else:
                return frame

    async def hello(self, resume: dict[int, int] | None = None, *, device: str | None = None) -> list[dict[str, Any]]:
        """Say hello (from the user's kit device unless told) and read until every group is caught up; returns the
        replayed message/retracted frames."""
        if device is None:
            device = await sync_to_async(kit_device)(self.user.pk)
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

    async def post(self, group: int, text: bytes | str = b"sealed", *, client_id: str | None = None,
                   urgent: bool = False) -> dict[str, Any]:
        """Encrypt `text` for the group (a real envelope, kept in .last_envelope), send it and wait for the ack (or
        error) about this client_id, returning it; other frames are kept."""
        envelope = await sync_to_async(seal)(self.user.pk, group, text)
        self.last_envelope = envelope
        return await self.post_raw(group, envelope, client_id=client_id, urgent=urgent)

    async def post_raw(self, group: int, envelope: bytes, *, client_id: str | None = None,
                       urgent: bool = False) -> dict[str, Any]:
        """Send these envelope bytes as they are and wait for the ack (or error) about this client_id."""
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


def send_as(user_id: int, group_id: int, text: bytes | str = b"sealed", *, envelope: bytes | None = None,
            urgent: bool = False) -> services.Stored:
    """Store a message (sealed from `text` unless an envelope is given) through the service, as a socket of the
    user's kit device would (sync: call through sync_to_async)."""
    envelope = envelope if envelope is not None else seal(user_id, group_id, text)
    return services.message_send(user_id=user_id, group_id=group_id, client_id=uuid.uuid4(), envelope=envelope,
                                 urgent=urgent, device=kit_device(user_id))


def send_held_back(user_id: int, group_id: int, count: int) -> list[dict[str, Any]]:
    """Store `count` messages but keep their channel-layer events back: returned, to publish later or never."""
    envelopes = [seal(user_id, group_id) for _ in range(count)]  # any rotation is published normally
    held: list[dict[str, Any]] = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(services, "publish_on_commit", lambda group, event: held.append(event))
        for envelope in envelopes:
            send_as(user_id, group_id, envelope=envelope)
    return held


def seqs(frames: list[dict[str, Any]], *types: str) -> list[int]:
    types = types or ("message", "retracted")
    return [f["seq"] for f in frames if f["type"] in types]


# --- E2EE: one deterministic device per user, group keys, real envelopes (sync: use sync_to_async) ------------

KEY_EVENTS = frozenset({"keys.changed", "epoch.rotated"})


def _seed(label: str, user_id: int) -> bytes:
    return hashlib.sha256(f"ntars hub kit {label} {user_id}".encode()).digest()


def kit_device_id(user_id: int) -> str:
    """The user's kit device id (a UUID, as browsers make them), the same in every test."""
    return str(uuid.UUID(bytes=_seed("device", user_id)[:16]))


def kit_keys(user_id: int) -> crypto.DeviceKeys:
    """The private keys of the user's kit device (derived from the user id: tests only)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    return crypto.DeviceKeys(signing=Ed25519PrivateKey.from_private_bytes(_seed("sign", user_id)),
                             agreement=X25519PrivateKey.from_private_bytes(_seed("dh", user_id)))


def kit_device(user_id: int) -> str:
    """Make sure the user's kit device is in the directory, approved; returns its id."""
    device_id = kit_device_id(user_id)
    keys = kit_keys(user_id)
    Device.objects.get_or_create(device_id=device_id, defaults={
        "user_id": user_id, "label": "hub test kit", "sign_pub": crypto.b64e(keys.signing_public),
        "dh_pub": crypto.b64e(keys.agreement_public), "status": Device.Status.APPROVED,
    })
    return device_id


def _directory_key(sender_device: str) -> bytes | None:
    device = Device.objects.filter(pk=sender_device).first()
    return crypto.b64d(device.sign_pub) if device is not None else None


def kit_epoch_key(user_id: int, group_id: int) -> tuple[int, bytes]:
    """(current epoch, its key) for the user's kit device in the group, rotating first if it must (a member or
    device left) or if the kit device has no key yet. Every member gets a kit device, so one rotation serves all."""
    group = StreetGroup.objects.get(pk=group_id)
    user = User.objects.select_related("business").get(pk=user_id)
    if not user_is_group_member(user=user, group_id=group_id):
        # Not a member: a well-formed envelope the hub will refuse (not_member) before looking at its key.
        return max(selectors.epoch_state(group=group).current, 1), os.urandom(32)
    for member_id in street_group_members(group=group).values_list("pk", flat=True):
        kit_device(member_id)
    device = kit_device(user_id)
    state = selectors.epoch_state(group=group)
    latest = selectors.epoch_latest(group_id=group_id)
    if latest is not None and not state.rotation_required and EpochWrap.objects.filter(
        epoch=latest, device_id=device
    ).exists():
        _, key = crypto.open_rotation(latest.rotation.encode(), device=device, keys=kit_keys(user_id), group=group_id,
                                      min_epoch=1, device_key=_directory_key)
        return latest.epoch, key
    recipients = [(d.device_id, crypto.b64d(d.dh_pub)) for d in selectors.member_devices(group=group)]
    rotation, key = crypto.rotate_epoch(signer=kit_keys(user_id), by_device=device, group=group_id,
                                        epoch=state.current + 1, prev_epoch=state.current, recipients=recipients)
    services.rotation_accept(user=user, group_id=group_id, rotation=rotation)
    return state.current + 1, key


def seal(user_id: int, group_id: int, text: bytes | str = b"sealed", *, urgent: bool | None = None) -> bytes:
    """A real v1 envelope of `text` from the user's kit device to the group's current epoch."""
    epoch, key = kit_epoch_key(user_id, group_id)
    plain = text.decode("utf-8", "surrogateescape") if isinstance(text, bytes) else text
    return crypto.encrypt_message(keys=kit_keys(user_id), sender=user_id, device=kit_device(user_id), group=group_id,
                                  epoch=epoch, epoch_key=key, text=plain, sent_at=1_700_000_000_000, urgent=urgent)


def unseal(user_id: int, group_id: int, envelope: bytes) -> crypto.Message:
    """Decrypt an envelope of the group as the user's kit device would (all epochs it holds a wrap for)."""
    from chat.models import GroupEpoch

    device = kit_device(user_id)
    keys: dict[int, bytes] = {}
    for epoch in GroupEpoch.objects.filter(group_id=group_id, wraps__device_id=device):
        keys[epoch.epoch] = crypto.open_rotation(epoch.rotation.encode(), device=device, keys=kit_keys(user_id),
                                                 group=group_id, min_epoch=1, device_key=_directory_key)[1]

    def device_key(sender: int, sender_device: str) -> bytes | None:
        row = Device.objects.filter(pk=sender_device, user_id=sender).first()
        return crypto.b64d(row.sign_pub) if row is not None else None

    return crypto.decrypt_message(envelope, group=group_id, epoch_keys=keys, min_epoch=1, seen=set(),
                                  device_key=device_key)


# --- the chat JSON API (/chat/api/) from Django's test client -------------------------------------------------

API = "/chat/api/"


def api_client(user: User | None) -> Client:
    """A test client signed in as `user` (None: signed out)."""
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def api_post(client: Client, path: str, data: Any = None) -> Any:
    return client.post(API + path, data=json.dumps({} if data is None else data), content_type="application/json")


def api_get(client: Client, path: str) -> Any:
    return client.get(API + path)


def register_device(client: Client, keys: crypto.DeviceKeys | None = None, *, device_id: str | None = None,
                    label: str = "test phone") -> tuple[str, crypto.DeviceKeys, Any]:
    """Register new (or given) device keys through the API: (device id, keys, response)."""
    keys = keys or crypto.DeviceKeys.generate()
    device_id = device_id or str(uuid.uuid4())
    response = api_post(client, "devices", {
        "device_id": device_id, "label": label, "sign_pub": crypto.b64e(keys.signing_public),
        "dh_pub": crypto.b64e(keys.agreement_public),
    })
    return device_id, keys, response


def rotation_for(group: StreetGroup, *, signer: crypto.DeviceKeys, by_device: str, epoch: int | None = None,
                 prev_epoch: int | None = None, recipients: list[tuple[str, bytes]] | None = None) -> tuple[bytes, bytes]:
    """A signed rotation of the group to epoch current + 1 (or as told) for the current member devices (or as
    told): (rotation bytes, epoch key)."""
    current = selectors.epoch_state(group=group).current
    if recipients is None:
        recipients = [(d.device_id, crypto.b64d(d.dh_pub)) for d in selectors.member_devices(group=group)]
    return crypto.rotate_epoch(
        signer=signer, by_device=by_device, group=group.pk, epoch=current + 1 if epoch is None else epoch,
        prev_epoch=current if prev_epoch is None else prev_epoch, recipients=recipients,
    )
