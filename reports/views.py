"""Report pages: the phone form, My reports, the report page, the officers' inbox, cases and files.

Thin: parse, check access (selectors' access_* and policies), call a service, render.
"""

from __future__ import annotations

import mimetypes
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, RequestDataTooBig, ValidationError
from django.core.files.storage import default_storage
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_POST

from members.audit import audit_personal_data_access
from members.models import Street, User
from reports import policies, selectors, services
from reports.forms import (
    CaseChoiceForm,
    CaseForm,
    InboxFilterForm,
    NoteForm,
    ReportForm,
    ShareForm,
    StatusForm,
    report_form_submit,
)
from reports.http import TOO_LARGE_BODY, request_oversize_message
from reports.models import OUTREACH_NOTE, TRANSITIONS, WELFARE_FIRST_KINDS, Report, Status, kinds_by_category


def _user(request: HttpRequest) -> User:
    return request.user  # type: ignore[return-value]


def _form_context(request: HttpRequest, form: ReportForm, status: int = 200, problem: str = "") -> HttpResponse:
    user = _user(request)
    lat, lng = selectors.map_default_for(user=user)
    business = user.business
    context = {
        "form": form,
        "problem": problem,
        "categories": kinds_by_category(),
        "welfare_kinds": sorted(WELFARE_FIRST_KINDS),
        "outreach_note": OUTREACH_NOTE,
        "map_lat": lat,
        "map_lng": lng,
        "has_home_location": bool(business and business.latitude is not None),
        "home_street": business.street if business else None,
        "streets": Street.objects.all(),
        "street_points": selectors.street_points(),
        "tile_url": settings.MAP_TILE_URL,
    }
    return render(request, "reports/new.html", context, status=status)


@csrf_exempt  # the size check must run before the body is read; CSRF is enforced right after it
@login_required
def report_new(request: HttpRequest) -> HttpResponse:
    if not policies.can_file_report(_user(request)):
        raise PermissionDenied("Your role cannot file reports.")
    if request.method != "POST":
        return csrf_protect(_report_new_get)(request)
    message = request_oversize_message(request)
    if message is None:
        try:
            return csrf_protect(_report_new_post)(request)
        except RequestDataTooBig:
            message = TOO_LARGE_BODY
        except services.UploadTooLarge as exc:
            message = str(exc)
    return _form_context(request, ReportForm(), status=413, problem=message)


def _report_new_get(request: HttpRequest) -> HttpResponse:
    return _form_context(request, ReportForm())


def _report_new_post(request: HttpRequest) -> HttpResponse:
    form = ReportForm(request.POST)
    result = report_form_submit(form=form, reporter=_user(request), files=request.FILES.getlist("photos"))
    if result is None:
        return _form_context(request, form, status=400)
    for refusal in result.refused:
        messages.warning(request, refusal.message)
    messages.success(request, "Report sent. Thank you: the council's case officers will see it.")
    return redirect("reports:detail", report_id=result.report.pk)


@login_required
@require_GET
def report_mine(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    reports = list(selectors.reports_of_reporter(user=user)[:200])
    changed = [r for r in reports if r.status_unseen]
    services.reports_mark_seen(reporter=user)
    return render(request, "reports/mine.html", {"reports": reports, "changed": changed})


@login_required
@require_GET
def report_detail(request: HttpRequest, report_id: int) -> HttpResponse:
    user = _user(request)
    report = selectors.access_report(user=user, report_id=report_id, request=request)
    authority = policies.is_report_authority(user)
    context: dict[str, Any] = {
        "report": report,
        "authority": authority,
        "files": list(report.files.all()),
        "can_original": policies.can_fetch_original(user),
        "history": list(report.status_changes.all()),
        "tile_url": settings.MAP_TILE_URL,
    }
    if authority:
        visible = Report.objects.visible_to(user)
        nearby = selectors.reports_similar_nearby(
            kind=report.kind, at=report.occurred_at,
            latitude=float(report.latitude) if report.latitude is not None else None,
            longitude=float(report.longitude) if report.longitude is not None else None,
            street_id=report.street_id, exclude_id=report.pk,
        )
        visible_ids = set(visible.filter(pk__in=[n.report.pk for n in nearby]).values_list("pk", flat=True))
        context.update(
            addenda=list(visible.filter(addendum_to=report).select_related("reporter").prefetch_related("files")),
            duplicates=[n for n in nearby if n.report.pk in visible_ids],
            notes=list(report.notes.select_related("author")) if policies.can_see_notes(user) else [],
            can_triage=policies.can_triage(user),
            can_note=policies.can_add_note(user),
            can_export=policies.can_export_evidence(user),
            status_form=StatusForm(
                allowed=sorted(TRANSITIONS[report.status] | {Status.ASSIGNED}),
                initial={"assignee": report.assignee_id},
            ),
            note_form=NoteForm(),
            case_form=CaseChoiceForm(initial={"case": report.case_id}),
            outreach_first=report.welfare_first,
        )
    return render(request, "reports/detail.html", context)


def _officer_action(request: HttpRequest, report_id: int) -> tuple[User, Report]:
    user = _user(request)
    report = selectors.access_report(user=user, report_id=report_id, request=request)
    return user, report


def _flash_errors(request: HttpRequest, exc: ValidationError) -> None:
    for message in exc.messages:
        messages.error(request, message)


@login_required
@require_POST
def report_status(request: HttpRequest, report_id: int) -> HttpResponse:
    user, report = _officer_action(request, report_id)
    form = StatusForm(request.POST)
    if not form.is_valid():
        for errors in form.errors.values():
            for error in errors:
                messages.error(request, error)
        return redirect("reports:detail", report_id=report.pk)
    try:
        services.report_status_change(
            report=report, actor=user, status=form.cleaned_data["status"], reason=form.cleaned_data["reason"],
            assignee=form.cleaned_data["assignee"], request=request,
        )
        messages.success(request, f"Status changed to {report.get_status_display().lower()}.")
    except ValidationError as exc:
        _flash_errors(request, exc)
    return redirect("reports:detail", report_id=report.pk)


@login_required
@require_POST
def report_share(request: HttpRequest, report_id: int) -> HttpResponse:
    user, report = _officer_action(request, report_id)
    form = ShareForm(request.POST)
    form.is_valid()
    shared = bool(form.cleaned_data.get("shared"))
    services.report_share_with_police(report=report, actor=user, shared=shared, request=request)
    messages.success(request, "Shared with the police." if shared else "No longer shared with the police.")
    return redirect("reports:detail", report_id=report.pk)


@login_required
@require_POST
def report_note(request: HttpRequest, report_id: int) -> HttpResponse:
    user, report = _officer_action(request, report_id)
    form = NoteForm(request.POST)
    try:
        if not form.is_valid():
            raise ValidationError("Write the note first.")
        services.note_add(report=report, author=user, text=form.cleaned_data["text"])
        messages.success(request, "Note added.")
    except ValidationError as exc:
        _flash_errors(request, exc)
    return redirect("reports:detail", report_id=report.pk)


@login_required
@require_POST
def report_case(request: HttpRequest, report_id: int) -> HttpResponse:
    user, report = _officer_action(request, report_id)
    form = CaseChoiceForm(request.POST)
    try:
        if not form.is_valid():
            raise ValidationError("Choose an open case.")
        case = form.cleaned_data["case"]
        services.case_set_report(report=report, case=case, actor=user)
        messages.success(request, f"Added to case “{case}”." if case else "Taken out of its case.")
    except ValidationError as exc:
        _flash_errors(request, exc)
    return redirect("reports:detail", report_id=report.pk)


@login_required
@require_GET
def report_evidence_pdf(request: HttpRequest, report_id: int) -> HttpResponse:
    user = _user(request)
    report = selectors.access_report(user=user, report_id=report_id, request=request)
    if not policies.can_export_evidence(user):
        raise PermissionDenied("Only case officers and police export evidence.")
    pdf = services.evidence_pdf(report=report, actor=user, request=request)
    response = HttpResponse(pdf, content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="ntars-report-{report.pk}-evidence.pdf"'
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_GET
def report_file(request: HttpRequest, file_id: int, variant: str) -> FileResponse:
    item = selectors.access_report_file(user=_user(request), file_id=file_id, variant=variant, request=request)
    path = getattr(item, f"{variant}_path")
    try:
        handle = default_storage.open(path, "rb")
    except FileNotFoundError:
        raise Http404("The file is missing") from None
    content_type = item.content_type if variant == "original" else "image/jpeg"
    extension = mimetypes.guess_extension(content_type) or ".bin"
    response = FileResponse(
        handle, content_type=content_type, as_attachment=variant == "original",
        filename=f"ntars-report-{item.report_id}-file-{item.pk}-{variant}{extension}",
    )
    response["Cache-Control"] = "private, no-store"
    return response


@login_required
@require_GET
def inbox(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    if not policies.is_report_authority(user):
        raise PermissionDenied("The inbox is for case officers, police and BID admins.")
    form = InboxFilterForm(request.GET or None)
    page = Paginator(selectors.inbox_reports(user=user, filters=form.filters()), 50).get_page(request.GET.get("page"))
    if page.object_list:
        audit_personal_data_access(
            actor=user, object_type="report_list", object_id="inbox", request=request,
            detail={"reports": [r.pk for r in page.object_list]},
        )
    query = request.GET.copy()
    query.pop("page", None)
    return render(request, "reports/inbox.html", {"form": form, "page": page, "query": query.urlencode()})


@login_required
def case_list(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    if not policies.can_view_cases(user):
        raise PermissionDenied("Cases are for case officers, police and BID admins.")
    form = CaseForm(request.POST or None)
    if request.method == "POST":
        if form.is_valid():
            try:
                case = services.case_create(actor=user, **form.cleaned_data)
                messages.success(request, f"Case “{case}” opened.")
                return redirect("reports:case", case_id=case.pk)
            except ValidationError as exc:
                _flash_errors(request, exc)
    return render(
        request, "reports/cases.html",
        {"cases": selectors.cases_visible_to(user=user), "form": form, "can_manage": policies.can_manage_cases(user)},
    )


@login_required
@require_GET
def case_detail(request: HttpRequest, case_id: int) -> HttpResponse:
    user = _user(request)
    case = selectors.access_case(user=user, case_id=case_id, request=request)
    reports = list(selectors.case_reports(user=user, case=case))
    return render(request, "reports/case.html", {"case": case, "reports": reports})
