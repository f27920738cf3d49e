"""Who belongs to the scheme, in what role, in which street groups; agreements; the audit trail."""

from __future__ import annotations

from typing import Any, ClassVar

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone


class Role(models.TextChoices):
    STAFF = "staff", "Business staff"
    MANAGER = "manager", "Business manager"
    WARDEN = "warden", "BID warden"
    BID_ADMIN = "bid_admin", "BID admin"
    CASE_OFFICER = "case_officer", "Council ASB case officer"
    POLICE = "police", "Police (business crime partnership)"
    PUBLIC_REALM = "public_realm", "Council public-realm officer"
    DPO = "dpo", "Data protection officer"


BUSINESS_ROLES = frozenset({Role.STAFF, Role.MANAGER})
# Roles that can see other people's personal data: two-factor sign-in is mandatory for them.
AUTHORITY_ROLES = frozenset(
    {Role.WARDEN, Role.BID_ADMIN, Role.CASE_OFFICER, Role.POLICE, Role.PUBLIC_REALM, Role.DPO}
)


class Street(models.Model):
    name = models.CharField(max_length=120, unique=True)
    slug = models.SlugField(max_length=120, unique=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Business(models.Model):
    class Kind(models.TextChoices):
        LEVY_PAYER = "levy_payer", "BID levy payer"
        VOLUNTARY = "voluntary", "Voluntary member"

    class Status(models.TextChoices):
        APPLIED = "applied", "Applied"
        ACTIVE = "active", "Active"
        SUSPENDED = "suspended", "Suspended"
        LAPSED = "lapsed", "Lapsed"
        REJECTED = "rejected", "Rejected"

    name = models.CharField(max_length=160)
    trading_address = models.CharField(max_length=255)
    street = models.ForeignKey(Street, on_delete=models.PROTECT, related_name="businesses")
    levy_reference = models.CharField(max_length=40, blank=True, default="")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.APPLIED)
    contact_name = models.CharField(max_length=120, blank=True, default="")
    contact_email = models.EmailField(blank=True, default="")
    contact_phone = models.CharField(max_length=40, blank=True, default="")
    latitude = models.DecimalField(max_digits=9, decimal_places=6, null=True, blank=True)
    longitude = models.DecimalField(max_digits=9, decimal_places=6, null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decision_reason = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["name"]
        constraints: ClassVar[list[Any]] = [
            models.UniqueConstraint(Lower("name"), Lower("trading_address"), name="business_unique_name_address"),
            models.UniqueConstraint(
                "levy_reference", condition=~models.Q(levy_reference=""), name="business_unique_levy_reference"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def create_user(self, email: str, password: str | None = None, **extra: Any) -> User:
        if not email:
            raise ValueError("Users need an email address")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **extra: Any) -> User:
        extra.setdefault("role", Role.BID_ADMIN)
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        return self.create_user(email, password, **extra)


class User(AbstractBaseUser, PermissionsMixin):
    email = models.EmailField(unique=True)
    full_name = models.CharField(max_length=120)
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.STAFF)
    business = models.ForeignKey(
        Business, null=True, blank=True, on_delete=models.PROTECT, related_name="people"
    )
    phone = models.CharField(max_length=40, blank=True, default="")
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False)  # Django admin access only
    date_joined = models.DateTimeField(default=timezone.now)
    disabled_at = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.CharField(max_length=255, blank=True, default="")

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = ["full_name"]

    class Meta:
        ordering = ["full_name"]
        constraints: ClassVar[list[Any]] = [
            models.CheckConstraint(
                condition=models.Q(role__in=sorted(BUSINESS_ROLES), business__isnull=False)
                | (~models.Q(role__in=sorted(BUSINESS_ROLES)) & models.Q(business__isnull=True)),
                name="user_business_matches_role",
            ),
        ]

    def __str__(self) -> str:
        return self.full_name or self.email

    def get_full_name(self) -> str:
        return self.full_name

    def get_short_name(self) -> str:
        return self.full_name.split(" ")[0] if self.full_name else self.email

    @property
    def is_authority(self) -> bool:
        return self.role in AUTHORITY_ROLES

    @property
    def requires_mfa(self) -> bool:
        return self.is_authority

    @property
    def can_use_scheme(self) -> bool:
        """Active, and (for business roles) working for an active member business."""
        if not self.is_active:
            return False
        if self.role in BUSINESS_ROLES:
            return self.business is not None and self.business.is_active
        return True


class StreetGroup(models.Model):
    class Kind(models.TextChoices):
        STREET = "street", "Street"
        AREA = "area", "Area"
        CUSTOM = "custom", "Custom"

    name = models.CharField(max_length=120, unique=True)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.CUSTOM)
    description = models.CharField(max_length=255, blank=True, default="")
    # A street group gathers every member business on its streets automatically.
    streets = models.ManyToManyField(Street, blank=True, related_name="street_groups")
    businesses = models.ManyToManyField(Business, blank=True, related_name="street_groups")
    retention_seconds = models.PositiveIntegerField(
        default=settings.GROUP_RETENTION_DEFAULT_SECONDS,
        validators=[
            MinValueValidator(settings.GROUP_RETENTION_MIN_SECONDS),
            MaxValueValidator(settings.GROUP_RETENTION_MAX_SECONDS),
        ],
    )
    created_at = models.DateTimeField(default=timezone.now)
    archived_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]
        constraints: ClassVar[list[Any]] = [
            models.CheckConstraint(
                condition=models.Q(
                    retention_seconds__gte=settings.GROUP_RETENTION_MIN_SECONDS,
                    retention_seconds__lte=settings.GROUP_RETENTION_MAX_SECONDS,
                ),
                name="streetgroup_retention_in_range",
            )
        ]

    def __str__(self) -> str:
        return self.name


class GroupMember(models.Model):
    """A person added to a group individually (wardens, officers), as opposed to through their business."""

    group = models.ForeignKey(StreetGroup, on_delete=models.CASCADE, related_name="individual_members")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="group_seats")
    is_moderator = models.BooleanField(default=False)
    added_at = models.DateTimeField(default=timezone.now)
    added_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        constraints: ClassVar[list[Any]] = [
            models.UniqueConstraint("group", "user", name="groupmember_unique")
        ]

    def __str__(self) -> str:
        return f"{self.user_id} in {self.group_id}"


class Invitation(models.Model):
    email = models.EmailField()
    full_name = models.CharField(max_length=120, blank=True, default="")
    role = models.CharField(max_length=20, choices=Role.choices)
    business = models.ForeignKey(Business, null=True, blank=True, on_delete=models.CASCADE, related_name="invitations")
    # Only a hash of the token is stored: a database leak does not leak usable links.
    token_hash = models.CharField(max_length=64, unique=True)
    invited_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Invitation {self.pk} ({self.get_role_display()})"

    @property
    def state(self) -> str:
        if self.accepted_at:
            return "accepted"
        if self.revoked_at:
            return "revoked"
        if self.expires_at <= timezone.now():
            return "expired"
        return "pending"


class Agreement(models.Model):
    class Kind(models.TextChoices):
        DATA_SHARING = "data_sharing", "Data-sharing agreement"
        CODE_OF_CONDUCT = "code_of_conduct", "Code of conduct"

    kind = models.CharField(max_length=20, choices=Kind.choices)
    version = models.PositiveIntegerField()
    title = models.CharField(max_length=160)
    body = models.TextField()
    published_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["kind", "-version"]
        constraints: ClassVar[list[Any]] = [
            models.UniqueConstraint("kind", "version", name="agreement_unique_version")
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} v{self.version}"


class AgreementAcceptance(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="acceptances")
    agreement = models.ForeignKey(Agreement, on_delete=models.PROTECT, related_name="acceptances")
    accepted_at = models.DateTimeField(default=timezone.now)
    ip_address = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        constraints: ClassVar[list[Any]] = [
            models.UniqueConstraint("user", "agreement", name="acceptance_unique")
        ]

    def __str__(self) -> str:
        return f"{self.user_id} accepted {self.agreement_id}"


class AuditEventQuerySet(models.QuerySet["AuditEvent"]):
    def update(self, **kwargs: Any) -> int:
        raise PermissionError("The audit trail is append-only")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise PermissionError("The audit trail is append-only")


class AuditEvent(models.Model):
    """Append-only: security events and every access by an authority user to someone else's personal data.

    Never holds passwords, tokens or message text. On PostgreSQL a trigger also refuses UPDATE and DELETE.
    """

    at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Kept as text too, so the record still says who it was if the account is ever removed.
    actor_label = models.CharField(max_length=255, blank=True, default="")
    action = models.CharField(max_length=60, db_index=True)
    object_type = models.CharField(max_length=60, blank=True, default="")
    object_id = models.CharField(max_length=64, blank=True, default="")
    subject = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    subject_label = models.CharField(max_length=255, blank=True, default="")
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=255, blank=True, default="")
    detail = models.JSONField(default=dict, blank=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.action}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None:
            raise PermissionError("The audit trail is append-only")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise PermissionError("The audit trail is append-only")
