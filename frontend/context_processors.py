"""Role-aware navigation for the shell."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse

# (label, url name, roles that see it; None = every signed-in person)
NAV_ITEMS: list[tuple[str, str, frozenset[str] | None]] = [
    ("Home", "home", None),
    ("My team", "members:team", frozenset({"manager"})),
    ("Applications", "members:applications", frozenset({"bid_admin"})),
    ("Businesses", "members:businesses", frozenset({"bid_admin"})),
    ("Levy roll", "members:levy_import", frozenset({"bid_admin"})),
    ("People", "members:people", frozenset({"bid_admin"})),
    ("Street groups", "members:groups", frozenset({"bid_admin"})),
    ("Agreements", "members:agreement_admin", frozenset({"bid_admin"})),
    ("Audit trail", "members:audit", frozenset({"dpo"})),
    ("Security", "members:security", None),
]


def navigation(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"nav_items": []}
    items = []
    for label, name, roles in NAV_ITEMS:
        if roles is not None and user.role not in roles:
            continue
        try:
            url = reverse(name)
        except NoReverseMatch:
            continue  # a page a later issue adds
        items.append({"label": label, "url": url, "active": request.path == url})
    return {"nav_items": items}
