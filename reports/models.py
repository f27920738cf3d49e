"""Incident reports from members, the evidence attached to them, and the officers' side: notes and cases."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, ClassVar

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from members.models import Business, Role, Street, User


class Category(models.TextChoices):
    ASB = "asb", "Anti-social behaviour"
    CRIME = "crime", "Low-level crime"
    INTELLIGENCE = "intelligence", "Intelligence"
    PUBLIC_REALM = "public_realm", "Public realm"


class Kind(models.TextChoices):
    BEGGING = "begging", "Begging"
    STREET_DRINKING = "street_drinking", "Street drinking"
    AGGRESSIVE_BEHAVIOUR = "aggressive_behaviour", "Aggressive behaviour"
    DRUGS = "drugs", "Drug use or dealing"
    ROUGH_SLEEPING = "rough_sleeping", "Rough sleeping"
    ENCAMPMENT = "encampment", "Encampment"
    CRIMINAL_DAMAGE = "criminal_damage", "Criminal damage"
    GRAFFITI = "graffiti", "Graffiti"
    FLY_TIPPING = "fly_tipping", "Fly-tipping"
    SHOP_THEFT = "shop_theft", "Shop theft"
    INFORMATION = "information", "Actionable information"
    CCTV_STILLS = "cctv_stills", "CCTV stills"
    PUBLIC_REALM = "public_realm", "Street problem (lighting, paving, bins)"


@dataclass(frozen=True)
class KindInfo:
    category: Category
    # Rough sleeping and encampments are a welfare referral first (outreach), not only enforcement.
    welfare_first: bool = False


KINDS: dict[str, KindInfo] = {
    Kind.BEGGING: KindInfo(Category.ASB),
    Kind.STREET_DRINKING: KindInfo(Category.ASB),
    Kind.AGGRESSIVE_BEHAVIOUR: KindInfo(Category.ASB),
    Kind.DRUGS: KindInfo(Category.ASB),
    Kind.ROUGH_SLEEPING: KindInfo(Category.ASB, welfare_first=True),
    Kind.ENCAMPMENT: KindInfo(Category.ASB, welfare_first=True),
    Kind.CRIMINAL_DAMAGE: KindInfo(Category.CRIME),
    Kind.GRAFFITI: KindInfo(Category.CRIME),
    Kind.FLY_TIPPING: KindInfo(Category.CRIME),
    Kind.SHOP_THEFT: KindInfo(Category.CRIME),
    Kind.INFORMATION: KindInfo(Category.INTELLIGENCE),
    Kind.CCTV_STILLS: KindInfo(Category.INTELLIGENCE),
    Kind.PUBLIC_REALM: KindInfo(Category.PUBLIC_REALM),
}
WELFARE_FIRST_KINDS = frozenset(kind for kind, info in KINDS.items() if info.welfare_first)
OUTREACH_NOTE = (
    "Someone sleeping rough or living in a tent may need help first. Your report goes to the council, who "
    "refer people to the street outreach team before any enforcement."
)


def kinds_by_category() -> list[tuple[Category, list[Kind]]]:
    """The kinds grouped under their categories, in display order."""
    return [(category, [Kind(k) for k, info in KINDS.items() if info.category == category]) for category in Category]


class Status(models.TextChoices):
    NEW = "new", "New"
    TRIAGED = "triaged", "Triaged"
    ASSIGNED = "assigned", "Assigned"
    ACTION_TAKEN = "action_taken", "Action taken"
    CLOSED = "closed", "Closed"
    REFERRED_TO_OUTREACH = "referred_to_outreach", "Referred to outreach"


# Which statuses an officer may move a report to from each status.
TRANSITIONS: dict[str, frozenset[str]] = {
    Status.NEW: frozenset({Status.TRIAGED, Status.ASSIGNED, Status.CLOSED, Status.REFERRED_TO_OUTREACH}),
    Status.TRIAGED: frozenset({Status.ASSIGNED, Status.CLOSED, Status.REFERRED_TO_OUTREACH}),
    Status.ASSIGNED: frozenset({Status.ACTION_TAKEN, Status.CLOSED, Status.REFERRED_TO_OUTREACH}),
    Status.ACTION_TAKEN: frozenset({Status.ASSIGNED, Status.CLOSED}),
    Status.REFERRED_TO_OUTREACH: frozenset({Status.TRIAGED, Status.CLOSED}),
    Status.CLOSED: frozenset({Status.TRIAGED}),  # reopen
}
OPEN_STATUSES = frozenset(Status) - {Status.CLOSED}

# Who sees reports at all besides their reporter; police see only the reports an officer shares with them.
REPORT_AUTHORITY_ROLES = frozenset({Role.CASE_OFFICER, Role.POLICE, Role.BID_ADMIN})
# Who files reports: people at member businesses, and wardens on patrol.
REPORTER_ROLES = frozenset({Role.STAFF, Role.MANAGER, Role.WARDEN})


class Source(models.TextChoices):
    FORM = "form", "Report form"
    CHAT = "chat", "Promoted from chat"


class ReportQuerySet(models.QuerySet["Report"]):
    def visible_to(self, user: User) -> ReportQuerySet:
        """Reports `user` may see: their own; all for case officers and BID admins; shared ones for police."""
        if not user.is_authenticated or not user.is_active:
            return self.none()
        if user.role in {Role.CASE_OFFICER, Role.BID_ADMIN}:
            return self.all()
        if user.role == Role.POLICE:
            return self.filter(Q(shared_with_police=True) | Q(addendum_to__shared_with_police=True))
        return self.filter(reporter=user)


class Case(models.Model):
    """A case gathers reports about one person or place (for the galleries and orders that come later)."""

    class About(models.TextChoices):
        PERSON = "person", "A person"
        PLACE = "place", "A place"

    title = models.CharField(max_length=160)
    about = models.CharField(max_length=10, choices=About.choices)
    description = models.TextField(blank=True, default="")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.title


class Report(models.Model):
    reporter = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="reports")
    # Where the reporter worked when they reported (people move on; the record should not).
    reporter_business = models.ForeignKey(
        Business, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Generated by the phone before the first attempt, so a resubmission from the outbox is recognised.
    client_id = models.UUIDField(default=uuid.uuid4)
    kind = models.CharField(max_length=30, choices=Kind.choices)
    occurred_at = models.DateTimeField()
    occurred_until = models.DateTimeField(null=True, blank=True)
    latitude = models.DecimalField(max_digits=9, decimal_places=6, null=True, blank=True)
    longitude = models.DecimalField(max_digits=9, decimal_places=6, null=True, blank=True)
    street = models.ForeignKey(Street, null=True, blank=True, on_delete=models.SET_NULL, related_name="reports")
    place_note = models.CharField(max_length=200, blank=True, default="")
    description = models.TextField()
    people_description = models.TextField(blank=True, default="")
    # An addendum adds one member's account to a report someone else already made (duplicates).
    addendum_to = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="addenda"
    )

    status = models.CharField(max_length=24, choices=Status.choices, default=Status.NEW, db_index=True)
    status_reason = models.TextField(blank=True, default="")
    status_changed_at = models.DateTimeField(default=timezone.now)
    reporter_seen_at = models.DateTimeField(default=timezone.now)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="assigned_reports"
    )
    shared_with_police = models.BooleanField(default=False)
    case = models.ForeignKey(Case, null=True, blank=True, on_delete=models.SET_NULL, related_name="reports")

    # Promote-from-chat (issue 5 item 5) fills these: the franking proof as submitted and the verifier's result.
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.FORM)
    chat_proof = models.JSONField(null=True, blank=True)
    verification = models.JSONField(null=True, blank=True)

    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    objects = ReportQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints: ClassVar[list[Any]] = [
            models.UniqueConstraint("reporter", "client_id", name="report_unique_client_id"),
            models.CheckConstraint(
                condition=Q(latitude__isnull=True, longitude__isnull=True)
                | Q(latitude__gte=-90, latitude__lte=90, longitude__gte=-180, longitude__lte=180),
                name="report_coordinates_valid",
            ),
            models.CheckConstraint(
                condition=Q(occurred_until__isnull=True) | Q(occurred_until__gte=models.F("occurred_at")),
                name="report_window_ordered",
            ),
        ]
        indexes: ClassVar[list[Any]] = [models.Index(fields=["kind", "occurred_at"])]

    def __str__(self) -> str:
        return f"Report {self.pk}: {self.get_kind_display()}"

    @property
    def category(self) -> Category:
        return KINDS[self.kind].category

    @property
    def welfare_first(self) -> bool:
        return self.kind in WELFARE_FIRST_KINDS

    @property
    def is_open(self) -> bool:
        return self.status != Status.CLOSED

    @property
    def status_unseen(self) -> bool:
        """The status changed since the reporter last looked at their reports."""
        return self.status_changed_at > self.reporter_seen_at


class StatusChange(models.Model):
    """The history of a report's status, which its reporter follows (without seeing who changed it)."""

    report = models.ForeignKey(Report, on_delete=models.CASCADE, related_name="status_changes")
    from_status = models.CharField(max_length=24, choices=Status.choices)
    to_status = models.CharField(max_length=24, choices=Status.choices)
    reason = models.TextField(blank=True, default="")
    by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.from_status} -> {self.to_status}"


class ReportFile(models.Model):
    """One image as received (private original) plus the re-encoded copy and thumbnail everyone else sees."""

    report = models.ForeignKey(Report, on_delete=models.CASCADE, related_name="files")
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    original_name = models.CharField(max_length=200, blank=True, default="")
    content_type = models.CharField(max_length=40)
    size = models.PositiveIntegerField()
    # SHA-256 of the bytes exactly as received: evidence integrity for the police export.
    sha256 = models.CharField(max_length=64, db_index=True)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    original_path = models.CharField(max_length=255)
    display_path = models.CharField(max_length=255)
    thumb_path = models.CharField(max_length=255)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"File {self.pk} of report {self.report_id}"


class Note(models.Model):
    """An internal note by an officer (or a police intelligence note): never shown to the reporter."""

    class Kind(models.TextChoices):
        INTERNAL = "internal", "Internal note"
        INTELLIGENCE = "intelligence", "Police intelligence"

    report = models.ForeignKey(Report, on_delete=models.CASCADE, related_name="notes")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.INTERNAL)
    text = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} on report {self.report_id}"
