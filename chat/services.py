"""Street-chat writes: persist each event with the group's next seq, then fan it out after commit; the E2EE
key directory (devices, rotations), franking keys, encrypted blobs, and the proof check reports rely on.

Keyword-only and typed. Hub refusals raise ChatRefused with a stable protocol error code; key-directory and
blob refusals raise KeysRefused (code, detail, HTTP status).
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Max, Min
from django.utils import timezone

from alerts import push
from alerts.models import AlertPrefs
from alerts.services import push_to_users
from chat import crypto
from chat.models import (
    Blob,
    Device,
    EpochWrap,
    FrankingKey,
    GroupEpoch,
    GroupSequence,
    HubConnection,
    Message,
)
from chat.protocol import ProtocolError, group_channel, timestamp
from chat.selectors import (
    ChatNotFound,
    access_group,
    device_fingerprint,
    epoch_latest,
    epoch_state,
    event_frame,
    member_devices,
    presence_online,
    presence_stale_before,
    user_is_online,
)
from members.audit import audit_record
from members.events import publish_on_commit
from members.models import Role, StreetGroup, User
from members.selectors import street_group_members, street_groups_of_user, user_gate, user_is_group_moderator

logger = logging.getLogger(__name__)


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


def _epoch_ms(moment: datetime) -> int:
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


def _check_envelope(*, envelope: bytes, user_id: int, group_id: int, device: str, ref: str) -> crypto.Envelope:
    """The envelope's header, if it is a v1 envelope from this user's device to this group (not decrypted)."""
    try:
        parsed = crypto.read_envelope(envelope)
    except crypto.E2EEError:
        raise ChatRefused("bad_envelope", "not an E2EE v1 envelope", ref=ref) from None
    header = parsed.header
    if header["group"] != group_id or header["sender"] != user_id or header["device"] != device:
        raise ChatRefused("bad_envelope", "the envelope's header names another group, sender or device", ref=ref)
    return parsed


def _check_epoch(*, group: StreetGroup, epoch: int, ref: str) -> None:
    state = epoch_state(group=group)
    if state.rotation_required:
        raise ChatRefused("rotation_required", "the group key must be rotated before anyone sends", ref=ref)
    if epoch != state.current:
        raise ChatRefused("stale_epoch", f"the group's current epoch is {state.current}", ref=ref)


def _push_urgent(*, message: Message, group: StreetGroup, envelope: bytes) -> None:
    """Queue a high-urgency push to the group's other members: ids and ciphertext only, never plaintext."""
    payload: dict[str, Any] = {"kind": "chat", "group": group.pk, "group_name": group.name, "seq": message.seq,
                               "urgent": True}
    with_envelope = {**payload, "envelope": crypto.b64e(envelope)}
    if len(json.dumps(with_envelope, separators=(",", ":"), ensure_ascii=False).encode()) <= push.MAX_PAYLOAD_BYTES:
        payload = with_envelope
    members = street_group_members(group=group).exclude(pk=message.sender_id)
    recipients = set(members.values_list("pk", flat=True))
    # People who chose "no preview" get neither the envelope nor a preview (docs/alerts.md "Push payloads").
    hidden = set(AlertPrefs.objects.filter(user__in=members, no_preview=True).values_list("user_id", flat=True))
    ttl = min(max(60, int((message.expires_at - timezone.now()).total_seconds())), 24 * 3600)
    generic = {key: value for key, value in payload.items() if key != "envelope"} | {"preview": False}
    for user_ids, variant in ((recipients - hidden, payload), (recipients & hidden, generic)):
        if user_ids:
            push_to_users(user_ids=sorted(user_ids), payload=variant, urgency="high", ttl=ttl,
                          topic=f"group-{group.pk}", group_id=group.pk, expires_at=message.expires_at)


def message_send(
    *, user_id: int, group_id: int, client_id: uuid.UUID, envelope: bytes, urgent: bool = False, device: str = ""
) -> Stored:
    """Store an envelope as the group's next event and fan it out after commit; a retry returns the original.

    The envelope must be a v1 envelope from this user's approved `device` to this group in its current epoch;
    the server tags its franking commitment (docs/security.md §6). Urgent messages are pushed after commit.
    """
    ref = str(client_id)
    user = _user_fresh(user_id)
    existing = _existing(user=user, client_id=client_id, group_id=group_id, ref=ref)
    if existing is not None:
        return _stored(existing, duplicate=True)
    try:
        with transaction.atomic():
            group = _group_for_writer(user=user, group_id=group_id, ref=ref)
            if not device or not Device.objects.filter(pk=device, user=user, status=Device.Status.APPROVED).exists():
                raise ChatRefused("unknown_device", "send from an approved device of yours (say it in hello)", ref=ref)
            parsed = _check_envelope(envelope=envelope, user_id=user.pk, group_id=group.pk, device=device, ref=ref)
            seq = _next_seq(group_id=group.pk)  # also serialises this send with rotations of the group
            _check_epoch(group=group, epoch=parsed.header["epoch"], ref=ref)
            now = timezone.now()
            key = franking_key_current()
            server_time = _epoch_ms(now)
            tag = crypto.envelope_franking_tag(server_key=bytes(key.secret), kid=key.kid, envelope=envelope,
                                               server_time=server_time)
            message = Message.objects.create(
                group=group, seq=seq, kind=Message.Kind.MESSAGE, sender=user,
                sender_device=device, client_id=client_id, envelope=envelope, urgent=urgent,
                epoch=parsed.header["epoch"], franking_kid=key.kid, franking_tag=tag, franking_time=server_time,
                created_at=now, expires_at=now + timedelta(seconds=group.retention_seconds),
            )
            publish_on_commit(group_channel(group.pk), {"type": "chat.message", "frame": event_frame(message)})
            if urgent:
                transaction.on_commit(
                    lambda: _push_urgent(message=message, group=group, envelope=envelope), robust=True
                )
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
    """Delete every expired event; each purge that deletes something is audited."""
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


# --- E2EE key directory: devices ---------------------------------------------------------------------------


class KeysRefused(Exception):
    """A key-directory or blob request is refused: `code` is stable, `status` the HTTP status to answer."""

    def __init__(self, code: str, detail: str, *, status: int = 400, **extra: Any) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail
        self.status = status
        self.extra = extra


MAX_DEVICES_PER_USER = 20
DEVICE_LABEL_MAX = 100


def _keys_changed(*, user: User) -> None:
    """Tell every group of the user (after commit) that this member's keys changed: clients re-read the directory,
    warn about the change, and rotate before their next message."""
    for group_id in street_groups_of_user(user=user).values_list("pk", flat=True):
        publish_on_commit(group_channel(group_id), {"type": "keys.changed", "group": group_id, "user": user.pk})


def _check_device_id(device_id: Any) -> str:
    try:
        if isinstance(device_id, str) and str(uuid.UUID(device_id)) == device_id:
            return device_id
    except ValueError:
        pass
    raise KeysRefused("invalid", "device_id must be a UUID in its lowercase text form")


def _check_public(value: Any, *, agreement: bool) -> str:
    try:
        check = crypto.check_x25519_public if agreement else crypto.check_ed25519_public
        check(crypto.b64d(value, crypto.KEY_BYTES))
    except crypto.E2EEError as exc:
        raise KeysRefused(exc.code if exc.code == crypto.CODE_WEAK_KEY else "invalid",
                          "public keys are 32 raw bytes in unpadded base64url, not weak") from None
    return str(value)


@dataclass(frozen=True)
class Registered:
    device: Device
    created: bool


def device_register(
    *, user: User, device_id: Any, label: Any, sign_pub: Any, dh_pub: Any, request: Any = None
) -> Registered:
    """Add a device's public keys to the directory: approved at once for a user's first device (or the first after
    a BID admin re-enrolled them), else pending until one of their approved devices signs for it. Registering the
    same keys again is a no-op."""
    device_id = _check_device_id(device_id)
    sign_pub = _check_public(sign_pub, agreement=False)
    dh_pub = _check_public(dh_pub, agreement=True)
    label = str(label or "")[:DEVICE_LABEL_MAX] if isinstance(label, str | None) else ""
    with transaction.atomic():
        User.objects.select_for_update().filter(pk=user.pk).first()  # one registration of this user at a time
        existing = Device.objects.filter(pk=device_id).first()
        if existing is not None:
            if existing.user_id != user.pk or (existing.sign_pub, existing.dh_pub) != (sign_pub, dh_pub):
                raise KeysRefused("conflict", "this device id is taken by other keys", status=409)
            if existing.status == Device.Status.REVOKED:
                raise KeysRefused("revoked", "this device was revoked: make new keys", status=409)
            return Registered(device=existing, created=False)
        unrevoked = Device.objects.filter(user=user).exclude(status=Device.Status.REVOKED)
        if unrevoked.count() >= MAX_DEVICES_PER_USER:
            raise KeysRefused("too_many_devices", f"at most {MAX_DEVICES_PER_USER} devices; revoke one first",
                              status=409)
        # Approved at once only when the user has no device history at all, or a BID admin re-enrolled them
        # (which revokes with reason "reenrolled"). Revoking one's own last device does not reopen the door:
        # otherwise a stolen session could swap in its own keys without any existing device signing for them.
        first = not Device.objects.filter(user=user).exclude(
            status=Device.Status.REVOKED, revoked_reason="reenrolled"
        ).exists()
        now = timezone.now()
        device = Device.objects.create(
            device_id=device_id, user=user, label=label, sign_pub=sign_pub, dh_pub=dh_pub,
            status=Device.Status.APPROVED if first else Device.Status.PENDING, created_at=now,
            approved_at=now if first else None,
        )
        audit_record(action="chat.device_register", actor=user, subject=user, object_type="chat_device",
                     object_id=device_id, request=request,
                     detail={"status": device.status, "fingerprint": device_fingerprint(device)})
        if first:
            _keys_changed(user=user)
    return Registered(device=device, created=True)


def device_approve(*, user: User, device_id: str, approver_device: Any, signature: Any, request: Any = None) -> Device:
    """Approve one of the user's pending devices with the signature of one of their approved devices."""
    with transaction.atomic():
        device = Device.objects.select_for_update().filter(pk=device_id, user=user).first()
        if device is None:
            raise KeysRefused("not_found", "no such device", status=404)
        if device.status != Device.Status.PENDING:
            raise KeysRefused("not_pending", f"this device is {device.status}", status=409)
        approver = Device.objects.filter(
            pk=str(approver_device), user=user, status=Device.Status.APPROVED
        ).first() if isinstance(approver_device, str) else None
        if approver is None:
            raise KeysRefused("unknown_device", "approve from one of your approved devices")
        try:
            crypto.verify_device_approval(
                signing_public=crypto.b64d(approver.sign_pub), signature=signature, user=user.pk,
                device=device.device_id, sign_pub=device.sign_pub, dh_pub=device.dh_pub,
            )
        except crypto.E2EEError:
            raise KeysRefused("bad_signature", "the approval signature does not verify") from None
        device.status = Device.Status.APPROVED
        device.approved_at = timezone.now()
        device.approved_by = approver.device_id
        device.approval_signature = str(signature)
        device.save(update_fields=["status", "approved_at", "approved_by", "approval_signature"])
        audit_record(action="chat.device_approve", actor=user, subject=user, object_type="chat_device",
                     object_id=device.device_id, request=request,
                     detail={"approved_by": approver.device_id, "fingerprint": device_fingerprint(device)})
        _keys_changed(user=user)
    return device


def _revoke(devices: list[Device], *, reason: str) -> None:
    now = timezone.now()
    for device in devices:
        device.status = Device.Status.REVOKED
        device.revoked_at = now
        device.revoked_reason = reason
        device.save(update_fields=["status", "revoked_at", "revoked_reason"])


def device_revoke(*, user: User, device_id: str, request: Any = None) -> Device:
    """Revoke one of the user's own devices: it gets no key from the next rotation, which its groups now need."""
    with transaction.atomic():
        device = Device.objects.select_for_update().filter(pk=device_id, user=user).first()
        if device is None:
            raise KeysRefused("not_found", "no such device", status=404)
        if device.status == Device.Status.REVOKED:
            return device
        was_approved = device.status == Device.Status.APPROVED
        _revoke([device], reason="user")
        audit_record(action="chat.device_revoke", actor=user, subject=user, object_type="chat_device",
                     object_id=device.device_id, request=request, detail={"was": "approved" if was_approved
                                                                          else "pending"})
        if was_approved:
            _keys_changed(user=user)
    return device


def user_reenrol(*, actor: User, user_id: int, request: Any = None) -> int:
    """A BID admin revokes every device of a user (lost phone, new start): their next device is approved as a
    first device. Audited; the user's groups are told. Returns how many devices were revoked."""
    if actor.role != Role.BID_ADMIN or user_gate(user=actor) is not None:
        raise KeysRefused("not_found", "no such user", status=404)
    with transaction.atomic():
        user = User.objects.select_for_update().filter(pk=user_id).first()
        if user is None:
            raise KeysRefused("not_found", "no such user", status=404)
        devices = list(Device.objects.select_for_update().filter(user=user).exclude(status=Device.Status.REVOKED))
        _revoke(devices, reason="reenrolled")
        audit_record(action="chat.user_reenrol", actor=actor, subject=user, object_type="user", object_id=user.pk,
                     request=request, detail={"revoked_devices": len(devices)})
        _keys_changed(user=user)
    return len(devices)


# --- E2EE group epochs ----------------------------------------------------------------------------------------


def _lock_group_stream(*, group_id: int) -> None:
    """Row-lock the group's seq counter: rotations and sends of one group then happen one at a time."""
    GroupSequence.objects.bulk_create([GroupSequence(group_id=group_id, last_seq=0)], ignore_conflicts=True)
    GroupSequence.objects.select_for_update().filter(pk=group_id).first()


def rotation_accept(*, user: User, group_id: int, rotation: bytes) -> GroupEpoch:
    """Store the group's next epoch key: a rotation signed by one of the user's approved devices, for epoch
    current + 1, wrapped to exactly the approved devices of the current members. Members are told after commit."""
    try:
        parsed = crypto.read_rotation(rotation)
    except crypto.E2EEError:
        raise KeysRefused("malformed", "not a v1 rotation record") from None
    if parsed.group != group_id:
        raise KeysRefused("malformed", "the rotation is for another group")
    with transaction.atomic():
        try:
            group = access_group(user=user, group_id=group_id)
        except ChatNotFound:
            raise KeysRefused("not_found", "no such group", status=404) from None
        _lock_group_stream(group_id=group.pk)
        latest = epoch_latest(group_id=group.pk)
        current = latest.epoch if latest is not None else 0
        if parsed.prev_epoch != current or parsed.epoch != current + 1:
            raise KeysRefused("stale_epoch", f"the group's current epoch is {current}", status=409, current=current)
        rotator = Device.objects.filter(pk=parsed.by_device, user=user, status=Device.Status.APPROVED).first()
        if rotator is None:
            raise KeysRefused("not_member_device", "rotate from one of your approved devices")
        try:
            crypto.verify_rotation(rotation, signing_public=crypto.b64d(rotator.sign_pub))
        except crypto.E2EEError:
            raise KeysRefused("bad_signature", "the rotation's signature does not verify") from None
        recipients = {device.pk: device for device in member_devices(group=group)}
        if set(parsed.wraps) != set(recipients):
            raise KeysRefused("wrong_recipients", "wrap the key to exactly the members' approved devices "
                              "(re-read the directory)")
        epoch = GroupEpoch.objects.create(group=group, epoch=parsed.epoch, rotation=rotation.decode("utf-8"),
                                          by_device=rotator.pk)
        EpochWrap.objects.bulk_create(
            [EpochWrap(epoch=epoch, device=recipients[device], wrap=wrap) for device, wrap in parsed.wraps.items()]
        )
        publish_on_commit(group_channel(group.pk), {"type": "epoch.rotated", "group": group.pk, "epoch": epoch.epoch})
    return epoch


def epochs_purge_unneeded() -> int:
    """Delete epoch records (and their wraps) that no unexpired message needs any more; the current epoch of
    each group always stays, so epochs never go backwards."""
    deleted = 0
    for group_id, current in GroupEpoch.objects.values("group_id").annotate(current=Max("epoch")).values_list(
        "group_id", "current"
    ):
        oldest = (
            Message.objects.filter(group_id=group_id, expires_at__gt=timezone.now(), epoch__isnull=False)
            .aggregate(oldest=Min("epoch"))["oldest"]
        )
        keep_from = min(oldest or current, current)
        _, counts = GroupEpoch.objects.filter(group_id=group_id, epoch__lt=keep_from).delete()
        deleted += counts.get(GroupEpoch._meta.label, 0)
    return deleted


# --- franking keys ----------------------------------------------------------------------------------------------

FRANKING_KEY_LIFETIME = timedelta(days=1)


def _franking_key_new(now: datetime) -> FrankingKey:
    return FrankingKey.objects.create(kid=secrets.token_hex(8), secret=secrets.token_bytes(32), created_at=now)


def franking_key_current() -> FrankingKey:
    """The key the server tags with now (made on first use)."""
    key = FrankingKey.objects.filter(retired_at__isnull=True).order_by("-created_at").first()
    return key if key is not None else _franking_key_new(timezone.now())


def franking_keys_rotate() -> dict[str, int]:
    """Daily: retire the current key for a new one; destroy keys made more than FRANKING_KEY_DAYS + 1 days ago
    (messages they tagged can no longer be proven after that)."""
    now = timezone.now()
    created = 0
    with transaction.atomic():
        current = FrankingKey.objects.select_for_update().filter(retired_at__isnull=True).order_by("-created_at")
        if not current.filter(created_at__gt=now - FRANKING_KEY_LIFETIME).exists():
            current.update(retired_at=now)
            _franking_key_new(now)
            created = 1
        destroyed, _ = FrankingKey.objects.filter(
            created_at__lt=now - timedelta(days=settings.FRANKING_KEY_DAYS + 1)
        ).delete()
        if destroyed:
            audit_record(action="chat.franking_keys_destroyed", object_type="chat_franking_key",
                         detail={"keys": destroyed})
    return {"created": created, "destroyed": destroyed}


# --- encrypted attachment blobs -----------------------------------------------------------------------------


def blob_dir() -> Path:
    return Path(settings.MEDIA_ROOT) / "chat-blobs"


def blob_path(blob_id: str) -> Path:
    return blob_dir() / blob_id


def blob_store(*, user: User, group_id: int, data: bytes) -> Blob:
    """Keep an encrypted attachment for a group until the group's retention ends (bytes never read)."""
    if not data:
        raise KeysRefused("invalid", "the blob is empty")
    if len(data) > settings.CHAT_BLOB_MAX_BYTES:
        raise KeysRefused("too_large", f"blobs are at most {settings.CHAT_BLOB_MAX_BYTES} bytes", status=413)
    try:
        group = access_group(user=user, group_id=group_id)
    except ChatNotFound:
        raise KeysRefused("not_found", "no such group", status=404) from None
    now = timezone.now()
    blob_id = secrets.token_urlsafe(24)
    folder = blob_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = blob_path(blob_id)
    path.write_bytes(data)
    try:
        return Blob.objects.create(blob_id=blob_id, group=group, sender=user, size=len(data),
                                   sha256=hashlib.sha256(data).hexdigest(), created_at=now,
                                   expires_at=now + timedelta(seconds=group.retention_seconds))
    except Exception:
        path.unlink(missing_ok=True)
        raise


def blobs_purge_expired() -> int:
    """Delete expired blobs (rows and files)."""
    expired = list(Blob.objects.filter(expires_at__lte=timezone.now()).values_list("pk", flat=True))
    for blob_id in expired:
        blob_path(blob_id).unlink(missing_ok=True)
    if expired:
        Blob.objects.filter(pk__in=expired).delete()
        audit_record(action="chat.purge", object_type="chat_blob", detail={"blobs": len(expired)})
    return len(expired)


# --- franking proofs (reports) ------------------------------------------------------------------------------

# Why a proof does not verify (ChatProofResult.code). Reports refuse PROOF_REFUSED_CODES outright (the proof is
# wrong, or the reporter could not have read the message); the others leave a report that is kept "unverified".
PROOF_NOT_MEMBER = "not_member"
PROOF_CANNOT_READ = "cannot_read"
PROOF_MISMATCH = "mismatch"
PROOF_GONE = "gone"
PROOF_WITHDRAWN = "withdrawn"
PROOF_KEY_DESTROYED = "key_destroyed"
PROOF_DEVICE_UNKNOWN = "device_unknown"
PROOF_REFUSED_CODES = frozenset({PROOF_NOT_MEMBER, PROOF_CANNOT_READ, PROOF_MISMATCH})


@dataclass(frozen=True)
class FrankingClaim:
    """The franking a reporter's device received with the message frame: {kid, tag, server_time}."""

    kid: str
    tag: bytes
    server_time: int


@dataclass(frozen=True)
class ChatProofResult:
    """What a reported chat message proves, or why it proves nothing (`code`, one of PROOF_*)."""

    verified: bool
    reason: str = ""
    code: str = ""
    sender_name: str = ""
    sender_business: str | None = None
    group_name: str = ""
    sent_at: datetime | None = None  # the server's time (franking), authoritative
    text: str = ""
    proof: crypto.ReportProof | None = field(default=None, repr=False)

    @property
    def label(self) -> str:
        if not self.verified or self.sent_at is None:
            return ""
        business = f" ({self.sender_business})" if self.sender_business else ""
        when = timezone.localtime(self.sent_at).strftime("%d %b %Y %H:%M")
        return f"sent by {self.sender_name}{business} in {self.group_name} at {when}"

    @property
    def refused(self) -> bool:
        """The proof is wrong (tampered, forged) or the reporter could not have read the message."""
        return not self.verified and self.code in PROOF_REFUSED_CODES

    def as_verification(self) -> dict[str, Any]:
        """The shape reports store in Report.verification."""
        if self.verified:
            return {"verified": True, "label": self.label}
        return {"verified": False, "reason": self.reason}


def _refused(reason: str, code: str = PROOF_MISMATCH) -> ChatProofResult:
    return ChatProofResult(verified=False, reason=reason, code=code)


def _reporter_could_read(*, reporter: User, group_id: int, epoch: int, server_time: int) -> bool:
    """One of the reporter's devices got that epoch's key. Once the epoch's record is purged (no unexpired
    message needs it), the best left to check is that the reporter had an approved device at that time."""
    if GroupEpoch.objects.filter(group_id=group_id, epoch=epoch).exists():
        return EpochWrap.objects.filter(epoch__group_id=group_id, epoch__epoch=epoch, device__user=reporter).exists()
    then = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=server_time)
    return Device.objects.filter(user=reporter, approved_at__lte=then).exists()


def chat_proof_verify(
    *, reporter: User, group_id: int, seq: int, body: bytes, message_key: bytes, envelope: bytes | None = None,
    franking: FrankingClaim | None = None,
) -> ChatProofResult:
    """Check a member's report of a chat message (docs/security.md §6) without ever holding the group key.

    The reporter must be a member now who could read the message (one of their devices got that epoch's key).
    body: the exact decrypted body bytes (with fk); message_key: the 64-byte key material of that message;
    envelope and franking: what the reporter's device received; each must match the server's record while it
    has one. Franking outlives the message: once the message has expired (or was withdrawn), the envelope and
    franking the reporter submits are checked against the server's franking key (while `kid` exists, see
    FRANKING_KEY_DAYS) and the sender device's key in the directory (devices are kept after revocation).
    """
    if not street_groups_of_user(user=reporter).filter(pk=group_id).exists() or user_gate(user=reporter):
        return _refused("You are not a member of this group.", PROOF_NOT_MEMBER)
    row = Message.objects.filter(group_id=group_id, seq=seq).first()
    if row is not None and row.kind != Message.Kind.MESSAGE:
        return _refused("The message does not match the one the server relayed.")
    live = (row is not None and row.expires_at > timezone.now() and row.retracted_at is None
            and bool(row.envelope))
    if row is not None and franking is not None and row.franking_kid and (
        franking.kid != row.franking_kid or franking.server_time != row.franking_time
        or not secrets.compare_digest(franking.tag, bytes(row.franking_tag))
    ):
        return _refused("The message does not match the one the server relayed (franking).")
    if row is not None and row.envelope and envelope is not None and envelope != bytes(row.envelope):
        return _refused("The message does not match the one the server relayed.")
    if live:
        assert row is not None
        envelope = bytes(row.envelope)
        franking = (
            FrankingClaim(kid=row.franking_kid, tag=bytes(row.franking_tag), server_time=row.franking_time)
            if row.franking_kid and row.franking_time is not None else None
        )
    elif envelope is None or franking is None:
        if row is not None and row.retracted_at is not None:
            return _refused("The message was withdrawn.", PROOF_WITHDRAWN)
        return _refused("The message no longer exists on the server (expired or deleted).", PROOF_GONE)
    elif row is None and Message.objects.filter(group_id=group_id, franking_tag=franking.tag).exists():
        return _refused("The message does not match the one the server relayed (sequence number).")
    if franking is None:
        return _refused("The message is too old to be verified (its server key was destroyed).", PROOF_KEY_DESTROYED)
    try:
        header = crypto.read_envelope(envelope).header
    except crypto.E2EEError as exc:
        return _refused(f"The message does not verify ({exc.code}).")
    if header["group"] != group_id or (row is not None and (
        (row.sender_id is not None and row.sender_id != header["sender"]) or row.sender_device != header["device"]
    )):
        return _refused("The message does not verify (its header and the server's record disagree).")
    if row is None:
        last = GroupSequence.objects.filter(group_id=group_id).values_list("last_seq", flat=True).first() or 0
        if seq > last:
            return _refused("The message does not match the one the server relayed (sequence number).")
    if not _reporter_could_read(reporter=reporter, group_id=group_id, epoch=header["epoch"],
                                server_time=franking.server_time):
        return _refused("You could not read this message (none of your devices had its key).", PROOF_CANNOT_READ)
    key = FrankingKey.objects.filter(pk=franking.kid).first()
    if key is None:
        # Keys live FRANKING_KEY_DAYS: a younger message names a key that must still be here, so it was forged.
        tagged_at = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=franking.server_time)
        if tagged_at > timezone.now() - timedelta(days=settings.FRANKING_KEY_DAYS):
            return _refused("The message does not verify (unknown server key).")
        return _refused("The message is too old to be verified (its server key was destroyed).", PROOF_KEY_DESTROYED)
    expected_tag = crypto.envelope_franking_tag(server_key=bytes(key.secret), kid=key.kid, envelope=envelope,
                                                server_time=franking.server_time)
    if not secrets.compare_digest(expected_tag, franking.tag):
        return _refused(f"The message does not verify ({crypto.CODE_BAD_SERVER_TAG}).")
    # The tag holds: the server did relay this header. Only now may a missing device mean "unverifiable".
    device = Device.objects.filter(pk=header["device"], user_id=header["sender"]).first()
    sender = User.objects.select_related("business").filter(pk=header["sender"]).first()
    if device is None or sender is None:
        return _refused("The sender's device is no longer known.", PROOF_DEVICE_UNKNOWN)
    try:
        proof = crypto.verify_report_proof(
            body=body, key_material=message_key, envelope=envelope, server_tag=franking.tag,
            server_key=bytes(key.secret), kid=key.kid, server_time=franking.server_time,
            signing_public=crypto.b64d(device.sign_pub),
        )
    except crypto.E2EEError as exc:
        return _refused(f"The message does not verify ({exc.code}).")
    group = StreetGroup.objects.get(pk=group_id)
    return ChatProofResult(
        verified=True, sender_name=sender.full_name,
        sender_business=sender.business.name if sender.business is not None else None,
        group_name=group.name,
        sent_at=datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=franking.server_time),
        text=proof.text, proof=proof,
    )
