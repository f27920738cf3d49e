"""Alerts writes: devices, preferences, the push queue and its delivery engine, wardens' broadcasts.

Other apps call `push_to_users(...)` with an already-built payload (ids or ciphertext, never chat plaintext);
the background job `alerts.deliver_push` (alerts/jobs.py) sends it. See docs/alerts.md.
"""

from __future__ import annotations

import io
import json
import logging
import secrets
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, time, timedelta
from typing import IO, Any
from urllib.parse import urlsplit

from django.core.exceptions import PermissionDenied
from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import F
from django.http import HttpRequest
from django.utils import timezone
from PIL import Image, ImageOps, UnidentifiedImageError

from alerts import push
from alerts.models import AlertPrefs, Broadcast, BroadcastRecipient, PushDelivery, PushSubscription
from alerts.selectors import (
    access_broadcast_recipient,
    access_subscription,
    broadcast_audience_user_ids,
    can_broadcast,
)
from members.audit import audit_record
from members.events import publish_on_commit, user_channel_group
from members.models import Role, Street, StreetGroup, User
from members.selectors import street_groups_of_user

logger = logging.getLogger(__name__)

MAX_DEVICES_PER_USER = 20
DEFAULT_TTL_SECONDS = 24 * 3600
MAX_ATTEMPTS = 8
# A claimed row is someone's for this long; if that worker dies, the row becomes due again afterwards.
CLAIM_LEASE = timedelta(minutes=15)
BACKOFF_BASE_SECONDS = 15
BACKOFF_MAX_SECONDS = 1800
RETRY_AFTER_MAX_SECONDS = 6 * 3600
FINISHED_KEEP = timedelta(days=7)
PRIORITY_URGENCY = {
    Broadcast.Priority.INFO: PushDelivery.Urgency.LOW,
    Broadcast.Priority.WARNING: PushDelivery.Urgency.NORMAL,
    Broadcast.Priority.URGENT: PushDelivery.Urgency.HIGH,
}
MAX_PHOTO_BYTES = 10 * 1024 * 1024
MAX_PHOTO_PIXELS = 40_000_000
PHOTO_MAX_SIDE = 1600
MAX_BROADCAST_DAYS = 30
_IN_CHUNK = 2000


class AlertsInvalid(ValueError):
    """A request that cannot be carried out as asked; the message is safe to show the user."""


def _chunks(items: Sequence[int]) -> Iterator[Sequence[int]]:
    for start in range(0, len(items), _IN_CHUNK):
        yield items[start:start + _IN_CHUNK]


# --- devices ----------------------------------------------------------------------------------------------
@transaction.atomic
def subscription_save(*, user: User, endpoint: str, p256dh: str, auth: str, label: str = "") -> PushSubscription:
    """Store (or refresh) the push subscription of one of the user's devices."""
    refusal = push.endpoint_refusal(endpoint)
    if refusal:
        raise AlertsInvalid(f"Push endpoint refused: {refusal}")
    try:
        push.keys_check(p256dh=p256dh, auth=auth)
    except ValueError as exc:
        raise AlertsInvalid(str(exc)) from exc
    existing = PushSubscription.objects.select_for_update().filter(endpoint=endpoint).first()
    if existing is None and PushSubscription.objects.filter(user=user).count() >= MAX_DEVICES_PER_USER:
        raise AlertsInvalid(f"At most {MAX_DEVICES_PER_USER} devices: remove one first")
    label = label.strip()[:80]
    if existing is not None:
        # The same browser signed in as someone else now: the device follows its current user.
        existing.user = user
        existing.p256dh, existing.auth = p256dh, auth
        existing.label = label or existing.label
        existing.failure_count = 0
        existing.save(update_fields=["user", "p256dh", "auth", "label", "failure_count"])
        return existing
    return PushSubscription.objects.create(user=user, endpoint=endpoint, p256dh=p256dh, auth=auth, label=label)


def subscription_delete(*, user: User, subscription_id: int) -> None:
    """Forget one of the user's own devices (it gets no more pushes)."""
    access_subscription(user=user, subscription_id=subscription_id).delete()


# --- preferences ------------------------------------------------------------------------------------------
@transaction.atomic
def prefs_update(
    *, user: User, quiet_start: time | None, quiet_end: time | None, no_preview: bool,
    muted_group_ids: Iterable[int],
) -> AlertPrefs:
    """Set quiet hours, the lock-screen preview choice and muted groups (only groups the user is in)."""
    if (quiet_start is None) != (quiet_end is None):
        raise AlertsInvalid("Quiet hours need both a start and an end time")
    wanted = set(muted_group_ids)
    mine = set(street_groups_of_user(user=user).filter(pk__in=wanted).values_list("pk", flat=True))
    if wanted - mine:
        raise AlertsInvalid("You can only mute groups you belong to")
    prefs, _ = AlertPrefs.objects.get_or_create(user=user)
    prefs.quiet_start, prefs.quiet_end, prefs.no_preview = quiet_start, quiet_end, no_preview
    prefs.updated_at = timezone.now()
    prefs.save(update_fields=["quiet_start", "quiet_end", "no_preview", "updated_at"])
    prefs.muted_groups.set(sorted(mine))
    return prefs


def quiet_until(*, prefs: AlertPrefs | None, now: datetime) -> datetime | None:
    """When the user's quiet hours end, if `now` is inside them; None outside quiet hours."""
    if prefs is None or prefs.quiet_start is None or prefs.quiet_end is None or prefs.quiet_start == prefs.quiet_end:
        return None
    local = timezone.localtime(now)
    start, end, t = prefs.quiet_start, prefs.quiet_end, local.time()
    inside = start <= t < end if start < end else (t >= start or t < end)
    if not inside:
        return None
    tz = local.tzinfo
    release = datetime.combine(local.date(), end, tzinfo=tz)
    if release <= local:
        release = datetime.combine(local.date() + timedelta(days=1), end, tzinfo=tz)
    return release


# --- the push queue ---------------------------------------------------------------------------------------
def push_payload_encode(payload: dict[str, Any] | bytes) -> bytes:
    """Compact JSON, checked to fit one encrypted push (raises PushPayloadTooLarge before anything is queued)."""
    if isinstance(payload, bytes):
        try:
            json.loads(payload)
        except ValueError as exc:
            raise AlertsInvalid("push payload must be JSON") from exc
        encoded = payload
    else:
        encoded = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    push.payload_check(encoded)
    return encoded


def push_to_users(
    *,
    user_ids: Iterable[int],
    payload: dict[str, Any] | bytes,
    urgency: str = PushDelivery.Urgency.NORMAL,
    ttl: int = DEFAULT_TTL_SECONDS,
    topic: str = "",
    collapse: bool = True,
    group_id: int | None = None,
    expires_at: datetime | None = None,
    broadcast: Broadcast | None = None,
) -> int:
    """Queue one push per device of these users; returns how many were queued.

    Urgency "high" always goes. Anything less is held until a user's quiet hours end, and skipped for users
    who muted `group_id`. With a topic and `collapse`, a newer push replaces one still waiting for the same
    device (and the push service does the same with the Topic header).
    """
    if urgency not in push.URGENCIES:
        raise AlertsInvalid(f"urgency must be one of {', '.join(push.URGENCIES)}")
    if topic:
        push.topic_check(topic)
    encoded = push_payload_encode(payload)
    ids = sorted(set(user_ids))
    now = timezone.now()
    urgent = urgency == PushDelivery.Urgency.HIGH
    prefs: dict[int, AlertPrefs] = {}
    muted: set[int] = set()
    for chunk in _chunks(ids):
        prefs.update({p.user_id: p for p in AlertPrefs.objects.filter(user_id__in=chunk)})
        if group_id is not None and not urgent:
            muted.update(
                AlertPrefs.muted_groups.through.objects.filter(
                    alertprefs__user_id__in=chunk, streetgroup_id=group_id
                ).values_list("alertprefs__user_id", flat=True)
            )
    rows: list[PushDelivery] = []
    for chunk in _chunks([i for i in ids if i not in muted]):
        subscriptions = PushSubscription.objects.filter(user_id__in=chunk, user__is_active=True).only("id", "user_id")
        for subscription in subscriptions:
            hold = None if urgent else quiet_until(prefs=prefs.get(subscription.user_id), now=now)
            rows.append(PushDelivery(
                subscription_id=subscription.pk, user_id=subscription.user_id, broadcast=broadcast,
                payload=encoded, urgency=urgency, ttl=max(1, ttl), topic=topic, expires_at=expires_at,
                next_attempt_at=hold or now, created_at=now,
            ))
    with transaction.atomic():
        if topic and collapse and rows:
            for chunk in _chunks([row.subscription_id for row in rows]):
                PushDelivery.objects.filter(
                    subscription_id__in=chunk, topic=topic, state=PushDelivery.State.QUEUED, claim=""
                ).delete()
        PushDelivery.objects.bulk_create(rows, batch_size=500)
    return len(rows)


# --- the delivery engine ----------------------------------------------------------------------------------
def push_deliveries_claim(*, limit: int) -> tuple[str, list[PushDelivery]]:
    """Take up to `limit` due rows for this worker with compare-and-set; rows another worker took are skipped."""
    now = timezone.now()
    due = PushDelivery.objects.filter(state=PushDelivery.State.QUEUED, next_attempt_at__lte=now)
    ids = list(due.order_by("next_attempt_at", "id").values_list("pk", flat=True)[:limit])
    if not ids:
        return "", []
    token = uuid.uuid4().hex
    # Only rows still queued and due are updated: if another worker claimed one in between, it moved
    # next_attempt_at past `now` and this update leaves it alone.
    due.filter(pk__in=ids).update(claim=token, next_attempt_at=now + CLAIM_LEASE, attempts=F("attempts") + 1)
    return token, list(PushDelivery.objects.filter(claim=token).select_related("subscription"))


def _retry_delay(outcome: push.Outcome, attempts: int) -> float:
    stated = push.retry_after_seconds(outcome.retry_after)
    if stated is not None:
        return min(max(stated, 1.0), RETRY_AFTER_MAX_SECONDS)
    base = min(BACKOFF_BASE_SECONDS * 2 ** max(0, attempts - 1), BACKOFF_MAX_SECONDS)
    return base * (0.8 + secrets.randbelow(401) / 1000)  # +-20% jitter so retries do not arrive in step


def deliver_due(*, limit: int = 1000) -> dict[str, int]:
    """Send up to `limit` due pushes concurrently and record each outcome; returns counts."""
    push.vapid()  # a missing key fails here, before any row is claimed
    token, rows = push_deliveries_claim(limit=limit)
    if not rows:
        return {}
    now = timezone.now()
    # (state, last_status, next_attempt_at, error) -> row ids: one guarded UPDATE per distinct outcome.
    results: dict[tuple[str, int | None, datetime | None, str], list[int]] = defaultdict(list)
    outgoing: list[push.Outgoing] = []
    by_id: dict[int, PushDelivery] = {}
    refusals: dict[str, str | None] = {}
    for row in rows:
        subscription = row.subscription
        if subscription is None:
            results[(PushDelivery.State.GONE, None, None, "device removed")].append(row.pk)
            continue
        if row.expires_at is not None and row.expires_at <= now:
            results[(PushDelivery.State.FAILED, None, None, "expired before it could be sent")].append(row.pk)
            continue
        host_key = urlsplit(subscription.endpoint).netloc
        if host_key not in refusals:
            refusals[host_key] = push.endpoint_refusal(subscription.endpoint)
        if refusals[host_key]:
            results[(PushDelivery.State.FAILED, None, None, "endpoint refused")].append(row.pk)
            continue
        ttl = row.ttl
        if row.expires_at is not None:
            ttl = min(ttl, int((row.expires_at - now).total_seconds()))
        by_id[row.pk] = row
        outgoing.append(push.Outgoing(
            id=row.pk, endpoint=subscription.endpoint, p256dh=subscription.p256dh, auth=subscription.auth,
            payload=bytes(row.payload), ttl=max(1, ttl), urgency=row.urgency, topic=row.topic,
        ))
    outcomes = push.send_many(outgoing)
    done = timezone.now()
    ok_subscriptions: list[int] = []
    failing_subscriptions: list[int] = []
    gone_subscriptions: list[int] = []
    delivered: dict[int, list[int]] = defaultdict(list)
    for outcome in outcomes:
        row = by_id[outcome.id]
        if outcome.accepted:
            results[(PushDelivery.State.SENT, outcome.status, None, "")].append(row.pk)
            ok_subscriptions.append(row.subscription_id)  # type: ignore[arg-type]
            if row.broadcast_id is not None:
                delivered[row.broadcast_id].append(row.user_id)
        elif outcome.gone:
            results[(PushDelivery.State.GONE, outcome.status, None, "unsubscribed")].append(row.pk)
            gone_subscriptions.append(row.subscription_id)  # type: ignore[arg-type]
        elif outcome.retryable and row.attempts < MAX_ATTEMPTS:
            retry_at = done + timedelta(seconds=_retry_delay(outcome, row.attempts))
            if row.expires_at is not None and retry_at >= row.expires_at:
                results[(PushDelivery.State.FAILED, outcome.status, None, "expired while retrying")].append(row.pk)
            else:
                results[(PushDelivery.State.QUEUED, outcome.status, retry_at, outcome.error)].append(row.pk)
        else:
            results[(PushDelivery.State.FAILED, outcome.status, None, outcome.error)].append(row.pk)
            failing_subscriptions.append(row.subscription_id)  # type: ignore[arg-type]
    with transaction.atomic():
        for (state, status, retry_at, error), ids in results.items():
            changes: dict[str, Any] = {"state": state, "last_status": status, "last_error": error[:120], "claim": ""}
            if state == PushDelivery.State.QUEUED:
                changes["next_attempt_at"] = retry_at
            else:
                changes["finished_at"] = done
            for chunk in _chunks(ids):
                # Guarded by the claim: a row that outlived its lease and was taken by another worker is theirs.
                PushDelivery.objects.filter(pk__in=chunk, claim=token).update(**changes)
        for chunk in _chunks(sorted(set(ok_subscriptions))):
            PushSubscription.objects.filter(pk__in=chunk).update(last_success_at=done, failure_count=0)
        for chunk in _chunks(sorted(set(failing_subscriptions))):
            PushSubscription.objects.filter(pk__in=chunk).update(failure_count=F("failure_count") + 1)
        for chunk in _chunks(sorted(set(gone_subscriptions))):
            PushSubscription.objects.filter(pk__in=chunk).delete()
        for broadcast_id, user_ids in delivered.items():
            for chunk in _chunks(user_ids):
                BroadcastRecipient.objects.filter(
                    broadcast_id=broadcast_id, user_id__in=chunk, delivered_at__isnull=True
                ).update(delivered_at=done, delivered_via=BroadcastRecipient.Via.PUSH)
    counts: dict[str, int] = defaultdict(int)
    counts["claimed"] = len(rows)
    for (state, _status, _retry, _error), ids in results.items():
        counts["retry" if state == PushDelivery.State.QUEUED else str(state)] += len(ids)
    logger.info("push delivery: %s", dict(counts))
    return dict(counts)


def deliver_all_due(*, limit: int = 1000, max_seconds: float = 30.0) -> dict[str, int]:
    """Drain the queue batch by batch, for at most about `max_seconds`."""
    started = timezone.now()
    total: dict[str, int] = defaultdict(int)
    while True:
        counts = deliver_due(limit=limit)
        for key, value in counts.items():
            total[key] += value
        if counts.get("claimed", 0) < limit or (timezone.now() - started).total_seconds() > max_seconds:
            return dict(total)


def push_deliveries_purge(*, older_than: timedelta = FINISHED_KEEP) -> int:
    """Delete finished queue rows (sent, failed, gone) older than `older_than`."""
    cutoff = timezone.now() - older_than
    deleted, _ = PushDelivery.objects.filter(finished_at__lt=cutoff).exclude(state=PushDelivery.State.QUEUED).delete()
    return deleted


# --- broadcasts -------------------------------------------------------------------------------------------
def photo_reencode(upload: IO[bytes] | bytes) -> bytes:
    """Re-encode an uploaded photo as a plain JPEG: no EXIF (GPS), upright, at most PHOTO_MAX_SIDE pixels."""
    data = upload if isinstance(upload, bytes) else upload.read(MAX_PHOTO_BYTES + 1)
    if len(data) > MAX_PHOTO_BYTES:
        raise AlertsInvalid(f"The photo is larger than {MAX_PHOTO_BYTES // (1024 * 1024)} MB")
    try:
        with Image.open(io.BytesIO(data), formats=["JPEG", "PNG", "WEBP"]) as image:
            if image.width * image.height > MAX_PHOTO_PIXELS:
                raise AlertsInvalid("The photo has too many pixels")
            image.load()
            upright = ImageOps.exif_transpose(image).convert("RGB")
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError) as exc:
        raise AlertsInvalid("The photo must be a JPEG, PNG or WebP image") from exc
    upright.thumbnail((PHOTO_MAX_SIDE, PHOTO_MAX_SIDE))
    out = io.BytesIO()
    upright.save(out, format="JPEG", quality=85, optimize=True)  # no exif= argument: nothing carried over
    return out.getvalue()


def broadcast_banner(broadcast: Broadcast) -> dict[str, Any]:
    """What a recipient's app shows: the in-app banner event and the history entry."""
    return {
        "id": broadcast.pk,
        "title": broadcast.title,
        "text": broadcast.text,
        "priority": broadcast.priority,
        "author": f"{broadcast.author.full_name} ({broadcast.author.get_role_display()})",
        "created_at": broadcast.created_at.isoformat(),
        "expires_at": broadcast.expires_at.isoformat() if broadcast.expires_at else None,
        "photo_url": f"/alerts/broadcasts/{broadcast.pk}/photo" if broadcast.photo else None,
        "url": f"/alerts/broadcasts/{broadcast.pk}/",
    }


def broadcast_push_payload(broadcast: Broadcast, *, preview: bool) -> bytes:
    """The push a device gets; without preview only the priority shows on the lock screen."""
    data: dict[str, Any] = {
        "type": "alert.broadcast",
        "id": broadcast.pk,
        "priority": broadcast.priority,
        "url": f"/alerts/broadcasts/{broadcast.pk}/",
        "tag": f"broadcast-{broadcast.pk}",
        "preview": preview,
    }
    if not preview:
        data["title"] = f"{broadcast.get_priority_display()} alert from the BID"
        data["body"] = "Open NTARS to read it."
        return push_payload_encode(data)
    data["title"] = broadcast.title
    body = broadcast.text
    while True:
        data["body"] = body
        encoded = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
        excess = len(encoded) - push.MAX_PAYLOAD_BYTES
        if excess <= 0:
            return encoded
        body = body[: max(0, len(body) - excess - 1)].rstrip() + "…"


def _broadcast_validate(
    *, title: str, text: str, priority: str, audience_all: bool, group_ids: Sequence[int],
    street_ids: Sequence[int], roles: Sequence[str], expires_at: datetime | None,
) -> tuple[list[StreetGroup], list[Street]]:
    if not title or len(title) > 120:
        raise AlertsInvalid("A title of 1 to 120 characters is needed")
    if not text or len(text) > 2000:
        raise AlertsInvalid("A text of 1 to 2000 characters is needed")
    if priority not in Broadcast.Priority.values:
        raise AlertsInvalid("Priority must be info, warning or urgent")
    unknown_roles = set(roles) - set(Role.values)
    if unknown_roles:
        raise AlertsInvalid(f"Unknown roles: {', '.join(sorted(unknown_roles))}")
    groups = list(StreetGroup.objects.filter(pk__in=group_ids, archived_at__isnull=True))
    streets = list(Street.objects.filter(pk__in=street_ids))
    if len(groups) != len(set(group_ids)) or len(streets) != len(set(street_ids)):
        raise AlertsInvalid("Unknown group or street")
    if not (audience_all or groups or streets or roles):
        raise AlertsInvalid("Choose an audience: everyone, groups, streets or roles")
    now = timezone.now()
    if expires_at is not None and not (now < expires_at <= now + timedelta(days=MAX_BROADCAST_DAYS)):
        raise AlertsInvalid(f"The expiry must be in the next {MAX_BROADCAST_DAYS} days")
    return groups, streets


def broadcast_create(
    *,
    author: User,
    title: str,
    text: str,
    priority: str = Broadcast.Priority.INFO,
    audience_all: bool = False,
    group_ids: Sequence[int] = (),
    street_ids: Sequence[int] = (),
    roles: Sequence[str] = (),
    expires_at: datetime | None = None,
    photo: IO[bytes] | bytes | None = None,
    request: HttpRequest | None = None,
    via: str = "api",
) -> Broadcast:
    """Send a warden's or BID admin's alert: recipients recorded, in-app banners after commit, pushes queued."""
    if not can_broadcast(user=author):
        raise PermissionDenied("Only wardens and BID admins can broadcast")
    title, text = title.strip(), text.strip()
    groups, streets = _broadcast_validate(
        title=title, text=text, priority=priority, audience_all=audience_all, group_ids=group_ids,
        street_ids=street_ids, roles=roles, expires_at=expires_at,
    )
    photo_bytes = photo_reencode(photo) if photo else None
    with transaction.atomic():
        broadcast = Broadcast.objects.create(
            author=author, title=title, text=text, priority=priority, audience_all=audience_all,
            audience_roles=sorted(set(roles)), expires_at=expires_at,
        )
        broadcast.audience_groups.set(groups)
        broadcast.audience_streets.set(streets)
        if photo_bytes is not None:
            broadcast.photo.save(f"{uuid.uuid4().hex}.jpg", ContentFile(photo_bytes), save=False)
            broadcast.save(update_fields=["photo"])
        user_ids = broadcast_audience_user_ids(
            audience_all=audience_all, groups=groups, streets=streets, roles=roles
        ) - {author.pk}
        BroadcastRecipient.objects.bulk_create(
            [BroadcastRecipient(broadcast=broadcast, user_id=uid) for uid in sorted(user_ids)], batch_size=500
        )
        banner = broadcast_banner(broadcast)
        for uid in sorted(user_ids):
            publish_on_commit(user_channel_group(uid), {"type": "alert.broadcast", "broadcast": banner})
        no_preview: set[int] = set()
        for chunk in _chunks(sorted(user_ids)):
            no_preview.update(
                AlertPrefs.objects.filter(user_id__in=chunk, no_preview=True).values_list("user_id", flat=True)
            )
        ttl = DEFAULT_TTL_SECONDS
        if expires_at is not None:
            ttl = max(60, min(ttl, int((expires_at - timezone.now()).total_seconds())))
        queued = 0
        for preview, uids in ((True, user_ids - no_preview), (False, user_ids & no_preview)):
            if uids:
                queued += push_to_users(
                    user_ids=uids, payload=broadcast_push_payload(broadcast, preview=preview),
                    urgency=PRIORITY_URGENCY[Broadcast.Priority(priority)], ttl=ttl, topic=f"broadcast-{broadcast.pk}",
                    expires_at=expires_at, broadcast=broadcast,
                )
        audit_record(
            action="broadcast.create", actor=author, object_type="broadcast", object_id=broadcast.pk,
            request=request, detail={"priority": priority, "recipients": len(user_ids), "pushes": queued, "via": via},
        )
    return broadcast


def broadcast_acknowledge(*, user: User, broadcast_id: int) -> BroadcastRecipient:
    """Record that the user has seen a broadcast they received."""
    row = access_broadcast_recipient(user=user, broadcast_id=broadcast_id)
    now = timezone.now()
    fields = []
    if row.seen_at is None:
        row.seen_at = now
        fields.append("seen_at")
    if row.delivered_at is None:
        row.delivered_at, row.delivered_via = now, BroadcastRecipient.Via.APP
        fields += ["delivered_at", "delivered_via"]
    if fields:
        row.save(update_fields=fields)
    return row


def broadcast_mark_delivered(*, user_id: int, broadcast_id: int, via: str = BroadcastRecipient.Via.SOCKET) -> bool:
    """Record that a broadcast reached the user (the hub calls this after relaying the banner to a socket)."""
    return bool(
        BroadcastRecipient.objects.filter(broadcast_id=broadcast_id, user_id=user_id, delivered_at__isnull=True)
        .update(delivered_at=timezone.now(), delivered_via=via)
    )
