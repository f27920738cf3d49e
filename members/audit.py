"""Writing to the append-only audit trail. Call inside the transaction whose change or read it records."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from members.models import AuditEvent, User

# Keys that must never reach the audit trail, whatever a caller passes in `detail`.
_FORBIDDEN_DETAIL_KEYS = frozenset({"password", "token", "secret", "text", "body", "plaintext", "envelope", "code"})


def client_ip(request: HttpRequest | None) -> str | None:
    if request is None:
        return None
    # REMOTE_ADDR is set by Daphne from the proxy header when run with --proxy-headers.
    return request.META.get("REMOTE_ADDR") or None


def audit_record(
    *,
    action: str,
    actor: User | None = None,
    subject: User | None = None,
    object_type: str = "",
    object_id: str | int = "",
    request: HttpRequest | None = None,
    ip_address: str | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event to the audit trail."""
    clean_detail = {k: v for k, v in (detail or {}).items() if k.lower() not in _FORBIDDEN_DETAIL_KEYS}
    user_agent = request.META.get("HTTP_USER_AGENT", "")[:255] if request is not None else ""
    if actor is not None and not getattr(actor, "is_authenticated", False):
        actor = None
    return AuditEvent.objects.create(
        action=action,
        actor=actor,
        actor_label=f"{actor.full_name} <{actor.email}> ({actor.get_role_display()})" if actor else "",
        subject=subject,
        subject_label=f"{subject.full_name} <{subject.email}>" if subject else "",
        object_type=object_type,
        object_id=str(object_id),
        ip_address=ip_address or client_ip(request),
        user_agent=user_agent,
        detail=clean_detail,
    )


def audit_personal_data_access(
    *, actor: User, object_type: str, object_id: str | int, request: HttpRequest | None = None,
    subject: User | None = None, detail: dict[str, Any] | None = None,
) -> None:
    """Record that an authority user looked at someone else's personal data (no-op for everyone else)."""
    if actor.is_authority:
        audit_record(
            action="personal_data.view", actor=actor, subject=subject, object_type=object_type,
            object_id=object_id, request=request, detail=detail,
        )
