"""Reads of the members domain that other code (and other apps) rely on."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from members.models import Agreement, Business, GroupMember, StreetGroup, User


def street_groups_of_user(*, user: User) -> QuerySet[StreetGroup]:
    """The live groups a user belongs to: individually, or through their active business's street."""
    if not user.is_active:
        return StreetGroup.objects.none()
    membership = Q(individual_members__user=user)
    business = user.business
    if business is not None:
        if business.status != Business.Status.ACTIVE:
            return StreetGroup.objects.none()
        membership |= Q(streets=business.street_id) | Q(businesses=business.pk)
    return StreetGroup.objects.filter(membership, archived_at__isnull=True).distinct()


def street_group_members(*, group: StreetGroup) -> QuerySet[User]:
    """Everyone who can currently read and write in a group."""
    return User.objects.filter(
        Q(group_seats__group=group)
        | Q(
            business__status=Business.Status.ACTIVE,
            business__street__in=group.streets.all(),
        )
        | Q(business__status=Business.Status.ACTIVE, business__in=group.businesses.all()),
        is_active=True,
    ).distinct()


def user_is_group_member(*, user: User, group_id: int) -> bool:
    return street_groups_of_user(user=user).filter(pk=group_id).exists()


def user_is_group_moderator(*, user: User, group_id: int) -> bool:
    if user.role in {"warden", "bid_admin"} and user_is_group_member(user=user, group_id=group_id):
        return True
    return GroupMember.objects.filter(group_id=group_id, user=user, is_moderator=True).exists()


def agreements_current() -> list[Agreement]:
    """The newest version of each kind of agreement."""
    current: dict[str, Agreement] = {}
    for agreement in Agreement.objects.order_by("kind", "-version"):
        current.setdefault(agreement.kind, agreement)
    return list(current.values())


def agreements_pending_for(*, user: User) -> list[Agreement]:
    """Current agreements the user has not yet accepted."""
    accepted = set(user.acceptances.values_list("agreement_id", flat=True))
    return [a for a in agreements_current() if a.pk not in accepted]


def user_has_second_factor(*, user: User) -> bool:
    from allauth.mfa.models import Authenticator

    return Authenticator.objects.filter(
        user=user, type__in=[Authenticator.Type.TOTP, Authenticator.Type.WEBAUTHN]
    ).exists()


def user_gate(*, user: User) -> str | None:
    """Why a signed-in user may not use the scheme yet, or None when they may."""
    if not user.can_use_scheme:
        return "inactive"
    if user.requires_mfa and not user_has_second_factor(user=user):
        return "mfa_required"
    if agreements_pending_for(user=user):
        return "agreements_pending"
    return None
