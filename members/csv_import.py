"""Reading a BID levy roll: parse the CSV, check every line against the database, say what an import would do.

Nothing here writes; `members.services.levy_roll_import` does, after checking the same rows again.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from members.models import Business, Street

COLUMNS = ("levy_reference", "name", "trading_address", "street", "contact_name", "contact_email")
REQUIRED = ("levy_reference", "name", "trading_address", "street")
MAX_LENGTHS = {"levy_reference": 40, "name": 160, "trading_address": 255, "street": 120, "contact_name": 120,
               "contact_email": 254}
MAX_ROWS = 5000
MAX_BYTES = 2 * 1024 * 1024


@dataclass
class LevyRow:
    line: int
    levy_reference: str = ""
    name: str = ""
    trading_address: str = ""
    street: str = ""
    contact_name: str = ""
    contact_email: str = ""
    # What importing would do: "create", "update" or "unchanged"; empty while the line has errors.
    action: str = ""
    errors: list[str] = field(default_factory=list)

    def values(self) -> dict[str, Any]:
        """The line as read from the file (what the session keeps between preview and confirm)."""
        return {"line": self.line, **{column: getattr(self, column) for column in COLUMNS}}


@dataclass
class LevyPreview:
    rows: list[LevyRow]
    file_errors: list[str]
    create_streets: bool
    new_streets: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.file_errors and bool(self.rows) and not any(row.errors for row in self.rows)

    @property
    def error_count(self) -> int:
        return len(self.file_errors) + sum(1 for row in self.rows if row.errors)

    def counts(self) -> dict[str, int]:
        result = {"create": 0, "update": 0, "unchanged": 0}
        for row in self.rows:
            if row.action:
                result[row.action] += 1
        return result

    def digest(self) -> str:
        """Fingerprint of exactly what was previewed, so confirm imports that and nothing else."""
        payload = json.dumps([[row.values() for row in self.rows], self.create_streets], sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()


def _clean(value: Any) -> str:
    return " ".join(str(value).split()) if value is not None else ""


def levy_csv_parse(data: bytes) -> tuple[list[LevyRow], list[str]]:
    """Rows of a levy roll file and the problems with the file as a whole."""
    if len(data) > MAX_BYTES:
        return [], [f"The file is larger than {MAX_BYTES // (1024 * 1024)} MB."]
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return [], ["The file is not UTF-8 text. Save it from your spreadsheet as “CSV UTF-8”."]
    if not text.strip():
        return [], ["The file is empty."]
    reader = csv.DictReader(io.StringIO(text, newline=""), restkey="_extra")
    try:
        header = [(_clean(name)).lower() for name in (reader.fieldnames or [])]
    except csv.Error as exc:
        return [], [f"Line 1: the header cannot be read ({exc})."]
    reader.fieldnames = header
    missing = [column for column in COLUMNS if column not in header]
    unknown = [column for column in header if column not in COLUMNS]
    errors = []
    if missing:
        errors.append("Missing column(s): " + ", ".join(missing) + ". The first line must name the columns.")
    if unknown:
        errors.append("Unknown column(s): " + ", ".join(unknown) + ".")
    if errors:
        return [], errors
    rows: list[LevyRow] = []
    try:
        for record in reader:
            if len(rows) >= MAX_ROWS:
                return [], [f"The file has more than {MAX_ROWS} lines."]
            if not any(_clean(value) for key, value in record.items() if key != "_extra"):
                continue  # blank line
            row = LevyRow(line=reader.line_num, **{column: _clean(record.get(column)) for column in COLUMNS})
            row.contact_email = row.contact_email.lower()
            if record.get("_extra"):
                row.errors.append(f"Too many fields: expected {len(COLUMNS)}.")
            rows.append(row)
    except csv.Error as exc:
        return [], [f"Line {reader.line_num}: the file cannot be read as CSV ({exc})."]
    if not rows:
        errors.append("The file has a header but no businesses.")
    return rows, errors


def _street_index() -> dict[str, Street]:
    index: dict[str, Street] = {}
    for street in Street.objects.all():
        index[street.name.lower()] = street
        index[street.slug.lower()] = street
    return index


def levy_rows_check(rows: list[LevyRow], *, create_streets: bool) -> LevyPreview:
    """Check each line (fields, streets, duplicates, clashes with registered businesses) and plan its action."""
    streets = _street_index()
    new_streets: dict[str, str] = {}
    seen_refs: dict[str, int] = {}
    seen_places: dict[tuple[str, str], int] = {}
    # A town centre has hundreds of businesses, not millions: one read beats thousands of OR-ed lookups.
    existing = list(Business.objects.all())
    by_ref = {b.levy_reference.lower(): b for b in existing if b.levy_reference}
    by_place = {(b.name.lower(), b.trading_address.lower()): b for b in existing}

    for row in rows:
        row.errors = [e for e in row.errors if e.startswith("Too many fields")]
        row.action = ""
        blank = [column for column in REQUIRED if not getattr(row, column)]
        if blank:
            row.errors.append("Missing " + ", ".join(blank) + ".")
        for column, limit in MAX_LENGTHS.items():
            if len(getattr(row, column)) > limit:
                row.errors.append(f"{column} is longer than {limit} characters.")
        if row.contact_email:
            try:
                validate_email(row.contact_email)
            except ValidationError:
                row.errors.append(f"“{row.contact_email}” is not a valid email address.")
        ref = row.levy_reference.lower()
        if ref:
            if ref in seen_refs:
                row.errors.append(f"Duplicate levy reference {row.levy_reference}: also on line {seen_refs[ref]}.")
            else:
                seen_refs[ref] = row.line
        place = (row.name.lower(), row.trading_address.lower())
        if row.name and row.trading_address:
            if place in seen_places:
                row.errors.append(f"Same business name and address as line {seen_places[place]}.")
            else:
                seen_places[place] = row.line
        street = streets.get(row.street.lower())
        if row.street and street is None:
            if create_streets:
                new_streets.setdefault(row.street.lower(), row.street)
            else:
                row.errors.append(f"Unknown street “{row.street}”: tick “create new streets” to add it.")
        current = by_ref.get(ref) if ref else None
        same_place = by_place.get(place)
        if current is None and same_place is not None:
            if same_place.levy_reference:
                row.errors.append(f"{same_place.name} at {same_place.trading_address} is already registered "
                                  f"with levy reference {same_place.levy_reference}.")
            else:
                current = same_place  # a voluntary member that now pays the levy
        elif current is not None and same_place is not None and same_place.pk != current.pk:
            row.errors.append(f"Another registered business already has the name {same_place.name} "
                              f"at {same_place.trading_address}.")
        if row.errors:
            continue
        if current is None:
            row.action = "create"
        else:
            unchanged = (
                current.levy_reference == row.levy_reference and current.name == row.name
                and current.trading_address == row.trading_address
                and street is not None and current.street_id == street.pk
                and current.contact_name == row.contact_name and current.contact_email == row.contact_email
                and current.kind == Business.Kind.LEVY_PAYER
            )
            row.action = "unchanged" if unchanged else "update"
    return LevyPreview(rows=rows, file_errors=[], create_streets=create_streets,
                       new_streets=sorted(new_streets.values()))


def levy_rows_from_values(values: list[dict[str, Any]]) -> list[LevyRow]:
    """Rows back from what `LevyRow.values()` stored."""
    return [LevyRow(line=int(item["line"]), **{column: str(item.get(column, "")) for column in COLUMNS})
            for item in values]

