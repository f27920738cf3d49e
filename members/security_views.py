"""The security page every signed-in person has: two-factor, passkeys, recovery codes, sessions, password.

Second factors, passkeys, recovery codes and the password are changed through allauth's own pages; this page
shows where things stand, and ends the person's other sessions (with their sockets) on request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from allauth.mfa.models import Authenticator
from allauth.usersessions.models import UserSession
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods

from members.audit import audit_record
from members.middleware import LOGOUT_REASON_ATTR
from members.models import User
from members.sessions import sessions_end

# --- Reads -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SessionRow:
    id: int
    created_at: datetime
    last_seen_at: datetime
    ip: str
    user_agent: str
    is_current: bool


@dataclass(frozen=True)
class SecurityOverview:
    requires_mfa: bool
    totp_active: bool
    passkeys: list[dict[str, Any]] = field(default_factory=list)
    recovery_codes_unused: int | None = None
    recovery_codes_total: int = 0
    sessions: list[SessionRow] = field(default_factory=list)


def user_sessions_list(*, user: User, current_key: str | None) -> list[SessionRow]:
    """The person's live sign-in sessions, newest activity first (stale rows are purged on the way)."""
    rows = [
        SessionRow(id=s.pk, created_at=s.created_at, last_seen_at=s.last_seen_at, ip=s.ip,
                   user_agent=s.user_agent, is_current=bool(current_key) and s.session_key == current_key)
        for s in UserSession.objects.purge_and_list(user)
    ]
    return sorted(rows, key=lambda r: (not r.is_current, -r.last_seen_at.timestamp()))


def security_overview(*, user: User, current_key: str | None) -> SecurityOverview:
    """Where the person's sign-in security stands."""
    authenticators = list(Authenticator.objects.filter(user=user).order_by("created_at"))
    totp_active = any(a.type == Authenticator.Type.TOTP for a in authenticators)
    passkeys = [
        {"name": a.wrap().name, "created_at": a.created_at, "last_used_at": a.last_used_at,
         "passwordless": bool(a.wrap().is_passwordless)}
        for a in authenticators if a.type == Authenticator.Type.WEBAUTHN
    ]
    codes = next((a for a in authenticators if a.type == Authenticator.Type.RECOVERY_CODES), None)
    unused: int | None = None
    total = 0
    if codes is not None:
        wrapped = codes.wrap()
        unused = len(wrapped.get_unused_codes())
        total = len(wrapped.generate_codes())
    return SecurityOverview(
        requires_mfa=user.requires_mfa, totp_active=totp_active, passkeys=passkeys,
        recovery_codes_unused=unused, recovery_codes_total=total,
        sessions=user_sessions_list(user=user, current_key=current_key),
    )


def access_own_session(*, user: User, session_id: str | None) -> UserSession:
    """One of the person's own sessions, or 404: nobody can name someone else's session."""
    if not session_id or not session_id.isdigit():
        raise Http404("No such session")
    session = UserSession.objects.filter(user_id=user.pk, pk=int(session_id)).first()
    if session is None:
        raise Http404("No such session")
    return session


# --- Writes ------------------------------------------------------------------------------------------


def user_sessions_end(
    *, actor: User, sessions: list[UserSession], request: HttpRequest | None = None
) -> int:
    """End some of the actor's own sessions, closing their sockets, and record each in the audit trail."""
    with transaction.atomic():
        for session in sessions:
            audit_record(action="session.ended", actor=actor, subject=actor, object_type="user_session",
                         object_id=session.pk, request=request,
                         detail={"session_ip": session.ip, "by": "user"})
        return sessions_end(sessions=sessions, reason="session_ended")


# --- Views -------------------------------------------------------------------------------------------


@login_required
def email_managed(request: HttpRequest) -> HttpResponse:
    """Stands in for allauth's email page: people do not swap their own sign-in address (unverified, it would
    let a borrowed session move the account to another mailbox); managers and the BID office change it."""
    messages.info(request, "Your sign-in email address is managed by your manager or the BID office: ask them "
                           "if it needs to change.")
    return redirect("members:security")


def _back(request: HttpRequest) -> HttpResponse:
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                                   require_https=request.is_secure()):
        return redirect(target)
    return redirect("members:security")


@login_required
@require_http_methods(["GET", "POST"])
def security(request: HttpRequest) -> HttpResponse:
    user: User = request.user  # type: ignore[assignment]
    current_key = request.session.session_key
    if request.method == "POST":
        action = request.POST.get("action")
        if action == "end_session":
            session = access_own_session(user=user, session_id=request.POST.get("session"))
            if session.session_key == current_key:
                setattr(request, LOGOUT_REASON_ATTR, "ended_from_session_list")
                logout(request)
                return redirect(reverse("account_login"))
            user_sessions_end(actor=user, sessions=[session], request=request)
            messages.success(request, "That session has been signed out.")
            return _back(request)
        if action == "end_others":
            others = [s for s in UserSession.objects.filter(user_id=user.pk) if s.session_key != current_key]
            count = user_sessions_end(actor=user, sessions=others, request=request)
            messages.success(request, f"Signed out {count} other session{'s' if count != 1 else ''}.")
            return _back(request)
        messages.error(request, "Unknown action.")
        return redirect("members:security")
    overview = security_overview(user=user, current_key=current_key)
    return render(request, "members/security.html", {"overview": overview})
