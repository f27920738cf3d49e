"""The audit trail is append-only and never holds secrets or message text."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, connection, transaction

from members.audit import audit_personal_data_access, audit_record
from members.models import AuditEvent
from tests.cast import Cast


def test_it_refuses_changes_through_the_orm(cast: Cast) -> None:
    event = audit_record(action="test.event", actor=cast.admin)
    event.action = "rewritten"
    with pytest.raises(PermissionError):
        event.save()
    with pytest.raises(PermissionError):
        event.delete()
    with pytest.raises(PermissionError):
        AuditEvent.objects.filter(pk=event.pk).update(action="rewritten")
    with pytest.raises(PermissionError):
        AuditEvent.objects.filter(pk=event.pk).delete()
    assert AuditEvent.objects.get(pk=event.pk).action == "test.event"


@pytest.mark.postgres
def test_it_refuses_changes_at_the_database_on_postgresql(cast: Cast) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("needs DATABASE_URL pointing at PostgreSQL (CI sets it)")
    event = audit_record(action="test.event", actor=cast.admin)
    for sql in ("UPDATE members_auditevent SET action = 'x' WHERE id = %s", "DELETE FROM members_auditevent WHERE id = %s"):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, [event.pk])
    assert AuditEvent.objects.get(pk=event.pk).action == "test.event"


def test_it_drops_secret_and_message_fields_from_details(cast: Cast) -> None:
    event = audit_record(
        action="test.event", actor=cast.admin,
        detail={"password": "hunter2", "token": "abc", "text": "lad in grey hoodie", "reason": "kept"},
    )
    assert event.detail == {"reason": "kept"}


def test_it_records_authority_reads_of_personal_data_only(cast: Cast) -> None:
    audit_personal_data_access(actor=cast.officer, object_type="report", object_id=7, subject=cast.alice)
    audit_personal_data_access(actor=cast.bob, object_type="report", object_id=7)
    events = list(AuditEvent.objects.filter(action="personal_data.view"))
    assert [(e.actor_id, e.subject_id, e.object_id) for e in events] == [(cast.officer.pk, cast.alice.pk, "7")]
    assert "Olivia Officer" in events[0].actor_label
