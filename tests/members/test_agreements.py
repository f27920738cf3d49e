"""Agreements: accepted before first use, recorded with time and address; a new version asks everyone again."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import time_machine
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from members import services
from members.models import Agreement, AgreementAcceptance, AuditEvent, Role
from tests.cast import Cast, make_user

AGREEMENTS = "/agreements/"


def test_it_asks_a_new_person_to_accept_before_anything_else(cast: Cast, client: Client) -> None:
    newbie = make_user("nina@books.example", "Nina New", Role.STAFF, cast.books, accept=False)
    client.force_login(newbie)
    for path in ("/", reverse("members:team"), reverse("members:people")):
        response = client.get(path)
        assert response.status_code == 302 and response["Location"] == reverse("members:agreements")
    page = client.get(AGREEMENTS)
    assert page.status_code == 200
    assert b"Data-sharing agreement" in page.content and b"Code of conduct" in page.content


def test_it_records_acceptance_with_time_and_address(cast: Cast, client: Client) -> None:
    newbie = make_user("nina@books.example", "Nina New", Role.STAFF, cast.books, accept=False)
    client.force_login(newbie)
    moment = (timezone.now() + timedelta(minutes=5)).replace(microsecond=0)
    with time_machine.travel(moment, tick=False):
        response = client.post(AGREEMENTS, {"accept": "yes"}, REMOTE_ADDR="198.51.100.23")
    assert response.status_code == 302 and response["Location"] == reverse("home")
    acceptances = AgreementAcceptance.objects.filter(user=newbie)
    assert {a.agreement.kind for a in acceptances} == {"data_sharing", "code_of_conduct"}
    assert {(a.accepted_at, a.ip_address) for a in acceptances} == {(moment, "198.51.100.23")}
    assert AuditEvent.objects.filter(action="agreement.accept", actor=newbie).count() == 2
    assert client.get("/").status_code == 200
    assert client.get(AGREEMENTS).status_code == 302  # nothing left to accept


def test_it_insists_on_the_tick(cast: Cast, client: Client) -> None:
    newbie = make_user("nina@books.example", "Nina New", Role.STAFF, cast.books, accept=False)
    client.force_login(newbie)
    response = client.post(AGREEMENTS, {})
    assert response.status_code == 400
    assert b'role="alert"' in response.content and b"Tick the box" in response.content
    assert not AgreementAcceptance.objects.filter(user=newbie).exists()
    assert client.get("/").status_code == 302


def test_it_asks_everyone_again_after_a_new_version(cast: Cast, client: Client) -> None:
    client.force_login(cast.admin)
    response = client.post(reverse("members:agreement_admin"), {
        "kind": "data_sharing", "title": "Data-sharing agreement", "body": "Version two: share even more carefully."})
    assert response.status_code == 302
    agreement = Agreement.objects.get(kind="data_sharing", version=2)
    assert AuditEvent.objects.filter(action="agreement.publish", actor=cast.admin, object_id=str(agreement.pk)).exists()
    for person in (cast.bob, cast.warden, cast.admin):
        client.force_login(person)
        assert client.get("/")["Location"] == reverse("members:agreements")
    client.force_login(cast.bob)
    page = client.get(AGREEMENTS)
    assert b"share even more carefully" in page.content
    assert b"Code of conduct" not in page.content  # only what changed is asked again
    client.post(AGREEMENTS, {"accept": "yes"})
    assert client.get("/").status_code == 200
    assert AgreementAcceptance.objects.filter(user=cast.bob, agreement=agreement).exists()


def test_it_numbers_versions_per_document(cast: Cast) -> None:
    first = services.agreement_publish(actor=cast.admin, kind="code_of_conduct", title="Code", body="Be kind.")
    second = services.agreement_publish(actor=cast.admin, kind="code_of_conduct", title="Code", body="Be kinder.")
    other = services.agreement_publish(actor=cast.admin, kind="data_sharing", title="DSA", body="Share less.")
    assert (first.version, second.version, other.version) == (2, 3, 2)


def test_it_shows_publish_errors_and_keeps_the_text(cast: Cast, client: Client) -> None:
    client.force_login(cast.admin)
    response = client.post(reverse("members:agreement_admin"), {"kind": "data_sharing", "title": "",
                                                                "body": "Half-written text"})
    assert response.status_code == 400
    assert b'id="id_title_error"' in response.content and b"Half-written text" in response.content
    assert Agreement.objects.count() == 2


def test_it_shows_the_current_versions_to_the_bid_admin(cast: Cast, client: Client) -> None:
    client.force_login(cast.admin)
    page = client.get(reverse("members:agreement_admin"))
    assert page.status_code == 200
    assert b"version 1" in page.content and b"Accepted by 9 of 9" in page.content


def test_it_checks_access(cast: Cast, client: Client, settings: Any) -> None:
    url = reverse("members:agreement_admin")
    assert client.get(url).status_code == 302
    assert client.get(AGREEMENTS).status_code == 302
    for person in (cast.alice, cast.bob, cast.charlie, cast.warden, cast.officer, cast.police, cast.realm, cast.dpo):
        client.force_login(person)
        assert client.get(url).status_code == 403
        assert client.post(url, {"kind": "data_sharing", "title": "X", "body": "Y"}).status_code == 403
    assert Agreement.objects.count() == 2
