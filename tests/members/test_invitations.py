"""Invitations: managers invite their staff, BID admins invite the authorities; single-use links that expire."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.core import mail
from django.core.exceptions import PermissionDenied, ValidationError
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from members import services
from members.models import AuditEvent, Invitation, Role, User
from tests.cast import Cast, make_user

NEW_PASSWORD = "a-long-and-unusual-passphrase"


def invite(cast: Cast, *, actor: User | None = None, email: str = "newbie@books.example", role: str = Role.STAFF,
           business: Any = "books", capture: Any = None) -> str:
    """Invite someone through the service and return the token from the email."""
    business = cast.books if business == "books" else business
    with capture(execute=True):
        services.invitation_create(actor=actor or cast.alice, email=email, role=role, business=business,
                                   full_name="New Person")
    return token_from(mail.outbox[-1].body)


def token_from(body: str) -> str:
    match = re.search(r"/invite/([A-Za-z0-9_\-]+)/", body)
    assert match, body
    return match.group(1)


def accept(client: Client, token: str, **overrides: str) -> Any:
    data = {"full_name": "New Person", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD}
    data.update(overrides)
    return client.post(reverse("members:invitation_accept", args=[token]), data)


def test_it_lets_a_manager_invite_staff(
    cast: Cast, client: Client, django_capture_on_commit_callbacks: Any, settings: Any,
) -> None:
    settings.SITE_URL = "https://ntars.example"
    client.force_login(cast.alice)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("members:team"), {"email": "Newbie@Books.example", "full_name": "Nia New",
                                                         "role": "staff"})
    assert response.status_code == 302
    invitation = Invitation.objects.get()
    assert (invitation.email, invitation.role, invitation.business, invitation.invited_by) == (
        "newbie@books.example", "staff", cast.books, cast.alice)
    assert invitation.expires_at - invitation.created_at == timedelta(days=settings.INVITATION_DAYS)
    (message,) = mail.outbox
    assert message.to == ["newbie@books.example"]
    assert "https://ntars.example/invite/" in message.body
    token = token_from(message.body)
    assert len(token) >= 43
    # Only the hash is stored, and the token appears in no audit record.
    assert invitation.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert not any(token in str(e.detail) for e in AuditEvent.objects.all())
    assert AuditEvent.objects.filter(action="invitation.create", actor=cast.alice).exists()
    page = client.get(reverse("members:team"))
    assert b"newbie@books.example" in page.content


def test_it_creates_the_account_and_signs_in(
    cast: Cast, client: Client, django_capture_on_commit_callbacks: Any,
) -> None:
    token = invite(cast, capture=django_capture_on_commit_callbacks)
    page = client.get(reverse("members:invitation_accept", args=[token]))
    assert page.status_code == 200
    assert b"newbie@books.example" in page.content and b'value="New Person"' in page.content
    response = accept(client, token, full_name="Nia New")
    assert response.status_code == 302
    user = User.objects.get(email="newbie@books.example")
    assert (user.full_name, user.role, user.business, user.is_active) == ("Nia New", "staff", cast.books, True)
    assert user.check_password(NEW_PASSWORD)
    invitation = Invitation.objects.get()
    assert (invitation.state, invitation.accepted_user) == ("accepted", user)
    assert int(client.session["_auth_user_id"]) == user.pk
    # The gate sends a new person to the agreements first.
    home = client.get("/")
    assert home.status_code == 302 and home["Location"] == reverse("members:agreements")
    assert AuditEvent.objects.filter(action="invitation.accept", actor=user).exists()


def test_it_sends_an_invited_officer_to_set_up_two_factor(
    cast: Cast, client: Client, django_capture_on_commit_callbacks: Any,
) -> None:
    client.force_login(cast.admin)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("members:people"), {"email": "case@council.example", "full_name": "Cas Case",
                                                           "role": "case_officer", "business": cast.books.pk})
    assert response.status_code == 302
    invitation = Invitation.objects.get()
    assert (invitation.role, invitation.business) == ("case_officer", None)  # authorities belong to no business
    client.logout()
    response = accept(client, token_from(mail.outbox[-1].body))
    assert response.status_code == 302
    home = client.get("/")
    assert home.status_code == 302 and home["Location"] == reverse("mfa_activate_totp")
    # The password just chosen counts as a fresh sign-in: setting up TOTP does not ask for it again.
    setup = client.get(home["Location"])
    assert setup.status_code == 200


def test_it_works_only_once(cast: Cast, client: Client, django_capture_on_commit_callbacks: Any) -> None:
    token = invite(cast, capture=django_capture_on_commit_callbacks)
    assert accept(client, token).status_code == 302
    client.logout()
    again = client.get(reverse("members:invitation_accept", args=[token]))
    assert again.status_code == 410 and b"already been used" in again.content
    second = accept(client, token, full_name="Someone Else")
    assert second.status_code == 410
    assert User.objects.filter(email="newbie@books.example").count() == 1


def test_it_expires(cast: Cast, client: Client, django_capture_on_commit_callbacks: Any, settings: Any) -> None:
    token = invite(cast, capture=django_capture_on_commit_callbacks)
    with time_machine.travel(timezone.now() + timedelta(days=settings.INVITATION_DAYS, minutes=1)):
        page = client.get(reverse("members:invitation_accept", args=[token]))
        assert page.status_code == 410 and b"expired" in page.content
        assert accept(client, token).status_code == 410
    assert not User.objects.filter(email="newbie@books.example").exists()


def test_it_refuses_a_withdrawn_invitation(cast: Cast, client: Client, django_capture_on_commit_callbacks: Any) -> None:
    token = invite(cast, capture=django_capture_on_commit_callbacks)
    client.force_login(cast.alice)
    invitation = Invitation.objects.get()
    assert client.post(reverse("members:invitation_revoke", args=[invitation.pk])).status_code == 302
    client.logout()
    page = client.get(reverse("members:invitation_accept", args=[token]))
    assert page.status_code == 410 and b"withdrawn" in page.content
    assert accept(client, token).status_code == 410
    assert not User.objects.filter(email="newbie@books.example").exists()


def test_it_answers_404_to_an_unknown_link(cast: Cast, client: Client) -> None:
    page = client.get(reverse("members:invitation_accept", args=["not-a-real-token"]))
    assert page.status_code == 404 and b"not valid" in page.content


def test_it_refuses_a_link_once_the_business_is_suspended(
    cast: Cast, client: Client, django_capture_on_commit_callbacks: Any,
) -> None:
    token = invite(cast, capture=django_capture_on_commit_callbacks)
    services.business_suspend(actor=cast.admin, business=cast.books, reason="Levy unpaid")
    assert accept(client, token).status_code == 410
    assert not User.objects.filter(email="newbie@books.example").exists()


def test_it_checks_the_password_and_keeps_the_name(
    cast: Cast, client: Client, django_capture_on_commit_callbacks: Any,
) -> None:
    token = invite(cast, capture=django_capture_on_commit_callbacks)
    weak = accept(client, token, full_name="Nia New", password1="password", password2="password")
    assert weak.status_code == 400
    assert b'id="id_password1_error"' in weak.content and b"too common" in weak.content
    assert b'value="Nia New"' in weak.content
    mismatch = accept(client, token, password2=NEW_PASSWORD + "x")
    assert mismatch.status_code == 400 and b"The two passwords differ" in mismatch.content
    assert not User.objects.filter(email="newbie@books.example").exists()
    assert Invitation.objects.get().state == "pending"


def test_it_refuses_an_email_that_already_has_an_account(
    cast: Cast, client: Client, django_capture_on_commit_callbacks: Any,
) -> None:
    client.force_login(cast.alice)
    response = client.post(reverse("members:team"), {"email": "BOB@books.example", "role": "staff"})
    assert response.status_code == 400
    assert b"already has an NTARS account" in response.content and b'value="BOB@books.example"' in response.content
    assert not Invitation.objects.exists()
    # An account made for the address after the invitation went out: accepting says so and creates nothing.
    token = invite(cast, email="late@books.example", capture=django_capture_on_commit_callbacks)
    make_user("late@books.example", "Late Larry", Role.STAFF, cast.books)
    client.logout()
    response = accept(client, token)
    assert response.status_code == 400 and b"already exists" in response.content
    assert Invitation.objects.get(email="late@books.example").state == "pending"


def test_it_keeps_managers_to_their_own_business_and_roles(cast: Cast, client: Client) -> None:
    client.force_login(cast.alice)
    page = client.get(reverse("members:team"))
    assert b'value="staff"' in page.content and b'value="manager"' in page.content
    assert b'value="police"' not in page.content and b'name="business"' not in page.content
    for role in ("police", "warden", "bid_admin", "dpo"):
        response = client.post(reverse("members:team"), {"email": "x@books.example", "role": role})
        assert response.status_code == 400
    # A forged business in the form is ignored: the invitation is for alice's own business.
    client.post(reverse("members:team"), {"email": "y@books.example", "role": "staff", "business": cast.bakery.pk})
    assert Invitation.objects.get().business == cast.books
    with pytest.raises(PermissionDenied):
        services.invitation_create(actor=cast.alice, email="z@x.example", role=Role.STAFF, business=cast.bakery)
    with pytest.raises(PermissionDenied):
        services.invitation_create(actor=cast.alice, email="z@x.example", role=Role.WARDEN)
    with pytest.raises(PermissionDenied):
        services.invitation_create(actor=cast.bob, email="z@x.example", role=Role.STAFF, business=cast.books)


def test_it_lets_the_bid_admin_invite_a_manager_for_a_business(cast: Cast, client: Client) -> None:
    client.force_login(cast.admin)
    missing = client.post(reverse("members:people"), {"email": "m@bakery.example", "role": "manager"})
    assert missing.status_code == 400 and b'id="id_business_error"' in missing.content
    response = client.post(reverse("members:people"), {"email": "m@bakery.example", "role": "manager",
                                                       "business": cast.bakery.pk})
    assert response.status_code == 302
    assert Invitation.objects.get().business == cast.bakery


def test_it_replaces_a_pending_invitation_to_the_same_person(
    cast: Cast, django_capture_on_commit_callbacks: Any,
) -> None:
    first = invite(cast, capture=django_capture_on_commit_callbacks)
    second = invite(cast, capture=django_capture_on_commit_callbacks)
    assert first != second
    states = sorted(i.state for i in Invitation.objects.all())
    assert states == ["pending", "revoked"]


def test_it_keeps_invitations_to_their_business(cast: Cast, client: Client) -> None:
    other = services.invitation_create(actor=cast.admin, email="c2@bakery.example", role=Role.STAFF,
                                       business=cast.bakery).invitation
    client.force_login(cast.alice)
    assert client.post(reverse("members:invitation_revoke", args=[other.pk])).status_code == 404
    assert client.get(reverse("members:team")).content.count(b"c2@bakery.example") == 0
    other.refresh_from_db()
    assert other.state == "pending"
    with pytest.raises(PermissionDenied):
        services.invitation_revoke(actor=cast.alice, invitation=other)
    services.invitation_revoke(actor=cast.admin, invitation=other)
    with pytest.raises(ValidationError):
        services.invitation_revoke(actor=cast.admin, invitation=other)


def test_it_checks_access(cast: Cast, client: Client) -> None:
    invitation = services.invitation_create(actor=cast.alice, email="n@books.example", role=Role.STAFF,
                                            business=cast.books).invitation
    team, people = reverse("members:team"), reverse("members:people")
    revoke = reverse("members:invitation_revoke", args=[invitation.pk])
    for url in (team, people):
        assert client.get(url).status_code == 302
    assert client.post(revoke).status_code == 302
    for person in (cast.bob, cast.charlie, cast.warden, cast.officer, cast.police, cast.realm, cast.dpo):
        client.force_login(person)
        assert client.get(team).status_code == 403
        assert client.get(people).status_code == 403
        assert client.post(people, {"email": "q@x.example", "role": "warden"}).status_code == 403
        assert client.post(revoke).status_code == 403
    client.force_login(cast.admin)
    assert client.get(team).status_code == 403  # a BID admin has no team of their own
    assert client.get(people).status_code == 200
    client.force_login(cast.alice)
    assert client.get(people).status_code == 403
    assert Invitation.objects.filter(email="q@x.example").count() == 0
    invitation.refresh_from_db()
    assert invitation.state == "pending"


def test_it_signs_in_the_invited_person_even_on_a_browser_someone_else_used(
    cast: Cast, client: Client, django_capture_on_commit_callbacks: Any,
) -> None:
    token = invite(cast, capture=django_capture_on_commit_callbacks)
    client.force_login(cast.alice)
    assert accept(client, token).status_code == 302
    assert int(client.session["_auth_user_id"]) == User.objects.get(email="newbie@books.example").pk
    assert client.get("/")["Location"] == reverse("members:agreements")
