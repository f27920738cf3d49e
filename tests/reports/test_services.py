"""Filing, validation, idempotency, addenda, duplicates, triage, notifications, cases, audit and PDF export."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from members.models import AuditEvent
from reports.models import Report, ReportFile, Status
from reports.selectors import access_report, reports_similar_nearby
from reports.services import (
    case_create,
    case_set_report,
    evidence_pdf,
    note_add,
    report_create,
    report_share_with_police,
    report_status_change,
)
from tests.cast import Cast
from tests.reports.files import jpeg_with_gps, upload

GOLD_ST = (Decimal("52.236500"), Decimal("-0.897000"))


def test_it_files_a_simple_report_with_sensible_defaults(cast: Cast) -> None:
    before = timezone.now()
    report = report_create(reporter=cast.alice, kind="begging", description="Man asking for money at the door.").report
    assert report.status == Status.NEW
    assert before <= report.occurred_at <= timezone.now()
    assert report.street == cast.gold  # the reporter's business street
    assert report.reporter_business == cast.books
    assert report.latitude is None  # no pin and no business coordinates: no made-up place


def test_it_defaults_the_place_to_the_business_location(cast: Cast) -> None:
    cast.books.latitude, cast.books.longitude = GOLD_ST
    cast.books.save(update_fields=["latitude", "longitude"])
    cast.alice.refresh_from_db()
    report = report_create(reporter=cast.alice, kind="graffiti", description="Tag.").report
    assert (report.latitude, report.longitude) == GOLD_ST
    assert report.street == cast.gold


def test_it_finds_the_street_from_a_pin_near_a_business(cast: Cast) -> None:
    cast.bakery.latitude, cast.bakery.longitude = Decimal("52.238000"), Decimal("-0.893000")
    cast.bakery.save(update_fields=["latitude", "longitude"])
    report = report_create(
        reporter=cast.alice, kind="graffiti", description="Tag.", latitude=Decimal("52.238300"),
        longitude=Decimal("-0.893100"),
    ).report
    assert report.street == cast.abington


def test_it_is_idempotent_on_the_client_id(cast: Cast) -> None:
    client_id = uuid.uuid4()
    first = report_create(reporter=cast.alice, kind="graffiti", description="Tag.", client_id=client_id,
                          files=[upload("a.jpg", jpeg_with_gps())])
    again = report_create(reporter=cast.alice, kind="graffiti", description="Tag.", client_id=client_id,
                          files=[upload("a.jpg", jpeg_with_gps())])
    assert first.created and not again.created
    assert again.report.pk == first.report.pk
    assert Report.objects.count() == 1 and ReportFile.objects.count() == 1
    # The same id from someone else is a different report.
    assert report_create(reporter=cast.bob, kind="graffiti", description="Tag.", client_id=client_id).created


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"kind": "juggling"}, "kind"),
    ({"description": "   "}, "description"),
    ({"occurred_at": timezone.now() + timedelta(hours=1)}, "occurred_at"),
    ({"occurred_at": timezone.now() - timedelta(hours=2), "occurred_until": timezone.now() - timedelta(hours=3)},
     "occurred_until"),
    ({"occurred_until": timezone.now() + timedelta(days=1), "occurred_at": timezone.now() - timedelta(hours=1)},
     "occurred_until"),
    ({"latitude": Decimal("91"), "longitude": Decimal("0")}, "latitude"),
    ({"latitude": Decimal("52"), "longitude": Decimal("-181")}, "latitude"),
    ({"latitude": Decimal("52")}, "latitude"),
])
def test_it_refuses_bad_input_and_saves_nothing(cast: Cast, media: object, kwargs: dict[str, object], field: str) -> None:
    arguments = {"reporter": cast.alice, "kind": "graffiti", "description": "Tag.",
                 "files": [upload("a.jpg", jpeg_with_gps())], **kwargs}
    with pytest.raises(ValidationError) as caught:
        report_create(**arguments)  # type: ignore[arg-type]
    assert field in caught.value.message_dict
    assert Report.objects.count() == 0 and ReportFile.objects.count() == 0
    assert not any(media.rglob("*.*"))  # type: ignore[attr-defined]


def test_it_lets_only_reporters_file(cast: Cast) -> None:
    for user in (cast.officer, cast.police, cast.admin, cast.dpo):
        with pytest.raises(PermissionDenied):
            report_create(reporter=user, kind="graffiti", description="Tag.")


def test_it_finds_similar_reports_nearby(cast: Cast) -> None:
    lat, lng = GOLD_ST
    now = timezone.now()
    near = report_create(reporter=cast.charlie, kind="street_drinking", description="Cans.", latitude=lat,
                         longitude=lng + Decimal("0.0010")).report  # ~68 m east
    report_create(reporter=cast.charlie, kind="street_drinking", description="Far.", latitude=lat,
                  longitude=lng + Decimal("0.0030"))  # ~200 m: too far
    report_create(reporter=cast.charlie, kind="begging", description="Other kind.", latitude=lat, longitude=lng)
    report_create(reporter=cast.charlie, kind="street_drinking", description="Earlier.", latitude=lat,
                  longitude=lng, occurred_at=now - timedelta(hours=3))
    found = reports_similar_nearby(kind="street_drinking", at=now, latitude=float(lat), longitude=float(lng))
    assert [n.report.pk for n in found] == [near.pk]
    assert 50 < found[0].distance_m < 90  # type: ignore[operator]


def test_it_adds_an_addendum_to_an_existing_report(cast: Cast) -> None:
    original = report_create(reporter=cast.charlie, kind="aggressive_behaviour", description="Shouting.").report
    addendum = report_create(reporter=cast.alice, kind="aggressive_behaviour", description="Same man, now kicking bins.",
                             addendum_to=original.pk).report
    assert addendum.addendum_to == original
    # alice sees her addendum, not charlie's report.
    assert access_report(user=cast.alice, report_id=addendum.pk) == addendum
    with pytest.raises(Exception, match="No such report"):
        access_report(user=cast.alice, report_id=original.pk)
    with pytest.raises(ValidationError):
        report_create(reporter=cast.alice, kind="graffiti", description="Wrong kind.", addendum_to=original.pk)


def _listen(user_id: int) -> tuple[object, str]:
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(f"user.{user_id}", channel)
    return layer, channel


def test_it_moves_through_statuses_and_tells_the_reporters(cast: Cast, django_capture_on_commit_callbacks) -> None:  # type: ignore[no-untyped-def]
    report = report_create(reporter=cast.alice, kind="rough_sleeping", description="Someone in the doorway.").report
    addendum = report_create(reporter=cast.bob, kind="rough_sleeping", description="Still there.", addendum_to=report.pk).report
    layer, alice_channel = _listen(cast.alice.pk)
    _, bob_channel = _listen(cast.bob.pk)

    with django_capture_on_commit_callbacks(execute=True):
        report_status_change(report=report, actor=cast.officer, status="referred_to_outreach",
                             reason="Outreach team informed.")
    event = async_to_sync(layer.receive)(alice_channel)  # type: ignore[attr-defined]
    assert event == {"type": "report.status", "report": report.pk, "status": "referred_to_outreach",
                     "label": "Referred to outreach", "at": report.status_changed_at.isoformat()}
    assert async_to_sync(layer.receive)(bob_channel)["report"] == addendum.pk  # type: ignore[attr-defined]
    addendum.refresh_from_db()
    assert addendum.status == "referred_to_outreach"

    with pytest.raises(ValidationError, match="reason"):
        report_status_change(report=report, actor=cast.officer, status="closed")
    with pytest.raises(ValidationError, match="cannot become"):
        report_status_change(report=report, actor=cast.officer, status="action_taken")
    report_status_change(report=report, actor=cast.officer, status="closed", reason="Accepted support.")
    assert [c.to_status for c in report.status_changes.all()] == ["referred_to_outreach", "closed"]
    assert AuditEvent.objects.filter(action="report.status", object_id=str(report.pk)).count() == 2


def test_it_assigns_only_to_case_officers(cast: Cast) -> None:
    report = report_create(reporter=cast.alice, kind="graffiti", description="Tag.").report
    with pytest.raises(ValidationError, match="case officer"):
        report_status_change(report=report, actor=cast.officer, status="assigned", assignee=cast.police)
    report_status_change(report=report, actor=cast.officer, status="assigned", assignee=cast.officer)
    assert report.assignee == cast.officer and report.status == "assigned"
    for actor in (cast.police, cast.admin, cast.alice):
        with pytest.raises(PermissionDenied):
            report_status_change(report=report, actor=actor, status="action_taken")


def test_it_groups_reports_into_a_case(cast: Cast) -> None:
    case = case_create(actor=cast.officer, title="Doorway at 12 Gold St", about="place")
    report = report_create(reporter=cast.alice, kind="encampment", description="Tent.").report
    case_set_report(report=report, case=case, actor=cast.officer)
    assert list(case.reports.all()) == [report]
    with pytest.raises(PermissionDenied):
        case_create(actor=cast.police, title="x", about="person")


def test_it_audits_every_authority_view(cast: Cast) -> None:
    report = report_create(reporter=cast.alice, kind="graffiti", description="Tag.").report
    access_report(user=cast.alice, report_id=report.pk)  # the reporter reading her own: not audited
    assert not AuditEvent.objects.filter(action="personal_data.view").exists()
    access_report(user=cast.officer, report_id=report.pk)
    access_report(user=cast.admin, report_id=report.pk)
    viewed = AuditEvent.objects.filter(action="personal_data.view", object_type="report", object_id=str(report.pk))
    assert {e.actor for e in viewed} == {cast.officer, cast.admin}
    assert {e.subject for e in viewed} == {cast.alice}


def test_it_exports_an_evidence_pdf_listing_every_file_hash(cast: Cast) -> None:
    report = report_create(reporter=cast.alice, kind="shop_theft", description="Gin (two bottles) taken.",
                           files=[upload("a.jpg", jpeg_with_gps()), upload("b.jpg", jpeg_with_gps(size=(80, 60)))]).report
    extra = report_create(reporter=cast.bob, kind="shop_theft", description="I saw him too.", addendum_to=report.pk,
                          files=[upload("c.jpg", jpeg_with_gps(size=(30, 30)))]).report
    report_share_with_police(report=report, actor=cast.officer, shared=True)
    note_add(report=report, author=cast.police, text="Known offender.")
    pdf = evidence_pdf(report=report, actor=cast.police)
    assert pdf.startswith(b"%PDF-1.4") and pdf.rstrip().endswith(b"%%EOF")
    hashes = list(ReportFile.objects.filter(report__in=[report, extra]).values_list("sha256", flat=True))
    assert len(hashes) == 3
    for digest in hashes:
        assert f"SHA-256 {digest}".encode() in pdf
    assert b"Gin \\(two bottles\\) taken." in pdf  # PDF string escaping
    assert b"Known offender" not in pdf  # intelligence notes stay out of the evidence summary
    assert AuditEvent.objects.filter(action="report.export", actor=cast.police).count() == 1
    with pytest.raises(PermissionDenied):
        evidence_pdf(report=report, actor=cast.admin)


def test_it_keeps_the_pdf_cross_reference_table_right(cast: Cast) -> None:
    report = report_create(reporter=cast.alice, kind="graffiti", description="x " * 3000).report
    pdf = evidence_pdf(report=report, actor=cast.officer)
    start = int(pdf.rsplit(b"startxref\n", 1)[1].split(b"\n")[0])
    assert pdf[start:].startswith(b"xref\n")
    rows = pdf[start:].split(b"\n")[3:]
    for number, row in enumerate(rows[: int(pdf[start:].split(b"\n")[1].split()[1]) - 1], start=1):
        offset = int(row.split()[0])
        assert pdf[offset:].startswith(f"{number} 0 obj".encode())
    assert b"/Count 2" in pdf or b"/Count 3" in pdf  # a long report runs over pages


def test_it_lets_police_see_shared_reports_only(cast: Cast) -> None:
    report = report_create(reporter=cast.alice, kind="shop_theft", description="Theft.").report
    assert not Report.objects.visible_to(cast.police).exists()
    report_share_with_police(report=report, actor=cast.officer, shared=True)
    assert list(Report.objects.visible_to(cast.police)) == [report]
    with pytest.raises(PermissionDenied):
        report_share_with_police(report=report, actor=cast.police, shared=False)


def test_it_marks_status_changes_unseen_until_the_reporter_looks(cast: Cast, client) -> None:  # type: ignore[no-untyped-def]
    with time_machine.travel(timezone.now() - timedelta(minutes=10)):
        report = report_create(reporter=cast.alice, kind="graffiti", description="Tag.").report
    report_status_change(report=report, actor=cast.officer, status="triaged")
    client.force_login(cast.alice)
    page = client.get("/reports/mine/").content.decode()
    assert "1 of your reports changed status" in page and "Triaged" in page
    assert "changed status" not in client.get("/reports/mine/").content.decode()
