"""The alerts pages' forms: a member's alert preferences and a warden's broadcast (plain POST, works without JS)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django import forms
from django.utils import timezone

from alerts.models import Broadcast
from members.models import Role, Street, StreetGroup, User
from members.selectors import street_groups_of_user

TIME_INPUT = forms.TimeInput(attrs={"type": "time"}, format="%H:%M")
# (minutes, label); empty: the alert stays until someone deletes it (it never expires).
EXPIRY_CHOICES = [
    ("60", "In 1 hour"),
    ("240", "In 4 hours"),
    ("720", "In 12 hours"),
    ("1440", "In 24 hours"),
    ("4320", "In 3 days"),
    ("10080", "In 7 days"),
    ("", "Never"),
]


class PrefsForm(forms.Form):
    quiet_start = forms.TimeField(label="Quiet from", required=False, widget=TIME_INPUT)
    quiet_end = forms.TimeField(label="Quiet until", required=False, widget=TIME_INPUT)
    no_preview = forms.BooleanField(
        label="No preview: hide what alerts and messages say on the lock screen", required=False,
    )
    muted_groups = forms.ModelMultipleChoiceField(
        label="Mute these groups (urgent messages still come through)", required=False,
        queryset=StreetGroup.objects.none(), widget=forms.CheckboxSelectMultiple,
    )

    def __init__(self, *args: Any, user: User, **kwargs: Any) -> None:
        super().__init__(*args, label_suffix="", **kwargs)
        self.fields["muted_groups"].queryset = street_groups_of_user(user=user).order_by("name")  # type: ignore[attr-defined]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if (data.get("quiet_start") is None) != (data.get("quiet_end") is None):
            raise forms.ValidationError("Quiet hours need both a start and an end time, or neither.")
        return data


class BroadcastForm(forms.Form):
    title = forms.CharField(label="Title", max_length=120)
    text = forms.CharField(label="Text", max_length=2000, widget=forms.Textarea(attrs={"rows": 4}))
    priority = forms.ChoiceField(
        label="Priority", choices=Broadcast.Priority.choices, initial=Broadcast.Priority.INFO,
        widget=forms.RadioSelect, help_text="Urgent alerts come through quiet hours and stay on screen until tapped.",
    )
    audience_all = forms.BooleanField(label="Everyone in the scheme", required=False)
    groups = forms.ModelMultipleChoiceField(
        label="Street groups", required=False, widget=forms.CheckboxSelectMultiple,
        queryset=StreetGroup.objects.filter(archived_at__isnull=True).order_by("name"),
    )
    streets = forms.ModelMultipleChoiceField(
        label="Streets (people of the businesses there)", required=False, widget=forms.CheckboxSelectMultiple,
        queryset=Street.objects.order_by("name"),
    )
    roles = forms.MultipleChoiceField(label="Roles", required=False, choices=Role.choices,
                                      widget=forms.CheckboxSelectMultiple)
    photo = forms.FileField(label="Photo (optional)", required=False,
                            widget=forms.FileInput(attrs={"accept": "image/jpeg,image/png,image/webp"}))
    expires_in = forms.ChoiceField(label="Expires", choices=EXPIRY_CHOICES, initial="240", required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, label_suffix="", **kwargs)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if not (data.get("audience_all") or data.get("groups") or data.get("streets") or data.get("roles")):
            raise forms.ValidationError("Choose who gets it: everyone, or some groups, streets or roles.")
        return data

    def expires_at(self) -> datetime | None:
        minutes = self.cleaned_data.get("expires_in")
        return timezone.now() + timedelta(minutes=int(minutes)) if minutes else None
