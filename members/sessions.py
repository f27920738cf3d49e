"""Ending sign-in sessions, including the WebSockets opened under them."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from allauth.usersessions.models import UserSession

from members.events import publish_on_commit, user_channel_group

# WebSocket close code the hub uses when a session or account is revoked (docs/protocol.md).
CLOSE_REVOKED = 4401


def session_channel_group(session_key: str) -> str:
    """Channel-layer group of the sockets opened under one session (the key itself never leaves the DB)."""
    return "session." + hashlib.sha256(session_key.encode()).hexdigest()[:40]


def sockets_disconnect_session(*, session_key: str, reason: str) -> None:
    """Close every open socket of one session, after commit."""
    publish_on_commit(session_channel_group(session_key), {"type": "session.revoked", "reason": reason})


def sockets_disconnect_user(*, user_id: int, reason: str) -> None:
    """Close every open socket of a user, after commit."""
    publish_on_commit(user_channel_group(user_id), {"type": "session.revoked", "reason": reason})


def sessions_end(*, sessions: Iterable[UserSession], reason: str) -> int:
    """End the given sign-in sessions and cut their sockets."""
    count = 0
    for session in sessions:
        sockets_disconnect_session(session_key=session.session_key, reason=reason)
        session.end()
        count += 1
    return count


def user_sessions_end_all(*, user_id: int, reason: str) -> int:
    """End every sign-in session of a user and cut all their sockets at once."""
    count = sessions_end(sessions=list(UserSession.objects.filter(user_id=user_id)), reason=reason)
    sockets_disconnect_user(user_id=user_id, reason=reason)
    return count
