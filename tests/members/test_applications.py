"""Voluntary membership: the public application form and the BID admin's decision."""

from __future__ import annotations

from typing import Any

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse

from members import services
from members.models import AuditEvent, Business, Invitation, Role
from tests.cast import Cast, make_user

APPLY = "/apply/"


def form_data(cast: Cast, **overrides: Any) -> dict[str, Any]:
    data = {"name": "Drapery Deli", "trading_address": "3 The Drapery", "street": cast.gold.pk,
            "contact_name": "Dee Deli", "contact_email": "dee@deli.example", "contact_phone": "+44 1604 123456"}
    data.update(overrides)
    return data


def an_application(cast: Cast, **overrides: Any) -> Business:
    data = form_data(cast, **overrides)
    data["street"] = cast.gold
    return services.business_apply(**data)


def test_it_shows_the_form_to_anyone(cast: Cast, client: Client) -> None:
    response = client.get(APPLY)
    assert response.status_code == 200
    assert b"Abington Street" in response.content
    assert b'<label for="id_name"' in response.content


def test_it_records_an_application(cast: Cast, client: Client) -> None:
    response = client.post(APPLY, form_data(cast), REMOTE_ADDR="203.0.113.7")
    assert response.status_code == 302
    assert response["Location"] == reverse("members:apply_done")
    business = Business.objects.get(name="Drapery Deli")
    assert (business.status, business.kind) == (Business.Status.APPLIED, Business.Kind.VOLUNTARY)
    assert business.contact_email == "dee@deli.example"
    event = AuditEvent.objects.get(action="business.apply")
    assert (event.object_id, event.ip_address, event.actor) == (str(business.pk), "203.0.113.7", None)
    assert client.get(response["Location"]).status_code == 200


def test_it_refuses_a_duplicate_business_whatever_the_case(cast: Cast, client: Client) -> None:
    response = client.post(APPLY, form_data(cast, name="gold STREET books", trading_address="12 gold street"))
    assert response.status_code == 400
    assert b"already registered or has applied" in response.content
    assert b'aria-invalid="true"' in response.content
    assert b'value="Dee Deli"' in response.content  # what was typed is kept
    assert Business.objects.filter(name__iexact="gold street books").count() == 1


def test_it_shows_field_errors_and_keeps_what_was_typed(cast: Cast, client: Client) -> None:
    response = client.post(APPLY, form_data(cast, contact_email="not-an-email", contact_phone="call me", street=""))
    assert response.status_code == 400
    content = response.content.decode()
    assert 'id="id_contact_email_error"' in content
    assert 'id="id_contact_phone_error"' in content
    assert 'id="id_street_error"' in content
    assert 'value="Drapery Deli"' in content and 'value="not-an-email"' in content
    assert not Business.objects.filter(name="Drapery Deli").exists()


def test_it_lets_a_rejected_applicant_apply_again(cast: Cast, client: Client) -> None:
    business = an_application(cast)
    services.business_reject(actor=cast.admin, business=business, reason="Outside the BID area")
    response = client.post(APPLY, form_data(cast, contact_name="Dee Again"))
    assert response.status_code == 302
    business.refresh_from_db()
    assert (business.status, business.contact_name, business.decided_by) == ("applied", "Dee Again", None)


def test_it_lists_pending_applications_for_the_bid_admin(cast: Cast, client: Client) -> None:
    an_application(cast)
    client.force_login(cast.admin)
    response = client.get(reverse("members:applications"))
    assert response.status_code == 200
    assert b"Drapery Deli" in response.content and b"dee@deli.example" in response.content
    # The list shows contacts' personal data: looking at it is audited.
    assert AuditEvent.objects.filter(action="personal_data.view", actor=cast.admin,
                                     object_type="application_list").exists()


def test_it_approves_and_invites_the_contact(
    cast: Cast, client: Client, django_capture_on_commit_callbacks: Any, settings: Any,
) -> None:
    settings.SITE_URL = "https://ntars.example"
    business = an_application(cast)
    client.force_login(cast.admin)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("members:application_decide", args=[business.pk]),
                               {"decision": "approve", "reason": "Welcome aboard"})
    assert response.status_code == 302
    business.refresh_from_db()
    assert (business.status, business.decided_by, business.decision_reason) == ("active", cast.admin, "Welcome aboard")
    assert business.decided_at is not None
    invitation = Invitation.objects.get(email="dee@deli.example")
    assert (invitation.role, invitation.business, invitation.state) == (Role.MANAGER, business, "pending")
    decision, invite = mail.outbox
    assert decision.to == ["dee@deli.example"] and "approved" in decision.subject
    assert "Welcome aboard" in decision.body
    assert invite.to == ["dee@deli.example"] and "https://ntars.example/invite/" in invite.body
    assert AuditEvent.objects.filter(action="business.approve", actor=cast.admin, object_id=str(business.pk)).exists()


def test_it_approves_without_an_invitation_when_the_contact_has_an_account(
    cast: Cast, client: Client, django_capture_on_commit_callbacks: Any,
) -> None:
    business = an_application(cast, contact_email="bob@books.example")
    client.force_login(cast.admin)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("members:application_decide", args=[business.pk]),
                               {"decision": "approve"}, follow=True)
    assert b"No invitation was sent" in response.content
    assert not Invitation.objects.exists()
    assert len(mail.outbox) == 1


def test_it_rejects_with_a_reason_that_is_emailed(
    cast: Cast, client: Client, django_capture_on_commit_callbacks: Any,
) -> None:
    business = an_application(cast)
    client.force_login(cast.admin)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("members:application_decide", args=[business.pk]),
                               {"decision": "reject", "reason": "Not in the town centre"})
    assert response.status_code == 302
    business.refresh_from_db()
    assert (business.status, business.decision_reason) == ("rejected", "Not in the town centre")
    (message,) = mail.outbox
    assert message.to == ["dee@deli.example"] and "Not in the town centre" in message.body
    assert not Invitation.objects.exists()
    event = AuditEvent.objects.get(action="business.reject")
    assert event.detail["reason"] == "Not in the town centre"


def test_it_needs_a_reason_to_reject(cast: Cast, client: Client, django_capture_on_commit_callbacks: Any) -> None:
    business = an_application(cast)
    client.force_login(cast.admin)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("members:application_decide", args=[business.pk]),
                               {"decision": "reject", "reason": "  "})
    assert response.status_code == 400
    assert f'id="id_{business.pk}_reason_error"'.encode() in response.content
    business.refresh_from_db()
    assert business.status == "applied"
    assert mail.outbox == []
    assert not AuditEvent.objects.filter(action="business.reject").exists()


def test_it_decides_an_application_only_once(cast: Cast, client: Client) -> None:
    business = an_application(cast)
    services.business_reject(actor=cast.admin, business=business, reason="No")
    client.force_login(cast.admin)
    response = client.post(reverse("members:application_decide", args=[business.pk]), {"decision": "approve"})
    assert response.status_code == 404
    with pytest.raises(ValidationError):
        services.business_approve(actor=cast.admin, business=business)
    business.refresh_from_db()
    assert business.status == "rejected"


def test_it_checks_access(cast: Cast, client: Client) -> None:
    business = an_application(cast)
    urls = [reverse("members:applications"), reverse("members:application_decide", args=[business.pk])]
    for url in urls:
        response = client.get(url) if url.endswith("applications/") else client.post(url, {"decision": "approve"})
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    for person in (cast.alice, cast.bob, cast.warden, cast.officer, cast.dpo):
        client.force_login(person)
        assert client.get(urls[0]).status_code == 403
        assert client.post(urls[1], {"decision": "approve"}).status_code == 403
    business.refresh_from_db()
    assert business.status == "applied"
    outsider = make_user("eve@nowhere.example", "Eve", Role.POLICE, totp=True)
    client.force_login(outsider)
    assert client.get(urls[0]).status_code == 403
