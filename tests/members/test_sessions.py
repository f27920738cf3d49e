"""Sessions: idle and absolute timeouts, the session list, and ending a session cutting its WebSockets."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import time_machine
from allauth.usersessions.models import UserSession
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client
from django.utils import timezone

from members.models import AuditEvent
from members.sessions import CLOSE_REVOKED
from tests.cast import PASSWORD, Cast

LOGIN = "/accounts/login/"


def signed_in(email: str, *, agent: str = "pytest-browser", ip: str = "127.0.0.1") -> Client:
    client = Client(HTTP_USER_AGENT=agent, REMOTE_ADDR=ip)
    response = client.post(LOGIN, {"login": email, "password": PASSWORD})
    assert response.status_code == 302, response
    return client


def session_key(client: Client) -> str:
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def is_signed_in(client: Client) -> bool:
    return client.get("/").status_code == 200


# --- Timeouts ----------------------------------------------------------------------------------------


def test_it_signs_out_after_the_idle_timeout(cast: Cast) -> None:
    idle = timedelta(seconds=settings.SESSION_COOKIE_AGE)
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        client = signed_in("bob@books.example")
        traveller.shift(idle - timedelta(minutes=1))
        assert is_signed_in(client)
        traveller.shift(idle + timedelta(seconds=1))
        response = client.get("/")
        assert response.status_code == 302
        assert response.headers["Location"].startswith(LOGIN)


def test_it_keeps_an_active_session_alive_past_the_idle_timeout(cast: Cast) -> None:
    idle = timedelta(seconds=settings.SESSION_COOKIE_AGE)
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        client = signed_in("bob@books.example")
        for _ in range(4):  # every request renews the idle window (SESSION_SAVE_EVERY_REQUEST)
            traveller.shift(idle - timedelta(minutes=2))
            assert is_signed_in(client)


def test_it_signs_out_at_the_absolute_limit_even_when_active(cast: Cast) -> None:
    idle = timedelta(seconds=settings.SESSION_COOKIE_AGE)
    absolute = timedelta(seconds=settings.SESSION_ABSOLUTE_SECONDS)
    assert absolute > idle
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        client = signed_in("bob@books.example")
        elapsed = timedelta(0)
        while elapsed + idle / 2 < absolute:
            traveller.shift(idle / 2)
            elapsed += idle / 2
            assert is_signed_in(client), elapsed
        traveller.shift(absolute - elapsed)
        response = client.get("/")
        assert response.status_code == 302
        assert response.headers["Location"].startswith(LOGIN)
        page = client.get(response.headers["Location"])
        assert "Your session reached its time limit" in page.content.decode()
        assert not is_signed_in(client)
    logout = AuditEvent.objects.get(action="logout")
    assert logout.detail == {"reason": "absolute_timeout"}


def test_it_measures_the_absolute_limit_from_sign_in(cast: Cast, settings: Any) -> None:
    settings.SESSION_ABSOLUTE_SECONDS = 3600
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        client = signed_in("bob@books.example")
        for minutes in (20, 20, 19):  # active all along, never idle for long
            traveller.shift(timedelta(minutes=minutes))
            assert is_signed_in(client)
        traveller.shift(timedelta(minutes=1))
        assert not is_signed_in(client)
        # Signing in again starts a new clock.
        client = signed_in("bob@books.example")
        traveller.shift(timedelta(minutes=20))
        assert is_signed_in(client)


# --- The session list --------------------------------------------------------------------------------


def test_it_lists_only_my_sessions(cast: Cast) -> None:
    phone = signed_in("bob@books.example", agent="Bob's phone", ip="10.1.1.1")
    laptop = signed_in("bob@books.example", agent="Bob's laptop", ip="10.1.1.2")
    signed_in("charlie@bakery.example", agent="Charlie's tablet", ip="10.2.2.2")
    for url in ["/accounts/sessions/", "/security/"]:
        html = laptop.get(url).content.decode()
        assert "Bob&#x27;s phone" in html and "10.1.1.1" in html
        assert "Bob&#x27;s laptop" in html and "10.1.1.2" in html
        assert "Charlie" not in html and "10.2.2.2" not in html
        assert html.count("This device") == 1
        assert html.count('value="end_session"') == 1  # only the other session can be ended from here
        assert 'class="skip-link"' in html
    assert is_signed_in(phone)


def test_it_ends_another_of_my_sessions(cast: Cast) -> None:
    phone = signed_in("bob@books.example", agent="phone")
    laptop = signed_in("bob@books.example", agent="laptop")
    phone_session = UserSession.objects.get(session_key=session_key(phone))
    response = laptop.post("/security/", {"action": "end_session", "session": str(phone_session.pk),
                                          "next": "/accounts/sessions/"})
    assert response.status_code == 302
    assert response.headers["Location"] == "/accounts/sessions/"
    assert not is_signed_in(phone)
    assert is_signed_in(laptop)
    event = AuditEvent.objects.get(action="session.ended")
    assert event.actor == cast.bob
    assert event.object_id == str(phone_session.pk)


def test_it_ends_all_my_other_sessions(cast: Cast) -> None:
    others = [signed_in("bob@books.example", agent=f"device {i}") for i in range(2)]
    me = signed_in("bob@books.example", agent="me")
    alice = signed_in("alice@books.example")
    response = me.post("/security/", {"action": "end_others", "next": "https://evil.example/"})
    assert response.headers["Location"] == "/security/"  # never an off-site redirect
    assert not any(is_signed_in(c) for c in others)
    assert is_signed_in(me)
    assert is_signed_in(alice)
    assert AuditEvent.objects.filter(action="session.ended").count() == 2


def test_it_signs_out_when_i_end_my_current_session(cast: Cast) -> None:
    me = signed_in("bob@books.example")
    mine = UserSession.objects.get(session_key=session_key(me))
    response = me.post("/security/", {"action": "end_session", "session": str(mine.pk)})
    assert response.headers["Location"] == LOGIN
    assert not is_signed_in(me)


# --- Ending a session closes its sockets -------------------------------------------------------------


async def open_socket(client: Client) -> WebsocketCommunicator:
    from ntars.asgi import application

    headers = [
        (b"origin", settings.ALLOWED_ORIGINS[0].encode()),
        (b"cookie", f"{settings.SESSION_COOKIE_NAME}={session_key(client)}".encode()),
    ]
    communicator = WebsocketCommunicator(application, "/ws/", headers=headers)
    connected, _ = await communicator.connect(timeout=10)
    assert connected
    welcome = await communicator.receive_json_from(timeout=10)
    assert welcome["type"] == "welcome"
    return communicator


async def assert_revoked(communicator: WebsocketCommunicator) -> None:
    """The server tells the socket why, then closes it with 4401 (see docs/protocol.md)."""
    while True:
        output = await communicator.receive_output(timeout=10)
        if output["type"] == "websocket.close":
            assert output["code"] == CLOSE_REVOKED
            return
        assert output["type"] == "websocket.send"


async def assert_still_open(communicator: WebsocketCommunicator) -> None:
    assert await communicator.receive_nothing(timeout=0.2)


@pytest.mark.django_db(transaction=True)
async def test_it_closes_the_sockets_of_a_session_ended_from_another_device(cast: Cast) -> None:
    phone = await sync_to_async(signed_in)("bob@books.example", agent="phone")
    laptop = await sync_to_async(signed_in)("bob@books.example", agent="laptop")
    phone_socket = await open_socket(phone)
    laptop_socket = await open_socket(laptop)
    phone_session = await UserSession.objects.aget(session_key=session_key(phone))
    response = await sync_to_async(laptop.post)(
        "/security/", {"action": "end_session", "session": str(phone_session.pk)}
    )
    assert response.status_code == 302
    await assert_revoked(phone_socket)
    await assert_still_open(laptop_socket)
    await laptop_socket.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_it_closes_the_sockets_of_sessions_ended_from_the_allauth_list(cast: Cast) -> None:
    # allauth's own "sign out other sessions" goes through members.adapters.UserSessionsAdapter.
    phone = await sync_to_async(signed_in)("bob@books.example", agent="phone")
    laptop = await sync_to_async(signed_in)("bob@books.example", agent="laptop")
    phone_socket = await open_socket(phone)
    laptop_socket = await open_socket(laptop)
    response = await sync_to_async(laptop.post)("/accounts/sessions/", {})
    assert response.status_code == 302
    await assert_revoked(phone_socket)
    await assert_still_open(laptop_socket)
    await laptop_socket.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_it_closes_the_sockets_of_a_session_on_sign_out(cast: Cast) -> None:
    phone = await sync_to_async(signed_in)("bob@books.example", agent="phone")
    laptop = await sync_to_async(signed_in)("bob@books.example", agent="laptop")
    phone_socket = await open_socket(phone)
    laptop_socket = await open_socket(laptop)
    response = await sync_to_async(phone.post)("/accounts/logout/")
    assert response.status_code == 302
    await assert_revoked(phone_socket)
    await assert_still_open(laptop_socket)  # signing out on the phone leaves the laptop alone
    await laptop_socket.disconnect()
    assert await AuditEvent.objects.filter(action="logout", detail__reason="user").acount() == 1


@pytest.mark.django_db(transaction=True)
async def test_it_closes_other_devices_sockets_on_a_password_change(cast: Cast) -> None:
    phone = await sync_to_async(signed_in)("bob@books.example", agent="phone")
    laptop = await sync_to_async(signed_in)("bob@books.example", agent="laptop")
    phone_socket = await open_socket(phone)
    new_password = "a-new-and-long-passphrase"
    response = await sync_to_async(laptop.post)(
        "/accounts/password/change/",
        {"oldpassword": PASSWORD, "password1": new_password, "password2": new_password},
    )
    assert response.status_code == 302
    await assert_revoked(phone_socket)
    assert not await sync_to_async(is_signed_in)(phone)
    assert await sync_to_async(is_signed_in)(laptop)
    # This browser's new socket (under its rotated session key) is accepted.
    laptop_socket = await open_socket(laptop)
    await laptop_socket.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_it_closes_every_socket_on_a_password_reset(cast: Cast) -> None:
    from django.core import mail

    phone = await sync_to_async(signed_in)("bob@books.example", agent="phone")
    phone_socket = await open_socket(phone)

    def reset() -> None:
        stranger = Client()
        stranger.post("/accounts/password/reset/", {"email": "bob@books.example"})
        body = mail.outbox[-1].body
        path = body[body.index("/accounts/password/reset/key/"):].split()[0]
        response = stranger.get(path)
        form_url = response.headers.get("Location", path)
        stranger.post(form_url, {"password1": "reset-long-passphrase", "password2": "reset-long-passphrase"})

    await sync_to_async(reset)()
    await assert_revoked(phone_socket)
    assert not await sync_to_async(is_signed_in)(phone)
