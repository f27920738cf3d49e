"""Reads of the street-chat hub. Every read of the stream filters out expired events."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from chat.models import GroupSequence, HubConnection, Message
from chat.protocol import envelope_encode, timestamp
from members.models import User
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
    from members.models import StreetGroup

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
