"""The real-server fixtures the hub and browser tests stand on."""

from __future__ import annotations

import asyncio
import json
import urllib.request

import pytest
import websockets
from django.conf import settings
from django.test import Client

from tests.cast import Cast
from tests.servers import DaphneProcess


def session_cookie_for(user: object) -> str:
    client = Client()
    client.force_login(user)  # type: ignore[arg-type]
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def test_it_serves_health_from_a_real_daphne(live_server_proc: DaphneProcess) -> None:
    with urllib.request.urlopen(f"{live_server_proc.url}/healthz", timeout=10) as response:  # noqa: S310
        assert response.status == 200
        assert json.load(response)["checks"] == {"database": "ok", "channel_layer": "ok"}


@pytest.mark.slow
def test_it_opens_a_socket_with_the_session_cookie(cast: Cast, live_server_proc: DaphneProcess) -> None:
    cookie = session_cookie_for(cast.bob)

    async def talk() -> dict[str, object]:
        async with websockets.connect(
            live_server_proc.ws_url, origin=live_server_proc.url,
            additional_headers={"Cookie": f"{settings.SESSION_COOKIE_NAME}={cookie}"},
        ) as ws:
            return json.loads(await asyncio.wait_for(ws.recv(), 10))

    welcome = asyncio.run(talk())
    assert welcome["type"] == "welcome"
    assert welcome["user"] == cast.bob.pk
