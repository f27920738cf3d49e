"""Reads of reports, files and cases. Every read of one object goes through an `access_*` function."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db.models import Count, Q, QuerySet
from django.http import Http404, HttpRequest

from members.audit import audit_personal_data_access
from members.models import Business, Role, Street, User
from reports import policies
from reports.models import Case, Report, ReportFile, Source, Status

EARTH_RADIUS_M = 6_371_000
DUPLICATE_RADIUS_M = 100
DUPLICATE_WINDOW = timedelta(hours=2)
STREET_MATCH_RADIUS_M = 250
FILE_VARIANTS = ("original", "display", "thumb")


def distance_m(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    """Great-circle distance in metres (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lng2 - lng1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(a))


def _bounding_box(lat: float, lng: float, radius_m: float) -> Q:
    dlat = math.degrees(radius_m / EARTH_RADIUS_M)
    dlng = math.degrees(radius_m / (EARTH_RADIUS_M * max(math.cos(math.radians(lat)), 0.01)))
    return Q(
        latitude__gte=Decimal(str(round(lat - dlat, 6))), latitude__lte=Decimal(str(round(lat + dlat, 6))),
        longitude__gte=Decimal(str(round(lng - dlng, 6))), longitude__lte=Decimal(str(round(lng + dlng, 6))),
    )


def access_report(*, user: User, report_id: int, request: HttpRequest | None = None) -> Report:
    """The report if `user` may see it (404 otherwise, so ids reveal nothing); audited for authorities."""
    report = (
        Report.objects.visible_to(user)
        .select_related("reporter", "reporter_business", "street", "assignee", "case", "addendum_to")
        .filter(pk=report_id)
        .first()
    )
    if report is None:
        raise Http404("No such report")
    if report.reporter_id != user.pk:
        audit_personal_data_access(
            actor=user, object_type="report", object_id=report.pk, request=request, subject=report.reporter
        )
    return report


def access_report_file(*, user: User, file_id: int, variant: str, request: HttpRequest | None = None) -> ReportFile:
    """One evidence file if `user` may fetch that variant; originals only for case officers and police."""
    if variant not in FILE_VARIANTS:
        raise Http404("No such file")
    item = (
        ReportFile.objects.select_related("report", "report__reporter")
        .filter(pk=file_id, report__in=Report.objects.visible_to(user))
        .first()
    )
    if item is None or (variant == "original" and not policies.can_fetch_original(user)):
        raise Http404("No such file")
    if item.report.reporter_id != user.pk:
        audit_personal_data_access(
            actor=user, object_type="report_file", object_id=item.pk, request=request,
            subject=item.report.reporter, detail={"variant": variant, "report": item.report_id},
        )
    return item


def access_case(*, user: User, case_id: int, request: HttpRequest | None = None) -> Case:
    if not policies.can_view_cases(user):
        raise Http404("No such case")
    case = Case.objects.select_related("created_by").filter(pk=case_id).first()
    if case is None:
        raise Http404("No such case")
    audit_personal_data_access(actor=user, object_type="case", object_id=case.pk, request=request)
    return case


def case_reports(*, user: User, case: Case) -> QuerySet[Report]:
    """The reports in a case that `user` may see (police: only the shared ones)."""
    return Report.objects.visible_to(user).filter(case=case).select_related("street", "reporter")


def cases_visible_to(*, user: User) -> QuerySet[Case]:
    if not policies.can_view_cases(user):
        return Case.objects.none()
    return Case.objects.annotate(report_count=Count("reports")).order_by("closed_at", "-created_at")


def reports_of_reporter(*, user: User) -> QuerySet[Report]:
    return Report.objects.filter(reporter=user).select_related("street").order_by("-created_at", "-id")


def chat_reported_seqs(*, user: User, group_id: int) -> list[int]:
    """The seqs of the chat messages in a group that this user promoted to reports (their own reports only)."""
    seqs = Report.objects.filter(reporter=user, source=Source.CHAT, chat_proof__group=group_id).values_list(
        "chat_proof__seq", flat=True
    )
    return sorted({int(seq) for seq in seqs if isinstance(seq, int)})


@dataclass(frozen=True)
class InboxFilters:
    kind: str = ""
    street_id: int | None = None
    status: str = ""  # "" = every open status; "all" = everything
    since: datetime | None = None
    until: datetime | None = None


def inbox_reports(*, user: User, filters: InboxFilters) -> QuerySet[Report]:
    """The triage queue: top-level reports `user` may see, newest first, filtered."""
    qs = (
        Report.objects.visible_to(user)
        .filter(addendum_to__isnull=True)
        .select_related("street", "reporter", "reporter_business", "assignee", "case")
        .annotate(addendum_count=Count("addenda", distinct=True), file_count=Count("files", distinct=True))
    )
    if filters.kind:
        qs = qs.filter(kind=filters.kind)
    if filters.street_id:
        qs = qs.filter(street_id=filters.street_id)
    if filters.status == "all":
        pass
    elif filters.status:
        qs = qs.filter(status=filters.status)
    else:
        qs = qs.exclude(status=Status.CLOSED)
    if filters.since:
        qs = qs.filter(occurred_at__gte=filters.since)
    if filters.until:
        qs = qs.filter(occurred_at__lte=filters.until)
    return qs.order_by("-occurred_at", "-id")


@dataclass(frozen=True)
class Nearby:
    report: Report
    distance_m: float | None  # None: matched by street, no pin


def reports_similar_nearby(
    *, kind: str, at: datetime, latitude: float | None = None, longitude: float | None = None,
    street_id: int | None = None, exclude_id: int | None = None, limit: int = 5,
) -> list[Nearby]:
    """Open top-level reports of the same kind within ~100 m (or, without a pin, on the same street) and
    2 hours of `at`, nearest first.

    Not filtered by viewer: callers show other people's matches only as kind, time, street and distance.
    """
    qs = (
        Report.objects.filter(
            kind=kind,
            addendum_to__isnull=True,
            occurred_at__gte=at - DUPLICATE_WINDOW,
            occurred_at__lte=at + DUPLICATE_WINDOW,
        )
        .exclude(status=Status.CLOSED)
        .select_related("street")
        .annotate(addendum_count=Count("addenda"))
    )
    if exclude_id is not None:
        qs = qs.exclude(pk=exclude_id)
    found = []
    if latitude is not None and longitude is not None:
        for report in qs.filter(_bounding_box(latitude, longitude, DUPLICATE_RADIUS_M))[:200]:
            d = distance_m(latitude, longitude, float(report.latitude), float(report.longitude))  # type: ignore[arg-type]
            if d <= DUPLICATE_RADIUS_M:
                found.append(Nearby(report=report, distance_m=d))
        if street_id is not None:
            # Reports filed without a pin are matched by street.
            for report in qs.filter(street_id=street_id, latitude__isnull=True)[:50]:
                found.append(Nearby(report=report, distance_m=None))
    elif street_id is not None:
        found = [Nearby(report=report, distance_m=None) for report in qs.filter(street_id=street_id)[:200]]
    found.sort(key=lambda n: (n.distance_m if n.distance_m is not None else DUPLICATE_RADIUS_M, -n.report.pk))
    return found[:limit]


def street_nearest(*, latitude: float, longitude: float) -> Street | None:
    """The street of the nearest member business with known coordinates, if one is close enough."""
    best: tuple[float, int] | None = None
    candidates = Business.objects.filter(
        _bounding_box(latitude, longitude, STREET_MATCH_RADIUS_M)
    ).values_list("latitude", "longitude", "street_id")
    for lat, lng, street_id in candidates:
        d = distance_m(latitude, longitude, float(lat), float(lng))
        if d <= STREET_MATCH_RADIUS_M and (best is None or d < best[0]):
            best = (d, street_id)
    return Street.objects.filter(pk=best[1]).first() if best else None


def map_default_for(*, user: User) -> tuple[float, float]:
    """Where the pin starts: the reporter's business, else the town centre."""
    business = user.business
    if business is not None and business.latitude is not None and business.longitude is not None:
        return float(business.latitude), float(business.longitude)
    lat, lng = settings.REPORT_MAP_DEFAULT
    return float(lat), float(lng)


def street_points() -> list[dict[str, object]]:
    """Business locations with their street, for the form's pin-to-street lookup (no geocoder needed)."""
    return [
        {"lat": float(lat), "lng": float(lng), "street": street_id}
        for lat, lng, street_id in Business.objects.filter(
            latitude__isnull=False, longitude__isnull=False, status=Business.Status.ACTIVE
        ).values_list("latitude", "longitude", "street_id")
    ]


def assignable_officers() -> QuerySet[User]:
    return User.objects.filter(role=Role.CASE_OFFICER, is_active=True).order_by("full_name")
