"""The API and the no-JavaScript form: multipart create, idempotency, refusals, 413, validation, filters."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from reports.models import Report, ReportFile
from reports.services import report_create
from tests.cast import Cast
from tests.reports.files import image_bytes, jpeg_with_gps, upload


@pytest.fixture
def alice(cast: Cast) -> Client:
    client = Client()
    client.force_login(cast.alice)
    return client


@pytest.fixture
def officer(cast: Cast) -> Client:
    client = Client()
    client.force_login(cast.officer)
    return client


def test_it_creates_a_report_with_photos_and_is_idempotent(alice: Client) -> None:
    client_id = str(uuid.uuid4())
    data = {"kind": "graffiti", "description": "Fresh tag on the bank.", "client_id": client_id,
            "photos": [upload("a.jpg", jpeg_with_gps()), upload("b.gif", image_bytes("GIF"), "image/gif")]}
    response = alice.post("/api/v1/reports/", data=data)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["created"] is True
    assert body["refused"] == [{"name": "b.gif", "reason": "it is not a JPEG, PNG or WebP image"}]
    assert len(body["report"]["files"]) == 1
    assert body["report"]["files"][0]["original_url"] is None  # the reporter gets the stripped copy only
    assert body["report"]["reporter"] is None

    data["photos"] = [upload("a.jpg", jpeg_with_gps())]
    again = alice.post("/api/v1/reports/", data=data)
    assert again.status_code == 200 and again.json()["created"] is False
    assert again.json()["report"]["id"] == body["report"]["id"]
    assert Report.objects.count() == 1 and ReportFile.objects.count() == 1


@pytest.mark.parametrize(("data", "field"), [
    ({"kind": "juggling", "description": "x"}, "kind"),
    ({"kind": "graffiti"}, "description"),
    ({"kind": "graffiti", "description": "x", "occurred_at": (timezone.now() + timedelta(hours=2)).isoformat()},
     "occurred_at"),
    ({"kind": "graffiti", "description": "x", "latitude": "123", "longitude": "0"}, "latitude"),
    ({"kind": "graffiti", "description": "x", "latitude": "52", "longitude": "500"}, "longitude"),
])
def test_it_answers_bad_input_with_422(alice: Client, data: dict[str, str], field: str) -> None:
    response = alice.post("/api/v1/reports/", data=data)
    assert response.status_code == 422
    assert field in response.json()["detail"]
    assert Report.objects.count() == 0


def test_it_answers_413_for_an_oversize_request(alice: Client, settings: object) -> None:
    settings.REPORT_UPLOAD_MAX_BYTES = 50_000  # type: ignore[attr-defined]
    big = upload("big.png", image_bytes("PNG", size=(8, 8)) + b"\x00" * 60_000, "image/png")
    response = alice.post("/api/v1/reports/", data={"kind": "graffiti", "description": "x", "photos": [big]})
    assert response.status_code == 413
    assert "the limit is" in response.json()["detail"]
    assert Report.objects.count() == 0


def test_it_answers_413_for_an_oversize_photo(alice: Client, settings: object) -> None:
    settings.REPORT_IMAGE_MAX_BYTES = 10_000  # type: ignore[attr-defined]
    big = upload("huge.jpg", jpeg_with_gps() + b"\x00" * 20_000)
    response = alice.post("/api/v1/reports/", data={"kind": "graffiti", "description": "x", "photos": [big]})
    assert response.status_code == 413
    assert "huge.jpg" in response.json()["detail"] and "Nothing was saved" in response.json()["detail"]
    big = upload("huge.jpg", jpeg_with_gps() + b"\x00" * 20_000)
    page = alice.post("/reports/new/", data={"kind": "graffiti", "description": "x", "photos": [big]})
    assert page.status_code == 413
    assert b"Nothing was saved" in page.content
    assert Report.objects.count() == 0


def test_it_files_from_the_page_without_javascript(alice: Client) -> None:
    response = alice.post("/reports/new/", data={
        "kind": "fly_tipping", "description": "Mattress dumped in the alley.",
        "occurred_at": "2020-01-01T09:30", "photos": [upload("m.jpg", jpeg_with_gps())],
    })
    report = Report.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/reports/{report.pk}/"
    assert report.occurred_at.isoformat() == "2020-01-01T09:30:00+00:00"  # Europe/London in winter
    page = alice.get(response["Location"])
    assert b"Report sent" in page.content and b"Mattress dumped" in page.content


def test_it_shows_the_page_form_errors(alice: Client) -> None:
    response = alice.post("/reports/new/", data={"kind": "nonsense", "description": ""})
    assert response.status_code == 400
    assert b"Choose a kind from the list." in response.content
    assert b"Say in a sentence what happened." in response.content


def test_it_offers_the_phone_form_with_a_camera_input_and_the_outreach_note(alice: Client, settings: object) -> None:
    page = alice.get("/reports/new/").content.decode()
    assert 'accept="image/*" capture="environment" multiple' in page
    assert "street outreach team" in page
    assert f'data-tile-url="{settings.MAP_TILE_URL}"' in page  # type: ignore[attr-defined]
    assert "Gold Street" in page
    for category in ("Anti-social behaviour", "Low-level crime", "Intelligence", "Public realm"):
        assert category in page


def test_it_filters_the_inbox(cast: Cast, officer: Client) -> None:
    graffiti = report_create(reporter=cast.alice, kind="graffiti", description="Tag.").report
    begging = report_create(reporter=cast.charlie, kind="begging", description="Asking.").report
    report_create(reporter=cast.alice, kind="graffiti", description="Old.", occurred_at=timezone.now() - timedelta(days=9))

    def ids(query: str) -> list[int]:
        return [r["id"] for r in officer.get(f"/api/v1/reports/inbox?{query}").json()]

    assert set(ids("")) >= {graffiti.pk, begging.pk}
    assert ids("kind=begging") == [begging.pk]
    assert ids(f"street={cast.abington.pk}") == [begging.pk]
    assert ids(f"since={(timezone.localdate() - timedelta(days=1)).isoformat()}&kind=graffiti") == [graffiti.pk]
    officer.post(f"/api/v1/reports/{begging.pk}/status", data=json.dumps({"status": "closed", "reason": "Moved on."}),
                 content_type="application/json")
    assert begging.pk not in ids("")
    assert ids("status=closed") == [begging.pk]
    page = officer.get(f"/reports/inbox/?kind=graffiti&street={cast.gold.pk}").content.decode()
    assert f"report {graffiti.pk}" in page and f"report {begging.pk}" not in page


def test_it_changes_status_and_adds_notes_through_the_api(cast: Cast, officer: Client) -> None:
    report = report_create(reporter=cast.alice, kind="graffiti", description="Tag.").report
    bad = officer.post(f"/api/v1/reports/{report.pk}/status", data=json.dumps({"status": "closed"}),
                       content_type="application/json")
    assert bad.status_code == 422 and "reason" in bad.json()["detail"]
    ok = officer.post(f"/api/v1/reports/{report.pk}/status",
                      data=json.dumps({"status": "assigned", "assignee_id": cast.officer.pk}),
                      content_type="application/json")
    assert ok.status_code == 200 and ok.json()["assignee"]["name"] == "Olivia Officer"
    note = officer.post(f"/api/v1/reports/{report.pk}/notes", data=json.dumps({"text": "Council cleaning booked."}),
                        content_type="application/json")
    assert note.status_code == 201 and note.json()["kind"] == "internal"
    alice = Client()
    alice.force_login(cast.alice)
    assert b"Council cleaning" not in alice.get(f"/reports/{report.pk}/").content
    assert alice.get(f"/api/v1/reports/{report.pk}").json()["status"] == "assigned"


def test_it_publishes_the_openapi_schema(alice: Client) -> None:
    schema = alice.get("/api/v1/openapi.json").json()
    assert schema["info"]["version"] == "1"
    for path in ("/api/v1/reports/", "/api/v1/reports/mine", "/api/v1/reports/inbox", "/api/v1/reports/duplicates",
                 "/api/v1/reports/{report_id}", "/api/v1/reports/{report_id}/status",
                 "/api/v1/reports/{report_id}/notes", "/api/v1/cases/", "/api/v1/cases/{case_id}/reports"):
        assert path in schema["paths"], path
    create = schema["paths"]["/api/v1/reports/"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert "photos" in create["schema"]["properties"]


def test_it_validates_duplicate_queries(alice: Client) -> None:
    assert alice.get("/api/v1/reports/duplicates?kind=juggling").status_code == 422
    assert alice.get("/api/v1/reports/duplicates?kind=graffiti&latitude=95&longitude=0").status_code == 422
    assert alice.get("/api/v1/reports/duplicates?kind=graffiti&latitude=52").status_code == 422


def test_it_adds_to_a_report_found_nearby(cast: Cast, alice: Client) -> None:
    original = report_create(reporter=cast.charlie, kind="drugs", description="Dealing by the bins.").report
    found = alice.get(f"/api/v1/reports/duplicates?kind=drugs&street={cast.abington.pk}").json()
    assert [d["id"] for d in found] == [original.pk]
    response = alice.post("/api/v1/reports/", data={"kind": "drugs", "description": "Same pair again.",
                                                    "addendum_to": str(original.pk)})
    assert response.status_code == 201
    addendum = Report.objects.get(pk=response.json()["report"]["id"])
    assert addendum.addendum_to == original
    assert response.json()["report"]["addendum_to"] is None  # the reporter is not told about the other report
    officer = Client()
    officer.force_login(cast.officer)
    page = officer.get(f"/reports/{original.pk}/").content.decode()
    assert "Added by other reporters" in page and "Same pair again." in page


def test_it_audits_file_and_case_views(cast: Cast, officer: Client) -> None:
    from members.models import AuditEvent
    from reports.services import case_create

    report = report_create(reporter=cast.alice, kind="graffiti", description="Tag.",
                           files=[upload("a.jpg", jpeg_with_gps())]).report
    item = report.files.get()
    case = case_create(actor=cast.officer, title="Tagger", about="person")
    assert officer.get(f"/reports/files/{item.pk}/original/").status_code == 200
    assert officer.get(f"/api/v1/cases/{case.pk}").status_code == 200
    assert officer.get("/reports/inbox/").status_code == 200
    seen = set(AuditEvent.objects.filter(actor=cast.officer, action="personal_data.view")
               .values_list("object_type", "object_id"))
    assert {("report_file", str(item.pk)), ("case", str(case.pk)), ("report_list", "inbox")} <= seen
