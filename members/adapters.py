"""Allauth hooks: NTARS is invitation-only, and ending a session also cuts its sockets."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from allauth.usersessions.adapter import DefaultUserSessionsAdapter
from allauth.usersessions.models import UserSession
from django.http import HttpRequest

from members.sessions import sessions_end


class AccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request: HttpRequest) -> bool:
        # People join through an approved application or a manager's invitation, never by self sign-up.
        return False

    def get_login_redirect_url(self, request: HttpRequest) -> str:
        return super().get_login_redirect_url(request)

    def format_email_subject(self, subject: str) -> str:
        return f"[NTARS] {subject}"


class UserSessionsAdapter(DefaultUserSessionsAdapter):
    def end_sessions(self, sessions: Iterable[UserSession], **kwargs: Any) -> None:
        sessions_end(sessions=sessions, reason="session_ended")
