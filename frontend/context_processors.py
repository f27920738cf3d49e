"""Role-aware navigation for the shell: the menu on every page and the tiles on the home page."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse

# (label, url name, roles that see it; None = every signed-in person)
NAV_ITEMS: list[tuple[str, str, frozenset[str] | None]] = [
    ("Home", "home", None),
    ("Chat", "chat:groups", frozenset({"staff", "manager", "warden"})),
    ("Report", "reports:new", frozenset({"staff", "manager", "warden"})),
    ("My reports", "reports:mine", frozenset({"staff", "manager", "warden"})),
    ("Inbox", "reports:inbox", frozenset({"case_officer", "police", "bid_admin"})),
    ("Cases", "reports:cases", frozenset({"case_officer", "police", "bid_admin"})),
    ("My team", "members:team", frozenset({"manager"})),
    ("Applications", "members:applications", frozenset({"bid_admin"})),
    ("Businesses", "members:businesses", frozenset({"bid_admin"})),
    ("Levy roll", "members:levy_import", frozenset({"bid_admin"})),
    ("People", "members:people", frozenset({"bid_admin"})),
    ("Street groups", "members:groups", frozenset({"bid_admin"})),
    ("Agreements", "members:agreement_admin", frozenset({"bid_admin"})),
    ("Audit trail", "members:audit", frozenset({"dpo"})),
    ("Alerts", "alerts:page", None),
    ("Broadcast", "alerts:broadcast_new", frozenset({"warden", "bid_admin"})),
    ("Security", "members:security", None),
]

# What each page is for, shown on its home-page tile (url name -> one line). Every menu item but Home is a tile.
TILE_TEXT: dict[str, str] = {
    "chat:groups": "Your street groups: warn neighbours in seconds, end-to-end encrypted.",
    "reports:new": "Report an incident: a kind and a sentence is enough, photos welcome.",
    "reports:mine": "Follow what happened to the reports you made.",
    "reports:inbox": "Reports to triage, assign, share and close.",
    "reports:cases": "Reports grouped by the person or place they are about.",
    "members:team": "Invite staff to your business and remove those who have left.",
    "members:applications": "Approve or reject businesses applying for voluntary membership.",
    "members:businesses": "Levy payers and members: suspend or reinstate a business.",
    "members:levy_import": "Import the BID levy roll from a CSV file.",
    "members:people": "Invite wardens, officers and partners; disable an account.",
    "members:groups": "Street groups, their streets, members and message retention.",
    "members:agreement_admin": "Publish a new data-sharing agreement or code of conduct.",
    "members:audit": "Search who saw or changed what, when and from where.",
    "alerts:page": "Notifications on your phone, quiet hours, and the alerts wardens sent you.",
    "alerts:broadcast_new": "Alert members on chosen streets, groups or roles; see who got it.",
    "members:security": "Two-factor sign-in, passkeys, your password and your signed-in devices.",
}


def links_for(request: HttpRequest) -> list[dict[str, Any]]:
    """The menu items this person's role may use, skipping pages that do not exist (yet)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return []
    items = []
    for label, name, roles in NAV_ITEMS:
        if roles is not None and user.role not in roles:
            continue
        try:
            url = reverse(name)
        except NoReverseMatch:
            continue  # a page a later issue adds
        items.append({"label": label, "name": name, "url": url, "active": request.path == url})
    return items


def home_tiles(request: HttpRequest) -> list[dict[str, Any]]:
    return [dict(item, text=TILE_TEXT.get(item["name"], "")) for item in links_for(request) if item["name"] != "home"]


def navigation(request: HttpRequest) -> dict[str, Any]:
    return {"nav_items": links_for(request)}
