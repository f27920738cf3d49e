"""Members forms: they parse and validate input; the services in members/services.py do the work."""

from __future__ import annotations

import re
from datetime import datetime, time
from typing import Any

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet
from django.utils import timezone

from members.csv_import import COLUMNS, MAX_BYTES
from members.models import Agreement, AuditEvent, Business, Role, Street, StreetGroup, User
from members.policies import GROUP_SEAT_ROLES, invitable_roles

_PHONE = re.compile(r"^\+?[0-9 ()\-]{7,20}$")


class ApplicationForm(forms.Form):
    name = forms.CharField(label="Business name", max_length=160)
    trading_address = forms.CharField(label="Trading address", max_length=255,
                                      help_text="The shop or premises address in the town centre.")
    street = forms.ModelChoiceField(label="Street", queryset=Street.objects.all(), empty_label="Choose a street")
    contact_name = forms.CharField(label="Contact name", max_length=120,
                                   widget=forms.TextInput(attrs={"autocomplete": "name"}))
    contact_email = forms.EmailField(label="Contact email", widget=forms.EmailInput(attrs={"autocomplete": "email"}),
                                     help_text="We send the decision and, if approved, your invitation here.")
    contact_phone = forms.CharField(label="Contact phone", max_length=40, required=False,
                                    widget=forms.TextInput(attrs={"autocomplete": "tel", "inputmode": "tel"}))

    def clean_contact_phone(self) -> str:
        phone: str = self.cleaned_data["contact_phone"].strip()
        if phone and not _PHONE.match(phone):
            raise ValidationError("Enter a phone number using digits, spaces and an optional leading +.")
        return phone


class DecisionForm(forms.Form):
    # The two submit buttons carry the decision.
    decision = forms.ChoiceField(choices=[("approve", "Approve"), ("reject", "Reject")])
    reason = forms.CharField(label="Reason", required=False, max_length=1000, widget=forms.Textarea(attrs={"rows": 2}),
                             help_text="Sent to the applicant. Required to reject.")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("decision") == "reject" and not data.get("reason", "").strip():
            self.add_error("reason", "Give a reason: it is sent to the applicant.")
        return data


class ReasonForm(forms.Form):
    reason = forms.CharField(label="Reason", max_length=255, widget=forms.TextInput(),
                             help_text="Kept in the audit trail.")


class OptionalReasonForm(forms.Form):
    reason = forms.CharField(label="Reason (optional)", max_length=255, required=False)


class LevyUploadForm(forms.Form):
    file = forms.FileField(label="Levy roll (CSV file)", help_text="Columns: " + ", ".join(COLUMNS) + ".",
                           widget=forms.ClearableFileInput(attrs={"accept": ".csv,text/csv"}))
    create_streets = forms.BooleanField(label="Create new streets named in the file", required=False)

    def clean_file(self) -> Any:
        upload = self.cleaned_data["file"]
        if upload.size > MAX_BYTES:
            raise ValidationError(f"The file is larger than {MAX_BYTES // (1024 * 1024)} MB.")
        return upload


class LevyConfirmForm(forms.Form):
    digest = forms.CharField(widget=forms.HiddenInput, max_length=64)


class InvitationForm(forms.Form):
    email = forms.EmailField(label="Email", widget=forms.EmailInput(attrs={"autocomplete": "off"}))
    full_name = forms.CharField(label="Name", max_length=120, required=False)
    role = forms.ChoiceField(label="Role")
    business = forms.ModelChoiceField(label="Business", queryset=Business.objects.none(), required=False,
                                      help_text="Only for business staff and managers.")

    def __init__(self, *args: Any, actor: User, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        labels = dict(Role.choices)
        self.fields["role"].choices = [(role, labels[role]) for role in invitable_roles(actor)]
        if actor.role == Role.BID_ADMIN:
            self.fields["business"].queryset = Business.objects.filter(status=Business.Status.ACTIVE)
        else:
            del self.fields["business"]


class InvitationAcceptForm(forms.Form):
    full_name = forms.CharField(label="Your name", max_length=120,
                                widget=forms.TextInput(attrs={"autocomplete": "name"}))
    password1 = forms.CharField(label="Choose a password", strip=False,
                                widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
                                help_text="At least 10 characters; not a common password.")
    password2 = forms.CharField(label="Type the password again", strip=False,
                                widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("password1") and data.get("password2") and data["password1"] != data["password2"]:
            self.add_error("password2", "The two passwords differ.")
        return data


_RETENTION_UNITS = {"hours": 3600, "days": 86400}


def retention_label(seconds: int) -> str:
    """"7 days", "1 hour": how long a group keeps messages, in words."""
    value, unit = (seconds // 86400, "day") if seconds % 86400 == 0 else (seconds // 3600, "hour")
    return f"{value} {unit}{'' if value == 1 else 's'}"


class StreetGroupForm(forms.Form):
    name = forms.CharField(label="Name", max_length=120)
    kind = forms.ChoiceField(label="Kind", choices=StreetGroup.Kind.choices)
    description = forms.CharField(label="Description", max_length=255, required=False)
    streets = forms.ModelMultipleChoiceField(
        label="Streets", queryset=Street.objects.all(), required=False, widget=forms.CheckboxSelectMultiple,
        help_text="Every active business on these streets is a member automatically.")
    businesses = forms.ModelMultipleChoiceField(
        label="Extra businesses", queryset=Business.objects.filter(status=Business.Status.ACTIVE), required=False,
        widget=forms.SelectMultiple(attrs={"size": 8}), help_text="Businesses that belong although they trade elsewhere.")
    retention_value = forms.IntegerField(label="Keep messages for", min_value=1, initial=7)
    retention_unit = forms.ChoiceField(label="Unit", choices=[("hours", "hours"), ("days", "days")], initial="days",
                                       help_text="Between 1 hour and 90 days.")
    archived = forms.BooleanField(label="Archived (nobody can read or post)", required=False)

    @classmethod
    def initial_for(cls, group: StreetGroup) -> dict[str, Any]:
        seconds = group.retention_seconds
        value, unit = (seconds // 86400, "days") if seconds % 86400 == 0 else (seconds // 3600, "hours")
        return {"name": group.name, "kind": group.kind, "description": group.description,
                "streets": list(group.streets.all()), "businesses": list(group.businesses.all()),
                "retention_value": value, "retention_unit": unit, "archived": group.archived_at is not None}

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("retention_value") and data.get("retention_unit"):
            seconds = data["retention_value"] * _RETENTION_UNITS[data["retention_unit"]]
            if not settings.GROUP_RETENTION_MIN_SECONDS <= seconds <= settings.GROUP_RETENTION_MAX_SECONDS:
                self.add_error("retention_value", "Keep messages for between 1 hour and 90 days.")
            data["retention_seconds"] = seconds
        return data


class GroupMemberForm(forms.Form):
    user = forms.ModelChoiceField(label="Person", queryset=User.objects.none(), empty_label="Choose a person")
    is_moderator = forms.BooleanField(label="Moderator", required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["user"].queryset = User.objects.filter(role__in=GROUP_SEAT_ROLES, is_active=True)
        self.fields["user"].label_from_instance = lambda u: f"{u.full_name} ({u.get_role_display()})"


class AgreementPublishForm(forms.Form):
    kind = forms.ChoiceField(label="Document", choices=Agreement.Kind.choices)
    title = forms.CharField(label="Title", max_length=160)
    body = forms.CharField(label="Text", widget=forms.Textarea(attrs={"rows": 12}))


class AuditSearchForm(forms.Form):
    actor = forms.CharField(label="Actor (name or email)", max_length=120, required=False)
    subject = forms.CharField(label="Subject (name or email)", max_length=120, required=False)
    action = forms.CharField(label="Action", max_length=60, required=False,
                             help_text="For example user.disable, or personal_data.view.")
    object_type = forms.CharField(label="Object type", max_length=60, required=False)
    object_id = forms.CharField(label="Object id", max_length=64, required=False)
    date_from = forms.DateField(label="From (date)", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(label="To (date, inclusive)", required=False,
                              widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("date_from") and data.get("date_to") and data["date_from"] > data["date_to"]:
            self.add_error("date_to", "The end date is before the start date.")
        return data

    def filters(self) -> dict[str, str]:
        """The filters in use, as text (what the audit of this search records)."""
        data = getattr(self, "cleaned_data", {})
        return {key: str(value) for key, value in data.items() if value not in (None, "")}

    def events(self) -> QuerySet[AuditEvent]:
        """Audit events matching the (valid) filters, newest first."""
        data = getattr(self, "cleaned_data", {})
        events = AuditEvent.objects.all()
        if data.get("actor"):
            events = events.filter(Q(actor_label__icontains=data["actor"]))
        if data.get("subject"):
            events = events.filter(Q(subject_label__icontains=data["subject"]))
        if data.get("action"):
            events = events.filter(action__istartswith=data["action"])
        if data.get("object_type"):
            events = events.filter(object_type__iexact=data["object_type"])
        if data.get("object_id"):
            events = events.filter(object_id=data["object_id"])
        tz = timezone.get_current_timezone()
        if data.get("date_from"):
            events = events.filter(at__gte=datetime.combine(data["date_from"], time.min, tzinfo=tz))
        if data.get("date_to"):
            events = events.filter(at__lte=datetime.combine(data["date_to"], time.max, tzinfo=tz))
        return events.order_by("-at", "-id")
