"""Role x endpoint matrix: every report, file and case endpoint, for every member of the cast.

alice files the report; bob (her colleague) and charlie (another business) must not see it; case officers and
BID admins see every report; police see the reports an officer shared with them. Wardens, public-realm
officers and the DPO have no access to report contents (the DPO reads the audit trail instead).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.test import Client

from reports.models import Case, Report, Status
from reports.services import case_create, report_create, report_share_with_police
from tests.cast import Cast
from tests.reports.files import jpeg_with_gps, upload

ROLES = ["anonymous", "alice", "bob", "charlie", "warden", "realm", "dpo", "admin", "police", "officer"]


@dataclass
class World:
    cast: Cast
    report: Report
    file_id: int
    case: Case


@pytest.fixture
def world(cast: Cast) -> World:
    result = report_create(
        reporter=cast.alice, kind="shop_theft", description="Two bottles of gin taken, man in a red cap.",
        files=[upload("till.jpg", jpeg_with_gps())],
    )
    report_share_with_police(report=result.report, actor=cast.officer, shared=True)
    case = case_create(actor=cast.officer, title="Red cap shoplifter", about="person")
    return World(cast=cast, report=result.report, file_id=result.report.files.get().pk, case=case)


@dataclass(frozen=True)
class Endpoint:
    name: str
    method: str
    url: Callable[[World], str]
    expected: dict[str, int]  # role -> status; every other signed-in role gets `otherwise`
    otherwise: int = 404
    anonymous: int = 302
    body: Callable[[World], dict[str, Any]] | None = None
    json: bool = False


def _seen(code: int = 200) -> dict[str, int]:
    return {"alice": code, "admin": code, "officer": code, "police": code}


API_ANON = 401
ENDPOINTS = [
    Endpoint("page detail", "get", lambda w: f"/reports/{w.report.pk}/", _seen()),
    Endpoint("api detail", "get", lambda w: f"/api/v1/reports/{w.report.pk}", _seen(), anonymous=API_ANON),
    Endpoint("file thumb", "get", lambda w: f"/reports/files/{w.file_id}/thumb/", _seen()),
    Endpoint("file display", "get", lambda w: f"/reports/files/{w.file_id}/display/", _seen()),
    Endpoint("file original", "get", lambda w: f"/reports/files/{w.file_id}/original/", {"officer": 200, "police": 200}),
    Endpoint("evidence pdf", "get", lambda w: f"/reports/{w.report.pk}/evidence.pdf",
             {"officer": 200, "police": 200, "admin": 403, "alice": 403}),
    Endpoint("api notes list", "get", lambda w: f"/api/v1/reports/{w.report.pk}/notes",
             {"officer": 200, "police": 200, "admin": 200, "alice": 403}, anonymous=API_ANON),
    Endpoint("api note add", "post", lambda w: f"/api/v1/reports/{w.report.pk}/notes",
             {"officer": 201, "police": 201, "admin": 403, "alice": 403}, anonymous=API_ANON,
             body=lambda w: {"text": "Known to us."}, json=True),
    Endpoint("page note add", "post", lambda w: f"/reports/{w.report.pk}/notes/",
             {"officer": 302, "police": 302, "admin": 403, "alice": 403}, body=lambda w: {"text": "Seen before."}),
    Endpoint("api status", "post", lambda w: f"/api/v1/reports/{w.report.pk}/status",
             {"officer": 200, "police": 403, "admin": 403, "alice": 403}, anonymous=API_ANON,
             body=lambda w: {"status": "triaged"}, json=True),
    Endpoint("page status", "post", lambda w: f"/reports/{w.report.pk}/status/",
             {"officer": 302, "police": 403, "admin": 403, "alice": 403}, body=lambda w: {"status": "triaged"}),
    Endpoint("api share", "post", lambda w: f"/api/v1/reports/{w.report.pk}/share",
             {"officer": 200, "police": 403, "admin": 403, "alice": 403}, anonymous=API_ANON,
             body=lambda w: {"shared": True}, json=True),
    Endpoint("page share", "post", lambda w: f"/reports/{w.report.pk}/share/",
             {"officer": 302, "police": 403, "admin": 403, "alice": 403}, body=lambda w: {"shared": "on"}),
    Endpoint("page case set", "post", lambda w: f"/reports/{w.report.pk}/case/",
             {"officer": 302, "police": 403, "admin": 403, "alice": 403}, body=lambda w: {"case": w.case.pk}),
    Endpoint("page inbox", "get", lambda w: "/reports/inbox/",
             {"officer": 200, "police": 200, "admin": 200}, otherwise=403),
    Endpoint("api inbox", "get", lambda w: "/api/v1/reports/inbox",
             {"officer": 200, "police": 200, "admin": 200}, otherwise=403, anonymous=API_ANON),
    Endpoint("page cases", "get", lambda w: "/reports/cases/",
             {"officer": 200, "police": 200, "admin": 200}, otherwise=403),
    Endpoint("page case", "get", lambda w: f"/reports/cases/{w.case.pk}/", {"officer": 200, "police": 200, "admin": 200}),
    Endpoint("api cases", "get", lambda w: "/api/v1/cases/",
             {"officer": 200, "police": 200, "admin": 200}, otherwise=403, anonymous=API_ANON),
    Endpoint("api case", "get", lambda w: f"/api/v1/cases/{w.case.pk}",
             {"officer": 200, "police": 200, "admin": 200}, anonymous=API_ANON),
    Endpoint("api case create", "post", lambda w: "/api/v1/cases/", {"officer": 201}, otherwise=403,
             anonymous=API_ANON, body=lambda w: {"title": "Doorway camp", "about": "place"}, json=True),
    Endpoint("api case add report", "post", lambda w: f"/api/v1/cases/{w.case.pk}/reports",
             {"officer": 200, "police": 403, "admin": 403}, anonymous=API_ANON,
             body=lambda w: {"report_id": w.report.pk}, json=True),
    Endpoint("page mine", "get", lambda w: "/reports/mine/", {}, otherwise=200),
    Endpoint("api mine", "get", lambda w: "/api/v1/reports/mine", {}, otherwise=200, anonymous=API_ANON),
    Endpoint("page new", "get", lambda w: "/reports/new/",
             {"alice": 200, "bob": 200, "charlie": 200, "warden": 200}, otherwise=403),
    Endpoint("api duplicates", "get", lambda w: "/api/v1/reports/duplicates?kind=shop_theft",
             {"alice": 200, "bob": 200, "charlie": 200, "warden": 200, "officer": 200, "police": 200, "admin": 200},
             otherwise=403, anonymous=API_ANON),
]


def _request(endpoint: Endpoint, world: World, role: str) -> int:
    client = Client()
    if role != "anonymous":
        client.force_login(getattr(world.cast, role))
    url = endpoint.url(world)
    if endpoint.method == "get":
        return client.get(url).status_code
    body = endpoint.body(world) if endpoint.body else {}
    if endpoint.json:
        return client.post(url, data=json.dumps(body), content_type="application/json").status_code
    return client.post(url, data=body).status_code


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.name)
def test_it_checks_access(world: World, endpoint: Endpoint) -> None:
    wrong = {}
    for role in ROLES:  # officer last: a successful write by them must not change what others were tested on
        expected = endpoint.anonymous if role == "anonymous" else endpoint.expected.get(role, endpoint.otherwise)
        got = _request(endpoint, world, role)
        if got != expected:
            wrong[role] = (expected, got)
    assert wrong == {}, f"{endpoint.name}: role -> (expected, got)"


def test_it_hides_unshared_reports_from_police(world: World) -> None:
    report_share_with_police(report=world.report, actor=world.cast.officer, shared=False)
    client = Client()
    client.force_login(world.cast.police)
    assert client.get(f"/reports/{world.report.pk}/").status_code == 404
    assert client.get(f"/api/v1/reports/{world.report.pk}").status_code == 404
    assert client.get(f"/reports/files/{world.file_id}/original/").status_code == 404
    assert client.get(f"/reports/{world.report.pk}/evidence.pdf").status_code == 404
    assert client.get("/api/v1/reports/inbox").json() == []
    report_share_with_police(report=world.report, actor=world.cast.officer, shared=True)
    assert [r["id"] for r in client.get("/api/v1/reports/inbox").json()] == [world.report.pk]


def test_it_shows_other_members_nothing_of_a_report(world: World) -> None:
    for role in ("bob", "charlie"):
        client = Client()
        client.force_login(getattr(world.cast, role))
        assert client.get("/api/v1/reports/mine").json() == []
        assert b"gin" not in client.get("/reports/mine/").content


def test_it_hides_the_reporter_from_members_who_see_a_duplicate(world: World) -> None:
    client = Client()
    client.force_login(world.cast.bob)
    found = client.get("/api/v1/reports/duplicates?kind=shop_theft").json()
    assert [d["id"] for d in found] == [world.report.pk]
    text = json.dumps(found)
    assert "Alice" not in text and "alice" not in text and "gin" not in text
    assert found[0]["mine"] is False


def test_it_shows_the_reporter_to_authorities_only(world: World) -> None:
    alice, officer = Client(), Client()
    alice.force_login(world.cast.alice)
    officer.force_login(world.cast.officer)
    assert alice.get(f"/api/v1/reports/{world.report.pk}").json()["reporter"] is None
    assert officer.get(f"/api/v1/reports/{world.report.pk}").json()["reporter"]["email"] == "alice@books.example"


def test_it_enforces_csrf_on_the_api(world: World) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(world.cast.officer)
    response = client.post(
        f"/api/v1/reports/{world.report.pk}/status", data=json.dumps({"status": "triaged"}),
        content_type="application/json",
    )
    assert response.status_code == 403
    world.report.refresh_from_db()
    assert world.report.status == Status.NEW
