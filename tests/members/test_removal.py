"""Removal: a manager removes staff, a BID admin suspends a business or disables a person. Sessions and
open sockets end at once; the hub is told who left which group."""

from __future__ import annotations

import asyncio
import http.client
import json
import re
from typing import Any
from urllib.parse import urlencode

import pytest
import websockets
from django.conf import settings as django_settings
from django.contrib.sessions.models import Session
from django.core.exceptions import PermissionDenied, ValidationError
from django.test import Client
from django.urls import reverse

from members import services
from members.models import AuditEvent, Business, User
from members.sessions import CLOSE_REVOKED
from tests.cast import Cast
from tests.members.layer import recording_layer
from tests.servers import DaphneProcess


def signed_in(user: User) -> Client:
    """A client that has made one real request, so its session is tracked like a browser's."""
    client = Client()
    client.force_login(user)
    assert client.get("/").status_code == 200
    return client


def session_key(client: Client) -> str:
    return client.cookies[django_settings.SESSION_COOKIE_NAME].value


def test_it_lets_a_manager_remove_staff(
    cast: Cast, client: Client, settings: Any, django_capture_on_commit_callbacks: Any,
) -> None:
    layer = recording_layer(settings)
    bob = signed_in(cast.bob)
    client.force_login(cast.alice)
    assert b"Bob Baker" in client.get(reverse("members:team")).content
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("members:staff_remove", args=[cast.bob.pk]), {"reason": "Left the shop"})
    assert response.status_code == 302
    cast.bob.refresh_from_db()
    assert (cast.bob.is_active, cast.bob.disabled_reason) == (False, "Left the shop")
    assert not Session.objects.filter(session_key=session_key(bob)).exists()
    assert bob.get("/").status_code == 302
    # His sockets are closed and the hub hears that he left his street's group.
    assert cast.bob.pk in layer.revoked()
    assert (cast.bob.pk, cast.gold_group.pk, False) in layer.membership_changes()
    event = AuditEvent.objects.get(action="user.disable")
    assert (event.actor, event.subject, event.detail["reason"]) == (cast.alice, cast.bob, "Left the shop")
    assert b"Removed" in client.get(reverse("members:team")).content


def test_it_keeps_a_manager_to_their_own_team(cast: Cast, client: Client) -> None:
    client.force_login(cast.alice)
    assert client.post(reverse("members:staff_remove", args=[cast.charlie.pk])).status_code == 404
    assert client.post(reverse("members:staff_remove", args=[cast.alice.pk])).status_code == 403
    client.force_login(cast.bob)
    assert client.post(reverse("members:staff_remove", args=[cast.alice.pk])).status_code == 403
    for person in (cast.charlie, cast.alice):
        person.refresh_from_db()
        assert person.is_active
    with pytest.raises(PermissionDenied):
        services.staff_remove(actor=cast.alice, user=cast.charlie)
    with pytest.raises(PermissionDenied):
        services.staff_remove(actor=cast.alice, user=cast.warden)


def test_it_lets_the_bid_admin_suspend_and_reinstate_a_business(
    cast: Cast, client: Client, settings: Any, django_capture_on_commit_callbacks: Any,
) -> None:
    layer = recording_layer(settings)
    alice, bob, charlie = signed_in(cast.alice), signed_in(cast.bob), signed_in(cast.charlie)
    client.force_login(cast.admin)
    url = reverse("members:business_status", args=[cast.books.pk])
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, {"action": "suspend", "reason": "Levy unpaid"})
    assert response.status_code == 302
    cast.books.refresh_from_db()
    assert cast.books.status == Business.Status.SUSPENDED
    for person in (alice, bob):
        assert not Session.objects.filter(session_key=session_key(person)).exists()
        assert person.get("/").status_code == 302
    assert charlie.get("/").status_code == 200  # another business is untouched
    assert layer.revoked() == {cast.alice.pk, cast.bob.pk}
    assert layer.membership_changes() == {(cast.alice.pk, cast.gold_group.pk, False),
                                          (cast.bob.pk, cast.gold_group.pk, False)}
    assert AuditEvent.objects.get(action="business.suspend").detail["reason"] == "Levy unpaid"

    layer.sent.clear()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, {"action": "reinstate", "reason": "Paid in full"})
    assert response.status_code == 302
    cast.books.refresh_from_db()
    assert cast.books.status == Business.Status.ACTIVE
    assert layer.membership_changes() == {(cast.alice.pk, cast.gold_group.pk, True),
                                          (cast.bob.pk, cast.gold_group.pk, True)}
    assert AuditEvent.objects.filter(action="business.reinstate", actor=cast.admin).exists()
    assert signed_in(cast.bob).get("/").status_code == 200


def test_it_needs_a_reason_to_suspend(cast: Cast, client: Client) -> None:
    client.force_login(cast.admin)
    response = client.post(reverse("members:business_status", args=[cast.books.pk]), {"action": "suspend"})
    assert response.status_code == 400
    assert f'id="id_{cast.books.pk}_reason_error"'.encode() in response.content
    cast.books.refresh_from_db()
    assert cast.books.status == Business.Status.ACTIVE
    with pytest.raises(ValidationError):
        services.business_reinstate(actor=cast.admin, business=cast.books, reason="Not suspended")


def test_it_lets_the_bid_admin_disable_and_enable_a_person(
    cast: Cast, client: Client, settings: Any, django_capture_on_commit_callbacks: Any,
) -> None:
    layer = recording_layer(settings)
    warden = signed_in(cast.warden)
    client.force_login(cast.admin)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("members:person_disable", args=[cast.warden.pk]), {"reason": "Left the BID"})
    assert response.status_code == 302
    cast.warden.refresh_from_db()
    assert not cast.warden.is_active
    assert warden.get("/").status_code == 302
    assert layer.revoked() == {cast.warden.pk}
    assert layer.membership_changes() == {(cast.warden.pk, cast.gold_group.pk, False)}
    page = client.get(reverse("members:people"))
    assert b"Disabled: Left the BID" in page.content

    layer.sent.clear()
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(reverse("members:person_enable", args=[cast.warden.pk])).status_code == 302
    cast.warden.refresh_from_db()
    assert cast.warden.is_active and cast.warden.disabled_at is None
    assert layer.membership_changes() == {(cast.warden.pk, cast.gold_group.pk, True)}
    assert [e.action for e in AuditEvent.objects.filter(subject=cast.warden, action__startswith="user.")] == [
        "user.enable", "user.disable"]


def test_it_needs_a_reason_to_disable_and_never_disables_yourself(cast: Cast, client: Client) -> None:
    client.force_login(cast.admin)
    response = client.post(reverse("members:person_disable", args=[cast.bob.pk]), {"reason": ""})
    assert response.status_code == 400
    assert f'id="id_{cast.bob.pk}_reason_error"'.encode() in response.content
    assert client.post(reverse("members:person_disable", args=[cast.admin.pk]), {"reason": "x"}).status_code == 403
    assert User.objects.filter(pk__in=[cast.bob.pk, cast.admin.pk], is_active=True).count() == 2


def test_it_checks_access(cast: Cast, client: Client) -> None:
    posts = [
        (reverse("members:staff_remove", args=[cast.bob.pk]), {"reason": "x"}),
        (reverse("members:business_status", args=[cast.bakery.pk]), {"action": "suspend", "reason": "x"}),
        (reverse("members:person_disable", args=[cast.charlie.pk]), {"reason": "x"}),
        (reverse("members:person_enable", args=[cast.charlie.pk]), {}),
    ]
    for url, data in posts:
        response = client.post(url, data)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    for person in (cast.bob, cast.charlie, cast.warden, cast.officer, cast.police, cast.realm, cast.dpo):
        client.force_login(person)
        for url, data in posts:
            assert client.post(url, data).status_code == 403, (person, url)
    client.force_login(cast.alice)
    for url, data in posts[1:]:
        assert client.post(url, data).status_code == 403
    assert User.objects.filter(is_active=False).count() == 0
    assert Business.objects.filter(status=Business.Status.SUSPENDED).count() == 0


# --- With a real server and a real socket ------------------------------------------------------------------


def _cookie(user: User) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies[django_settings.SESSION_COOKIE_NAME].value


def _post_through(server: DaphneProcess, session: str, path: str, data: dict[str, str], *, form_page: str) -> int:
    """POST a form to the real server as a signed-in browser would: read the CSRF token from the page first."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=20)
    cookie = f"{django_settings.SESSION_COOKIE_NAME}={session}"
    conn.request("GET", form_page, headers={"Cookie": cookie})
    page = conn.getresponse()
    html = page.read().decode()
    assert page.status == 200, html[:500]
    csrf_cookie = re.search(r"csrftoken=([^;]+)", page.getheader("Set-Cookie") or "")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    assert csrf_cookie and token
    body = urlencode({**data, "csrfmiddlewaretoken": token.group(1)})
    conn.request("POST", path, body=body, headers={
        "Cookie": f"{cookie}; csrftoken={csrf_cookie.group(1)}", "Origin": server.url, "Referer": server.url + "/",
        "Content-Type": "application/x-www-form-urlencoded"})
    response = conn.getresponse()
    response.read()
    conn.close()
    return response.status


async def _socket_closed_by(server: DaphneProcess, victims: list[User], action: Any) -> list[tuple[int, str]]:
    """Open a hub socket per victim, run `action` (in a thread), return each socket's close code and last frame."""
    sockets = []
    for victim in victims:
        ws = await websockets.connect(server.ws_url, origin=server.url, additional_headers={
            "Cookie": f"{django_settings.SESSION_COOKIE_NAME}={await asyncio.to_thread(_cookie, victim)}"})
        welcome = json.loads(await asyncio.wait_for(ws.recv(), 20))
        assert welcome["type"] == "welcome"
        sockets.append(ws)
    await asyncio.to_thread(action)
    results = []
    for ws in sockets:
        last = ""
        with pytest.raises(websockets.ConnectionClosed):
            while True:
                last = json.loads(await asyncio.wait_for(ws.recv(), 20)).get("type", "")
        results.append((ws.close_code, last))
    return results


@pytest.mark.slow
def test_it_cuts_a_live_socket_when_a_manager_removes_staff(cast: Cast, daphne_factory: Any) -> None:
    server = daphne_factory(worker=False)
    alice = _cookie(cast.alice)

    def remove() -> None:
        status = _post_through(server, alice, reverse("members:staff_remove", args=[cast.bob.pk]),
                               {"reason": "Left"}, form_page=reverse("members:team"))
        assert status == 302

    assert asyncio.run(_socket_closed_by(server, [cast.bob], remove)) == [(CLOSE_REVOKED, "revoked")]
    assert not User.objects.get(pk=cast.bob.pk).is_active


@pytest.mark.slow
def test_it_cuts_every_live_socket_of_a_suspended_business(cast: Cast, daphne_factory: Any) -> None:
    server = daphne_factory(worker=False)
    admin = _cookie(cast.admin)

    def suspend() -> None:
        status = _post_through(server, admin, reverse("members:business_status", args=[cast.books.pk]),
                               {"action": "suspend", "reason": "Levy unpaid"}, form_page=reverse("members:businesses"))
        assert status == 302

    results = asyncio.run(_socket_closed_by(server, [cast.alice, cast.bob], suspend))
    assert results == [(CLOSE_REVOKED, "revoked"), (CLOSE_REVOKED, "revoked")]
    assert Business.objects.get(pk=cast.books.pk).status == Business.Status.SUSPENDED
