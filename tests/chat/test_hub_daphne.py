"""The hub through a real Daphne process, with the real `websockets` client and chat.client.HubClient."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import websockets
from asgiref.sync import sync_to_async
from django.conf import settings
from websockets.exceptions import ConnectionClosed, InvalidStatus

from chat.client import HubClient, HubClosed, HubSignInError
from chat.models import Message
from chat.protocol import validate_server_frame
from tests.cast import PASSWORD, Cast, totp_now
from tests.chat.test_hub_kit import kit_device, seal, session_cookie
from tests.servers import DaphneProcess

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
WAIT = 20


async def next_frame(client: HubClient, stream: AsyncIterator[dict[str, Any]] | None = None) -> dict[str, Any]:
    stream = stream or client.messages()
    return await asyncio.wait_for(anext(stream), WAIT)


async def raw_socket(server: DaphneProcess, *, cookie: str | None, origin: str | None) -> Any:
    headers = {"Cookie": f"{settings.SESSION_COOKIE_NAME}={cookie}"} if cookie else {}
    return await websockets.connect(server.ws_url, origin=origin, additional_headers=headers,  # type: ignore[arg-type]
                                    open_timeout=WAIT)


async def recv_json(ws: Any) -> dict[str, Any]:
    frame = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
    validate_server_frame(frame)
    return frame


async def signed_in(url: str, user: Any, totp_code: str | None = None, **options: Any) -> HubClient:
    """A HubClient for the user's kit device (tests.chat.test_hub_kit), signed in through the real pages."""
    device = await sync_to_async(kit_device)(user.pk)
    return await HubClient.sign_in(url, user.email, PASSWORD, totp_code=totp_code, device=device, **options)


async def test_it_signs_in_and_talks_through_daphne(cast: Cast, live_server_proc: DaphneProcess) -> None:
    alice = await signed_in(live_server_proc.url, cast.alice)
    bob = await signed_in(live_server_proc.url, cast.bob)
    warden = await signed_in(live_server_proc.url, cast.warden, totp_code=totp_now())
    for client in (alice, bob, warden):
        await client.connect()
    assert alice.groups == {cast.gold_group.pk: "Gold Street"}
    envelope = await sync_to_async(seal)(cast.alice.pk, cast.gold_group.pk, "opaque to the server")
    ack = await alice.send(cast.gold_group.pk, envelope, urgent=True)
    assert (ack.seq, ack.duplicate) == (1, False)
    for client in (alice, bob, warden):
        frame = await next_frame(client)
        assert (frame["seq"], frame["urgent"], frame["sender"]["id"]) == (1, True, cast.alice.pk)
    retracted = await warden.retract(cast.gold_group.pk, 1)
    assert retracted.seq == 2
    tombstone = await next_frame(bob)
    assert (tombstone["type"], tombstone["target_seq"], tombstone["by"]) == ("retracted", 1, cast.warden.pk)
    for client in (alice, bob, warden):
        await client.close()


async def test_it_refuses_wrong_credentials_and_a_missing_second_factor(
    cast: Cast, live_server_proc: DaphneProcess
) -> None:
    with pytest.raises(HubSignInError) as wrong:
        await HubClient.sign_in(live_server_proc.url, cast.bob.email, "not-the-password")
    assert wrong.value.code == "sign_in_failed"
    with pytest.raises(HubSignInError) as missing:
        await HubClient.sign_in(live_server_proc.url, cast.warden.email, PASSWORD)
    assert missing.value.code == "totp_required"
    with pytest.raises(HubSignInError):
        await HubClient.sign_in(live_server_proc.url, cast.warden.email, PASSWORD, totp_code="000000")


@pytest.mark.parametrize("origin", [None, "http://evil.example", "http://localhost:1"])
async def test_it_refuses_a_socket_from_another_origin(
    cast: Cast, live_server_proc: DaphneProcess, origin: str | None
) -> None:
    cookie = await sync_to_async(session_cookie)(cast.bob)
    with pytest.raises(InvalidStatus) as refused:
        await raw_socket(live_server_proc, cookie=cookie, origin=origin)
    assert refused.value.response.status_code == 403


async def test_it_authenticates_the_socket_by_session_cookie(cast: Cast, live_server_proc: DaphneProcess) -> None:
    for cookie in (None, "forged-session-key"):
        with pytest.raises(InvalidStatus) as refused:
            await raw_socket(live_server_proc, cookie=cookie, origin=live_server_proc.url)
        assert refused.value.response.status_code == 403
    cookie = await sync_to_async(session_cookie)(cast.bob)
    ws = await raw_socket(live_server_proc, cookie=cookie, origin=live_server_proc.url)
    assert (await recv_json(ws))["user"] == cast.bob.pk
    await ws.close()
    # A client whose session is refused stops instead of hammering the server.
    client = HubClient(live_server_proc.url, cookie_header="sessionid=forged")
    with pytest.raises(HubClosed):
        await client.connect(timeout=WAIT)
    await client.close()


async def test_it_enforces_frame_limits_over_the_wire(cast: Cast, daphne_factory: Any) -> None:
    server: DaphneProcess = daphne_factory(extra_env={"HUB_MAX_FRAME_BYTES": "4096", "HUB_MAX_ENVELOPE_BYTES": "1024"})
    cookie = await sync_to_async(session_cookie)(cast.alice)
    ws = await raw_socket(server, cookie=cookie, origin=server.url)
    assert (await recv_json(ws))["limits"]["max_frame_bytes"] == 4096
    await ws.send("{" + " " * 5000 + "}")  # above the hub's limit, below Daphne's: an error, the socket stays
    assert (await recv_json(ws))["code"] == "too_large"
    await ws.send("nonsense")
    assert (await recv_json(ws))["code"] == "bad_json"
    await ws.send(json.dumps({"type": "ping", "nonce": "alive"}))
    assert (await recv_json(ws))["nonce"] == "alive"
    await ws.send("x" * 9000)  # above Daphne's own limit (twice the hub's): Daphne drops the connection
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            await recv_json(ws)
    assert closed.value.rcvd is None or closed.value.rcvd.code == 1009


async def test_it_resumes_and_resends_across_a_server_restart(
    cast: Cast, daphne_factory: Any
) -> None:
    first: DaphneProcess = daphne_factory()
    alice = await signed_in(first.url, cast.alice)
    bob = await signed_in(first.url, cast.bob)
    await alice.connect()
    await bob.connect()
    bob_stream = bob.messages()
    await alice.send(cast.gold_group.pk, await sync_to_async(seal)(cast.alice.pk, cast.gold_group.pk, "one"))
    assert (await next_frame(bob, bob_stream))["seq"] == 1
    first.kill()  # -9: no goodbye to anyone
    # alice sends while the server is down: the send waits, then goes out (same client_id) on reconnect.
    two = await sync_to_async(seal)(cast.alice.pk, cast.gold_group.pk, "two")
    pending = asyncio.ensure_future(alice.send(cast.gold_group.pk, two))
    second: DaphneProcess = daphne_factory(port=first.port)
    ack = await asyncio.wait_for(pending, WAIT * 2)
    assert ack.seq == 2
    frame = await next_frame(bob, bob_stream)
    assert frame["seq"] == 2  # caught up after the reconnect, nothing repeated
    assert bob.connections == 2 and alice.connections >= 2
    assert await sync_to_async(Message.objects.count)() == 2
    await alice.close()
    await bob.close()
    second.stop()
