"""The street-chat hub socket: a thin adapter between frames and chat services."""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from members.events import user_channel_group
from members.models import User
from members.selectors import user_gate
from members.sessions import CLOSE_REVOKED, session_channel_group

CLOSE_UNAUTHENTICATED = 4401


class HubConsumer(AsyncJsonWebsocketConsumer):
    user: User
    control_groups: list[str]

    async def connect(self) -> None:
        user = self.scope.get("user")
        session = self.scope.get("session")
        if user is None or not user.is_authenticated or session is None or not session.session_key:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.user = user
        # Subscribe to revocations before the last check, so a revocation in between is not missed.
        self.control_groups = [user_channel_group(user.pk), session_channel_group(session.session_key)]
        for group in self.control_groups:
            await self.channel_layer.group_add(group, self.channel_name)
        if await database_sync_to_async(self._gate)() is not None:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        await self.accept()
        await self.send_json({"type": "welcome", "v": 1, "user": user.pk})

    def _gate(self) -> str | None:
        fresh = User.objects.select_related("business").filter(pk=self.user.pk).first()
        return "gone" if fresh is None else user_gate(user=fresh)

    async def disconnect(self, code: int) -> None:
        for group in getattr(self, "control_groups", []):
            await self.channel_layer.group_discard(group, self.channel_name)

    async def session_revoked(self, event: dict[str, Any]) -> None:
        await self.send_json({"type": "revoked", "reason": event.get("reason", "revoked")})
        await self.close(code=CLOSE_REVOKED)
