"""Who may do what with reports, files and cases. Object-level reads go through `access_*` in selectors."""

from __future__ import annotations

from members.models import Role, User
from reports.models import REPORT_AUTHORITY_ROLES, REPORTER_ROLES


def _active(user: User) -> bool:
    return bool(user.is_authenticated and user.is_active)


def can_file_report(user: User) -> bool:
    return _active(user) and user.role in REPORTER_ROLES and user.can_use_scheme


def is_report_authority(user: User) -> bool:
    """Case officers, police and BID admins: they see reports (police only shared ones) and who made them."""
    return _active(user) and user.role in REPORT_AUTHORITY_ROLES


def can_triage(user: User) -> bool:
    """Status, assignment, sharing with police and grouping into cases belong to the council's case officers."""
    return _active(user) and user.role == Role.CASE_OFFICER


def can_add_note(user: User) -> bool:
    return _active(user) and user.role in {Role.CASE_OFFICER, Role.POLICE}


def can_see_notes(user: User) -> bool:
    return is_report_authority(user)


def can_fetch_original(user: User) -> bool:
    """Originals keep their EXIF (time, camera, GPS): only case officers and police, as evidence."""
    return _active(user) and user.role in {Role.CASE_OFFICER, Role.POLICE}


def can_export_evidence(user: User) -> bool:
    return _active(user) and user.role in {Role.CASE_OFFICER, Role.POLICE}


def can_view_cases(user: User) -> bool:
    return is_report_authority(user)


def can_manage_cases(user: User) -> bool:
    return can_triage(user)
