"""Reads of the street-chat hub and its key directory. Every read of the stream filters out expired events.

Access is checked per object: `access_*` functions return an object only if the user may see it, else raise
ChatNotFound (the API answers 404, the same as for an object that does not exist).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta
from importlib import import_module
from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from chat import crypto
from chat.models import Blob, Device, EpochWrap, GroupEpoch, GroupSequence, HubConnection, Message
from chat.protocol import envelope_encode, timestamp
from members.middleware import SESSION_AUTH_AT
from members.models import StreetGroup, User
from members.selectors import street_group_members, street_groups_of_user, user_gate


@dataclass(frozen=True)
class HubGroup:
    id: int
    name: str
    retention_seconds: int


@dataclass(frozen=True)
class HubAccess:
    """What one user's socket may carry right now."""

    gate: str | None  # why the user may not use the scheme at all, or None
    groups: dict[int, HubGroup]
    truncated: bool  # the user is in more than HUB_MAX_GROUPS groups


def hub_access_of_user(*, user_id: int) -> HubAccess:
    """A fresh look (from the database) at whether a user may use the hub, and with which groups."""
    user = User.objects.select_related("business").filter(pk=user_id).first()
    if user is None:
        return HubAccess(gate="gone", groups={}, truncated=False)
    gate = user_gate(user=user)
    if gate is not None:
        return HubAccess(gate=gate, groups={}, truncated=False)
    limit = settings.HUB_MAX_GROUPS
    rows = list(street_groups_of_user(user=user).order_by("pk").values_list("pk", "name", "retention_seconds")[: limit + 1])
    groups = {pk: HubGroup(id=pk, name=name, retention_seconds=retention) for pk, name, retention in rows[:limit]}
    return HubAccess(gate=None, groups=groups, truncated=len(rows) > limit)


def stream_live(*, group_id: int) -> QuerySet[Message]:
    """A group's events that may still be served (not expired), oldest first."""
    return Message.objects.filter(group_id=group_id, expires_at__gt=timezone.now()).order_by("seq")


def group_last_seq(*, group_id: int) -> int:
    """The last seq handed out in a group (0 before its first message)."""
    return GroupSequence.objects.filter(pk=group_id).values_list("last_seq", flat=True).first() or 0


def event_frame(message: Message) -> dict[str, Any]:
    """The wire frame of a stored event (a `message`, or a `retracted` tombstone)."""
    if message.kind == Message.Kind.RETRACTION:
        return {
            "type": "retracted",
            "group": message.group_id,
            "seq": message.seq,
            "target_seq": message.target_seq,
            "by": message.sender_id,
            "server_time": timestamp(message.created_at),
            "expires_at": timestamp(message.expires_at),
        }
    sender = message.sender
    envelope = bytes(message.envelope) if message.retracted_at is None else b""
    return {
        "type": "message",
        "group": message.group_id,
        "seq": message.seq,
        "sender": None
        if sender is None
        else {
            "id": sender.pk,
            "name": sender.full_name,
            "business": sender.business.name if sender.business is not None else None,
            "role": sender.role,
        },
        "device": message.sender_device,
        "server_time": timestamp(message.created_at),
        "expires_at": timestamp(message.expires_at),
        "envelope": envelope_encode(envelope) if envelope else None,
        "urgent": message.urgent,
        "retracted": message.retracted_at is not None,
        "franking": None
        if not envelope or not message.franking_kid
        else {
            "kid": message.franking_kid,
            "tag": crypto.b64e(bytes(message.franking_tag)),
            "server_time": message.franking_time,
        },
    }


def stream_frames_after(
    *, group_id: int, after_seq: int, before_seq: int | None = None, limit: int | None = None
) -> list[dict[str, Any]]:
    """Unexpired events of a group with after_seq < seq (< before_seq), as frames, oldest first."""
    query = stream_live(group_id=group_id).filter(seq__gt=after_seq).select_related("sender__business")
    if before_seq is not None:
        query = query.filter(seq__lt=before_seq)
    return [event_frame(m) for m in query[: limit or settings.HUB_REPLAY_LIMIT]]


def presence_stale_before() -> Any:
    return timezone.now() - timedelta(seconds=settings.HUB_PRESENCE_STALE_SECONDS)


def presence_online_users() -> QuerySet[HubConnection]:
    """Connections whose process has been heard from recently (a killed process leaves stale rows)."""
    return HubConnection.objects.filter(last_seen__gte=presence_stale_before())


def presence_online(*, group_id: int) -> list[int]:
    """Ids of the group's members who have a live hub socket now."""
    group = StreetGroup.objects.filter(pk=group_id).first()
    if group is None:
        return []
    members = street_group_members(group=group).values("pk")
    return sorted(set(presence_online_users().filter(user_id__in=members).values_list("user_id", flat=True)))


def user_is_online(*, user_id: int, excluding_channel: str | None = None) -> bool:
    query = presence_online_users().filter(user_id=user_id)
    if excluding_channel:
        query = query.exclude(channel_name=excluding_channel)
    return query.exists()


def session_is_live(*, session_key: str, user_id: int) -> bool:
    """Whether a sign-in session still exists for this user within its idle limit (the session store expires it
    SESSION_COOKIE_AGE after the last request) and its absolute limit (SESSION_ABSOLUTE_SECONDS since sign-in)."""
    data = import_module(settings.SESSION_ENGINE).SessionStore(session_key).load()  # {} if missing or idle
    if str(data.get("_auth_user_id", "")) != str(user_id):
        return False
    started = data.get(SESSION_AUTH_AT)
    return started is None or time.time() - int(started) < settings.SESSION_ABSOLUTE_SECONDS


# --- E2EE key directory -------------------------------------------------------------------------------------


class ChatNotFound(Exception):
    """The object does not exist, or this user may not see it (both answer 404)."""


def access_group(*, user: User, group_id: int) -> StreetGroup:
    """A group the user is a member of now, else ChatNotFound."""
    group = None if user_gate(user=user) else street_groups_of_user(user=user).filter(pk=group_id).first()
    if group is None:
        raise ChatNotFound("no such group")
    return group


def access_own_device(*, user: User, device_id: str) -> Device:
    """One of the user's own devices (any status), else ChatNotFound."""
    device = Device.objects.filter(pk=device_id, user=user).first()
    if device is None:
        raise ChatNotFound("no such device")
    return device


def access_blob(*, user: User, blob_id: str) -> Blob:
    """An unexpired blob of a group the user is a member of now, else ChatNotFound."""
    blob = Blob.objects.filter(pk=blob_id, expires_at__gt=timezone.now()).first()
    if blob is None:
        raise ChatNotFound("no such blob")
    access_group(user=user, group_id=blob.group_id)
    return blob


def device_usable(*, user_id: int, device_id: str) -> bool:
    """Whether a device is an approved (so unrevoked) device of this user."""
    return Device.objects.filter(pk=device_id, user_id=user_id, status=Device.Status.APPROVED).exists()


def devices_of_user(*, user: User) -> QuerySet[Device]:
    return Device.objects.filter(user=user).order_by("created_at", "pk")


def device_fingerprint(device: Device) -> str:
    return crypto.fingerprint(crypto.b64d(device.sign_pub), crypto.b64d(device.dh_pub))


def member_devices(*, group: StreetGroup) -> QuerySet[Device]:
    """Approved devices of the group's current members: who must get a wrap of the next epoch key."""
    return Device.objects.filter(status=Device.Status.APPROVED, user__in=street_group_members(group=group).values("pk"))


@dataclass(frozen=True)
class EpochState:
    """Where a group's key stands. needs_rotation: the next sender should rotate first; rotation_required:
    a recipient of the current key is gone (member removed, device revoked), so nothing may be sent until then."""

    current: int
    needs_rotation: bool
    rotation_required: bool


def epoch_latest(*, group_id: int) -> GroupEpoch | None:
    return GroupEpoch.objects.filter(group_id=group_id).order_by("-epoch").first()


def epoch_state(*, group: StreetGroup) -> EpochState:
    """The group's current epoch and whether it must (or should) be rotated."""
    latest = epoch_latest(group_id=group.pk)
    if latest is None:
        return EpochState(current=0, needs_rotation=True, rotation_required=True)
    wanted = set(member_devices(group=group).values_list("pk", flat=True))
    have = set(EpochWrap.objects.filter(epoch=latest).values_list("device_id", flat=True))
    too_old = latest.created_at < timezone.now() - timedelta(hours=settings.EPOCH_MAX_AGE_HOURS)
    removed = bool(have - wanted)
    return EpochState(current=latest.epoch, needs_rotation=removed or bool(wanted - have) or too_old,
                      rotation_required=removed)


def groups_overview(*, user: User) -> list[dict[str, Any]]:
    """The user's groups with their stream position and key state (GET /chat/api/groups)."""
    rows = []
    for group in street_groups_of_user(user=user).order_by("name", "pk"):
        state = epoch_state(group=group)
        rows.append({
            "id": group.pk, "name": group.name, "kind": group.kind, "last_seq": group_last_seq(group_id=group.pk),
            "epoch": state.current, "needs_rotation": state.needs_rotation,
            "retention_seconds": group.retention_seconds,
        })
    return rows


def group_directory(*, group: StreetGroup) -> list[dict[str, Any]]:
    """Current members with their approved devices' public keys (GET /chat/api/groups/<id>/directory)."""
    members = list(street_group_members(group=group).select_related("business").order_by("full_name", "pk"))
    devices: dict[int, list[dict[str, Any]]] = {member.pk: [] for member in members}
    for device in member_devices(group=group).order_by("created_at", "pk"):
        devices[device.user_id].append({
            "device_id": device.device_id, "sign_pub": device.sign_pub, "dh_pub": device.dh_pub,
            "fingerprint": device_fingerprint(device),
        })
    return [
        {"user": member.pk, "name": member.full_name,
         "business": member.business.name if member.business is not None else None, "devices": devices[member.pk]}
        for member in members
    ]


def group_epochs_for_device(*, group: StreetGroup, device: Device) -> dict[str, Any]:
    """The epochs still needed to read the group's unexpired messages, each with this device's wrap (or null)."""
    state = epoch_state(group=group)
    oldest = stream_live(group_id=group.pk).filter(epoch__isnull=False).order_by("epoch").values_list(
        "epoch", flat=True).first()
    low = min(oldest or state.current, state.current)
    epochs = GroupEpoch.objects.filter(group=group, epoch__gte=low).order_by("epoch")
    wraps = dict(EpochWrap.objects.filter(epoch__in=epochs, device=device).values_list("epoch_id", "wrap"))
    return {
        "current": state.current,
        "needs_rotation": state.needs_rotation,
        "epochs": [{"epoch": e.epoch, "rotation": e.rotation, "wrap": wraps.get(e.pk)} for e in epochs],
    }
