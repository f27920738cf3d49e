"""Who may do what in the members domain: small checks that raise PermissionDenied, reused by views and services."""

from __future__ import annotations

import hashlib
from typing import Any

from django.core.exceptions import PermissionDenied

from members.models import BUSINESS_ROLES, Business, Invitation, Role, User


def require_role(user: Any, *roles: str) -> User:
    """The user, if they are signed in, active and hold one of `roles`; PermissionDenied otherwise."""
    if not getattr(user, "is_authenticated", False) or not user.is_active or user.role not in roles:
        raise PermissionDenied
    return user  # type: ignore[no-any-return]


def require_manager(user: Any) -> Business:
    """The manager's own business, if it is active."""
    manager = require_role(user, Role.MANAGER)
    if manager.business is None or not manager.business.is_active:
        raise PermissionDenied
    return manager.business


def invitable_roles(actor: User) -> list[str]:
    """The roles an actor may invite people into."""
    if actor.role == Role.BID_ADMIN:
        return [str(role) for role in Role]
    if actor.role == Role.MANAGER:
        return [Role.STAFF, Role.MANAGER]
    return []


def check_can_invite(*, actor: User, role: str, business: Business | None) -> None:
    """Managers invite staff or managers into their own business; BID admins invite anyone."""
    if not actor.is_active or role not in invitable_roles(actor):
        raise PermissionDenied
    if actor.role == Role.MANAGER and (business is None or business.pk != actor.business_id):
        raise PermissionDenied


def check_can_remove(*, actor: User, user: User) -> None:
    """Managers remove people of their own business (not themselves); BID admins disable anyone but themselves."""
    if not actor.is_active or actor.pk == user.pk:
        raise PermissionDenied
    if actor.role == Role.BID_ADMIN:
        return
    if actor.role == Role.MANAGER and user.role in BUSINESS_ROLES and user.business_id == actor.business_id:
        return
    raise PermissionDenied


def check_can_revoke(*, actor: User, invitation: Invitation) -> None:
    """The BID admin, or a manager of the business the invitation is for."""
    if actor.role == Role.BID_ADMIN and actor.is_active:
        return
    if actor.role == Role.MANAGER and actor.is_active and invitation.business_id == actor.business_id:
        return
    raise PermissionDenied


# People added to groups one by one; business people belong through their street, the DPO oversees from outside.
GROUP_SEAT_ROLES = frozenset({Role.WARDEN, Role.BID_ADMIN, Role.CASE_OFFICER, Role.POLICE, Role.PUBLIC_REALM})


def can_be_group_member(user: User) -> bool:
    return user.is_active and user.role in GROUP_SEAT_ROLES


class InvitationUnusable(Exception):
    """The link is unknown, used, revoked or expired, or its business is no longer a member."""

    def __init__(self, state: str) -> None:
        super().__init__(state)
        self.state = state


def invitation_token_hash(token: str) -> str:
    """Only this hash of an invitation token is stored: a database leak does not leak usable links."""
    return hashlib.sha256(token.encode()).hexdigest()


def invitation_check(invitation: Invitation | None) -> Invitation:
    """The invitation, if it can still be accepted; InvitationUnusable (saying why) otherwise."""
    if invitation is None:
        raise InvitationUnusable("unknown")
    if invitation.state != "pending":
        raise InvitationUnusable(invitation.state)
    if invitation.business is not None and not invitation.business.is_active:
        raise InvitationUnusable("business_inactive")
    return invitation


def access_invitation(*, token: str) -> Invitation:
    """The pending invitation a link's token opens."""
    return invitation_check(
        Invitation.objects.select_related("business").filter(token_hash=invitation_token_hash(token)).first()
    )
