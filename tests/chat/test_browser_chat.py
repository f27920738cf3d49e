"""The chat screens in real Chromium (360 px phones) against a real Daphne: live E2EE chat between browsers,
the offline outbox, key-change warnings, photos, retraction and reporting, and interop with the Python client.

Each person is a separate browser context (its own IndexedDB, so its own device keys), signed in with a
force_login session cookie. Nothing sleeps: every wait is a Playwright expectation on the page.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
import json
import re
import threading
from collections.abc import Callable
from typing import Any

import pytest
from PIL import Image
from playwright.sync_api import expect

from chat.e2ee_client import E2EEClient, Received
from chat.models import Device, EpochWrap, GroupEpoch, Message
from members.models import User
from members.services import staff_remove
from tests.browser import signed_in_context
from tests.cast import PASSWORD, Cast
from tests.servers import DaphneProcess

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def server(daphne_factory: Callable[..., DaphneProcess]) -> DaphneProcess:
    return daphne_factory(worker=False)


class Phone:
    """One person's browser: a phone-sized context signed in as them, with a page that collects script errors."""

    def __init__(self, context: Any, server: DaphneProcess, user: User) -> None:
        self.context = context
        self.server = server
        self.user = user
        self.problems: list[str] = []
        self.page = self.new_page()

    def new_page(self) -> Any:
        page = self.context.new_page()
        page.on("console", self._console)
        page.on("pageerror", lambda e: self.problems.append(str(e)))
        page.on("dialog", lambda dialog: dialog.accept())
        return page

    def _console(self, message: Any) -> None:
        # Two members rotating a group key at once: the loser's POST answers 409 and it adopts the winner's epoch.
        if message.type == "error" and "status of 409 (Conflict)" not in message.text:
            self.problems.append(message.text)

    def open(self, path: str) -> Any:
        self.page.goto(f"{self.server.url}{path}")
        return self.page

    def open_thread(self, group_id: int) -> Any:
        self.open(f"/chat/{group_id}/")
        self.expect_connected()
        return self.page

    def expect_connected(self) -> None:
        expect(self.page.locator("#chat-status")).to_have_attribute("data-state", "ready")

    def send(self, text: str, *, urgent: bool = False) -> None:
        self.page.get_by_label("Write a message").fill(text)
        if urgent:
            self.page.get_by_label("Urgent").check()
        self.page.get_by_role("button", name="Send").click()

    def message(self, text: str) -> Any:
        """The delivered (not pending) message bubble holding `text`."""
        return self.page.locator("li.msg:not(.pending)").filter(has=self.page.locator(".msg-text", has_text=text))


@pytest.fixture
def phone(server: DaphneProcess, new_context: Callable[..., Any]) -> Callable[[User], Phone]:
    # The server first, so it is stopped last: browsers close their sockets before Daphne shuts down.
    def make(user: User) -> Phone:
        context = signed_in_context(new_context, user)
        return Phone(context, server, user)

    return make


def jpeg(colour: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (120, 90), colour).save(out, "JPEG")
    return out.getvalue()


def outbox_count(page: Any, user: User) -> int:
    return page.evaluate(
        """(name) => new Promise((resolve, reject) => {
            const open = indexedDB.open(name);
            open.onsuccess = () => {
                const request = open.result.transaction("outbox").objectStore("outbox").count();
                request.onsuccess = () => { open.result.close(); resolve(request.result); };
            };
            open.onerror = () => reject(open.error);
        })""",
        f"ntars-chat-u{user.pk}",
    )


def stored_envelopes() -> bytes:
    return b"".join(bytes(m.envelope) for m in Message.objects.all())


def test_it_chats_live_both_ways_between_two_members(cast: Cast, phone: Callable[[User], Phone]) -> None:
    group = cast.gold_group.pk
    alice, bob = phone(cast.alice), phone(cast.bob)
    a, b = alice.open_thread(group), bob.open_thread(group)

    alice.send("Is the man in the red cap still outside number 14?")
    seen = bob.message("red cap")
    expect(seen.locator(".msg-sender")).to_have_text("Alice Archer")
    expect(seen.locator(".msg-business")).to_have_text("Gold Street Books")
    expect(seen.locator("time")).to_have_attribute("datetime", re.compile(r"^\d{4}-\d\d-\d\dT"))
    expect(seen.locator(".msg-expiry")).to_have_text("Disappears in 7 days")
    expect(alice.message("red cap").locator(".msg-state")).to_have_text("Sent")
    expect(b.locator("#announce")).to_contain_text("Alice Archer: Is the man in the red cap")

    bob.send("Yes, he has gone into the bakery now", urgent=True)
    reply = alice.message("gone into the bakery")
    expect(reply).to_have_class(re.compile(r"\burgent\b"))
    expect(reply.locator(".msg-urgent")).to_have_text("Urgent")
    expect(a.locator("#announce")).to_have_text("Urgent: Bob Baker: Yes, he has gone into the bakery now")

    # The server relayed and stored ciphertext only.
    envelopes = stored_envelopes()
    assert Message.objects.filter(kind="message").count() == 2
    assert b"red cap" not in envelopes and b"bakery" not in envelopes
    assert Message.objects.get(sender=cast.bob).urgent is True

    # Withdrawing: bob's own message goes for both of them.
    bob.message("gone into the bakery").get_by_role("button", name="Withdraw").click()
    expect(a.locator("li.msg.withdrawn")).to_have_count(1)
    expect(alice.message("gone into the bakery")).to_have_count(0)
    expect(b.locator("li.msg.withdrawn")).to_have_count(1)
    # Withdraw is offered on one's own messages only (neither of them moderates the group).
    expect(alice.message("red cap").get_by_role("button", name="Withdraw")).to_have_count(1)
    expect(bob.message("red cap").get_by_role("button", name="Withdraw")).to_have_count(0)

    # Report this: the link names group and seq; the decrypted text waits in this tab's sessionStorage.
    seq = Message.objects.get(sender=cast.alice, kind="message").seq
    bob.message("red cap").get_by_role("link", name="Report this").click()
    b.wait_for_url(f"**/reports/new/?from_chat={group}%3A{seq}")
    kept = json.loads(b.evaluate(f"() => sessionStorage.getItem('ntars-chat-report:{group}:{seq}')"))
    assert kept["text"] == "Is the man in the red cap still outside number 14?"
    assert (kept["group"], kept["seq"], kept["sender"]["id"]) == (group, seq, cast.alice.pk)
    assert kept["body"] and kept["key_material"] and kept["envelope"]
    assert alice.problems == []


def test_it_delivers_a_message_typed_offline_after_reconnect(cast: Cast, phone: Callable[[User], Phone]) -> None:
    group = cast.gold_group.pk
    alice, bob = phone(cast.alice), phone(cast.bob)
    alice.open_thread(group)
    b = bob.open_thread(group)
    bob.send("Delivery van blocking the fire exit again")  # the group's first message creates its epoch
    expect(alice.message("fire exit")).to_be_visible()

    bob.context.set_offline(True)
    expect(b.locator("#chat-status")).to_have_attribute("data-state", "offline")
    expect(b.locator("#chat-status")).to_contain_text("No signal")
    b.get_by_label("Write a message").fill("Written in the stockroom with no signal")
    b.keyboard.press("Enter")
    pending = b.locator("li.msg.pending")
    expect(pending.locator(".msg-state")).to_have_text("Waiting for signal…")
    assert outbox_count(b, cast.bob) == 1
    assert Message.objects.filter(sender=cast.bob).count() == 1

    bob.context.set_offline(False)
    expect(alice.message("stockroom")).to_be_visible()
    expect(pending).to_have_count(0)
    expect(bob.message("stockroom").locator(".msg-state")).to_have_text("Sent")
    assert outbox_count(b, cast.bob) == 0
    assert Message.objects.filter(sender=cast.bob).count() == 2


def test_it_sends_what_waited_in_the_outbox_from_a_later_page(cast: Cast, phone: Callable[[User], Phone]) -> None:
    group = cast.gold_group.pk
    alice, bob = phone(cast.alice), phone(cast.bob)
    alice.open_thread(group)
    bob.open_thread(group)
    bob.context.set_offline(True)
    bob.send("Typed on the bus, phone closed before the signal came back")
    expect(bob.page.locator("li.msg.pending")).to_have_count(1)
    bob.page.close()
    bob.context.set_offline(False)
    bob.page = bob.new_page()
    bob.open_thread(group)
    expect(alice.message("Typed on the bus")).to_have_count(1)
    expect(bob.page.locator("li.msg.pending")).to_have_count(0)
    assert Message.objects.filter(sender=cast.bob).count() == 1


def test_it_warns_when_a_members_keys_change(cast: Cast, phone: Callable[[User], Phone]) -> None:
    group = cast.gold_group.pk
    alice, bob = phone(cast.alice), phone(cast.bob)
    alice.open_thread(group)
    b = bob.open_thread(group)
    alice.send("Before my new phone")
    expect(bob.message("Before my new phone")).to_be_visible()
    expect(b.get_by_role("alert")).to_have_count(0)

    # Alice lost her phone: a BID admin re-enrols her (through the server, so the sockets hear of it), and her
    # browser makes new keys, approved as her first device after the re-enrolment.
    devices = alice.open("/chat/devices/")
    expect(devices.locator("#this-device .device-status")).to_have_text("Approved")
    old = devices.locator("#this-device .digits").inner_text()
    admin = phone(cast.admin)
    admin.open("/security/")
    token = next(c["value"] for c in admin.context.cookies() if c["name"] == "csrftoken")
    answer = admin.page.request.post(f"{admin.server.url}/chat/api/users/{cast.alice.pk}/reenrol",
                                     headers={"X-CSRFToken": token})
    assert answer.status == 200, answer.text()
    devices = alice.open("/chat/devices/")
    expect(devices.locator("#this-device .digits")).not_to_have_text(old)
    expect(devices.locator("#this-device .device-status")).to_have_text("Approved")

    warning = b.get_by_role("alert").filter(has_text="Alice Archer’s security keys have changed")
    expect(warning).to_be_visible()
    expect(warning.get_by_role("link", name="Compare safety numbers")).to_have_attribute(
        "href", f"/chat/devices/#user-{cast.alice.pk}"
    )
    # Her new device can write again (a new epoch is made first) and bob can read it.
    alice.open_thread(group)
    alice.send("This is my new phone")
    expect(bob.message("This is my new phone")).to_be_visible()

    warning.get_by_role("button", name="I have checked").click()
    expect(b.get_by_role("alert")).to_have_count(0)


def test_it_lets_a_warden_and_two_shop_assistants_chat_from_three_browsers(
    cast: Cast, phone: Callable[[User], Phone]
) -> None:
    cast.gold_group.businesses.add(cast.bakery)  # charlie's bakery joins the Gold Street group
    group = cast.gold_group.pk
    wendy, bob, charlie = phone(cast.warden), phone(cast.bob), phone(cast.charlie)
    for person in (wendy, bob, charlie):
        person.open_thread(group)

    wendy.send("Warden here: shoplifter heading up Gold Street, grey hoodie")
    bob.send("Seen him, he went past the bookshop")
    charlie.page.get_by_label("Add photo").set_input_files(
        [{"name": "cctv.jpg", "mimeType": "image/jpeg", "buffer": jpeg()}]
    )
    expect(charlie.page.get_by_role("img", name="Photo to send")).to_be_visible()
    charlie.send("He is outside the bakery now, photo from our camera")

    for person in (wendy, bob, charlie):
        expect(person.message("grey hoodie").locator(".msg-business")).to_have_text("BID warden")
        expect(person.message("past the bookshop").locator(".msg-business")).to_have_text("Gold Street Books")
        photo = person.message("outside the bakery")
        expect(photo.locator(".msg-business")).to_have_text("Abington Bakery")
        expect(photo.get_by_role("img", name="Photo from Charlie Chalk")).to_be_visible()
    # The warden moderates: she may withdraw anyone's message.
    expect(wendy.message("past the bookshop").get_by_role("button", name="Withdraw")).to_have_count(1)
    expect(bob.message("grey hoodie").get_by_role("button", name="Withdraw")).to_have_count(0)
    assert b"hoodie" not in stored_envelopes()
    for person in (wendy, bob, charlie):
        assert person.problems == [], person.user


def test_it_counts_unread_messages_on_the_groups_page(cast: Cast, phone: Callable[[User], Phone]) -> None:
    group = cast.gold_group.pk
    alice, bob = phone(cast.alice), phone(cast.bob)
    alice.open_thread(group)
    bob.open_thread(group)
    groups = bob.open("/chat/")
    badge = groups.locator(f'[data-unread-for="{group}"]')
    expect(badge).to_be_hidden()
    alice.send("Anyone got change for a twenty?")
    alice.send("Never mind, sorted")
    expect(badge).to_have_text("2 unread")
    expect(groups.get_by_role("link", name="Gold Street 2 unread")).to_be_visible()
    groups.get_by_role("link", name="Gold Street").click()
    expect(bob.message("sorted")).to_be_visible()
    bob.open("/chat/")
    expect(groups.locator('[data-unread-for]')).to_be_hidden()


def test_it_fits_a_phone_and_works_from_the_keyboard(cast: Cast, phone: Callable[[User], Phone]) -> None:
    group = cast.gold_group.pk
    alice = phone(cast.alice)
    page = alice.open_thread(group)
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    send = page.get_by_role("button", name="Send")
    box = send.bounding_box()
    assert box is not None and box["height"] >= 44 and box["y"] + box["height"] <= 740  # under the thumb
    # Keyboard: focus the composer, type, Enter sends, focus stays for the next message.
    page.get_by_label("Write a message").focus()
    page.keyboard.type("Typed without touching the screen")
    page.keyboard.press("Enter")
    expect(alice.message("Typed without touching the screen")).to_be_visible()
    expect(page.get_by_label("Write a message")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_label("Add photo")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_label("Urgent")).to_be_focused()
    page.keyboard.press("Tab")
    expect(send).to_be_focused()
    expect(page.get_by_role("list", name="Messages in Gold Street")).to_be_visible()
    assert alice.problems == []


def test_it_interoperates_with_the_python_e2ee_client(
    cast: Cast, phone: Callable[[User], Phone], server: DaphneProcess
) -> None:
    group = cast.gold_group.pk
    bob = phone(cast.bob)
    bob.open_thread(group)
    sent = threading.Event()

    async def alice_in_python() -> tuple[Received, str]:
        client = await E2EEClient.sign_in(server.url, cast.alice.email, PASSWORD)
        try:
            assert await client.register() == "approved"
            await client.connect()
            attachment = await client.upload(group, jpeg((20, 120, 40)))
            await client.send_text(group, "Sent from the Python client", attachments=[attachment])
            sent.set()
            safety = await client.safety_number(group, cast.bob.pk)
            async for received in client.received():
                if received.sender_name == "Bob Baker":
                    return received, safety
            raise AssertionError("the stream ended")
        finally:
            await client.close()

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        python_side = pool.submit(asyncio.run, alice_in_python())
        assert sent.wait(timeout=60) or python_side.result()
        shown = bob.message("Sent from the Python client")
        expect(shown.locator(".msg-sender")).to_have_text("Alice Archer")
        expect(shown.get_by_role("img", name="Photo from Alice Archer")).to_be_visible()
        bob.send("Typed in Chromium, read in Python", urgent=True)
        received, safety = python_side.result(timeout=60)

    assert received.error is None
    assert received.message is not None
    assert (received.text, received.message.urgent) == ("Typed in Chromium, read in Python", True)
    # Both implementations compute the same safety number for the pair.
    devices = bob.open("/chat/devices/")
    expect(devices.locator(f"#user-{cast.alice.pk} .digits")).to_have_text(safety)
    assert bob.problems == []


def test_it_approves_a_new_device_from_an_existing_one(cast: Cast, phone: Callable[[User], Phone]) -> None:
    group = cast.gold_group.pk
    old, new, bob = phone(cast.alice), phone(cast.alice), phone(cast.bob)
    old.open_thread(group)
    bob.open_thread(group)

    # A second browser of alice's: its keys wait for approval, and it cannot chat yet.
    waiting = new.open("/chat/devices/")
    expect(waiting.locator(".device-status")).to_have_text("Waiting for approval")
    fingerprint = waiting.locator("#this-device .digits").inner_text()
    thread = new.open(f"/chat/{group}/")
    expect(thread.locator("#chat-status")).to_contain_text("waiting to be approved")
    expect(thread.get_by_label("Write a message")).to_be_disabled()

    devices = old.open("/chat/devices/")
    pending = devices.locator("li.device-pending")
    expect(pending.locator(".digits")).to_have_text(fingerprint)  # what the new phone shows: compare them
    pending.get_by_role("button", name="Approve").click()
    expect(devices.get_by_text("is approved")).to_be_visible()

    new.expect_connected()  # the waiting page noticed the approval and opened the chat
    new.send("Hello from my second phone")
    expect(bob.message("Hello from my second phone").locator(".msg-sender")).to_have_text("Alice Archer")
    assert Device.objects.filter(user=cast.alice, status="approved").count() == 2


def test_it_rotates_the_group_key_before_writing_after_a_member_left(
    cast: Cast, phone: Callable[[User], Phone]
) -> None:
    group = cast.gold_group.pk
    alice, bob = phone(cast.alice), phone(cast.bob)
    alice.open_thread(group)
    b = bob.open_thread(group)
    alice.send("Bob, can you lock up tonight?")
    expect(bob.message("lock up tonight")).to_be_visible()
    first = GroupEpoch.objects.get(group=cast.gold_group)
    bobs = set(Device.objects.filter(user=cast.bob).values_list("pk", flat=True))
    assert bobs <= set(EpochWrap.objects.filter(epoch=first).values_list("device_id", flat=True))

    # (The server process learns of it from the database; the hub cuts bob's socket at its next check.)
    staff_remove(actor=cast.alice, user=cast.bob, reason="Left the shop")
    alice.send("Bob has left us: new code for the back door is on the rota")
    expect(alice.message("new code for the back door").locator(".msg-state")).to_have_text("Sent")

    latest = GroupEpoch.objects.filter(group=cast.gold_group).latest("epoch")
    assert latest.epoch == first.epoch + 1
    assert not bobs & set(EpochWrap.objects.filter(epoch=latest).values_list("device_id", flat=True))
    assert Message.objects.filter(kind="message").latest("seq").epoch == latest.epoch
    expect(b.get_by_text("new code for the back door")).to_have_count(0)


def test_it_marks_a_refused_message_failed_and_retries_it_on_a_tap(
    cast: Cast, phone: Callable[[User], Phone]
) -> None:
    group = cast.gold_group.pk
    alice, bob = phone(cast.alice), phone(cast.bob)
    alice.open_thread(group)
    a = alice.page
    bob.open_thread(group)
    refuse = {"on": True}

    def upload(route: Any) -> None:
        if refuse["on"]:
            route.fulfill(status=400, content_type="application/json",
                          body=json.dumps({"error": "invalid", "detail": "refused for the test"}))
        else:
            route.fallback()

    alice.context.route("**/chat/api/blobs?*", upload)
    a.get_by_label("Add photo").set_input_files([{"name": "van.jpg", "mimeType": "image/jpeg", "buffer": jpeg()}])
    alice.send("Van number plate in the photo")
    retry = a.get_by_role("button", name="Not sent. Tap to retry")
    expect(retry).to_be_visible()
    assert outbox_count(a, cast.alice) == 1  # kept until it goes
    assert Message.objects.count() == 0

    refuse["on"] = False
    retry.click()
    shown = bob.message("Van number plate")
    expect(shown.get_by_role("img", name="Photo from Alice Archer")).to_be_visible()
    expect(a.locator("li.msg.pending")).to_have_count(0)
    assert Message.objects.filter(kind="message").count() == 1
