"""Security events: sign-in, sign-out, lockout, second factors and passwords go to the audit trail.

Also the glue Axes needs to see allauth's sign-in attempts (allauth authenticates with `email=`, not `login=`).
Receivers are connected in MembersConfig.ready(). Nothing here ever records a password, code or token.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from allauth.account.signals import password_changed, password_reset, password_set
from allauth.mfa import signals as mfa_signals
from allauth.usersessions.models import UserSession
from axes.helpers import get_cool_off
from axes.signals import user_locked_out
from django.conf import settings
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from members.audit import audit_record
from members.middleware import LOGOUT_REASON_ATTR, SESSION_AUTH_AT
from members.models import User
from members.sessions import sessions_end, sockets_disconnect_session, user_sessions_end_all

_IDENTIFIER_KEYS = ("email", "login", "username")


def _identifier(credentials: dict[str, Any] | None, request: HttpRequest | None = None) -> str:
    """The sign-in identifier (an email address) an attempt used, lower-cased; never the password."""
    for key in _IDENTIFIER_KEYS:
        value = (credentials or {}).get(key)
        if isinstance(value, str) and value.strip():
            return value.strip().lower()[:254]
    if request is not None and request.method == "POST":
        value = request.POST.get(settings.AXES_USERNAME_FORM_FIELD, "")
        return value.strip().lower()[:254]
    return ""


def axes_username(request: HttpRequest, credentials: dict[str, Any] | None = None) -> str | None:
    """AXES_USERNAME_CALLABLE: one key per email, however allauth or the form spelt it."""
    return _identifier(credentials, request) or None


def axes_lockout_response(
    request: HttpRequest, original_response: Any = None, credentials: dict[str, Any] | None = None
) -> HttpResponse:
    """AXES_LOCKOUT_CALLABLE: the clear "locked" page, HTTP 429 with Retry-After."""
    cool_off = get_cool_off(request) or timedelta(0)
    minutes = max(1, int(cool_off.total_seconds() // 60))
    response = render(
        request,
        settings.AXES_LOCKOUT_TEMPLATE,
        {"lockout_minutes": minutes, "failure_limit": settings.AXES_FAILURE_LIMIT},
        status=settings.AXES_HTTP_RESPONSE_CODE,
    )
    response["Retry-After"] = str(int(cool_off.total_seconds()))
    return response


def _user_for(identifier: str) -> User | None:
    if not identifier:
        return None
    return User.objects.filter(email__iexact=identifier).first()


@receiver(user_logged_in, dispatch_uid="ntars.audit.login")
def on_user_logged_in(sender: Any, request: HttpRequest | None, user: User, **kwargs: Any) -> None:
    if request is not None and hasattr(request, "session"):
        request.session[SESSION_AUTH_AT] = int(time.time())
    audit_record(action="login.succeeded", actor=user, subject=user, request=request)


@receiver(user_login_failed, dispatch_uid="ntars.audit.login_failed")
def on_user_login_failed(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    identifier = _identifier(credentials, request)
    audit_record(
        action="login.failed",
        subject=_user_for(identifier),
        request=request,
        detail={"email": identifier, "locked": bool(getattr(request, "axes_locked_out", False))},
    )


@receiver(user_locked_out, dispatch_uid="ntars.audit.locked_out")
def on_user_locked_out(
    sender: Any, request: HttpRequest | None, username: str | None, ip_address: str | None, **kwargs: Any
) -> None:
    identifier = (username or "").lower()
    audit_record(
        action="login.locked_out",
        subject=_user_for(identifier),
        request=request,
        ip_address=ip_address,
        detail={"email": identifier, "failure_limit": settings.AXES_FAILURE_LIMIT},
    )


@receiver(user_logged_out, dispatch_uid="ntars.audit.logout")
def on_user_logged_out(sender: Any, request: HttpRequest | None, user: User | None, **kwargs: Any) -> None:
    # Sent before the session is flushed, so its key still names the sockets opened under it.
    session = getattr(request, "session", None)
    reason = getattr(request, LOGOUT_REASON_ATTR, "user")
    if session is not None and session.session_key:
        sockets_disconnect_session(session_key=session.session_key, reason="signed_out")
    if user is not None:
        audit_record(action="logout", actor=user, subject=user, request=request, detail={"reason": reason})


@receiver(mfa_signals.authenticator_added, dispatch_uid="ntars.audit.mfa_added")
def on_authenticator_added(sender: Any, request: HttpRequest, user: User, authenticator: Any, **kw: Any) -> None:
    audit_record(action="mfa.added", actor=user, subject=user, request=request,
                 object_type="authenticator", object_id=authenticator.pk, detail={"type": authenticator.type})


@receiver(mfa_signals.authenticator_removed, dispatch_uid="ntars.audit.mfa_removed")
def on_authenticator_removed(sender: Any, request: HttpRequest, user: User, authenticator: Any, **kw: Any) -> None:
    audit_record(action="mfa.removed", actor=user, subject=user, request=request,
                 object_type="authenticator", object_id=authenticator.pk or "", detail={"type": authenticator.type})


@receiver(mfa_signals.authenticator_reset, dispatch_uid="ntars.audit.mfa_reset")
def on_authenticator_reset(sender: Any, request: HttpRequest, user: User, authenticator: Any, **kw: Any) -> None:
    audit_record(action="mfa.reset", actor=user, subject=user, request=request,
                 object_type="authenticator", object_id=authenticator.pk, detail={"type": authenticator.type})


@receiver(mfa_signals.authentication_failed, dispatch_uid="ntars.audit.mfa_failed")
def on_mfa_authentication_failed(sender: Any, request: HttpRequest | None = None, **kw: Any) -> None:
    authenticator = kw.get("authenticator")
    audit_record(action="mfa.failed", subject=kw.get("user"), request=request,
                 detail={"type": getattr(authenticator, "type", ""), "reauthentication": bool(kw.get("reauthentication"))})


def _end_other_sessions(*, request: HttpRequest, user: User, reason: str) -> int:
    """End the user's sessions on other devices (their sockets too); this browser stays signed in."""
    current = request.session.session_key
    others = [
        s for s in UserSession.objects.filter(user_id=user.pk).exclude(session_key=current or "")
        # A row whose session no longer exists is this browser's pre-rotation key: not another device.
        if s.exists()
    ]
    return sessions_end(sessions=others, reason=reason)


@receiver(password_changed, dispatch_uid="ntars.audit.password_changed")
@receiver(password_set, dispatch_uid="ntars.audit.password_set")
def on_password_changed(sender: Any, request: HttpRequest, user: User, **kwargs: Any) -> None:
    # The new password already invalidates the other sessions for HTTP; their open sockets must go too.
    ended = _end_other_sessions(request=request, user=user, reason="password_changed")
    audit_record(action="password.changed", actor=user, subject=user, request=request,
                 detail={"other_sessions_ended": ended})


@receiver(password_reset, dispatch_uid="ntars.audit.password_reset")
def on_password_reset(sender: Any, request: HttpRequest, user: User, **kwargs: Any) -> None:
    ended = user_sessions_end_all(user_id=user.pk, reason="password_reset")
    audit_record(action="password.reset", subject=user, request=request, detail={"sessions_ended": ended})
