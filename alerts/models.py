"""Alerts: push devices, per-user alert preferences, wardens' broadcasts and the Web Push delivery queue.

Alerts knows no chat, report or gallery models: callers hand it an already-built payload.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.conf import settings
from django.db import models
from django.utils import timezone

from members.models import Street, StreetGroup


class PushSubscription(models.Model):
    """One browser or phone that accepted push notifications (what PushManager.subscribe() returned)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="push_subscriptions")
    label = models.CharField(max_length=80, blank=True, default="")
    endpoint = models.URLField(max_length=2048, unique=True)
    p256dh = models.CharField(max_length=128)
    auth = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)
    last_success_at = models.DateTimeField(null=True, blank=True)
    failure_count = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return self.label or f"device {self.pk}"


class AlertPrefs(models.Model):
    """How and when one person wants to be disturbed."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="alert_prefs")
    # Local time (settings.TIME_ZONE). A window may wrap midnight (22:00-07:00). Both empty: no quiet hours.
    quiet_start = models.TimeField(null=True, blank=True)
    quiet_end = models.TimeField(null=True, blank=True)
    # Lock screens show only "New alert" without title or text.
    no_preview = models.BooleanField(default=False)
    muted_groups = models.ManyToManyField(StreetGroup, blank=True, related_name="+")
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"alert preferences of user {self.user_id}"


class Broadcast(models.Model):
    """A warden's or BID admin's alert to chosen members: in-app banner plus push."""

    class Priority(models.TextChoices):
        INFO = "info", "Info"
        WARNING = "warning", "Warning"
        URGENT = "urgent", "Urgent"

    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="broadcasts")
    title = models.CharField(max_length=120)
    text = models.TextField(max_length=2000)
    priority = models.CharField(max_length=10, choices=Priority.choices, default=Priority.INFO)
    # The audience is the union of everything chosen; audience_all overrides the rest.
    audience_all = models.BooleanField(default=False)
    audience_groups = models.ManyToManyField(StreetGroup, blank=True, related_name="+")
    audience_streets = models.ManyToManyField(Street, blank=True, related_name="+")
    audience_roles = models.JSONField(default=list, blank=True)
    # Re-encoded JPEG without EXIF; served only through a view that checks access.
    photo = models.FileField(upload_to="alerts/broadcasts/", blank=True, default="")
    expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.title

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()


class BroadcastRecipient(models.Model):
    class Via(models.TextChoices):
        SOCKET = "socket", "In-app banner"
        PUSH = "push", "Push notification"
        APP = "app", "Opened in the app"

    broadcast = models.ForeignKey(Broadcast, on_delete=models.CASCADE, related_name="recipients")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="broadcasts_received")
    delivered_at = models.DateTimeField(null=True, blank=True)
    delivered_via = models.CharField(max_length=10, choices=Via.choices, blank=True, default="")
    seen_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints: ClassVar[list[Any]] = [
            models.UniqueConstraint("broadcast", "user", name="broadcastrecipient_unique")
        ]

    def __str__(self) -> str:
        return f"broadcast {self.broadcast_id} to user {self.user_id}"


class PushDelivery(models.Model):
    """One push to one device: the delivery engine's queue row (claimed with compare-and-set)."""

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        SENT = "sent", "Accepted by the push service"
        FAILED = "failed", "Failed"
        GONE = "gone", "Device unsubscribed"

    class Urgency(models.TextChoices):
        VERY_LOW = "very-low", "Very low"
        LOW = "low", "Low"
        NORMAL = "normal", "Normal"
        HIGH = "high", "High"

    # SET_NULL: the row outlives a pruned device, so a broadcast's counts still see the failure.
    subscription = models.ForeignKey(
        PushSubscription, null=True, blank=True, on_delete=models.SET_NULL, related_name="deliveries"
    )
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    broadcast = models.ForeignKey(
        Broadcast, null=True, blank=True, on_delete=models.CASCADE, related_name="push_deliveries"
    )
    # Already-encoded JSON, small enough that the encrypted body fits 4096 bytes; never chat plaintext.
    payload = models.BinaryField()
    urgency = models.CharField(max_length=10, choices=Urgency.choices, default=Urgency.NORMAL)
    ttl = models.PositiveIntegerField()
    topic = models.CharField(max_length=32, blank=True, default="")
    expires_at = models.DateTimeField(null=True, blank=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    # The batch that holds the row while it is being sent; empty when nobody does.
    claim = models.CharField(max_length=32, blank=True, default="", db_index=True)
    last_status = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=120, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes: ClassVar[list[Any]] = [
            models.Index(fields=["state", "next_attempt_at"], name="pushdelivery_due"),
        ]

    def __str__(self) -> str:
        return f"push {self.pk} ({self.state})"
