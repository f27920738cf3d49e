"""Street-chat storage: each group's stream of sequenced events, and who is connected now.

The server never reads an envelope: it is end-to-end encrypted by the clients and stored as opaque bytes.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.conf import settings
from django.db import models
from django.utils import timezone

from members.models import StreetGroup


class GroupSequence(models.Model):
    """The last sequence number handed out in a group: the row writers lock to keep seqs gapless."""

    group = models.OneToOneField(StreetGroup, on_delete=models.CASCADE, primary_key=True, related_name="+")
    last_seq = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"group {self.group_id} at seq {self.last_seq}"


class Message(models.Model):
    """One event in a group's stream: a message, or the retraction (tombstone) of an earlier one."""

    class Kind(models.TextChoices):
        MESSAGE = "message", "Message"
        RETRACTION = "retraction", "Retraction"

    group = models.ForeignKey(StreetGroup, on_delete=models.CASCADE, related_name="chat_events")
    seq = models.BigIntegerField()
    kind = models.CharField(max_length=12, choices=Kind.choices, default=Kind.MESSAGE)
    # Kept (and shown as null) if the account is ever erased; accounts are normally disabled, not deleted.
    sender = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    sender_device = models.CharField(max_length=64, blank=True, default="")
    # The sender's idempotency key: a retry with the same key returns the original event.
    client_id = models.UUIDField(null=True, blank=True)
    envelope = models.BinaryField(default=b"")
    urgent = models.BooleanField(default=False)
    # For a retraction: the seq of the message it withdraws.
    target_seq = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(db_index=True)
    retracted_at = models.DateTimeField(null=True, blank=True)
    retracted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["group", "seq"]
        constraints: ClassVar[list[Any]] = [
            models.UniqueConstraint("group", "seq", name="chat_message_unique_seq"),
            models.UniqueConstraint(
                "sender", "client_id", condition=models.Q(client_id__isnull=False), name="chat_message_unique_client_id"
            ),
            models.UniqueConstraint(
                "group", "target_seq", condition=models.Q(kind="retraction"), name="chat_message_one_retraction"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.group_id}#{self.seq}"


class HubConnection(models.Model):
    """One open hub socket, for presence. A row whose last_seen is stale is ignored (its process died)."""

    channel_name = models.CharField(max_length=200, unique=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    device = models.CharField(max_length=64, blank=True, default="")
    connected_at = models.DateTimeField(default=timezone.now)
    last_seen = models.DateTimeField(default=timezone.now, db_index=True)

    def __str__(self) -> str:
        return f"{self.user_id} on {self.channel_name}"
