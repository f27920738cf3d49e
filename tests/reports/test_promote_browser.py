"""Promote a chat message in real Chromium against a real Daphne: Alice posts a photo in the Gold Street chat,
Bob taps "Report this" on it, the form opens pre-filled (text, decrypted photo, sender, group, time), he sends it,
the case officer's inbox and report page show "Verified: sent by ...", and Bob's thread marks it "Reported"."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import expect

from members.models import User
from reports.models import Report, Source
from tests.cast import Cast
from tests.chat.test_browser_chat import Phone, jpeg
from tests.servers import DaphneProcess

pytestmark = [pytest.mark.browser, pytest.mark.slow]

VERIFIED = "Verified: sent by Alice Archer (Gold Street Books) in Gold Street at"


@pytest.fixture
def phone(server: DaphneProcess, signed_in: Callable[[User], Any]) -> Callable[[User], Phone]:
    """Like the chat browser tests' phones, on the reports' server (tiles routed locally)."""
    return lambda user: Phone(signed_in(user), server, user)


def test_it_promotes_a_chat_message_to_a_verified_report(cast: Cast, phone: Callable[[User], Phone]) -> None:
    group = cast.gold_group.pk
    alice, bob = phone(cast.alice), phone(cast.bob)
    alice.open_thread(group)
    page = bob.open_thread(group)

    alice.page.get_by_label("Add photo").set_input_files(
        [{"name": "cctv.jpg", "mimeType": "image/jpeg", "buffer": jpeg()}]
    )
    expect(alice.page.get_by_role("img", name="Photo to send")).to_be_visible()
    alice.send("Man in a grey hoodie took two bottles of gin, photo from our camera")
    seen = bob.message("grey hoodie")
    expect(seen.get_by_role("img", name="Photo from Alice Archer")).to_be_visible()

    seen.get_by_role("link", name="Report this").click()
    page.wait_for_url("**/reports/new/?from_chat=*")
    chat = page.locator("#from-chat")
    expect(chat.get_by_role("heading", name="Reporting a chat message")).to_be_visible()
    expect(chat.locator(".chat-sender")).to_have_text("Alice Archer (Gold Street Books)")
    expect(chat.locator(".chat-group")).to_have_text("Gold Street")
    expect(page.get_by_label("What happened")).to_have_value(
        "Man in a grey hoodie took two bottles of gin, photo from our camera")
    expect(page.get_by_role("img", name="Photo 1 from the chat message")).to_be_visible()

    page.get_by_label("Shop theft", exact=True).check()
    page.get_by_role("button", name="Send report").click()
    expect(page.get_by_text("Report sent. Thank you.")).to_be_visible()
    expect(page.get_by_text(VERIFIED)).to_be_visible()
    report = Report.objects.get()
    assert report.source == Source.CHAT and report.verification["verified"] is True
    assert report.reporter == cast.bob and report.kind == "shop_theft" and report.files.count() == 1
    # The form is a plain one again: the chat message is no longer in this tab's storage.
    expect(page.locator("#from-chat")).to_have_count(0)

    officer = phone(cast.officer)
    inbox = officer.open("/reports/inbox/")
    card = inbox.locator(f"[data-report-id='{report.pk}']")
    expect(card.get_by_text(VERIFIED)).to_be_visible()
    card.get_by_role("link", name=f"Shop theft — report {report.pk}").click()
    expect(inbox.locator(".verification").get_by_text(VERIFIED)).to_be_visible()
    expect(inbox.locator(".chat-quote")).to_contain_text("grey hoodie took two bottles of gin")
    expect(inbox.get_by_role("img", name="Photo 1")).to_be_visible()

    # Back in the chat, Bob's own view marks the message he reported; Alice's does not.
    bob.open_thread(group)
    expect(bob.message("grey hoodie").locator(".msg-reported")).to_have_text("Reported")
    expect(alice.message("grey hoodie")).to_be_visible()
    expect(alice.message("grey hoodie").locator(".msg-reported")).to_have_count(0)
    for person in (alice, bob, officer):
        assert person.problems == [], person.user
