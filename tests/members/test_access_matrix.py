"""Role x action matrix: every members page and endpoint, for every member of the cast and for nobody signed in.

Each request runs in a savepoint that is rolled back, so an allowed action (removing bob, suspending a business)
does not change what the next person sees.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.test import Client
from django.urls import get_resolver, reverse

from members import services
from members.models import Business, GroupMember, Invitation, Role, User
from tests.cast import Cast

CAST = ("alice", "bob", "charlie", "warden", "admin", "officer", "police", "realm", "dpo")
SIGNED_IN = frozenset(CAST)
PUBLIC = frozenset({"anonymous", *CAST})


@dataclass
class Fixtures:
    """Objects the endpoints act on, made once per test."""

    application: Business
    invitation: Invitation
    token: str
    seat: GroupMember


@dataclass
class Endpoint:
    name: str
    allowed: frozenset[str]
    method: str = "get"
    args: Callable[[Cast, Fixtures], list[Any]] = field(default=lambda c, f: [])
    data: Callable[[Cast, Fixtures], dict[str, Any]] = field(default=lambda c, f: {})

    def __str__(self) -> str:
        return f"{self.method.upper()} members:{self.name}"


def group_data(cast: Cast, name: str = "Matrix group") -> dict[str, Any]:
    return {"name": name, "kind": "custom", "streets": [cast.gold.pk], "retention_value": "7",
            "retention_unit": "days"}


ADMIN = frozenset({"admin"})
ENDPOINTS = [
    Endpoint("apply", PUBLIC),
    Endpoint("apply", PUBLIC, "post", data=lambda c, f: {
        "name": "New Shop", "trading_address": "9 Gold Street", "street": c.gold.pk, "contact_name": "N",
        "contact_email": "n@shop.example"}),
    Endpoint("apply_done", PUBLIC),
    Endpoint("invitation_accept", PUBLIC, args=lambda c, f: [f.token]),
    Endpoint("agreements", SIGNED_IN),
    Endpoint("security", SIGNED_IN),
    Endpoint("team", frozenset({"alice"})),
    Endpoint("team", frozenset({"alice"}), "post", data=lambda c, f: {"email": "new@books.example", "role": "staff"}),
    Endpoint("staff_remove", frozenset({"alice"}), "post", args=lambda c, f: [c.bob.pk]),
    Endpoint("invitation_revoke", frozenset({"alice", "admin"}), "post", args=lambda c, f: [f.invitation.pk]),
    Endpoint("applications", ADMIN),
    Endpoint("application_decide", ADMIN, "post", args=lambda c, f: [f.application.pk],
             data=lambda c, f: {"decision": "reject", "reason": "No"}),
    Endpoint("businesses", ADMIN),
    Endpoint("business_status", ADMIN, "post", args=lambda c, f: [c.bakery.pk],
             data=lambda c, f: {"action": "suspend", "reason": "Matrix"}),
    Endpoint("levy_import", ADMIN),
    Endpoint("levy_import", ADMIN, "post", data=lambda c, f: {"step": "preview", "file": SimpleUploadedFile(
        "roll.csv", b"levy_reference,name,trading_address,street,contact_name,contact_email\n"
                    b"BID-7,Shop,7 Gold Street,Gold Street,,\n", "text/csv")}),
    Endpoint("people", ADMIN),
    Endpoint("people", ADMIN, "post", data=lambda c, f: {"email": "pc2@police.example", "role": "police"}),
    Endpoint("person_disable", ADMIN, "post", args=lambda c, f: [c.charlie.pk], data=lambda c, f: {"reason": "M"}),
    Endpoint("person_enable", ADMIN, "post", args=lambda c, f: [c.charlie.pk]),
    Endpoint("groups", ADMIN),
    Endpoint("group_create", ADMIN),
    Endpoint("group_create", ADMIN, "post", data=lambda c, f: group_data(c)),
    Endpoint("group_edit", ADMIN, args=lambda c, f: [c.gold_group.pk]),
    Endpoint("group_edit", ADMIN, "post", args=lambda c, f: [c.gold_group.pk],
             data=lambda c, f: group_data(c, "Gold Street")),
    Endpoint("group_member_add", ADMIN, "post", args=lambda c, f: [c.gold_group.pk],
             data=lambda c, f: {"user": c.officer.pk}),
    Endpoint("group_member_remove", ADMIN, "post", args=lambda c, f: [c.gold_group.pk, f.seat.pk]),
    Endpoint("agreement_admin", ADMIN),
    Endpoint("agreement_admin", ADMIN, "post", data=lambda c, f: {"kind": "data_sharing", "title": "T", "body": "B"}),
    Endpoint("audit", frozenset({"dpo"})),
]


@pytest.fixture
def fixtures(cast: Cast) -> Fixtures:
    application = services.business_apply(name="Applicant", trading_address="1 Abington Street", street=cast.abington,
                                          contact_name="A", contact_email="a@applicant.example")
    issued = services.invitation_create(actor=cast.alice, email="inv@books.example", role=Role.STAFF,
                                        business=cast.books)
    return Fixtures(application=application, invitation=issued.invitation, token=issued.url.rstrip("/").split("/")[-1],
                    seat=GroupMember.objects.get(group=cast.gold_group, user=cast.warden))


def attempt(cast: Cast, fixtures: Fixtures, endpoint: Endpoint, who: str) -> Any:
    """Make the request as `who`, then undo whatever it changed."""
    with transaction.atomic():
        client = Client()
        if who != "anonymous":
            client.force_login(getattr(cast, who))
        url = reverse(f"members:{endpoint.name}", args=endpoint.args(cast, fixtures))
        response = getattr(client, endpoint.method)(url, endpoint.data(cast, fixtures))
        transaction.set_rollback(True)
    return response


def test_it_covers_every_members_url() -> None:
    """A new members URL fails here until it has its rows in the matrix."""
    _, members = get_resolver().namespace_dict["members"]
    assert {name for name in members.reverse_dict if isinstance(name, str)} == {e.name for e in ENDPOINTS}


def test_it_lets_each_role_do_only_its_own_actions(cast: Cast, fixtures: Fixtures) -> None:
    failures = []
    for endpoint in ENDPOINTS:
        for who in ("anonymous", *CAST):
            response = attempt(cast, fixtures, endpoint, who)
            location = response.get("Location", "")
            if who in endpoint.allowed:
                ok = response.status_code in (200, 302) and "/accounts/login/" not in location
            elif who == "anonymous":
                ok = response.status_code == 302 and location.startswith("/accounts/login/")
            else:
                ok = response.status_code == 403
            if not ok:
                failures.append(f"{endpoint} as {who}: {response.status_code} {location}")
    assert failures == []


def test_it_keeps_managers_inside_their_own_business(cast: Cast, client: Client) -> None:
    client.force_login(cast.alice)
    # alice cannot remove charlie, who works at another business: he does not even exist for her.
    assert client.post(reverse("members:staff_remove", args=[cast.charlie.pk])).status_code == 404
    # Nor invite into the bakery: the business in a forged form is ignored, the service refuses outright.
    client.post(reverse("members:team"), {"email": "sneak@bakery.example", "role": "staff",
                                          "business": cast.bakery.pk})
    assert Invitation.objects.get(email="sneak@bakery.example").business == cast.books
    with pytest.raises(PermissionDenied):
        services.invitation_create(actor=cast.alice, email="sneak2@bakery.example", role=Role.STAFF,
                                   business=cast.bakery)
    # A manager cannot invite authority roles.
    for role in (Role.WARDEN, Role.BID_ADMIN, Role.CASE_OFFICER, Role.POLICE, Role.PUBLIC_REALM, Role.DPO):
        response = client.post(reverse("members:team"), {"email": f"{role}@x.example", "role": role})
        assert response.status_code == 400 and b'id="id_role_error"' in response.content
        with pytest.raises(PermissionDenied):
            services.invitation_create(actor=cast.alice, email=f"{role}@x.example", role=role)
    assert not Invitation.objects.filter(email__endswith="@x.example").exists()
    # The team page shows her business only.
    page = client.get(reverse("members:team")).content
    assert b"Bob Baker" in page and b"Charlie Chalk" not in page
    charlie_invite = services.invitation_create(actor=cast.admin, email="c2@bakery.example", role=Role.STAFF,
                                                business=cast.bakery).invitation
    assert client.post(reverse("members:invitation_revoke", args=[charlie_invite.pk])).status_code == 404
    assert User.objects.get(pk=cast.charlie.pk).is_active
