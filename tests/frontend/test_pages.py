"""Rendered pages under the strict CSP, accessible names for form controls, and the role-aware home page."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from frontend import context_processors
from frontend.context_processors import NAV_ITEMS
from members.models import Agreement, User
from tests.cast import Cast
from tests.frontend.shell import PageScan, scan

CAST_USERS = ["alice", "bob", "charlie", "warden", "admin", "officer", "police", "realm", "dpo"]


def csp_nonce(response: object) -> str:
    header = response["Content-Security-Policy"]  # type: ignore[index]
    match = re.search(r"script-src [^;]*'nonce-([A-Za-z0-9+/=_-]+)'", header)
    assert match, header
    assert "unsafe-inline" not in header
    assert "unsafe-eval" not in header
    return match.group(1)


def assert_strict(page: PageScan, nonce: str, where: str) -> None:
    assert page.scripts, where
    for script in page.scripts:
        assert script.get("src"), f"inline <script> on {where}"
        assert script.get("nonce") == nonce, f"{script.get('src')} without the page's nonce on {where}"
    assert not page.inline_script_text, where
    assert page.style_elements == 0, f"<style> on {where}"
    assert not page.style_attributes, f"{page.style_attributes} on {where}"
    assert not page.handler_attributes, f"{page.handler_attributes} on {where}"
    assert not page.javascript_urls, f"{page.javascript_urls} on {where}"


def pages_for(client: Client, user: User) -> list[str]:
    """Home and every page the menu offers this person."""
    client.force_login(user)
    nav = client.get("/").context["nav_items"]
    return [item["url"] for item in nav]


def test_it_sends_a_nonce_that_the_module_script_carries(cast: Cast, client: Client) -> None:
    client.force_login(cast.bob)
    first = client.get("/")
    second = client.get("/")
    nonce = csp_nonce(first)
    assert nonce != csp_nonce(second)  # a fresh nonce per response
    page = scan(first.content.decode())
    module = [s for s in page.scripts if s.get("src") == "/static/ntars/js/app.js"]
    assert module == [{"type": "module", "nonce": nonce, "src": "/static/ntars/js/app.js"}]


@pytest.mark.parametrize("who", CAST_USERS)
def test_it_renders_no_inline_script_or_style_for(cast: Cast, client: Client, who: str) -> None:
    for url in pages_for(client, getattr(cast, who)):
        response = client.get(url)
        assert response.status_code == 200, url
        assert_strict(scan(response.content.decode()), csp_nonce(response), f"{url} as {who}")
        assert scan(response.content.decode()).unnamed_controls() == [], f"{url} as {who}"


def test_it_renders_public_and_gate_pages_strictly(cast: Cast, client: Client) -> None:
    for url in ("/offline/", "/accounts/login/"):
        response = client.get(url)
        assert response.status_code == 200, url
        page = scan(response.content.decode())
        assert_strict(page, csp_nonce(response), url)
        assert page.unnamed_controls() == [], url
    Agreement.objects.create(kind=Agreement.Kind.DATA_SHARING, version=2, title="Data-sharing agreement", body="v2")
    client.force_login(cast.bob)
    response = client.get("/agreements/")
    assert response.status_code == 200
    page = scan(response.content.decode())
    assert_strict(page, csp_nonce(response), "/agreements/")
    assert page.controls, "the agreements page has its checkbox"
    assert page.unnamed_controls() == []


def test_it_finds_unnamed_controls() -> None:
    # The checker itself: an unlabelled input is caught, each kind of name is accepted.
    page = scan(
        '<input name="a"><label for="b">B</label><input id="b"><label>C <input name="c"></label>'
        '<input aria-label="D"><span id="e">E</span><select aria-labelledby="e"></select>'
        '<textarea aria-labelledby="nope"></textarea><input type="hidden" name="h"><button>Go</button>'
    )
    assert page.unnamed_controls() == ["<input name='a' id=None>", "<textarea name=None id=None>"]


def test_it_has_a_skip_link_to_main(cast: Cast, client: Client) -> None:
    client.force_login(cast.alice)
    html = client.get("/").content.decode()
    assert html.index('<a class="skip-link" href="#main">') < html.index('<header')
    assert '<main id="main" tabindex="-1">' in html


def test_it_keeps_the_menu_usable_without_javascript(cast: Cast, client: Client) -> None:
    client.force_login(cast.admin)
    html = client.get("/").content.decode()
    # The Menu button only appears when app.js runs; the menu it controls is open in the HTML itself.
    assert re.search(r'<button type="button" class="menu-button" aria-expanded="true" aria-controls="site-menu" hidden>', html)
    menu = html[html.index('<div id="site-menu"'):html.index("</header>")]
    assert 'data-collapsed' not in menu
    assert '<nav aria-label="Main">' in menu
    assert 'href="/" aria-current="page">Home</a>' in menu
    assert "Sign out" in menu


def test_it_announces_the_connection_state_politely(cast: Cast, client: Client) -> None:
    client.force_login(cast.bob)
    html = client.get("/").content.decode()
    assert '<p id="net-status" class="net-status" role="status" aria-live="polite"></p>' in html


@pytest.mark.parametrize("who", CAST_USERS)
def test_it_shows_each_role_only_its_own_tiles(cast: Cast, client: Client, who: str) -> None:
    user = getattr(cast, who)
    client.force_login(user)
    response = client.get("/")
    tiles = response.context["tiles"]
    allowed = {name for _, name, roles in NAV_ITEMS if name != "home" and (roles is None or user.role in roles)}
    assert {tile["name"] for tile in tiles} <= allowed
    html = response.content.decode()
    for _, name, roles in NAV_ITEMS:
        if roles is not None and user.role not in roles:
            assert not any(tile["name"] == name for tile in tiles)
    for tile in tiles:
        assert f'<a href="{tile["url"]}"><span class="tile-title">{tile["label"]}</span>' in html
        assert client.get(tile["url"]).status_code == 200, tile["url"]


def test_it_leaves_out_pages_that_do_not_exist_yet(
    cast: Cast, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        context_processors, "NAV_ITEMS",
        [*NAV_ITEMS, ("Ghost", "nowhere:ghost", None), ("Only managers", "home", frozenset({"manager"}))],
    )
    monkeypatch.setitem(context_processors.TILE_TEXT, "home", "never a tile")
    client.force_login(cast.bob)
    response = client.get("/")
    assert response.status_code == 200
    labels = [item["label"] for item in response.context["nav_items"]]
    assert "Ghost" not in labels
    assert "Only managers" not in labels
    assert "never a tile" not in response.content.decode()
