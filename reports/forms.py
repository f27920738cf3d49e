"""Parsing of the report form (used by the page and the API alike) and the officers' small forms."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, time
from decimal import Decimal
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils import timezone

from members.models import Street, User
from reports.models import Case, Kind, Status
from reports.selectors import InboxFilters, assignable_officers
from reports.services import ReportCreateResult, Upload, report_create, report_create_from_chat

LOCAL_DATETIME = forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")
KIND_ERRORS = {"required": "Choose what kind of incident this is.", "invalid_choice": "Choose a kind from the list."}


class ReportForm(forms.Form):
    kind = forms.ChoiceField(choices=Kind.choices, widget=forms.RadioSelect, error_messages=KIND_ERRORS)
    description = forms.CharField(
        label="What happened", max_length=5000, widget=forms.Textarea(attrs={"rows": 4}),
        error_messages={"required": "Say in a sentence what happened."},
    )
    # Empty means "now": a simple report needs only the kind and a sentence.
    occurred_at = forms.DateTimeField(label="Started (empty: just now)", required=False, widget=LOCAL_DATETIME)
    occurred_until = forms.DateTimeField(label="Ended (optional)", required=False, widget=LOCAL_DATETIME)
    latitude = forms.FloatField(required=False, min_value=-90, max_value=90)
    longitude = forms.FloatField(required=False, min_value=-180, max_value=180)
    street = forms.ModelChoiceField(queryset=Street.objects.all(), required=False, empty_label="Work it out from the map")
    place_note = forms.CharField(label="Where exactly (optional)", max_length=200, required=False)
    people_description = forms.CharField(
        label="People involved (optional)", max_length=5000, required=False, widget=forms.Textarea(attrs={"rows": 3})
    )
    client_id = forms.UUIDField(required=False, widget=forms.HiddenInput)
    addendum_to = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)

    def service_kwargs(self) -> dict[str, Any]:
        data = self.cleaned_data

        def coordinate(name: str) -> Decimal | None:
            value = data.get(name)
            return None if value is None else round(Decimal(str(value)), 6)

        return {
            "kind": data["kind"],
            "description": data["description"],
            "occurred_at": data.get("occurred_at"),
            "occurred_until": data.get("occurred_until"),
            "latitude": coordinate("latitude"),
            "longitude": coordinate("longitude"),
            "street": data.get("street"),
            "place_note": data.get("place_note") or "",
            "people_description": data.get("people_description") or "",
            "client_id": data.get("client_id"),
            "addendum_to": data.get("addendum_to"),
        }


def report_form_submit(
    *, form: ReportForm, reporter: User, files: Sequence[Upload], chat_proof: Any = None
) -> ReportCreateResult | None:
    """Validate the form and file the report; on failure the form carries the errors (and None is returned).

    With `chat_proof` (promoted from a chat message) the proof is verified first: ChatProofRefused if it fails.
    """
    if not form.is_valid():
        return None
    try:
        if chat_proof:
            return report_create_from_chat(reporter=reporter, chat_proof=chat_proof, files=files,
                                           **form.service_kwargs())
        return report_create(reporter=reporter, files=files, **form.service_kwargs())
    except ValidationError as exc:
        for field, messages in exc.message_dict.items():
            form.add_error(field if field in form.fields else None, messages)
        return None


def form_errors(form: forms.Form) -> dict[str, list[str]]:
    return {field: [str(m) for m in messages] for field, messages in form.errors.items()}


class InboxFilterForm(forms.Form):
    kind = forms.ChoiceField(choices=[("", "Any kind"), *Kind.choices], required=False)
    street = forms.ModelChoiceField(queryset=Street.objects.all(), required=False, empty_label="Any street")
    status = forms.ChoiceField(
        choices=[("", "Open (not closed)"), *Status.choices, ("all", "Any status")], required=False
    )
    since = forms.DateField(label="From", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(label="To", required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def filters(self) -> InboxFilters:
        if not self.is_valid():
            return InboxFilters()
        data = self.cleaned_data
        tz = timezone.get_current_timezone()
        since = datetime.combine(data["since"], time.min, tzinfo=tz) if data.get("since") else None
        until = datetime.combine(data["until"], time.max, tzinfo=tz) if data.get("until") else None
        street = data.get("street")
        return InboxFilters(
            kind=data.get("kind") or "", street_id=street.pk if street else None, status=data.get("status") or "",
            since=since, until=until,
        )


class StatusForm(forms.Form):
    status = forms.ChoiceField(choices=Status.choices)
    reason = forms.CharField(
        label="Reason (the reporter sees this)", required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2})
    )
    assignee = forms.ModelChoiceField(queryset=User.objects.none(), required=False, label="Assign to")

    def __init__(self, *args: Any, allowed: Sequence[str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["assignee"].queryset = assignable_officers()  # type: ignore[attr-defined]
        if allowed is not None:
            self.fields["status"].choices = [(v, label) for v, label in Status.choices if v in allowed]  # type: ignore[attr-defined]


class NoteForm(forms.Form):
    text = forms.CharField(label="Note", max_length=10_000, widget=forms.Textarea(attrs={"rows": 3}))


class ShareForm(forms.Form):
    shared = forms.BooleanField(required=False)


class CaseForm(forms.Form):
    title = forms.CharField(max_length=160)
    about = forms.ChoiceField(choices=Case.About.choices, widget=forms.RadioSelect)
    description = forms.CharField(required=False, max_length=5000, widget=forms.Textarea(attrs={"rows": 3}))


class CaseChoiceForm(forms.Form):
    case = forms.ModelChoiceField(
        queryset=Case.objects.filter(closed_at__isnull=True), required=False, empty_label="No case"
    )
