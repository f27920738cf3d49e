"""The one helper that publishes real-time events, and only after the transaction commits."""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)


def user_channel_group(user_id: int) -> str:
    return f"user.{user_id}"


def publish_on_commit(group: str, event: dict[str, Any]) -> None:
    """Send `event` to channel-layer `group` once the current transaction commits (at once outside one).

    Delivery through the channel layer is at most once; anything that must not be lost is persisted
    first and recovered by clients through catch-up, so a failed publish is logged, never raised.
    """

    def send() -> None:
        layer = get_channel_layer()
        if layer is None:
            return
        try:
            async_to_sync(layer.group_send)(group, event)
        except Exception:
            logger.exception("publish to %s failed (event type %s)", group, event.get("type"))

    transaction.on_commit(send)
