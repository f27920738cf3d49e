"""The chat pages (groups, thread, devices): access, what the page's script is given, strict CSP, labels."""

from __future__ import annotations

import json
import re

import pytest
from django.test import Client

from chat.pages import retention_text
from tests.cast import Cast
from tests.frontend.shell import scan
from tests.frontend.test_pages import assert_strict, csp_nonce


def config_of(html: str) -> dict[str, object]:
    match = re.search(r'<script id="chat-config" type="application/json">(.*?)</script>', html, re.S)
    assert match, "no chat config on the page"
    return json.loads(match.group(1))


def test_it_checks_access(cast: Cast, client: Client) -> None:
    group = cast.gold_group.pk
    for url in ("/chat/", f"/chat/{group}/", "/chat/devices/"):
        response = client.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"], url
    client.force_login(cast.charlie)  # Abington Street: not in the Gold Street group
    assert client.get(f"/chat/{group}/").status_code == 404
    assert client.get("/chat/999999/").status_code == 404
    assert client.get(f"/chat/{cast.abington_group.pk}/").status_code == 200
    client.force_login(cast.officer)  # in no group at all
    assert client.get(f"/chat/{group}/").status_code == 404
    for who in (cast.alice, cast.bob, cast.warden):
        client.force_login(who)
        assert client.get(f"/chat/{group}/").status_code == 200


def test_it_lists_only_my_groups(cast: Cast, client: Client) -> None:
    client.force_login(cast.bob)
    html = client.get("/chat/").content.decode()
    assert "Gold Street" in html and "Abington Street" not in html
    config = config_of(html)
    assert config["user"] == {"id": cast.bob.pk, "name": "Bob Baker"}
    assert [g["id"] for g in config["groups"]] == [cast.gold_group.pk]  # type: ignore[index]
    assert f'href="/chat/{cast.gold_group.pk}/"' in html


def test_it_gives_the_thread_its_group_and_the_moderator_flag(cast: Cast, client: Client) -> None:
    group = cast.gold_group
    client.force_login(cast.bob)
    config = config_of(client.get(f"/chat/{group.pk}/").content.decode())
    assert config["group"] == {"id": group.pk, "name": "Gold Street", "retention_seconds": group.retention_seconds}
    assert config["moderator"] is False
    assert config["report_url"] == "/reports/new/"
    client.force_login(cast.warden)
    assert config_of(client.get(f"/chat/{group.pk}/").content.decode())["moderator"] is True


@pytest.mark.parametrize("url", ["/chat/", "/chat/{group}/", "/chat/devices/"])
def test_it_serves_strict_csp_pages_with_labelled_controls(cast: Cast, client: Client, url: str) -> None:
    client.force_login(cast.alice)
    response = client.get(url.format(group=cast.gold_group.pk))
    assert response.status_code == 200
    html = response.content.decode()
    assert_strict(scan(html), csp_nonce(response), url)
    assert "ntars/css/chat.css" in html
    if "{group}" in url:
        for control in ("chat-text", "chat-photo", "chat-urgent"):
            assert f'for="{control}"' in html or f'<label class="urgent-toggle"><input type="checkbox" id="{control}"' in html
        assert 'accept="image/*" capture="environment"' in html
        assert 'aria-live="polite"' in html


def test_it_offers_chat_in_the_menu_to_group_roles(cast: Cast, client: Client) -> None:
    client.force_login(cast.bob)
    assert any(item["url"] == "/chat/" for item in client.get("/").context["nav_items"])
    client.force_login(cast.officer)
    assert not any(item["url"] == "/chat/" for item in client.get("/").context["nav_items"])


def test_it_words_retention_periods() -> None:
    assert retention_text(7 * 86400) == "7 days"
    assert retention_text(86400) == "1 day"
    assert retention_text(12 * 3600) == "12 hours"
    assert retention_text(90 * 60) == "90 minutes"
    assert retention_text(45) == "45 seconds"
