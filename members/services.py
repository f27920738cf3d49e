"""Members domain writes: applications, levy roll, invitations, agreements, removals, street groups.

Keyword-only and typed; each runs in one transaction and writes its audit event in it. Emails and hub events go
out only after the transaction commits.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.text import slugify

from members.audit import audit_record
from members.csv_import import LevyPreview, LevyRow, levy_csv_parse, levy_rows_check
from members.events import publish_on_commit, user_channel_group
from members.models import (
    BUSINESS_ROLES,
    Agreement,
    AgreementAcceptance,
    Business,
    GroupMember,
    Invitation,
    Role,
    Street,
    StreetGroup,
    User,
)
from members.policies import (
    can_be_group_member,
    check_can_invite,
    check_can_remove,
    check_can_revoke,
    invitation_check,
    invitation_token_hash,
)
from members.selectors import street_group_members, street_groups_of_user
from members.sessions import user_sessions_end_all

# --- Helpers ------------------------------------------------------------------------------------------


def _mail_on_commit(*, to: str, subject: str, body: str) -> None:
    """Send one plain-text email once the transaction commits (never for a change that rolled back)."""
    if not to:
        return
    transaction.on_commit(
        lambda: send_mail(f"[NTARS] {subject}", body, settings.DEFAULT_FROM_EMAIL, [to], fail_silently=False)
    )


def _membership_publish(*, user_id: int, group_id: int, member: bool) -> None:
    """Tell the user's open sockets that they joined or left a group, so the hub starts or stops delivery."""
    publish_on_commit(user_channel_group(user_id), {"type": "membership.changed", "group": group_id, "member": member})


def _group_member_ids(group: StreetGroup) -> set[int]:
    if group.pk is None or group.archived_at is not None:
        return set()
    return set(street_group_members(group=group).values_list("pk", flat=True))


def _group_diff_publish(*, group_id: int, before: set[int], after: set[int]) -> None:
    for user_id in sorted(before - after):
        _membership_publish(user_id=user_id, group_id=group_id, member=False)
    for user_id in sorted(after - before):
        _membership_publish(user_id=user_id, group_id=group_id, member=True)


def _groups_by_user(user_ids: Iterable[int]) -> dict[int, set[int]]:
    """The groups each of these people is in right now."""
    result: dict[int, set[int]] = {}
    for user in User.objects.filter(pk__in=list(user_ids)).select_related("business"):
        result[user.pk] = set(street_groups_of_user(user=user).values_list("pk", flat=True))
    return result


def _user_diff_publish(*, before: dict[int, set[int]], user_ids: Iterable[int]) -> None:
    after = _groups_by_user(user_ids)
    for user_id in sorted(set(before) | set(after)):
        old, new = before.get(user_id, set()), after.get(user_id, set())
        for group_id in sorted(old - new):
            _membership_publish(user_id=user_id, group_id=group_id, member=False)
        for group_id in sorted(new - old):
            _membership_publish(user_id=user_id, group_id=group_id, member=True)


def _reason(reason: str) -> str:
    return " ".join(reason.split())[:255]


# --- Applications -------------------------------------------------------------------------------------

DUPLICATE_BUSINESS = ("A business with this name and trading address is already registered or has applied. "
                      "If you think this is wrong, contact the BID office.")


@transaction.atomic
def business_apply(
    *, name: str, trading_address: str, street: Street, contact_name: str, contact_email: str,
    contact_phone: str = "", ip_address: str | None = None,
) -> Business:
    """Record a public application for voluntary membership."""
    name, trading_address = " ".join(name.split()), " ".join(trading_address.split())
    fields = {"street": street, "contact_name": contact_name.strip(), "contact_email": contact_email.strip().lower(),
              "contact_phone": contact_phone.strip(), "kind": Business.Kind.VOLUNTARY,
              "status": Business.Status.APPLIED, "created_at": timezone.now(), "decided_at": None,
              "decided_by": None, "decision_reason": ""}
    existing = Business.objects.select_for_update().filter(name__iexact=name, trading_address__iexact=trading_address)
    previous = existing.first()
    if previous is not None and previous.status != Business.Status.REJECTED:
        raise ValidationError({"name": DUPLICATE_BUSINESS})
    if previous is not None:
        # A rejected applicant may apply again: the same record is reopened.
        for key, value in fields.items():
            setattr(previous, key, value)
        previous.save(update_fields=list(fields))
        business = previous
    else:
        try:
            with transaction.atomic():
                business = Business.objects.create(name=name, trading_address=trading_address, **fields)
        except IntegrityError:
            raise ValidationError({"name": DUPLICATE_BUSINESS}) from None
    audit_record(action="business.apply", object_type="business", object_id=business.pk, ip_address=ip_address,
                 detail={"name": business.name, "street": street.name})
    return business


def _decide(*, actor: User, business: Business, status: str, reason: str) -> None:
    if business.status != Business.Status.APPLIED:
        raise ValidationError("This application has already been decided.")
    business.status = status
    business.decided_at = timezone.now()
    business.decided_by = actor
    business.decision_reason = _reason(reason)
    business.save(update_fields=["status", "decided_at", "decided_by", "decision_reason"])


@dataclass
class Approval:
    business: Business
    invitation: Invitation | None  # None when the contact already has an account


@transaction.atomic
def business_approve(*, actor: User, business: Business, reason: str = "") -> Approval:
    """Approve an application: the business becomes active and its contact is invited as manager."""
    business = Business.objects.select_for_update().get(pk=business.pk)
    _decide(actor=actor, business=business, status=Business.Status.ACTIVE, reason=reason)
    audit_record(action="business.approve", actor=actor, object_type="business", object_id=business.pk,
                 detail={"name": business.name, "reason": business.decision_reason})
    _mail_on_commit(
        to=business.contact_email, subject=f"{business.name}: your NTARS membership is approved",
        body=(f"Dear {business.contact_name},\n\n{business.name} is now a voluntary member of NTARS."
              + (f"\n\n{business.decision_reason}" if business.decision_reason else "")
              + "\n\nA separate email brings your invitation to sign in as the business's manager.\n"),
    )
    invitation = None
    if not User.objects.filter(email__iexact=business.contact_email).exists():
        invitation = invitation_create(actor=actor, email=business.contact_email, role=Role.MANAGER,
                                       business=business, full_name=business.contact_name).invitation
    return Approval(business=business, invitation=invitation)


@transaction.atomic
def business_reject(*, actor: User, business: Business, reason: str) -> Business:
    """Reject an application, telling the contact why."""
    if not reason.strip():
        raise ValidationError({"reason": "Give a reason: it is sent to the applicant."})
    business = Business.objects.select_for_update().get(pk=business.pk)
    _decide(actor=actor, business=business, status=Business.Status.REJECTED, reason=reason)
    audit_record(action="business.reject", actor=actor, object_type="business", object_id=business.pk,
                 detail={"name": business.name, "reason": business.decision_reason})
    _mail_on_commit(
        to=business.contact_email, subject=f"{business.name}: your NTARS application",
        body=(f"Dear {business.contact_name},\n\nWe cannot accept {business.name} as a member of NTARS at the "
              f"moment.\n\nReason: {business.decision_reason}\n\nReply to this email if you have questions.\n"),
    )
    return business


# --- Business status ----------------------------------------------------------------------------------


@transaction.atomic
def business_suspend(*, actor: User, business: Business, reason: str) -> Business:
    """Suspend a member business: all its people are signed out at once and leave their groups."""
    if not reason.strip():
        raise ValidationError({"reason": "Give a reason for the suspension."})
    business = Business.objects.select_for_update().get(pk=business.pk)
    if business.status != Business.Status.ACTIVE:
        raise ValidationError("Only an active business can be suspended.")
    people = list(business.people.values_list("pk", flat=True))
    before = _groups_by_user(people)
    business.status = Business.Status.SUSPENDED
    business.save(update_fields=["status"])
    for user_id in people:
        user_sessions_end_all(user_id=user_id, reason="business_suspended")
    _user_diff_publish(before=before, user_ids=people)
    audit_record(action="business.suspend", actor=actor, object_type="business", object_id=business.pk,
                 detail={"name": business.name, "reason": _reason(reason), "from": "active"})
    return business


@transaction.atomic
def business_reinstate(*, actor: User, business: Business, reason: str) -> Business:
    """Make a suspended or lapsed business active again; its people rejoin their street's groups."""
    if not reason.strip():
        raise ValidationError({"reason": "Give a reason for reinstating the business."})
    business = Business.objects.select_for_update().get(pk=business.pk)
    if business.status not in {Business.Status.SUSPENDED, Business.Status.LAPSED}:
        raise ValidationError("Only a suspended or lapsed business can be reinstated.")
    previous = business.status
    people = list(business.people.values_list("pk", flat=True))
    before = _groups_by_user(people)
    business.status = Business.Status.ACTIVE
    business.save(update_fields=["status"])
    _user_diff_publish(before=before, user_ids=people)
    audit_record(action="business.reinstate", actor=actor, object_type="business", object_id=business.pk,
                 detail={"name": business.name, "reason": _reason(reason), "from": previous})
    return business


# --- Levy roll ----------------------------------------------------------------------------------------


class LevyRollInvalid(Exception):
    def __init__(self, preview: LevyPreview) -> None:
        super().__init__(f"{preview.error_count} problem(s) in the levy roll")
        self.preview = preview


def levy_roll_preview(*, data: bytes, create_streets: bool) -> LevyPreview:
    """What importing this file would do, line by line, with every problem found. Writes nothing."""
    rows, file_errors = levy_csv_parse(data)
    if file_errors:
        return LevyPreview(rows=rows, file_errors=file_errors, create_streets=create_streets)
    return levy_rows_check(rows, create_streets=create_streets)


@dataclass
class LevyImportResult:
    created: int
    updated: int
    unchanged: int
    streets_created: int


@transaction.atomic
def levy_roll_import(*, actor: User, rows: list[LevyRow], create_streets: bool) -> LevyImportResult:
    """Import a previewed levy roll: all lines or none. Lines update businesses with the same levy reference."""
    # Lock the table's rows so a second import or an application cannot interleave with this one.
    list(Business.objects.select_for_update().values_list("pk", flat=True))
    preview = levy_rows_check(rows, create_streets=create_streets)
    if not preview.ok:
        raise LevyRollInvalid(preview)
    streets = {s.name.lower(): s for s in Street.objects.all()} | {s.slug.lower(): s for s in Street.objects.all()}
    streets_created = 0
    for name in preview.new_streets:
        street = Street.objects.create(name=name, slug=_unique_street_slug(name))
        streets[name.lower()] = street
        streets_created += 1
    businesses = list(Business.objects.all())
    by_ref = {b.levy_reference.lower(): b for b in businesses if b.levy_reference}
    by_place = {(b.name.lower(), b.trading_address.lower()): b for b in businesses}
    def current(row: LevyRow) -> Business:
        return by_ref.get(row.levy_reference.lower()) or by_place[(row.name.lower(), row.trading_address.lower())]

    # People of a business that moves street change groups: snapshot their groups before the move.
    movers = [b.pk for row in preview.rows if row.action == "update"
              for b in [current(row)] if b.street_id != streets[row.street.lower()].pk]
    people = list(User.objects.filter(business__in=movers).values_list("pk", flat=True))
    before = _groups_by_user(people)
    for row in preview.rows:
        values = {"levy_reference": row.levy_reference, "name": row.name, "trading_address": row.trading_address,
                  "street": streets[row.street.lower()], "contact_name": row.contact_name,
                  "contact_email": row.contact_email.lower(), "kind": Business.Kind.LEVY_PAYER}
        if row.action == "create":
            Business.objects.create(status=Business.Status.ACTIVE, **values)
        elif row.action == "update":
            business = current(row)
            for key, value in values.items():
                setattr(business, key, value)
            business.save(update_fields=list(values))
    _user_diff_publish(before=before, user_ids=people)
    counts = preview.counts()
    result = LevyImportResult(created=counts["create"], updated=counts["update"], unchanged=counts["unchanged"],
                              streets_created=streets_created)
    audit_record(action="levy_roll.import", actor=actor, object_type="levy_roll",
                 detail={"created": result.created, "updated": result.updated, "unchanged": result.unchanged,
                         "streets_created": streets_created, "lines": len(preview.rows)})
    return result


def _unique_street_slug(name: str) -> str:
    base = slugify(name)[:100] or "street"
    slug, n = base, 2
    while Street.objects.filter(slug=slug).exists():
        slug, n = f"{base}-{n}", n + 1
    return slug


# --- Invitations --------------------------------------------------------------------------------------


@dataclass
class InvitationIssued:
    invitation: Invitation
    url: str  # holds the token: show it to nobody but the invitee, never log it


@transaction.atomic
def invitation_create(
    *, actor: User, email: str, role: str, business: Business | None = None, full_name: str = "",
) -> InvitationIssued:
    """Invite someone by email to join in a role; the single-use link expires after INVITATION_DAYS."""
    email = email.strip().lower()
    if role not in BUSINESS_ROLES:
        business = None
    check_can_invite(actor=actor, role=role, business=business)
    if role in BUSINESS_ROLES and business is None:
        raise ValidationError({"business": "Choose the business this person works for."})
    if business is not None and not business.is_active:
        raise ValidationError({"business": "This business is not an active member."})
    if User.objects.filter(email__iexact=email).exists():
        raise ValidationError({"email": "Someone with this email address already has an NTARS account."})
    now = timezone.now()
    # A new invitation replaces any still-pending one for the same address and business.
    Invitation.objects.filter(email__iexact=email, business=business, accepted_at__isnull=True,
                              revoked_at__isnull=True).update(revoked_at=now)
    token = secrets.token_urlsafe(32)
    invitation = Invitation.objects.create(
        email=email, full_name=full_name.strip(), role=role, business=business,
        token_hash=invitation_token_hash(token), invited_by=actor, created_at=now,
        expires_at=now + timedelta(days=settings.INVITATION_DAYS),
    )
    url = settings.SITE_URL + reverse("members:invitation_accept", args=[token])
    where = f" at {business.name}" if business else ""
    _mail_on_commit(
        to=email, subject="You are invited to NTARS",
        body=(f"Hello {invitation.full_name or ''},\n\n{actor.full_name} invites you to join NTARS, the town "
              f"centre's crime and anti-social behaviour reporting scheme, as {invitation.get_role_display()}"
              f"{where}.\n\nOpen this link to choose your password (it works once and expires in "
              f"{settings.INVITATION_DAYS} days):\n\n{url}\n\nIf you did not expect this, ignore this email.\n"),
    )
    audit_record(action="invitation.create", actor=actor, object_type="invitation", object_id=invitation.pk,
                 detail={"email": email, "role": role, "business": business.pk if business else None})
    return InvitationIssued(invitation=invitation, url=url)


@transaction.atomic
def invitation_accept(*, token: str, full_name: str, password: str, ip_address: str | None = None) -> User:
    """Create the invited person's account from a pending invitation; the link is used up."""
    invitation = invitation_check(
        Invitation.objects.select_for_update(of=("self",)).select_related("business")
        .filter(token_hash=invitation_token_hash(token)).first()
    )
    full_name = " ".join(full_name.split())
    if not full_name:
        raise ValidationError({"full_name": "Enter your name."})
    if User.objects.filter(email__iexact=invitation.email).exists():
        raise ValidationError(f"An account for {invitation.email} already exists: sign in instead.")
    candidate = User(email=invitation.email, full_name=full_name, role=invitation.role)
    try:
        validate_password(password, user=candidate)
    except ValidationError as exc:
        raise ValidationError({"password1": exc.messages}) from None
    user = User.objects.create_user(invitation.email, password, full_name=full_name, role=invitation.role,
                                    business=invitation.business)
    invitation.accepted_at = timezone.now()
    invitation.accepted_user = user
    invitation.save(update_fields=["accepted_at", "accepted_user"])
    audit_record(action="invitation.accept", actor=user, subject=user, object_type="invitation",
                 object_id=invitation.pk, ip_address=ip_address,
                 detail={"role": invitation.role, "business": invitation.business_id})
    return user


@transaction.atomic
def invitation_revoke(*, actor: User, invitation: Invitation) -> None:
    """Withdraw a pending invitation so its link stops working."""
    check_can_revoke(actor=actor, invitation=invitation)
    invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
    if invitation.state != "pending":
        raise ValidationError("This invitation is no longer pending.")
    invitation.revoked_at = timezone.now()
    invitation.save(update_fields=["revoked_at"])
    audit_record(action="invitation.revoke", actor=actor, object_type="invitation", object_id=invitation.pk,
                 detail={"email": invitation.email, "role": invitation.role})


# --- Agreements ---------------------------------------------------------------------------------------


@transaction.atomic
def agreements_accept(*, user: User, agreements: list[Agreement], ip_address: str | None) -> None:
    """Record that the user accepted these agreement versions."""
    for agreement in agreements:
        AgreementAcceptance.objects.get_or_create(user=user, agreement=agreement, defaults={"ip_address": ip_address})
        audit_record(action="agreement.accept", actor=user, object_type="agreement", object_id=agreement.pk,
                     ip_address=ip_address, detail={"kind": agreement.kind, "version": agreement.version})


@transaction.atomic
def agreement_publish(*, actor: User, kind: str, title: str, body: str) -> Agreement:
    """Publish a new version of an agreement: everyone is asked to accept it on their next request."""
    if kind not in Agreement.Kind.values:
        raise ValidationError({"kind": "Choose which document this is."})
    if not title.strip() or not body.strip():
        raise ValidationError("An agreement needs a title and a text.")
    # Locking the existing versions serialises two admins publishing at once.
    # (PostgreSQL refuses FOR UPDATE with an aggregate, so lock the rows and take the maximum here.)
    latest = max(Agreement.objects.select_for_update().filter(kind=kind).values_list("version", flat=True), default=0)
    agreement = Agreement.objects.create(kind=kind, version=latest + 1, title=title.strip(), body=body.strip())
    audit_record(action="agreement.publish", actor=actor, object_type="agreement", object_id=agreement.pk,
                 detail={"kind": kind, "version": agreement.version})
    return agreement


# --- People -------------------------------------------------------------------------------------------


@transaction.atomic
def user_disable(*, actor: User, user: User, reason: str) -> None:
    """Disable a person's account: their sessions end and their open sockets close at once."""
    before = _groups_by_user([user.pk])
    user.is_active = False
    user.disabled_at = timezone.now()
    user.disabled_reason = reason[:255]
    user.save(update_fields=["is_active", "disabled_at", "disabled_reason"])
    user_sessions_end_all(user_id=user.pk, reason="account_disabled")
    _user_diff_publish(before=before, user_ids=[user.pk])
    audit_record(action="user.disable", actor=actor, subject=user, object_type="user", object_id=user.pk,
                 detail={"reason": reason[:255]})


@transaction.atomic
def person_disable(*, actor: User, user: User, reason: str) -> None:
    """A BID admin disables someone's access (anyone but themselves)."""
    check_can_remove(actor=actor, user=user)
    if not reason.strip():
        raise ValidationError({"reason": "Give a reason: it is kept in the audit trail."})
    if not user.is_active:
        raise ValidationError("This person is already disabled.")
    user_disable(actor=actor, user=user, reason=_reason(reason))


@transaction.atomic
def staff_remove(*, actor: User, user: User, reason: str = "") -> None:
    """A manager removes someone from their own business's team: the account is disabled at once."""
    check_can_remove(actor=actor, user=user)
    if not user.is_active:
        raise ValidationError("This person has already been removed.")
    user_disable(actor=actor, user=user, reason=_reason(reason) or f"Removed from {user.business} by {actor}")


@transaction.atomic
def user_enable(*, actor: User, user: User) -> None:
    """Give a disabled person their access back (they sign in again)."""
    check_can_remove(actor=actor, user=user)
    if user.is_active:
        raise ValidationError("This person is already active.")
    user.is_active = True
    user.disabled_at = None
    user.disabled_reason = ""
    user.save(update_fields=["is_active", "disabled_at", "disabled_reason"])
    _user_diff_publish(before={user.pk: set()}, user_ids=[user.pk])
    audit_record(action="user.enable", actor=actor, subject=user, object_type="user", object_id=user.pk)


# --- Street groups ------------------------------------------------------------------------------------


@transaction.atomic
def street_group_save(
    *, actor: User, group: StreetGroup | None, name: str, kind: str, description: str = "",
    streets: Iterable[Street] = (), businesses: Iterable[Business] = (), retention_seconds: int,
    archived: bool = False,
) -> StreetGroup:
    """Create or change a street group; everyone who joins or leaves it is told at once."""
    name = " ".join(name.split())
    errors: dict[str, str] = {}
    if not name:
        errors["name"] = "Give the group a name."
    elif StreetGroup.objects.filter(name__iexact=name).exclude(pk=group.pk if group else None).exists():
        errors["name"] = "Another group already has this name."
    if kind not in StreetGroup.Kind.values:
        errors["kind"] = "Choose street, area or custom."
    if not settings.GROUP_RETENTION_MIN_SECONDS <= retention_seconds <= settings.GROUP_RETENTION_MAX_SECONDS:
        errors["retention_value"] = "Keep messages for between 1 hour and 90 days."
    if errors:
        raise ValidationError(errors)
    creating = group is None
    if group is None:
        group = StreetGroup()
    else:
        group = StreetGroup.objects.select_for_update().get(pk=group.pk)
    before = _group_member_ids(group)
    group.name, group.kind, group.description = name, kind, description.strip()[:255]
    group.retention_seconds = retention_seconds
    if archived and group.archived_at is None:
        group.archived_at = timezone.now()
    elif not archived:
        group.archived_at = None
    group.save()
    group.streets.set(list(streets))
    group.businesses.set(list(businesses))
    _group_diff_publish(group_id=group.pk, before=before, after=_group_member_ids(group))
    audit_record(
        action="group.create" if creating else "group.update", actor=actor, object_type="street_group",
        object_id=group.pk,
        detail={"name": name, "kind": kind, "retention_seconds": retention_seconds, "archived": archived,
                "streets": sorted(group.streets.values_list("pk", flat=True)),
                "businesses": sorted(group.businesses.values_list("pk", flat=True))},
    )
    return group


@transaction.atomic
def group_member_add(*, actor: User, group: StreetGroup, user: User, is_moderator: bool = False) -> GroupMember:
    """Seat a warden or officer in a group (or change their moderator flag)."""
    if not can_be_group_member(user):
        raise ValidationError({"user": "Only active wardens, officers and BID admins are added individually."})
    before = _group_member_ids(group)
    member, created = GroupMember.objects.get_or_create(
        group=group, user=user, defaults={"is_moderator": is_moderator, "added_by": actor}
    )
    if not created and member.is_moderator != is_moderator:
        member.is_moderator = is_moderator
        member.save(update_fields=["is_moderator"])
    _group_diff_publish(group_id=group.pk, before=before, after=_group_member_ids(group))
    audit_record(action="group.member_add" if created else "group.member_change", actor=actor, subject=user,
                 object_type="street_group", object_id=group.pk, detail={"moderator": is_moderator})
    return member


@transaction.atomic
def group_member_remove(*, actor: User, member: GroupMember) -> None:
    """Take an individually added person out of a group; their sockets stop receiving it at once."""
    group = member.group
    before = _group_member_ids(group)
    user = member.user
    member.delete()
    _group_diff_publish(group_id=group.pk, before=before, after=_group_member_ids(group))
    audit_record(action="group.member_remove", actor=actor, subject=user, object_type="street_group",
                 object_id=group.pk)
