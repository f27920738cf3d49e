"""The DPO searches the audit trail: who, what, when, from where; the search itself is recorded."""

from __future__ import annotations

from datetime import datetime

from django.test import Client
from django.urls import reverse
from django.utils import timezone

from members.audit import audit_record
from members.models import AuditEvent
from tests.cast import Cast

URL = "/audit/"


def at(day: int, hour: int = 12) -> datetime:
    return datetime(2026, 5, day, hour, tzinfo=timezone.get_current_timezone())


def some_events(cast: Cast) -> None:
    AuditEvent.objects.create(at=at(1), action="user.disable", actor=cast.admin, actor_label="Adam Admin <adam@bid.example>",
                              subject=cast.bob, subject_label="Bob Baker <bob@books.example>", object_type="user",
                              object_id=str(cast.bob.pk), ip_address="192.0.2.10", user_agent="Firefox/140")
    AuditEvent.objects.create(at=at(3), action="personal_data.view", actor=cast.police,
                              actor_label="PC Priya Patel <pc.patel@police.example>", subject=cast.charlie,
                              subject_label="Charlie Chalk <charlie@bakery.example>", object_type="report",
                              object_id="77", ip_address="192.0.2.20")
    AuditEvent.objects.create(at=at(5), action="personal_data.view", actor=cast.officer,
                              actor_label="Olivia Officer <olivia@council.example>", object_type="report",
                              object_id="78")


def rows(response: object) -> list[str]:
    return [event.action + ":" + event.object_id for event in response.context["page"]]  # type: ignore[attr-defined]


def test_it_filters_by_actor_subject_action_object_and_date(cast: Cast, client: Client) -> None:
    some_events(cast)
    client.force_login(cast.dpo)
    assert rows(client.get(URL, {"actor": "patel"})) == ["personal_data.view:77"]
    assert rows(client.get(URL, {"subject": "bob@books"})) == [f"user.disable:{cast.bob.pk}"]
    assert rows(client.get(URL, {"action": "personal_data"})) == ["personal_data.view:78", "personal_data.view:77"]
    assert rows(client.get(URL, {"object_type": "report", "object_id": "78"})) == ["personal_data.view:78"]
    assert rows(client.get(URL, {"date_from": "2026-05-02", "date_to": "2026-05-03",
                                 "action": "personal"})) == ["personal_data.view:77"]
    assert rows(client.get(URL, {"date_to": "2026-05-01"})) == [f"user.disable:{cast.bob.pk}"]


def test_it_shows_who_what_when_and_from_where(cast: Cast, client: Client) -> None:
    some_events(cast)
    client.force_login(cast.dpo)
    page = client.get(URL, {"action": "user.disable"})
    assert page.status_code == 200
    content = page.content.decode()
    for expected in ("Adam Admin &lt;adam@bid.example&gt;", "Bob Baker &lt;bob@books.example&gt;", "user.disable",
                     "192.0.2.10", "Firefox/140", "1 May 2026, 12:00:00"):
        assert expected in content, expected


def test_it_records_every_look_at_the_trail(cast: Cast, client: Client) -> None:
    client.force_login(cast.dpo)
    client.get(URL, {"actor": "patel", "date_from": "2026-05-01"}, REMOTE_ADDR="192.0.2.99")
    event = AuditEvent.objects.get(action="audit.search")
    assert (event.actor, event.ip_address) == (cast.dpo, "192.0.2.99")
    assert event.detail == {"actor": "patel", "date_from": "2026-05-01", "page": 1}
    client.get(URL)
    assert AuditEvent.objects.filter(action="audit.search").count() == 2


def test_it_pages_through_results_keeping_the_filters(cast: Cast, client: Client) -> None:
    for n in range(60):
        audit_record(action="report.view", actor=cast.officer, object_type="report", object_id=n)
    client.force_login(cast.dpo)
    first = client.get(URL, {"action": "report"})
    assert len(first.context["page"]) == 50
    assert b"Page 1 of 2" in first.content and b'href="?action=report&amp;page=2"' in first.content
    second = client.get(URL, {"action": "report", "page": "2"})
    assert len(second.context["page"]) == 10
    assert {e.object_id for e in first.context["page"]} | {e.object_id for e in second.context["page"]} == {
        str(n) for n in range(60)}


def test_it_explains_bad_dates(cast: Cast, client: Client) -> None:
    client.force_login(cast.dpo)
    backwards = client.get(URL, {"date_from": "2026-05-03", "date_to": "2026-05-01", "actor": "adam"})
    assert backwards.status_code == 400
    assert b'id="id_date_to_error"' in backwards.content and b'value="adam"' in backwards.content
    nonsense = client.get(URL, {"date_from": "yesterday"})
    assert nonsense.status_code == 400 and b'id="id_date_from_error"' in nonsense.content


def test_it_checks_access(cast: Cast, client: Client) -> None:
    response = client.get(URL)
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    for person in (cast.alice, cast.bob, cast.charlie, cast.warden, cast.admin, cast.officer, cast.police, cast.realm):
        client.force_login(person)
        assert client.get(URL).status_code == 403
    assert not AuditEvent.objects.filter(action="audit.search").exists()
    client.force_login(cast.dpo)
    assert client.get(URL).status_code == 200
    assert reverse("members:audit") == URL
