"""Changes to reports, their evidence, notes and cases. Views and the API only parse, check and call these."""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from chat import crypto as chat_crypto
from chat.services import FrankingClaim, chat_proof_verify
from members.audit import audit_record
from members.events import publish_on_commit, user_channel_group
from members.models import Role, Street, User
from reports import policies
from reports.images import ImageRefused, ProcessedImage, image_process
from reports.models import (
    KINDS,
    TRANSITIONS,
    Case,
    Note,
    Report,
    ReportFile,
    Source,
    Status,
    StatusChange,
)
from reports.pdf import pdf_from_lines
from reports.selectors import map_default_for, street_nearest

logger = logging.getLogger(__name__)

# Phones' clocks drift: a report a few minutes "in the future" is a clock, not a lie.
CLOCK_SKEW = timedelta(minutes=5)


class Upload(Protocol):
    """What an uploaded file offers (Django's UploadedFile, or anything alike in tests and chat promotion)."""

    name: str | None
    size: int | None

    def read(self, size: int = -1) -> bytes: ...


class UploadTooLarge(Exception):
    """The request or one file is over the configured cap: answered with 413, nothing is saved."""


@dataclass(frozen=True)
class Refusal:
    name: str
    reason: str

    @property
    def message(self) -> str:
        return f"{self.name or 'A file'} was not added: {self.reason}."


@dataclass
class ReportCreateResult:
    report: Report
    created: bool
    refused: list[Refusal] = field(default_factory=list)


def upload_limits() -> tuple[int, int, int]:
    """(bytes per image, images per report, bytes per request)."""
    return settings.REPORT_IMAGE_MAX_BYTES, settings.REPORT_MAX_IMAGES, settings.REPORT_UPLOAD_MAX_BYTES


def uploads_check_size(*, files: Sequence[Upload]) -> None:
    """Refuse (UploadTooLarge) any single file over the per-image cap, before anything is read or saved."""
    per_file, _, _ = upload_limits()
    for upload in files:
        if (upload.size or 0) > per_file:
            raise UploadTooLarge(
                f"{_clean_name(upload.name) or 'A file'} is {(upload.size or 0) / 1_048_576:.1f} MB; "
                f"each photo may be at most {per_file / 1_048_576:.0f} MB. Nothing was saved: "
                "send a smaller photo (or a screenshot of it)."
            )


def _clean_name(name: str | None) -> str:
    base = os.path.basename((name or "").replace("\\", "/"))
    return "".join(ch for ch in base if ch.isprintable())[:200]


def report_check(
    *, kind: str, description: str, occurred_at: datetime, occurred_until: datetime | None,
    latitude: Decimal | None, longitude: Decimal | None, now: datetime,
) -> None:
    """Raise ValidationError (by field) for anything a report may not say."""
    errors: dict[str, str] = {}
    if kind not in KINDS:
        errors["kind"] = "Choose what kind of incident this is."
    if not description.strip():
        errors["description"] = "Say in a sentence what happened."
    if timezone.is_naive(occurred_at):
        errors["occurred_at"] = "The time needs a time zone."
    elif occurred_at > now + CLOCK_SKEW:
        errors["occurred_at"] = "The time is in the future."
    if occurred_until is not None and "occurred_at" not in errors:
        if timezone.is_naive(occurred_until) or occurred_until > now + CLOCK_SKEW:
            errors["occurred_until"] = "The end of the window is in the future."
        elif occurred_until < occurred_at:
            errors["occurred_until"] = "The end of the window is before its start."
    if (latitude is None) != (longitude is None):
        errors["latitude"] = "A place needs both latitude and longitude."
    elif latitude is not None and longitude is not None:
        if not (-90 <= latitude <= 90) or not (-180 <= longitude <= 180):
            errors["latitude"] = "Those coordinates are not on Earth."
    if errors:
        raise ValidationError(errors)


def _addendum_target(*, addendum_to: int | None, kind: str) -> Report | None:
    if addendum_to is None:
        return None
    target = Report.objects.filter(pk=addendum_to).first()
    if target is not None and target.addendum_to_id is not None:
        target = target.addendum_to
    if target is None or target.status == Status.CLOSED or target.kind != kind:
        raise ValidationError({"addendum_to": "That report can no longer be added to: send yours as a new report."})
    return target


def _process_uploads(files: Sequence[Upload]) -> tuple[list[tuple[str, ProcessedImage]], list[Refusal]]:
    _, max_images, _ = upload_limits()
    accepted: list[tuple[str, ProcessedImage]] = []
    refused: list[Refusal] = []
    for upload in files:
        name = _clean_name(upload.name)
        if len(accepted) >= max_images:
            refused.append(Refusal(name, f"a report can carry at most {max_images} photos"))
            continue
        try:
            accepted.append((name, image_process(data=upload.read())))
        except ImageRefused as exc:
            refused.append(Refusal(name, str(exc)))
    return accepted, refused


def _store_images(
    *, report: Report, uploader: User, images: Iterable[tuple[str, ProcessedImage]], saved: list[str]
) -> None:
    for name, image in images:
        folder = f"reports/{report.pk}/{uuid.uuid4().hex}"
        paths = {}
        for variant, data, ext in (
            ("original", image.original, image.extension),
            ("display", image.display, "jpg"),
            ("thumb", image.thumb, "jpg"),
        ):
            stored = default_storage.save(f"{folder}/{variant}.{ext}", ContentFile(data))
            saved.append(stored)
            paths[variant] = stored
        ReportFile.objects.create(
            report=report, uploaded_by=uploader, original_name=name, content_type=image.content_type,
            size=len(image.original), sha256=image.sha256, width=image.width, height=image.height,
            original_path=paths["original"], display_path=paths["display"], thumb_path=paths["thumb"],
        )


def _delete_stored(names: Iterable[str]) -> None:
    for name in names:
        try:
            default_storage.delete(name)
        except OSError:
            logger.warning("could not remove an unsaved report file")


def report_create(
    *,
    reporter: User,
    kind: str,
    description: str,
    occurred_at: datetime | None = None,
    occurred_until: datetime | None = None,
    latitude: Decimal | None = None,
    longitude: Decimal | None = None,
    street: Street | None = None,
    place_note: str = "",
    people_description: str = "",
    client_id: uuid.UUID | None = None,
    addendum_to: int | None = None,
    files: Sequence[Upload] = (),
    source: str = Source.FORM,
    chat_proof: dict[str, Any] | None = None,
    verification: dict[str, Any] | None = None,
) -> ReportCreateResult:
    """File a report (or an addendum to an existing one) with its images; idempotent on `client_id`.

    Images that are not acceptable are refused with a reason while the rest of the report is kept. For
    promotion from chat, the caller verifies the proof first (chat's service) and passes `source=chat`,
    the proof as submitted and the verifier's result; this function stores them as they are.
    """
    if not policies.can_file_report(reporter):
        raise PermissionDenied("Your role cannot file reports.")
    client_id = client_id or uuid.uuid4()
    existing = Report.objects.filter(reporter=reporter, client_id=client_id).first()
    if existing is not None:
        return ReportCreateResult(report=existing, created=False)
    uploads_check_size(files=files)
    now = timezone.now()
    occurred_at = occurred_at or now
    report_check(
        kind=kind, description=description, occurred_at=occurred_at, occurred_until=occurred_until,
        latitude=latitude, longitude=longitude, now=now,
    )
    if source not in Source.values:
        raise ValidationError({"source": "Unknown source."})
    target = _addendum_target(addendum_to=addendum_to, kind=kind)
    if latitude is None and longitude is None and reporter.business and reporter.business.latitude is not None:
        latitude, longitude = (Decimal(str(v)) for v in map_default_for(user=reporter))
    if street is None and latitude is not None and longitude is not None:
        street = street_nearest(latitude=float(latitude), longitude=float(longitude))
    if street is None and reporter.business is not None:
        street = reporter.business.street
    accepted, refused = _process_uploads(files)
    saved: list[str] = []
    try:
        with transaction.atomic():
            report = Report.objects.create(
                reporter=reporter, reporter_business=reporter.business, client_id=client_id, kind=kind,
                occurred_at=occurred_at, occurred_until=occurred_until,
                latitude=None if latitude is None else round(latitude, 6),
                longitude=None if longitude is None else round(longitude, 6),
                street=street, place_note=place_note.strip()[:200], description=description.strip(),
                people_description=people_description.strip(), addendum_to=target,
                status=target.status if target else Status.NEW, source=source, chat_proof=chat_proof,
                verification=verification, created_at=now, status_changed_at=now, reporter_seen_at=now,
            )
            _store_images(report=report, uploader=reporter, images=accepted, saved=saved)
            audit_record(
                action="report.create", actor=reporter, object_type="report", object_id=report.pk,
                detail={"kind": kind, "files": len(accepted), "refused": len(refused), "addendum_to": addendum_to},
            )
    except IntegrityError:
        _delete_stored(saved)
        # The same outbox entry arrived twice at once: the other request created it.
        existing = Report.objects.filter(reporter=reporter, client_id=client_id).first()
        if existing is None:
            raise
        return ReportCreateResult(report=existing, created=False)
    except BaseException:
        _delete_stored(saved)
        raise
    return ReportCreateResult(report=report, created=True, refused=refused)


# --- promote a chat message (issue 5 item 5) ------------------------------------------------------------------


class ChatProofRefused(Exception):
    """The chat proof is malformed, altered or forged, or the reporter could not have read the message: the
    report is refused (400) and nothing is saved."""


@dataclass(frozen=True)
class ChatProof:
    group: int
    seq: int
    body: bytes
    key_material: bytes
    envelope: bytes
    franking: FrankingClaim | None

    def stored(self) -> dict[str, Any]:
        """The proof as kept with the report (so it can be checked again later)."""
        return {
            "group": self.group, "seq": self.seq, "body": chat_crypto.b64e(self.body),
            "key_material": chat_crypto.b64e(self.key_material),
            "envelope": base64.b64encode(self.envelope).decode("ascii"),
            "franking": None if self.franking is None else {
                "kid": self.franking.kid, "tag": chat_crypto.b64e(self.franking.tag),
                "server_time": self.franking.server_time,
            },
        }


def _proof_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= chat_crypto.MAX_SAFE_INTEGER:
        raise ChatProofRefused(f"The chat proof is malformed ({name}).")
    return value


def chat_proof_parse(value: Any) -> ChatProof:
    """Parse the proof as the report form sends it (JSON object or its text); ChatProofRefused if malformed.

    {"group", "seq", "body" (base64url, the exact decrypted body with fk), "key_material" (base64url, 64 bytes),
    "envelope" (standard base64, as in the hub frame), "franking": {"kid", "tag" (base64url), "server_time"}}
    """
    if isinstance(value, str | bytes):
        if len(value) > 4 * chat_crypto.MAX_ENVELOPE_BYTES:
            raise ChatProofRefused("The chat proof is too large.")
        try:
            value = json.loads(value)
        except ValueError:
            raise ChatProofRefused("The chat proof is malformed (not JSON).") from None
    if not isinstance(value, dict):
        raise ChatProofRefused("The chat proof is malformed.")
    try:
        body = chat_crypto.b64d(value.get("body"))
        key_material = chat_crypto.b64d(value.get("key_material"), 2 * chat_crypto.KEY_BYTES)
    except chat_crypto.E2EEError:
        raise ChatProofRefused("The chat proof is malformed (body or key).") from None
    text = value.get("envelope")
    try:
        envelope = base64.b64decode(text, validate=True) if isinstance(text, str) and text else b""
    except (binascii.Error, ValueError):
        envelope = b""
    if not envelope or len(envelope) > chat_crypto.MAX_ENVELOPE_BYTES or len(body) > chat_crypto.MAX_ENVELOPE_BYTES:
        raise ChatProofRefused("The chat proof is malformed (envelope).")
    raw_franking = value.get("franking")
    franking = None
    if raw_franking is not None:
        if not isinstance(raw_franking, dict) or not isinstance(raw_franking.get("kid"), str):
            raise ChatProofRefused("The chat proof is malformed (franking).")
        try:
            tag = chat_crypto.b64d(raw_franking.get("tag"), chat_crypto.MAC_BYTES)
        except chat_crypto.E2EEError:
            raise ChatProofRefused("The chat proof is malformed (franking tag).") from None
        franking = FrankingClaim(kid=raw_franking["kid"][:32], tag=tag,
                                 server_time=_proof_int(raw_franking.get("server_time"), "franking time"))
    return ChatProof(group=_proof_int(value.get("group"), "group"), seq=_proof_int(value.get("seq"), "seq"),
                     body=body, key_material=key_material, envelope=envelope, franking=franking)


def chat_proof_check(*, reporter: User, proof: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Verify a chat proof through chat's service: (proof as stored, verification as stored).

    Refused (ChatProofRefused): a malformed proof, any cryptographic mismatch or disagreement with the server's
    record (altered body, key, envelope, seq, group or tag), a reporter who is not a member of the group or
    could not read the message. Kept as "Unverified: <reason>": the message has left the server and no
    franking came with the proof, the server's franking key was destroyed (older than FRANKING_KEY_DAYS), or the
    sender's device is no longer known.
    """
    parsed = chat_proof_parse(proof)
    result = chat_proof_verify(
        reporter=reporter, group_id=parsed.group, seq=parsed.seq, body=parsed.body,
        message_key=parsed.key_material, envelope=parsed.envelope, franking=parsed.franking,
    )
    if result.refused:
        raise ChatProofRefused(f"The chat message could not be verified, so the report was not saved: {result.reason}")
    verification = {**result.as_verification(), "group": parsed.group, "seq": parsed.seq,
                    "checked_at": timezone.now().isoformat()}
    if result.verified:
        verification.update(text=result.text, group_name=result.group_name, sender=result.sender_name,
                            sent_at=result.sent_at.isoformat() if result.sent_at else None)
    return parsed.stored(), verification


def report_create_from_chat(*, reporter: User, chat_proof: Any, **fields: Any) -> ReportCreateResult:
    """File a report promoted from a chat message: verify its proof first (ChatProofRefused: nothing saved),
    then store the report with the proof and the verifier's result. Idempotent on `client_id` like report_create."""
    if not policies.can_file_report(reporter):
        raise PermissionDenied("Your role cannot file reports.")
    client_id = fields.get("client_id")
    if client_id is not None:
        existing = Report.objects.filter(reporter=reporter, client_id=client_id).first()
        if existing is not None:
            return ReportCreateResult(report=existing, created=False)
    stored, verification = chat_proof_check(reporter=reporter, proof=chat_proof)
    return report_create(reporter=reporter, source=Source.CHAT, chat_proof=stored, verification=verification,
                         **fields)


def _notify_reporters(report: Report, reporters: Iterable[tuple[int, int]]) -> None:
    for report_id, reporter_id in reporters:
        publish_on_commit(
            user_channel_group(reporter_id),
            {
                "type": "report.status",
                "report": report_id,
                "status": report.status,
                "label": report.get_status_display(),
                "at": report.status_changed_at.isoformat(),
            },
        )


def report_status_change(
    *, report: Report, actor: User, status: str, reason: str = "", assignee: User | None = None,
    request: Any = None,
) -> Report:
    """Move a report (and its addenda) to a new status; its reporters are told after commit."""
    if not policies.can_triage(actor):
        raise PermissionDenied("Only case officers change a report's status.")
    if report.addendum_to_id is not None:
        raise ValidationError({"status": "This adds to another report: change that report's status instead."})
    if status not in Status.values:
        raise ValidationError({"status": "Unknown status."})
    if status == report.status and status != Status.ASSIGNED:
        raise ValidationError({"status": f"The report is already {report.get_status_display().lower()}."})
    if status != report.status and status not in TRANSITIONS[report.status]:
        raise ValidationError(
            {"status": f"A {report.get_status_display().lower()} report cannot become {Status(status).label.lower()}."}
        )
    reason = reason.strip()
    if status == Status.CLOSED and not reason:
        raise ValidationError({"reason": "Say why the report is closed (the reporter sees this)."})
    if status == Status.ASSIGNED:
        assignee = assignee or report.assignee
        if assignee is None or assignee.role != Role.CASE_OFFICER or not assignee.is_active:
            raise ValidationError({"assignee": "Choose the case officer to assign it to."})
    now = timezone.now()
    with transaction.atomic():
        previous = report.status
        report.status, report.status_reason, report.status_changed_at = status, reason, now
        fields = ["status", "status_reason", "status_changed_at"]
        if status == Status.ASSIGNED:
            report.assignee = assignee
            fields.append("assignee")
        report.save(update_fields=fields)
        StatusChange.objects.create(report=report, from_status=previous, to_status=status, reason=reason, by=actor, at=now)
        report.addenda.update(status=status, status_reason=reason, status_changed_at=now)
        audit_record(
            action="report.status", actor=actor, subject=report.reporter, object_type="report", object_id=report.pk,
            request=request, detail={"from": previous, "to": status},
        )
        reporters = [(report.pk, report.reporter_id), *report.addenda.values_list("pk", "reporter_id")]
        _notify_reporters(report, reporters)
    return report


def report_assign(*, report: Report, actor: User, assignee: User, request: Any = None) -> Report:
    """Give a report to a case officer (it becomes 'assigned')."""
    return report_status_change(report=report, actor=actor, status=Status.ASSIGNED, assignee=assignee, request=request)


def report_share_with_police(*, report: Report, actor: User, shared: bool, request: Any = None) -> Report:
    """Share a report (with its addenda and files) with the police business-crime partnership, or stop."""
    if not policies.can_triage(actor):
        raise PermissionDenied("Only case officers share reports with the police.")
    with transaction.atomic():
        report.shared_with_police = shared
        report.save(update_fields=["shared_with_police"])
        audit_record(
            action="report.share_police" if shared else "report.unshare_police", actor=actor,
            subject=report.reporter, object_type="report", object_id=report.pk, request=request,
        )
    return report


def note_add(*, report: Report, author: User, text: str) -> Note:
    """Add an internal note (police: an intelligence note); never shown to the reporter."""
    if not policies.can_add_note(author):
        raise PermissionDenied("Your role cannot add notes.")
    text = text.strip()
    if not text:
        raise ValidationError({"text": "Write the note first."})
    kind = Note.Kind.INTELLIGENCE if author.role == Role.POLICE else Note.Kind.INTERNAL
    return Note.objects.create(report=report, author=author, kind=kind, text=text[:10_000])


def case_create(*, actor: User, title: str, about: str, description: str = "") -> Case:
    """Open a case about one person or place."""
    if not policies.can_manage_cases(actor):
        raise PermissionDenied("Only case officers open cases.")
    if not title.strip():
        raise ValidationError({"title": "Give the case a title."})
    if about not in Case.About.values:
        raise ValidationError({"about": "A case is about a person or a place."})
    with transaction.atomic():
        case = Case.objects.create(title=title.strip()[:160], about=about, description=description.strip(), created_by=actor)
        audit_record(action="case.create", actor=actor, object_type="case", object_id=case.pk)
    return case


def case_set_report(*, report: Report, case: Case | None, actor: User) -> Report:
    """Put a report into a case (or take it out, with case=None)."""
    if not policies.can_manage_cases(actor):
        raise PermissionDenied("Only case officers group reports into cases.")
    if case is not None and case.closed_at is not None:
        raise ValidationError({"case": "That case is closed."})
    with transaction.atomic():
        previous = report.case_id
        report.case = case
        report.save(update_fields=["case"])
        audit_record(
            action="case.report", actor=actor, object_type="report", object_id=report.pk,
            detail={"from_case": previous, "to_case": case.pk if case else None},
        )
    return report


def reports_mark_seen(*, reporter: User) -> None:
    """The reporter has looked at their reports: status changes up to now are no longer news to them."""
    Report.objects.filter(reporter=reporter, status_changed_at__gt=F("reporter_seen_at")).update(
        reporter_seen_at=timezone.now()
    )


def _dt(value: datetime | None) -> str:
    return timezone.localtime(value).strftime("%d %b %Y %H:%M %Z") if value else "-"


def evidence_pdf(*, report: Report, actor: User, request: Any = None) -> bytes:
    """The police evidence summary of a report: facts, status history and every file with its SHA-256."""
    if not policies.can_export_evidence(actor):
        raise PermissionDenied("Only case officers and police export evidence.")
    lines: list[tuple[str, bool]] = [
        (f"NTARS evidence summary: report {report.pk}", True),
        (f"Generated {_dt(timezone.now())} for {actor.full_name} ({actor.get_role_display()})", False),
        ("", False),
        ("Report", True),
        (f"Kind: {report.get_kind_display()} ({report.category.label})", False),
        (f"Occurred: {_dt(report.occurred_at)}" + (f" to {_dt(report.occurred_until)}" if report.occurred_until else ""), False),
        (f"Received: {_dt(report.created_at)}", False),
        (f"Street: {report.street or 'unknown'}; place: {report.place_note or '-'}", False),
        (f"Coordinates: {report.latitude}, {report.longitude}" if report.latitude is not None else "Coordinates: none", False),
        (f"Reporter: {report.reporter.full_name} <{report.reporter.email}>"
         + (f", {report.reporter_business.name}" if report.reporter_business else ""), False),
        (f"Source: {report.get_source_display()}", False),
        (f"Status: {report.get_status_display()}" + (f" ({report.status_reason})" if report.status_reason else ""), False),
        ("", False),
        ("What happened", True),
        (report.description, False),
    ]
    if report.people_description:
        lines += [("", False), ("People involved", True), (report.people_description, False)]
    related = [report, *report.addenda.select_related("reporter").order_by("created_at")]
    lines += [("", False), ("Files (SHA-256 of each file exactly as received)", True)]
    count = 0
    for item in ReportFile.objects.filter(report__in=related).order_by("report_id", "id"):
        count += 1
        lines.append(
            (f"{count}. report {item.report_id}, {item.original_name or 'unnamed'}, {item.content_type}, "
             f"{item.size} bytes, {item.width}x{item.height}, received {_dt(item.created_at)}", False)
        )
        lines.append((f"   SHA-256 {item.sha256}", False))
    if not count:
        lines.append(("No files.", False))
    for addendum in related[1:]:
        lines += [
            ("", False),
            (f"Addendum {addendum.pk} by {addendum.reporter.full_name}, {_dt(addendum.occurred_at)}", True),
            (addendum.description, False),
        ]
    lines += [("", False), ("Status history", True)]
    lines += [
        (f"{_dt(change.at)}: {change.from_status} -> {change.to_status}" + (f" ({change.reason})" if change.reason else ""), False)
        for change in report.status_changes.all()
    ] or [("No changes yet.", False)]
    with transaction.atomic():
        audit_record(
            action="report.export", actor=actor, subject=report.reporter, object_type="report",
            object_id=report.pk, request=request, detail={"files": count},
        )
    return pdf_from_lines(title=f"NTARS report {report.pk}", lines=lines)

