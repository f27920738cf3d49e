"""A channel layer that remembers what was published, so tests can check which hub events a service sent."""

from __future__ import annotations

from typing import Any

from channels.layers import InMemoryChannelLayer, get_channel_layer

from members.events import user_channel_group


class RecordingLayer(InMemoryChannelLayer):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sent: list[tuple[str, dict[str, Any]]] = []

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        self.sent.append((group, message))
        await super().group_send(group, message)

    def membership_changes(self) -> set[tuple[int, int, bool]]:
        """(user id, group id, member) of every membership.changed event sent to a user."""
        return {
            (int(group.removeprefix("user.")), event["group"], event["member"])
            for group, event in self.sent
            if event.get("type") == "membership.changed" and group.startswith("user.")
        }

    def revoked(self) -> set[int]:
        """Ids of users whose sockets were told to close."""
        return {int(group.removeprefix("user.")) for group, event in self.sent
                if event.get("type") == "session.revoked" and group.startswith("user.")}

    def to_user(self, user_id: int) -> list[dict[str, Any]]:
        return [event for group, event in self.sent if group == user_channel_group(user_id)]


def recording_layer(settings: Any) -> RecordingLayer:
    """Swap in a recording layer for this test (pytest-django's `settings` fixture restores the real one)."""
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "tests.members.layer.RecordingLayer"}}
    layer = get_channel_layer()
    assert isinstance(layer, RecordingLayer)
    return layer
