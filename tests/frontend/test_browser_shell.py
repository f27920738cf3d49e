"""The shell in a real Chromium against a real Daphne: service worker, offline page, phone layout, keyboard."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from members.models import Agreement
from tests.browser import sign_in
from tests.cast import PASSWORD, Cast
from tests.frontend.shell import sw_version
from tests.servers import DaphneProcess

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# Roles whose controls must carry a name the browser computes (what a screen reader announces).
CONTROL_ROLES = "textbox|searchbox|checkbox|radio|combobox|listbox|spinbutton|slider|switch|button"


def wait_for_worker(page: Any) -> None:
    """Until the service worker controls this page (it claims the page on its first activation)."""
    page.wait_for_function("navigator.serviceWorker && navigator.serviceWorker.controller !== null")


def cached_paths(page: Any) -> set[str]:
    urls = page.evaluate(
        """async () => {
            const urls = [];
            for (const name of await caches.keys()) {
                const cache = await caches.open(name);
                for (const request of await cache.keys()) urls.push(request.url);
            }
            return urls;
        }"""
    )
    return {urlsplit(url).path for url in urls}


def unnamed_controls(page: Any) -> list[str]:
    snapshot = page.locator("body").aria_snapshot()
    return [
        line.strip() for line in snapshot.splitlines()
        if re.match(rf"^\s*- ({CONTROL_ROLES})(\s*\[[^\]]*\])*\s*:?\s*$", line)
    ]


def horizontal_overflow(page: Any) -> int:
    return int(page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth"))


def test_it_works_offline_once_the_worker_is_installed(
    cast: Cast, live_server_proc: DaphneProcess, new_context: Any
) -> None:
    context = new_context()
    page = context.new_page()
    base = live_server_proc.url
    sign_in(page, base, cast.bob.email, PASSWORD)
    expect(page.get_by_role("heading", name="Hello, Bob")).to_be_visible()
    wait_for_worker(page)
    page.goto(f"{base}{reverse('members:security')}")
    page.goto(f"{base}/")

    # Signed-in pages went through the worker, and none of them was stored: only the public shell is.
    paths = cached_paths(page)
    assert {"/offline/", "/static/ntars/css/app.css", "/static/ntars/js/app.js"} <= paths
    assert all(p.startswith("/static/") or p in {"/offline/", "/manifest.webmanifest"} for p in paths), paths

    status = page.locator("#net-status")
    context.set_offline(True)
    expect(status).to_have_text(re.compile("You are offline"))
    expect(status).to_have_attribute("data-state", "offline")

    page.goto(f"{base}{reverse('members:security')}")
    expect(page.get_by_role("heading", name="You are offline")).to_be_visible()
    assert "Bob" not in page.content()
    # The stored styles and scripts came along: the brand colour is applied, the indicator still works.
    assert page.locator(".topbar").evaluate("el => getComputedStyle(el).backgroundColor") == "rgb(18, 61, 92)"
    expect(page.locator("html")).to_have_class(re.compile(r"\bjs\b"))

    context.set_offline(False)
    expect(page.locator("#net-status")).to_have_text("Back online.")
    page.get_by_role("link", name="Try again").click()
    expect(page.get_by_role("heading", name="Security")).to_be_visible()


def test_it_offers_a_new_version_and_switches_when_asked(
    cast: Cast, live_server_proc: DaphneProcess, new_context: Any
) -> None:
    page = new_context().new_page()
    base = live_server_proc.url
    sign_in(page, base, cast.bob.email, PASSWORD)
    wait_for_worker(page)
    page.evaluate("caches.open('ntars-shell-0ld0ld0ld0ld')")
    expect(page.locator("#update-banner")).to_have_count(0)

    # A new script URL for the same scope is an update, as a changed /sw.js would be after a deploy.
    page.evaluate("navigator.serviceWorker.register('/sw.js?next', {scope: '/', type: 'module'})")
    banner = page.locator("#update-banner")
    expect(banner).to_contain_text("A new version of NTARS is ready.")
    # It waits for the person: the old worker still controls the page until they choose.
    assert page.evaluate("navigator.serviceWorker.controller.scriptURL").endswith("/sw.js")

    with page.expect_event("load"):
        banner.get_by_role("button", name="Update now").click()
    wait_for_worker(page)
    assert page.evaluate("navigator.serviceWorker.controller.scriptURL").endswith("/sw.js?next")
    expect(page.locator("#update-banner")).to_have_count(0)
    names = page.evaluate("caches.keys()")
    assert "ntars-shell-0ld0ld0ld0ld" not in names
    assert [name for name in names if name.startswith("ntars-shell-")] == [f"ntars-shell-{sw_version()}"]


def test_it_fits_a_360_pixel_phone(cast: Cast, live_server_proc: DaphneProcess, new_context: Any) -> None:
    base = live_server_proc.url
    page = new_context().new_page()
    assert page.viewport_size == {"width": 360, "height": 740}
    page.goto(f"{base}/accounts/login/")
    assert horizontal_overflow(page) == 0, "login"

    sign_in(page, base, cast.alice.email, PASSWORD)
    expect(page.get_by_role("heading", name="Hello, Alice")).to_be_visible()
    assert horizontal_overflow(page) == 0, "home"
    page.get_by_role("button", name="Menu").click()
    assert horizontal_overflow(page) == 0, "home with the menu open"

    # A wide table collapses to one card per row, each cell labelled with its column (tables.js, app.css).
    page.goto(f"{base}{reverse('members:team')}")
    expect(page.locator('td[data-label="Email"]').first).to_be_visible()
    assert page.locator("table.stack tr").first.evaluate("el => getComputedStyle(el).display") == "block"
    assert horizontal_overflow(page) == 0, "team table"

    Agreement.objects.create(kind=Agreement.Kind.DATA_SHARING, version=2, title="Data-sharing agreement",
                             body="A long agreement text. " * 200)
    page.goto(f"{base}/")
    expect(page.get_by_role("heading", name="Before you start")).to_be_visible()
    assert horizontal_overflow(page) == 0, "agreements"


def test_it_collapses_the_menu_on_a_phone(cast: Cast, live_server_proc: DaphneProcess, new_context: Any) -> None:
    base = live_server_proc.url
    page = new_context().new_page()
    sign_in(page, base, cast.alice.email, PASSWORD)
    menu = page.get_by_role("button", name="Menu")
    security = page.get_by_role("navigation", name="Main").get_by_role("link", name="Security")
    expect(menu).to_have_attribute("aria-expanded", "false")
    expect(security).to_be_hidden()
    menu.click()
    expect(menu).to_have_attribute("aria-expanded", "true")
    expect(security).to_be_visible()
    box = security.bounding_box()
    assert box is not None and box["height"] >= 44, box
    security.focus()
    page.keyboard.press("Escape")
    expect(menu).to_have_attribute("aria-expanded", "false")
    expect(menu).to_be_focused()

    # Without JavaScript there is no Menu button and the menu is simply open.
    plain = new_context(java_script_enabled=False).new_page()
    sign_in(plain, base, cast.alice.email, PASSWORD)
    expect(plain.get_by_role("button", name="Menu")).to_have_count(0)
    expect(plain.get_by_role("navigation", name="Main").get_by_role("link", name="Security")).to_be_visible()
    expect(plain.get_by_role("button", name="Sign out")).to_be_visible()


def test_it_skips_to_main_from_the_keyboard(cast: Cast, live_server_proc: DaphneProcess, page: Any) -> None:
    page.goto(f"{live_server_proc.url}/accounts/login/")
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    expect(skip).to_be_focused()
    box = skip.bounding_box()
    assert box is not None and box["y"] >= 0, "the skip link shows when focused"
    page.keyboard.press("Enter")
    expect(page.locator("main")).to_be_focused()


def test_it_names_every_form_control(cast: Cast, live_server_proc: DaphneProcess, new_context: Any) -> None:
    base = live_server_proc.url
    page = new_context().new_page()
    page.goto(f"{base}/accounts/login/")
    assert unnamed_controls(page) == [], "login"
    assert page.get_by_role("textbox", name="Email").count() == 1

    sign_in(page, base, cast.alice.email, PASSWORD)
    page.get_by_role("button", name="Menu").click()
    for path in ("/", reverse("members:security"), reverse("members:team")):
        page.goto(f"{base}{path}")
        page.get_by_role("button", name="Menu").click()
        assert unnamed_controls(page) == [], path

    Agreement.objects.create(kind=Agreement.Kind.CODE_OF_CONDUCT, version=2, title="Code of conduct", body="v2")
    page.goto(f"{base}/")
    expect(page.get_by_role("checkbox", name="I have read and accept these documents")).to_be_visible()
    assert unnamed_controls(page) == [], "agreements"


def test_it_finds_unnamed_controls_in_a_snapshot(page: Any) -> None:
    page.set_content('<input type="text"><label>Name <input></label><button></button><input type="checkbox">')
    assert unnamed_controls(page) == ["- textbox", "- button", "- checkbox"]
