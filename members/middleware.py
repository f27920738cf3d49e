"""Session timeouts and the gate every signed-in person passes: active, second factor, agreements."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect

from members.selectors import user_gate

# Session key holding when the person signed in (epoch seconds; set by members.signals on login).
SESSION_AUTH_AT = "ntars_authenticated_at"
# Request attribute telling the logout audit why the server signed someone out.
LOGOUT_REASON_ATTR = "ntars_logout_reason"

# Paths a gated user may still reach: signing in and out, setting up two-factor, the agreements page.
_GATE_OPEN_PREFIXES = ("/accounts/", "/agreements/", "/static/", "/healthz", "/sw.js", "/manifest", "/offline")


class SessionTimeoutMiddleware:
    """Ends a session that is older than the absolute limit (the idle limit is the cookie's age)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.user.is_authenticated:
            now = int(time.time())
            started = request.session.setdefault(SESSION_AUTH_AT, now)
            if now - int(started) >= settings.SESSION_ABSOLUTE_SECONDS:
                setattr(request, LOGOUT_REASON_ATTR, "absolute_timeout")
                logout(request)
                messages.info(request, "Your session reached its time limit. Please sign in again.")
                return redirect(settings.LOGIN_URL)
        return self.get_response(request)


class AccountGateMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = request.user
        if user.is_authenticated and not request.path.startswith(_GATE_OPEN_PREFIXES):
            gate = user_gate(user=user)  # type: ignore[arg-type]
            if gate == "inactive":
                setattr(request, LOGOUT_REASON_ATTR, "inactive")
                logout(request)
                messages.error(request, "Your access to NTARS is suspended. Contact the BID office.")
                return redirect(settings.LOGIN_URL)
            if gate == "mfa_required":
                messages.info(request, "Your role can see other people's data: set up two-factor sign-in first.")
                return redirect("mfa_activate_totp")
            if gate == "agreements_pending":
                return redirect("members:agreements")
        return self.get_response(request)
