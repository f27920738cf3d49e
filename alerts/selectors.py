"""Alerts reads: devices, preferences, broadcast audiences, history and counts. Access checked here."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db.models import Exists, OuterRef, Q, QuerySet
from django.http import Http404
from django.utils import timezone

from alerts.models import AlertPrefs, Broadcast, BroadcastRecipient, PushDelivery, PushSubscription
from members.models import Business, Role, Street, StreetGroup, User
from members.selectors import street_group_members

BROADCAST_ROLES = frozenset({Role.WARDEN, Role.BID_ADMIN})


def can_broadcast(*, user: User) -> bool:
    """Wardens and BID admins may broadcast; nobody else."""
    return bool(user.is_authenticated and user.role in BROADCAST_ROLES and user.can_use_scheme)


# --- devices and preferences ------------------------------------------------------------------------------
def subscriptions_of(*, user: User) -> QuerySet[PushSubscription]:
    return PushSubscription.objects.filter(user=user)


def access_subscription(*, user: User, subscription_id: int) -> PushSubscription:
    """One of the user's own devices; anyone else's device does not exist for them."""
    subscription = subscriptions_of(user=user).filter(pk=subscription_id).first()
    if subscription is None:
        raise Http404("No such device")
    return subscription


def prefs_of(*, user: User) -> AlertPrefs:
    """The user's alert preferences (unsaved defaults when they never set any)."""
    return AlertPrefs.objects.filter(user=user).first() or AlertPrefs(user=user)


def muted_group_ids(*, user: User) -> list[int]:
    prefs = AlertPrefs.objects.filter(user=user).first()
    return sorted(prefs.muted_groups.values_list("pk", flat=True)) if prefs else []


# --- broadcast audience -----------------------------------------------------------------------------------
def scheme_users() -> QuerySet[User]:
    """Everyone who may currently use the scheme: active, and (business roles) at an active business."""
    return User.objects.filter(is_active=True).filter(
        Q(business__isnull=True) | Q(business__status=Business.Status.ACTIVE)
    )


def broadcast_audience_user_ids(
    *, audience_all: bool, groups: Iterable[StreetGroup] = (), streets: Iterable[Street] = (),
    roles: Iterable[str] = (),
) -> set[int]:
    """The people a broadcast reaches: everyone, or the union of the chosen groups, streets and roles."""
    users = scheme_users()
    if audience_all:
        return set(users.values_list("pk", flat=True))
    ids: set[int] = set()
    for group in groups:
        ids.update(street_group_members(group=group).values_list("pk", flat=True))
    street_ids = [street.pk for street in streets]
    if street_ids:
        ids.update(users.filter(business__street__in=street_ids).values_list("pk", flat=True))
    roles = list(roles)
    if roles:
        ids.update(users.filter(role__in=roles).values_list("pk", flat=True))
    return ids


# --- broadcast history ------------------------------------------------------------------------------------
def broadcasts_received(*, user: User) -> QuerySet[BroadcastRecipient]:
    return (
        BroadcastRecipient.objects.filter(user=user)
        .select_related("broadcast", "broadcast__author")
        .order_by("-broadcast__created_at", "-broadcast_id")
    )


def broadcasts_unseen_for(*, user: User) -> list[Broadcast]:
    """Live broadcasts the user has not acknowledged yet (for the banner when a socket connects)."""
    now = timezone.now()
    rows = broadcasts_received(user=user).filter(seen_at__isnull=True).filter(
        Q(broadcast__expires_at__isnull=True) | Q(broadcast__expires_at__gt=now)
    )
    return [row.broadcast for row in rows]


def broadcasts_sent_visible_to(*, user: User) -> QuerySet[Broadcast]:
    """Broadcasts with their counts: visible to wardens and BID admins (aggregates, no personal data)."""
    if not can_broadcast(user=user):
        return Broadcast.objects.none()
    return Broadcast.objects.select_related("author")


def access_broadcast(*, user: User, broadcast_id: int) -> Broadcast:
    """A broadcast the user sent, received, or (as warden or BID admin) oversees; 404 otherwise."""
    visible = Q(recipients__user=user)
    if can_broadcast(user=user):
        visible = Q()
    broadcast = Broadcast.objects.filter(visible, pk=broadcast_id).select_related("author").first()
    if broadcast is None:
        raise Http404("No such broadcast")
    return broadcast


def access_broadcast_recipient(*, user: User, broadcast_id: int) -> BroadcastRecipient:
    """The user's own copy of a broadcast; a broadcast they did not get does not exist for them."""
    row = BroadcastRecipient.objects.filter(user=user, broadcast_id=broadcast_id).select_related("broadcast").first()
    if row is None:
        raise Http404("No such broadcast")
    return row


def broadcast_counts(*, broadcast: Broadcast) -> dict[str, int]:
    """How many were reached: delivered (socket or push), seen, failed (every push failed, never delivered)."""
    recipients = BroadcastRecipient.objects.filter(broadcast=broadcast)
    pushes = PushDelivery.objects.filter(broadcast=broadcast, user=OuterRef("user"))
    failed = recipients.filter(delivered_at__isnull=True).filter(
        Exists(pushes.filter(state__in=[PushDelivery.State.FAILED, PushDelivery.State.GONE]))
    ).exclude(Exists(pushes.filter(state__in=[PushDelivery.State.QUEUED, PushDelivery.State.SENT])))
    return {
        "recipients": recipients.count(),
        "delivered": recipients.filter(delivered_at__isnull=False).count(),
        "seen": recipients.filter(seen_at__isnull=False).count(),
        "failed": failed.count(),
        "push_queued": PushDelivery.objects.filter(broadcast=broadcast, state=PushDelivery.State.QUEUED).count(),
    }


def broadcast_audience_summary(*, broadcast: Broadcast) -> dict[str, Any]:
    return {
        "all": broadcast.audience_all,
        "groups": [{"id": g.pk, "name": g.name} for g in broadcast.audience_groups.all()],
        "streets": [{"id": s.pk, "name": s.name} for s in broadcast.audience_streets.all()],
        "roles": list(broadcast.audience_roles),
    }
