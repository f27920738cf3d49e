"""In Chromium: removing someone cuts their open chat socket at once, and their pages stop working."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import expect

from members.models import User
from tests.browser import signed_in_context
from tests.cast import Cast
from tests.servers import DaphneProcess

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def server(daphne_factory: Callable[..., DaphneProcess]) -> DaphneProcess:
    return daphne_factory(worker=False)


def test_it_cuts_a_removed_members_live_socket(
    cast: Cast, server: DaphneProcess, new_context: Callable[..., Any]
) -> None:
    bob = signed_in_context(new_context, cast.bob).new_page()
    bob.goto(f"{server.url}/chat/{cast.gold_group.pk}/")
    status = bob.locator("#chat-status")
    expect(status).to_have_attribute("data-state", "ready")

    alice = signed_in_context(new_context, cast.alice).new_page()
    alice.goto(f"{server.url}/team/")
    row = alice.get_by_role("row").filter(has_text="Bob Baker")
    row.get_by_text("Remove", exact=False).first.click()
    row.get_by_label("Reason (optional)").fill("Left the shop")
    row.get_by_role("button", name="Remove Bob").click()
    expect(alice.get_by_role("row").filter(has_text="Bob Baker")).to_contain_text("Removed")

    # Bob's socket is closed by the server (4401), his page says so, and it does not reconnect.
    expect(status).to_have_attribute("data-state", "revoked")
    expect(status).to_have_text("You have been signed out. Sign in again to keep chatting.")
    assert not User.objects.get(pk=cast.bob.pk).is_active
    bob.goto(f"{server.url}/chat/")
    expect(bob).to_have_url(f"{server.url}/accounts/login/?next=/chat/")
