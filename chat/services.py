"""Street-chat writes: persist each event with the group's next seq, then fan it out after commit.

Keyword-only and typed. Refusals raise ChatRefused with a stable protocol error code.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from chat.models import GroupSequence, HubConnection, Message
from chat.protocol import ProtocolError, group_channel, timestamp
from chat.selectors import event_frame, presence_online, presence_stale_before, user_is_online
from members.audit import audit_record
from members.events import publish_on_commit
from members.models import StreetGroup, User
from members.selectors import street_groups_of_user, user_gate, user_is_group_moderator


class ChatRefused(ProtocolError):
    """The hub refuses a write (not a member, not allowed, ...)."""


@dataclass(frozen=True)
class Stored:
    """Outcome of a send or retract: the event's seq, and whether it already existed (an idempotent retry)."""

    group_id: int
    seq: int
    server_time: datetime
    duplicate: bool
    client_id: uuid.UUID | None

    def ack_frame(self, client_id: str) -> dict[str, Any]:
        """The ack for the frame with this client_id (a retried retract may carry a new one)."""
        return {
            "type": "ack",
            "client_id": client_id,
            "group": self.group_id,
            "seq": self.seq,
            "server_time": timestamp(self.server_time),
            "duplicate": self.duplicate,
        }


def _stored(message: Message, *, duplicate: bool) -> Stored:
    return Stored(group_id=message.group_id, seq=message.seq, server_time=message.created_at,
                  duplicate=duplicate, client_id=message.client_id)


def _group_for_writer(*, user: User, group_id: int, ref: str | None) -> StreetGroup:
    """The group, if the user may write to it now (checked in the writing transaction)."""
    if user_gate(user=user) is not None:
        raise ChatRefused("not_member", "your account cannot use the hub", ref=ref)
    group = street_groups_of_user(user=user).filter(pk=group_id).first()
    if group is None:
        raise ChatRefused("not_member", "you are not a member of this group", ref=ref)
    return group


def _next_seq(*, group_id: int) -> int:
    """Take the group's next seq. The counter row stays locked until commit, so seqs are gapless and ordered.

    PostgreSQL: the UPDATE row-locks the counter; SQLite: transaction_mode IMMEDIATE serialises writers.
    """
    sql = f"UPDATE {GroupSequence._meta.db_table} SET last_seq = last_seq + 1 WHERE group_id = %s RETURNING last_seq"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, [group_id])
        row = cursor.fetchone()
        if row is None:
            # First message of the group: create the counter (a concurrent creator is fine), then take from it.
            GroupSequence.objects.bulk_create([GroupSequence(group_id=group_id, last_seq=0)], ignore_conflicts=True)
            cursor.execute(sql, [group_id])
            row = cursor.fetchone()
    return int(row[0])


def _existing(*, user: User, client_id: uuid.UUID, group_id: int, ref: str) -> Message | None:
    message = Message.objects.filter(sender=user, client_id=client_id).first()
    if message is not None and message.group_id != group_id:
        raise ChatRefused("conflict", "this client_id was already used in another group", ref=ref)
    return message


def _user_fresh(user_id: int) -> User:
    return User.objects.select_related("business").get(pk=user_id)


def message_send(
    *, user_id: int, group_id: int, client_id: uuid.UUID, envelope: bytes, urgent: bool = False, device: str = ""
) -> Stored:
    """Store an envelope as the group's next event and fan it out after commit; a retry returns the original."""
    ref = str(client_id)
    user = _user_fresh(user_id)
    existing = _existing(user=user, client_id=client_id, group_id=group_id, ref=ref)
    if existing is not None:
        return _stored(existing, duplicate=True)
    try:
        with transaction.atomic():
            group = _group_for_writer(user=user, group_id=group_id, ref=ref)
            now = timezone.now()
            message = Message.objects.create(
                group=group, seq=_next_seq(group_id=group.pk), kind=Message.Kind.MESSAGE, sender=user,
                sender_device=device[:64], client_id=client_id, envelope=envelope, urgent=urgent,
                created_at=now, expires_at=now + timedelta(seconds=group.retention_seconds),
            )
            publish_on_commit(group_channel(group.pk), {"type": "chat.message", "frame": event_frame(message)})
    except IntegrityError:
        # A concurrent retry with the same client_id won; its transaction (and our seq) was rolled back.
        existing = _existing(user=user, client_id=client_id, group_id=group_id, ref=ref)
        if existing is None:
            raise
        return _stored(existing, duplicate=True)
    return _stored(message, duplicate=False)


def message_retract(*, user_id: int, group_id: int, seq: int, client_id: uuid.UUID | None = None) -> Stored:
    """Withdraw a message: blank its envelope and append a tombstone event (sender or group moderator only)."""
    ref = str(client_id) if client_id else None
    user = _user_fresh(user_id)
    if client_id is not None:
        existing = _existing(user=user, client_id=client_id, group_id=group_id, ref=str(client_id))
        if existing is not None:
            return _stored(existing, duplicate=True)
    try:
        with transaction.atomic():
            group = _group_for_writer(user=user, group_id=group_id, ref=ref)
            target = (
                Message.objects.select_for_update()
                .filter(group=group, seq=seq, kind=Message.Kind.MESSAGE, expires_at__gt=timezone.now())
                .first()
            )
            if target is None:
                raise ChatRefused("not_found", "no such message in this group", ref=ref)
            if target.sender_id != user.pk and not user_is_group_moderator(user=user, group_id=group.pk):
                raise ChatRefused("forbidden", "only the sender or a group moderator may retract", ref=ref)
            if target.retracted_at is not None:
                tombstone = Message.objects.get(group=group, kind=Message.Kind.RETRACTION, target_seq=seq)
                return _stored(tombstone, duplicate=True)
            now = timezone.now()
            target.envelope = b""
            target.retracted_at = now
            target.retracted_by = user
            target.save(update_fields=["envelope", "retracted_at", "retracted_by"])
            tombstone = Message.objects.create(
                group=group, seq=_next_seq(group_id=group.pk), kind=Message.Kind.RETRACTION, sender=user,
                client_id=client_id, target_seq=seq, created_at=now, expires_at=target.expires_at,
            )
            publish_on_commit(group_channel(group.pk), {"type": "chat.retracted", "frame": event_frame(tombstone)})
    except IntegrityError:
        # A concurrent retraction of the same message (or a retry with the same client_id) won.
        tombstone = Message.objects.filter(group_id=group_id, kind=Message.Kind.RETRACTION, target_seq=seq).first()
        if tombstone is None:
            raise
        return _stored(tombstone, duplicate=True)
    return _stored(tombstone, duplicate=False)


def messages_purge_expired() -> int:
    """Delete every expired event (and, once attachments exist, their blobs); the count goes to the audit trail."""
    with transaction.atomic():
        count, _ = Message.objects.filter(expires_at__lte=timezone.now()).delete()
        if count:
            audit_record(action="chat.purge", object_type="chat_message", detail={"messages": count})
    return count


def _presence_publish(*, user_id: int, group_ids: list[int] | None = None) -> None:
    user = User.objects.select_related("business").filter(pk=user_id).first()
    if group_ids is None:
        group_ids = [] if user is None else list(street_groups_of_user(user=user).values_list("pk", flat=True))
    for group_id in group_ids:
        publish_on_commit(
            group_channel(group_id),
            {"type": "chat.presence", "group": group_id, "online": presence_online(group_id=group_id)},
        )


def presence_join(*, channel_name: str, user_id: int, device: str) -> None:
    """Record an open socket; tell the user's groups if the user just came online."""
    with transaction.atomic():
        was_online = user_is_online(user_id=user_id, excluding_channel=channel_name)
        HubConnection.objects.update_or_create(
            channel_name=channel_name,
            defaults={"user_id": user_id, "device": device[:64], "last_seen": timezone.now()},
        )
        if not was_online:
            _presence_publish(user_id=user_id)


def presence_touch(*, channel_name: str, user_id: int, device: str) -> None:
    """Heartbeat of an open socket (recreates its row if a sweep removed it)."""
    updated = HubConnection.objects.filter(channel_name=channel_name).update(last_seen=timezone.now())
    if not updated:
        presence_join(channel_name=channel_name, user_id=user_id, device=device)


def presence_leave(*, channel_name: str) -> None:
    """Forget a closed socket; tell the user's groups if the user is now offline."""
    with transaction.atomic():
        row = HubConnection.objects.filter(channel_name=channel_name).first()
        if row is None:
            return
        row.delete()
        if not user_is_online(user_id=row.user_id):
            _presence_publish(user_id=row.user_id)


def presence_sweep_stale() -> int:
    """Drop connections whose process stopped heart-beating (killed -9); tell their groups."""
    with transaction.atomic():
        stale = list(HubConnection.objects.filter(last_seen__lt=presence_stale_before()).select_for_update())
        HubConnection.objects.filter(pk__in=[row.pk for row in stale]).delete()
        for user_id in sorted({row.user_id for row in stale}):
            if not user_is_online(user_id=user_id):
                _presence_publish(user_id=user_id)
    return len(stale)
