"""A shopkeeper's urgent chat message, end to end in real Chromium against a real Daphne: typed in bob's thread,
queued as a push by the server, sent by the delivery engine to the fake push service, and shown by alice's
service worker (delivered through the DevTools protocol) with the preview it decrypts on her phone.

The server runs in a subprocess; its push rows are in the shared test database, so the delivery engine runs here
against tests/alerts/fake_push.py with the same VAPID key the server hands to browsers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings
from playwright.sync_api import expect

from alerts import services
from alerts.models import PushDelivery
from chat.models import Message
from members.models import User
from tests.alerts.conftest import subscribe
from tests.alerts.fake_push import FakePushService, FakeSubscription
from tests.alerts.test_browser_push import PUSH_STUB, deliver_push, open_with_worker, turn_on_push, watched
from tests.browser import signed_in_context
from tests.cast import Cast
from tests.servers import DaphneProcess

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def server(daphne_factory: Callable[..., DaphneProcess]) -> DaphneProcess:
    return daphne_factory(worker=False, extra_env={
        "PUSH_ENDPOINT_ALLOWLIST": "127.0.0.1", "VAPID_PRIVATE_KEY": settings.VAPID_PRIVATE_KEY,
    })


def phone_page(new_context: Callable[..., Any], server: DaphneProcess, user: User,
               stub: FakeSubscription | None = None) -> Any:
    """A page in a phone-sized context signed in as `user`; with `stub`, PushManager.subscribe answers with it."""
    context = signed_in_context(new_context, user)
    context.grant_permissions(["notifications"], origin=server.url)
    if stub is not None:
        context.add_init_script(f"{PUSH_STUB}({json.dumps(stub.as_json() | stub.as_json()['keys'])})")
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    return page


def open_thread(page: Any, url: str) -> None:
    page.goto(url)
    expect(page.locator("#chat-status")).to_have_attribute("data-state", "ready")


def test_it_pushes_a_shopkeepers_urgent_chat_message_to_other_members(
    cast: Cast, server: DaphneProcess, new_context: Callable[..., Any], fake_push: FakePushService
) -> None:
    group = cast.gold_group
    thread = f"{server.url}/chat/{group.pk}/"
    bobs_phone, _ = subscribe(fake_push, cast.bob)  # the sender's own device must get nothing
    alices_phone = fake_push.subscribe()

    bob = phone_page(new_context, server, cast.bob)
    bob_problems = watched(bob)
    open_thread(bob, thread)  # bob's chat device is registered

    alice = phone_page(new_context, server, cast.alice, stub=alices_phone)
    alice_problems = watched(alice)
    turn_on_push(alice, server.url)
    open_thread(alice, thread)  # her chat device, the directory (bob's key remembered) and, below, the epoch key

    text = "Two lads in grey hoodies took perfume, heading to the Market Square"
    bob.get_by_label("Write a message").fill(text)
    bob.get_by_label("Urgent").check()
    bob.get_by_role("button", name="Send").click()
    expect(bob.locator("li.msg:not(.pending) .msg-text", has_text=text)).to_be_visible()
    expect(alice.locator("li.msg:not(.pending) .msg-text", has_text=text)).to_be_visible()
    message = Message.objects.get(sender=cast.bob)
    assert message.urgent is True

    # Alice puts the thread away: the push is for a phone that is not showing it.
    open_with_worker(alice, f"{server.url}/alerts/")

    assert list(PushDelivery.objects.values_list("user_id", flat=True)) == [cast.alice.pk]
    counts = services.deliver_due()
    assert counts["sent"] == 1, counts
    assert fake_push.delivered_to(bobs_phone.endpoint) == []
    [received] = fake_push.delivered_to(alices_phone.endpoint)
    assert received.urgency == "high"
    assert received.plaintext is not None and text.encode() not in received.plaintext
    assert b"grey hoodies" not in received.plaintext
    payload = received.json()
    assert (payload["kind"], payload["group"], payload["seq"], payload["urgent"]) == ("chat", group.pk, message.seq, True)
    assert "envelope" in payload

    [shown] = deliver_push(alice, server.url, payload)
    assert (shown["title"], shown["body"]) == ("Gold Street", f"Bob Baker: {text}")
    assert shown["tag"] == f"chat-{group.pk}"
    assert shown["requireInteraction"] is True
    assert shown["data"]["url"] == f"/chat/{group.pk}/"
    assert alice_problems == [] and bob_problems == []


def test_it_shows_a_wardens_broadcast_as_a_banner_on_an_open_chat_page(
    cast: Cast, server: DaphneProcess, new_context: Callable[..., Any]
) -> None:
    alice = phone_page(new_context, server, cast.alice)
    problems = watched(alice)
    open_thread(alice, f"{server.url}/chat/{cast.gold_group.pk}/")  # the chat page's own hub socket

    warden = phone_page(new_context, server, cast.warden)
    warden.goto(f"{server.url}/alerts/broadcasts/new/")
    warden.get_by_label("Title", exact=True).fill("Lock your doors")
    warden.get_by_label("Text", exact=True).fill("Group of 6 on Gold Street.")
    warden.get_by_role("radio", name="Urgent").check()
    warden.get_by_role("group", name="Streets (people of the businesses there)").get_by_label("Gold Street").check()
    warden.get_by_role("button", name="Send broadcast").click()
    expect(warden.get_by_text("Broadcast sent to 2 people.")).to_be_visible()

    banner = alice.get_by_role("alert").filter(has=alice.get_by_role("heading", name="Urgent: Lock your doors"))
    expect(banner).to_be_visible()
    expect(banner.get_by_text("Group of 6 on Gold Street.")).to_be_visible()
    expect(banner.get_by_role("link", name="Open")).to_have_attribute("href", re.compile(r"^/alerts/broadcasts/\d+/$"))
    assert problems == []
