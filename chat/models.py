"""Street-chat storage: each group's stream of sequenced events, who is connected now, and the E2EE key
directory (devices, group epochs and their wraps), server franking keys and encrypted attachment blobs.

The server never decrypts an envelope: it is end-to-end encrypted by the clients (docs/security.md). It reads
only the envelope's header, to check who sent it in which epoch and to tag it for franking.
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
    # From the envelope's header (checked against the group's current epoch when it was sent).
    epoch = models.PositiveIntegerField(null=True, blank=True)
    # The server's franking tag over the header's commitment (docs/security.md §6): key id, tag, time in ms.
    franking_kid = models.CharField(max_length=32, blank=True, default="")
    franking_tag = models.BinaryField(default=b"")
    franking_time = models.BigIntegerField(null=True, blank=True)
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


class Device(models.Model):
    """One device's public keys in the key directory. Keys never change: a new key pair is a new device."""

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting for approval"
        APPROVED = "approved", "Approved"
        REVOKED = "revoked", "Revoked"

    device_id = models.CharField(max_length=64, primary_key=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_devices")
    label = models.CharField(max_length=100, blank=True, default="")
    # Raw 32-byte public keys as unpadded base64url, exactly as the device sent them.
    sign_pub = models.CharField(max_length=43)
    dh_pub = models.CharField(max_length=43)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True)
    created_at = models.DateTimeField(default=timezone.now)
    approved_at = models.DateTimeField(null=True, blank=True)
    # Empty for a user's first device (or after a re-enrolment); else the approving device and its signature.
    approved_by = models.CharField(max_length=64, blank=True, default="")
    approval_signature = models.CharField(max_length=86, blank=True, default="")
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_reason = models.CharField(max_length=20, blank=True, default="")

    class Meta:
        ordering = ["user", "created_at"]

    def __str__(self) -> str:
        return f"device {self.device_id} of {self.user_id} ({self.status})"


class GroupEpoch(models.Model):
    """One epoch of a group's key: the signed rotation record exactly as the rotating device sent it."""

    group = models.ForeignKey(StreetGroup, on_delete=models.CASCADE, related_name="chat_epochs")
    epoch = models.PositiveIntegerField()
    rotation = models.TextField()  # canonical JSON (docs/security.md §4)
    by_device = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["group", "epoch"]
        constraints: ClassVar[list[Any]] = [models.UniqueConstraint("group", "epoch", name="chat_epoch_unique")]

    def __str__(self) -> str:
        return f"group {self.group_id} epoch {self.epoch}"


class EpochWrap(models.Model):
    """An epoch key wrapped to one device (a copy of the rotation's entry, so recipients can be queried)."""

    epoch = models.ForeignKey(GroupEpoch, on_delete=models.CASCADE, related_name="wraps")
    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="wraps")
    wrap = models.JSONField()

    class Meta:
        constraints: ClassVar[list[Any]] = [models.UniqueConstraint("epoch", "device", name="chat_wrap_unique")]

    def __str__(self) -> str:
        return f"wrap of {self.epoch} to {self.device_id}"


class FrankingKey(models.Model):
    """A server franking key (HMAC). Rotated daily; destroyed FRANKING_KEY_DAYS + 1 day after creation."""

    kid = models.CharField(max_length=32, primary_key=True)
    secret = models.BinaryField()
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    retired_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"franking key {self.kid}"


class Blob(models.Model):
    """An encrypted attachment: opaque bytes under MEDIA_ROOT/chat-blobs/ (never served publicly)."""

    blob_id = models.CharField(max_length=64, primary_key=True)
    group = models.ForeignKey(StreetGroup, on_delete=models.CASCADE, related_name="+")
    sender = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    size = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64)  # hex digest of the ciphertext
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"blob {self.blob_id} in {self.group_id}"
