"""Reports and cases in the versioned API (/api/v1/). Session auth with CSRF; every object checked per user."""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any

from django.core.exceptions import ValidationError
from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils import timezone
from ninja import Router, Schema
from ninja import Status as HttpStatus
from ninja.decorators import decorate_view

from members.audit import audit_personal_data_access
from members.models import User
from reports import policies, selectors, services
from reports.forms import ReportForm, form_errors, report_form_submit
from reports.http import upload_guard
from reports.models import KINDS, Case, Kind, Note, Report, ReportFile

router = Router(tags=["reports"])
cases_router = Router(tags=["cases"])


class ErrorOut(Schema):
    detail: Any


class FileOut(Schema):
    id: int
    content_type: str
    size: int
    sha256: str
    width: int
    height: int
    thumb_url: str
    display_url: str
    original_url: str | None = None
    name: str | None = None


class PersonOut(Schema):
    id: int
    name: str
    email: str | None = None
    business: str | None = None


class ReportOut(Schema):
    id: int
    url: str
    kind: str
    kind_label: str
    category: str
    welfare_first: bool
    status: str
    status_label: str
    status_reason: str
    status_changed_at: datetime
    occurred_at: datetime
    occurred_until: datetime | None
    latitude: float | None
    longitude: float | None
    street: str | None
    place_note: str
    description: str
    people_description: str
    addendum_to: int | None
    source: str
    verification: dict[str, Any] | None
    created_at: datetime
    files: list[FileOut]
    # Authorities only (None for the reporter):
    reporter: PersonOut | None = None
    assignee: PersonOut | None = None
    shared_with_police: bool | None = None
    case: int | None = None


class RefusalOut(Schema):
    name: str
    reason: str


class CreateOut(Schema):
    created: bool
    report: ReportOut
    refused: list[RefusalOut]


class DuplicateOut(Schema):
    id: int
    kind_label: str
    occurred_at: datetime
    street: str | None
    distance_m: int | None
    addenda: int
    mine: bool


class StatusIn(Schema):
    status: str
    reason: str = ""
    assignee_id: int | None = None


class ShareIn(Schema):
    shared: bool


class NoteIn(Schema):
    text: str


class NoteOut(Schema):
    id: int
    kind: str
    text: str
    author: str
    created_at: datetime


class CaseIn(Schema):
    title: str
    about: str
    description: str = ""


class CaseOut(Schema):
    id: int
    title: str
    about: str
    description: str
    created_at: datetime
    closed_at: datetime | None
    reports: list[int]


class CaseReportIn(Schema):
    report_id: int


def _user(request: HttpRequest) -> User:
    return request.user  # type: ignore[return-value]


def _person(user: User | None, *, with_contact: bool) -> dict[str, Any] | None:
    if user is None:
        return None
    return {
        "id": user.pk, "name": user.full_name,
        "email": user.email if with_contact else None,
        "business": user.business.name if with_contact and user.business else None,
    }


def _file_out(item: ReportFile, *, viewer: User) -> dict[str, Any]:
    authority = policies.is_report_authority(viewer)
    return {
        "id": item.pk, "content_type": item.content_type, "size": item.size, "sha256": item.sha256,
        "width": item.width, "height": item.height,
        "thumb_url": reverse("reports:file", args=[item.pk, "thumb"]),
        "display_url": reverse("reports:file", args=[item.pk, "display"]),
        "original_url": reverse("reports:file", args=[item.pk, "original"])
        if policies.can_fetch_original(viewer) else None,
        "name": item.original_name if authority or item.uploaded_by_id == viewer.pk else None,
    }


def report_out(report: Report, *, viewer: User) -> dict[str, Any]:
    """The report as this viewer may see it: authorities get the reporter and the officers' fields."""
    authority = policies.is_report_authority(viewer)
    out: dict[str, Any] = {
        "id": report.pk, "url": reverse("reports:detail", args=[report.pk]), "kind": report.kind,
        "kind_label": report.get_kind_display(), "category": report.category.value,
        "welfare_first": report.welfare_first, "status": report.status,
        "status_label": report.get_status_display(), "status_reason": report.status_reason,
        "status_changed_at": report.status_changed_at, "occurred_at": report.occurred_at,
        "occurred_until": report.occurred_until,
        "latitude": float(report.latitude) if report.latitude is not None else None,
        "longitude": float(report.longitude) if report.longitude is not None else None,
        "street": report.street.name if report.street else None, "place_note": report.place_note,
        "description": report.description, "people_description": report.people_description,
        "addendum_to": report.addendum_to_id if authority else None,
        "source": report.source, "verification": report.verification, "created_at": report.created_at,
        "files": [_file_out(f, viewer=viewer) for f in report.files.all()],
    }
    if authority:
        out.update(
            reporter=_person(report.reporter, with_contact=True),
            assignee=_person(report.assignee, with_contact=False),
            shared_with_police=report.shared_with_police,
            case=report.case_id,
        )
    return out


def _case_out(case: Case, *, viewer: User) -> dict[str, Any]:
    return {
        "id": case.pk, "title": case.title, "about": case.about, "description": case.description,
        "created_at": case.created_at, "closed_at": case.closed_at,
        "reports": list(selectors.case_reports(user=viewer, case=case).values_list("pk", flat=True)),
    }


def _invalid(exc: ValidationError) -> HttpStatus[dict[str, Any]]:
    return HttpStatus(422, {"detail": exc.message_dict if hasattr(exc, "error_dict") else exc.messages})


MULTIPART_DOC = {
    "requestBody": {
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["kind", "description"],
                    "properties": {
                        "kind": {"type": "string", "enum": list(Kind.values)},
                        "description": {"type": "string", "description": "What happened (a sentence is enough)"},
                        "occurred_at": {"type": "string", "format": "date-time", "description": "Default: now"},
                        "occurred_until": {"type": "string", "format": "date-time"},
                        "latitude": {"type": "number", "minimum": -90, "maximum": 90},
                        "longitude": {"type": "number", "minimum": -180, "maximum": 180},
                        "street": {"type": "integer", "description": "Street id (default: from the pin)"},
                        "place_note": {"type": "string"},
                        "people_description": {"type": "string"},
                        "client_id": {"type": "string", "format": "uuid", "description": "Makes resubmission idempotent"},
                        "addendum_to": {"type": "integer", "description": "Add to this existing report instead"},
                        "photos": {"type": "array", "items": {"type": "string", "format": "binary"}},
                        "chat_proof": {
                            "type": "string",
                            "description": "Promote a chat message: JSON {group, seq, body, key_material, envelope, "
                                           "franking: {kid, tag, server_time}}; verified first, 400 if refused",
                        },
                    },
                }
            }
        }
    }
}


@router.post(
    "/", response={200: CreateOut, 201: CreateOut, 400: ErrorOut, 403: ErrorOut, 413: ErrorOut, 422: ErrorOut},
    openapi_extra=MULTIPART_DOC, summary="File a report (multipart, with photos)",
)
@decorate_view(upload_guard)
def report_create(request: HttpRequest) -> HttpStatus[Any]:
    user = _user(request)
    if not policies.can_file_report(user):
        return HttpStatus(403, {"detail": "Your role cannot file reports."})
    form = ReportForm(request.POST)
    try:
        result = report_form_submit(form=form, reporter=user, files=request.FILES.getlist("photos"),
                                    chat_proof=request.POST.get("chat_proof") or None)
    except services.UploadTooLarge as exc:
        return HttpStatus(413, {"detail": str(exc)})
    except services.ChatProofRefused as exc:
        return HttpStatus(400, {"detail": str(exc)})
    if result is None:
        return HttpStatus(422, {"detail": form_errors(form)})
    return HttpStatus(201 if result.created else 200, {
        "created": result.created,
        "report": report_out(result.report, viewer=user),
        "refused": [{"name": r.name, "reason": r.reason} for r in result.refused],
    })


@router.get("/mine", response=list[ReportOut], summary="My reports")
def reports_mine(request: HttpRequest) -> list[dict[str, Any]]:
    user = _user(request)
    reports = selectors.reports_of_reporter(user=user).prefetch_related("files")[:200]
    return [report_out(r, viewer=user) for r in reports]


class ReportedMessagesOut(Schema):
    group: int
    seqs: list[int]


@router.get("/reported-messages", response=ReportedMessagesOut,
            summary="The chat messages of a group I promoted to reports (seqs; only my own reports)")
def reported_messages(request: HttpRequest, group: int) -> dict[str, Any]:
    # Anyone signed in may ask: the answer is about their own reports only (none for roles that cannot
    # report, such as a BID admin reading a thread), so the chat screen never meets an error here.
    user = _user(request)
    return {"group": group, "seqs": selectors.chat_reported_seqs(user=user, group_id=group)}


@router.get("/inbox", response={200: list[ReportOut], 403: ErrorOut}, summary="The triage queue")
def reports_inbox(
    request: HttpRequest, kind: str = "", street: int | None = None, status: str = "",
    since: date | None = None, until: date | None = None, limit: int = 50, offset: int = 0,
) -> HttpStatus[Any]:
    user = _user(request)
    if not policies.is_report_authority(user):
        return HttpStatus(403, {"detail": "The inbox is for case officers, police and BID admins."})
    tz = timezone.get_current_timezone()
    filters = selectors.InboxFilters(
        kind=kind, street_id=street, status=status,
        since=datetime.combine(since, time.min, tzinfo=tz) if since else None,
        until=datetime.combine(until, time.max, tzinfo=tz) if until else None,
    )
    limit = max(1, min(limit, 200))
    reports = list(
        selectors.inbox_reports(user=user, filters=filters)
        .select_related("reporter__business").prefetch_related("files")[offset : offset + limit]
    )
    if reports:
        audit_personal_data_access(
            actor=user, object_type="report_list", object_id="inbox", request=request,
            detail={"reports": [r.pk for r in reports]},
        )
    return HttpStatus(200, [report_out(r, viewer=user) for r in reports])


@router.get("/duplicates", response={200: list[DuplicateOut], 403: ErrorOut, 422: ErrorOut},
            summary="Similar recent reports nearby (same kind, ~100 m, 2 hours)")
def reports_duplicates(
    request: HttpRequest, kind: str, latitude: float | None = None, longitude: float | None = None,
    street: int | None = None, at: datetime | None = None,
) -> HttpStatus[Any]:
    user = _user(request)
    if not (policies.can_file_report(user) or policies.is_report_authority(user)):
        return HttpStatus(403, {"detail": "Your role cannot file reports."})
    if kind not in KINDS:
        return HttpStatus(422, {"detail": {"kind": ["Unknown kind."]}})
    if (latitude is None) != (longitude is None) or (
        latitude is not None and longitude is not None and not (-90 <= latitude <= 90 and -180 <= longitude <= 180)
    ):
        return HttpStatus(422, {"detail": {"latitude": ["Those coordinates are not on Earth."]}})
    if street is None and latitude is None and user.business is not None:
        street = user.business.street_id
    at = at or timezone.now()
    if timezone.is_naive(at):
        at = timezone.make_aware(at)
    nearby = selectors.reports_similar_nearby(
        kind=kind, at=at, latitude=latitude, longitude=longitude, street_id=street,
    )
    # Other people's reports appear only as kind, time, street and distance: never who made them or what they said.
    return HttpStatus(200, [
        {
            "id": n.report.pk, "kind_label": n.report.get_kind_display(), "occurred_at": n.report.occurred_at,
            "street": n.report.street.name if n.report.street else None,
            "distance_m": None if n.distance_m is None else round(n.distance_m),
            "addenda": getattr(n.report, "addendum_count", 0), "mine": n.report.reporter_id == user.pk,
        }
        for n in nearby
    ])


@router.get("/{report_id}", response=ReportOut, summary="One report")
def report_detail(request: HttpRequest, report_id: int) -> dict[str, Any]:
    user = _user(request)
    return report_out(selectors.access_report(user=user, report_id=report_id, request=request), viewer=user)


@router.post("/{report_id}/status", response={200: ReportOut, 403: ErrorOut, 422: ErrorOut},
             summary="Change status (case officers)")
def report_status(request: HttpRequest, report_id: int, payload: StatusIn) -> HttpStatus[Any]:
    user = _user(request)
    report = selectors.access_report(user=user, report_id=report_id, request=request)
    assignee = None
    if payload.assignee_id is not None:
        assignee = selectors.assignable_officers().filter(pk=payload.assignee_id).first()
        if assignee is None:
            return HttpStatus(422, {"detail": {"assignee": ["Choose an active case officer."]}})
    try:
        services.report_status_change(
            report=report, actor=user, status=payload.status, reason=payload.reason, assignee=assignee,
            request=request,
        )
    except ValidationError as exc:
        return _invalid(exc)
    return HttpStatus(200, report_out(report, viewer=user))


@router.post("/{report_id}/share", response={200: ReportOut, 403: ErrorOut},
             summary="Share with the police (case officers)")
def report_share(request: HttpRequest, report_id: int, payload: ShareIn) -> HttpStatus[Any]:
    user = _user(request)
    report = selectors.access_report(user=user, report_id=report_id, request=request)
    services.report_share_with_police(report=report, actor=user, shared=payload.shared, request=request)
    return HttpStatus(200, report_out(report, viewer=user))


def _note_out(note: Note) -> dict[str, Any]:
    return {"id": note.pk, "kind": note.kind, "text": note.text, "author": note.author.full_name,
            "created_at": note.created_at}


@router.get("/{report_id}/notes", response={200: list[NoteOut], 403: ErrorOut}, summary="Internal notes")
def report_notes(request: HttpRequest, report_id: int) -> HttpStatus[Any]:
    user = _user(request)
    report = selectors.access_report(user=user, report_id=report_id, request=request)
    if not policies.can_see_notes(user):
        return HttpStatus(403, {"detail": "Notes are internal to the authorities."})
    return HttpStatus(200, [_note_out(n) for n in report.notes.select_related("author")])


@router.post("/{report_id}/notes", response={201: NoteOut, 403: ErrorOut, 422: ErrorOut},
             summary="Add a note (case officers; police: intelligence)")
def report_note_add(request: HttpRequest, report_id: int, payload: NoteIn) -> HttpStatus[Any]:
    user = _user(request)
    report = selectors.access_report(user=user, report_id=report_id, request=request)
    try:
        note = services.note_add(report=report, author=user, text=payload.text)
    except ValidationError as exc:
        return _invalid(exc)
    return HttpStatus(201, _note_out(note))


@cases_router.get("/", response={200: list[CaseOut], 403: ErrorOut}, summary="Cases")
def cases_list(request: HttpRequest) -> HttpStatus[Any]:
    user = _user(request)
    if not policies.can_view_cases(user):
        return HttpStatus(403, {"detail": "Cases are for case officers, police and BID admins."})
    cases = list(selectors.cases_visible_to(user=user)[:200])
    if cases:
        audit_personal_data_access(
            actor=user, object_type="case_list", object_id="cases", request=request,
            detail={"cases": [c.pk for c in cases]},
        )
    return HttpStatus(200, [_case_out(c, viewer=user) for c in cases])


@cases_router.post("/", response={201: CaseOut, 403: ErrorOut, 422: ErrorOut}, summary="Open a case")
def case_create(request: HttpRequest, payload: CaseIn) -> HttpStatus[Any]:
    user = _user(request)
    try:
        case = services.case_create(actor=user, title=payload.title, about=payload.about,
                                    description=payload.description)
    except ValidationError as exc:
        return _invalid(exc)
    return HttpStatus(201, _case_out(case, viewer=user))


@cases_router.get("/{case_id}", response=CaseOut, summary="One case")
def case_detail(request: HttpRequest, case_id: int) -> dict[str, Any]:
    user = _user(request)
    return _case_out(selectors.access_case(user=user, case_id=case_id, request=request), viewer=user)


@cases_router.post("/{case_id}/reports", response={200: CaseOut, 403: ErrorOut, 422: ErrorOut},
                   summary="Group a report into the case")
def case_report_add(request: HttpRequest, case_id: int, payload: CaseReportIn) -> HttpStatus[Any]:
    user = _user(request)
    case = selectors.access_case(user=user, case_id=case_id, request=request)
    report = selectors.access_report(user=user, report_id=payload.report_id, request=request)
    try:
        services.case_set_report(report=report, case=case, actor=user)
    except ValidationError as exc:
        return _invalid(exc)
    return HttpStatus(200, _case_out(case, viewer=user))


@cases_router.delete("/{case_id}/reports/{report_id}", response={200: CaseOut, 403: ErrorOut},
                     summary="Take a report out of the case")
def case_report_remove(request: HttpRequest, case_id: int, report_id: int) -> HttpStatus[Any]:
    user = _user(request)
    case = selectors.access_case(user=user, case_id=case_id, request=request)
    report = selectors.access_report(user=user, report_id=report_id, request=request)
    get_object_or_404(Report.objects.filter(case=case), pk=report.pk)
    services.case_set_report(report=report, case=None, actor=user)
    return HttpStatus(200, _case_out(case, viewer=user))

