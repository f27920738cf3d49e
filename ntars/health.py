"""GET /healthz: 200 when the database and the channel layer answer, 503 naming what fails."""

from __future__ import annotations

import asyncio
import logging
import uuid

from channels.layers import get_channel_layer
from django.db import connection
from django.http import HttpRequest, JsonResponse

logger = logging.getLogger(__name__)


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


async def _check_channel_layer() -> None:
    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("no channel layer configured")
    channel = await layer.new_channel("healthz.")
    token = uuid.uuid4().hex
    await layer.send(channel, {"type": "healthz.ping", "token": token})
    message = await asyncio.wait_for(layer.receive(channel), timeout=2)
    if message.get("token") != token:
        raise RuntimeError("channel layer returned a different message")


def healthz(request: HttpRequest) -> JsonResponse:
    from asgiref.sync import async_to_sync

    checks: dict[str, str] = {}
    for name, check in (("database", _check_database), ("channel_layer", async_to_sync(_check_channel_layer))):
        try:
            check()
            checks[name] = "ok"
        except Exception as exc:
            logger.warning("healthz: %s failing: %s", name, type(exc).__name__)
            checks[name] = f"failing: {type(exc).__name__}"
    failing = [name for name, state in checks.items() if state != "ok"]
    status = 503 if failing else 200
    return JsonResponse({"status": "ok" if not failing else "failing", "failing": failing, "checks": checks},
                        status=status)
