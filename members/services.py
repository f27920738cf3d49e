"""Members domain writes: applications, invitations, agreements, removals. Keyword-only and typed."""

from __future__ import annotations

from django.db import transaction

from members.audit import audit_record
from members.models import Agreement, AgreementAcceptance, User
from members.sessions import user_sessions_end_all


@transaction.atomic
def agreements_accept(*, user: User, agreements: list[Agreement], ip_address: str | None) -> None:
    """Record that the user accepted these agreement versions."""
    for agreement in agreements:
        AgreementAcceptance.objects.get_or_create(user=user, agreement=agreement, defaults={"ip_address": ip_address})
        audit_record(action="agreement.accept", actor=user, object_type="agreement", object_id=agreement.pk,
                     ip_address=ip_address, detail={"kind": agreement.kind, "version": agreement.version})


@transaction.atomic
def user_disable(*, actor: User, user: User, reason: str) -> None:
    """Disable a person's account: their sessions end and their open sockets close at once."""
    from django.utils import timezone

    user.is_active = False
    user.disabled_at = timezone.now()
    user.disabled_reason = reason[:255]
    user.save(update_fields=["is_active", "disabled_at", "disabled_reason"])
    user_sessions_end_all(user_id=user.pk, reason="account_disabled")
    audit_record(action="user.disable", actor=actor, subject=user, object_type="user", object_id=user.pk,
                 detail={"reason": reason[:255]})
