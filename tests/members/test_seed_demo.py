"""The demo town centre: idempotent, the right size and shape, and its people can really sign in."""

from __future__ import annotations

import re
from decimal import Decimal
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import validate_totp_code
from allauth.mfa.utils import decrypt
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.urls import reverse

from members.management.commands.seed_demo import (
    AUTHORITIES,
    DEMO_PASSWORD,
    NIGHT_TIME,
    STREETS,
    TOWN_CENTRE,
    demo_emails,
)
from members.models import (
    AUTHORITY_ROLES,
    Agreement,
    AgreementAcceptance,
    AuditEvent,
    Business,
    GroupMember,
    Role,
    Street,
    StreetGroup,
    User,
)
from members.selectors import street_group_members, user_gate
from tests.cast import Cast


def seed(*args: str) -> str:
    out = StringIO()
    call_command("seed_demo", *args, stdout=out)
    return out.getvalue()


def demo_totp(email: str) -> str:
    out = StringIO()
    call_command("demo_totp", email, stdout=out)
    return out.getvalue().split()[0]


def snapshot() -> dict[str, Any]:
    """Everything seed_demo writes, in a comparable form."""
    return {
        "counts": {model.__name__: model.objects.count() for model in (
            Street, Business, User, StreetGroup, GroupMember, Agreement, AgreementAcceptance, Authenticator,
            AuditEvent)},
        "users": sorted(User.objects.values_list("email", "password", "role", "business_id")),
        "businesses": sorted(Business.objects.values_list("name", "status", "kind", "levy_reference",
                                                          "latitude", "longitude")),
        "group_streets": sorted(StreetGroup.streets.through.objects.values_list("streetgroup_id", "street_id")),
        "group_businesses": sorted(
            StreetGroup.businesses.through.objects.values_list("streetgroup_id", "business_id")),
        "seats": sorted(GroupMember.objects.values_list("group_id", "user_id", "is_moderator")),
        "totp": sorted(Authenticator.objects.values_list("user_id", "type", "data")),
    }


def test_it_is_idempotent(db: None) -> None:
    seed()
    first = snapshot()
    output = seed()
    assert snapshot() == first
    assert "nothing to create" in output


def test_it_builds_six_streets_and_about_forty_businesses(db: None) -> None:
    seed()
    assert sorted(Street.objects.values_list("name", flat=True)) == sorted(s.name for s in STREETS)
    assert 38 <= Business.objects.count() <= 42
    statuses = {status: Business.objects.filter(status=status).count() for status in Business.Status.values}
    assert statuses[Business.Status.APPLIED] == 2
    assert statuses[Business.Status.SUSPENDED] == 2
    assert statuses[Business.Status.ACTIVE] >= 30
    levy = Business.objects.filter(kind=Business.Kind.LEVY_PAYER)
    assert levy.count() > Business.objects.filter(kind=Business.Kind.VOLUNTARY).count() > 0
    assert not levy.filter(levy_reference="").exists()
    for street in Street.objects.all():
        assert street.businesses.count() >= 5
    # Near Northampton town centre, for the maps.
    for business in Business.objects.all():
        assert abs(business.latitude - Decimal("52.2370")) < Decimal("0.005")
        assert abs(business.longitude - Decimal("-0.8960")) < Decimal("0.01")


def test_it_gives_every_member_business_a_manager_and_staff(db: None) -> None:
    seed()
    for business in Business.objects.all():
        managers = business.people.filter(role=Role.MANAGER).count()
        staff = business.people.filter(role=Role.STAFF).count()
        if business.status == Business.Status.APPLIED:
            assert (managers, staff) == (0, 0), business.name  # people join once the BID approves
            assert business.contact_email
        else:
            assert managers == 1, business.name
            assert 1 <= staff <= 3, business.name


def test_it_builds_street_area_and_night_time_groups(db: None) -> None:
    seed()
    groups = {group.name: group for group in StreetGroup.objects.all()}
    assert set(groups) == {s.name for s in STREETS} | {TOWN_CENTRE, NIGHT_TIME}
    for spec in STREETS:
        assert groups[spec.name].kind == StreetGroup.Kind.STREET
        assert list(groups[spec.name].streets.values_list("name", flat=True)) == [spec.name]
    assert groups[TOWN_CENTRE].kind == StreetGroup.Kind.AREA
    assert groups[TOWN_CENTRE].streets.count() == len(STREETS)
    assert groups[NIGHT_TIME].kind == StreetGroup.Kind.CUSTOM
    assert groups[NIGHT_TIME].businesses.filter(name="Cosmos Nightclub").exists()

    wardens = User.objects.filter(role=Role.WARDEN)
    assert wardens.count() >= 2
    for group in groups.values():
        for warden in wardens:
            assert GroupMember.objects.filter(group=group, user=warden, is_moderator=True).exists()

    # Staff belong through their business's street; a suspended business's staff do not.
    gold = street_group_members(group=groups["Gold Street"])
    assert gold.filter(business__name="Gold Street Vintage", role=Role.STAFF).exists()
    assert not gold.filter(business__street__name="Bridge Street").exists()
    abington = street_group_members(group=groups["Abington Street"])
    assert not abington.filter(business__status=Business.Status.SUSPENDED).exists()


def test_it_seats_every_authority_role_and_lets_members_in(db: None) -> None:
    seed()
    assert set(User.objects.filter(business__isnull=True).values_list("role", flat=True)) == set(AUTHORITY_ROLES)
    for user in User.objects.filter(business__status=Business.Status.ACTIVE):
        assert user_gate(user=user) is None, user.email
    for user in User.objects.filter(business__status=Business.Status.SUSPENDED):
        assert user_gate(user=user) == "inactive", user.email
    assert AgreementAcceptance.objects.count() == User.objects.count() * 2
    assert set(Agreement.objects.values_list("kind", "version")) == {
        (Agreement.Kind.DATA_SHARING, 1), (Agreement.Kind.CODE_OF_CONDUCT, 1)}


def test_it_gives_authority_users_their_documented_totp_secret(db: None) -> None:
    seed()
    for authority in AUTHORITIES:
        authenticator = Authenticator.objects.get(user__email=authority.email, type=Authenticator.Type.TOTP)
        assert decrypt(authenticator.data["secret"]) == authority.totp_secret
    assert not Authenticator.objects.filter(user__business__isnull=False).exists()


def test_it_prints_the_demo_logins(db: None) -> None:
    output = seed()
    assert DEMO_PASSWORD in output
    assert "demo_totp" in output
    for authority in AUTHORITIES:
        assert authority.email in output
        assert authority.totp_secret in output
    manager = User.objects.filter(role=Role.MANAGER, business__status=Business.Status.ACTIVE).first()
    assert manager is not None
    assert manager.email in seed("--all")


def test_it_lets_a_demo_manager_sign_in(db: None, client: Client) -> None:
    seed()
    manager = User.objects.get(role=Role.MANAGER, business__name="Gold Street Vintage")
    response = client.post(reverse("account_login"), {"login": manager.email, "password": DEMO_PASSWORD})
    assert response.status_code == 302
    home = client.get("/")
    assert home.status_code == 200
    assert home.wsgi_request.user == manager


def test_it_lets_a_demo_warden_sign_in_with_a_demo_totp_code(db: None, client: Client) -> None:
    seed()
    email = "warden.tom@northamptonbid.example"
    response = client.post(reverse("account_login"), {"login": email, "password": DEMO_PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == reverse("mfa_authenticate")
    response = client.post(reverse("mfa_authenticate"), {"code": demo_totp(email)})
    assert response.status_code == 302
    home = client.get("/")
    assert home.status_code == 200
    assert home.wsgi_request.user.email == email


def test_it_refuses_to_seed_in_production(db: None, settings: Any) -> None:
    settings.PRODUCTION = True
    with pytest.raises(CommandError, match="production"):
        seed()
    assert not User.objects.exists()
    assert not Business.objects.exists()


def test_it_prints_a_valid_totp_code_for_a_demo_account(db: None) -> None:
    seed()
    authority = AUTHORITIES[0]
    assert validate_totp_code(authority.totp_secret, demo_totp(authority.email))


def test_it_refuses_totp_codes_for_accounts_that_are_not_demo_ones(cast: Cast) -> None:
    with pytest.raises(CommandError, match="not a demo account"):
        demo_totp(cast.warden.email)


def test_it_refuses_totp_codes_in_production(db: None, settings: Any) -> None:
    seed()
    settings.PRODUCTION = True
    with pytest.raises(CommandError, match="production"):
        demo_totp(AUTHORITIES[0].email)


def test_it_matches_the_demo_logins_in_the_readme() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert f"**`{DEMO_PASSWORD}`**" in readme
    for authority in AUTHORITIES:
        assert f"| `{authority.email}` | {Role(authority.role).label} | `{authority.totp_secret}` |" in readme
    listed = set(re.findall(r"^\| `([^`]+@[^`]+)` \|", readme, re.MULTILINE))
    assert listed <= demo_emails()
