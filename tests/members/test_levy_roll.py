"""Levy roll CSV import: preview with errors by line, confirm, all or nothing, idempotent re-import."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from members import services
from members.csv_import import levy_csv_parse
from members.models import AuditEvent, Business, Street
from tests.cast import Cast
from tests.members.layer import recording_layer

URL = "/bid/levy-roll/"
HEADER = "levy_reference,name,trading_address,street,contact_name,contact_email\n"
GOOD = HEADER + (
    "BID-0101,Drapery Deli,3 The Drapery,Gold Street,Dee Deli,dee@deli.example\n"
    "BID-0102,Market Square Cafe,1 Market Square,abington-street,,\n"
    "BID-0012,Gold Street Books,12 Gold Street,Gold Street,Alice Archer,ALICE@books.example\n"
)


def upload(client: Client, text: str | bytes, *, create_streets: bool = False) -> Any:
    data = text.encode() if isinstance(text, str) else text
    form: dict[str, Any] = {"step": "preview", "file": SimpleUploadedFile("roll.csv", data, "text/csv")}
    if create_streets:
        form["create_streets"] = "on"
    return client.post(URL, form)


def confirm(client: Client, response: Any) -> Any:
    return client.post(URL, {"step": "confirm", "digest": response.context["confirm"]["digest"].value()})


@pytest.fixture
def admin_client(cast: Cast, client: Client) -> Client:
    client.force_login(cast.admin)
    return client


def test_it_documents_the_columns(admin_client: Client) -> None:
    page = admin_client.get(URL)
    assert page.status_code == 200
    for column in ("levy_reference", "trading_address", "contact_email"):
        assert f"<code>{column}</code>".encode() in page.content


def test_it_previews_then_imports(cast: Cast, admin_client: Client) -> None:
    before = Business.objects.count()
    preview = upload(admin_client, GOOD)
    assert preview.status_code == 200
    assert b"3 lines ready: 2 new, 1 to update, 0 unchanged" in preview.content
    assert Business.objects.count() == before  # nothing saved until confirmed
    response = confirm(admin_client, preview)
    assert response.status_code == 302 and response["Location"] == reverse("members:businesses")
    deli = Business.objects.get(levy_reference="BID-0101")
    assert (deli.name, deli.street, deli.kind, deli.status, deli.contact_email) == (
        "Drapery Deli", cast.gold, "levy_payer", "active", "dee@deli.example")
    assert Business.objects.get(levy_reference="BID-0102").street == cast.abington
    cast.books.refresh_from_db()
    assert (cast.books.contact_name, cast.books.contact_email) == ("Alice Archer", "alice@books.example")
    event = AuditEvent.objects.get(action="levy_roll.import")
    assert (event.actor, event.detail["created"], event.detail["updated"]) == (cast.admin, 2, 1)
    assert b"Levy roll imported: 2 new, 1 updated" in admin_client.get(response["Location"]).content


def test_it_changes_nothing_when_the_same_roll_comes_again(cast: Cast, admin_client: Client) -> None:
    confirm(admin_client, upload(admin_client, GOOD))
    snapshot = list(Business.objects.order_by("pk").values())
    again = upload(admin_client, GOOD)
    assert b"3 lines ready: 0 new, 0 to update, 3 unchanged" in again.content
    assert confirm(admin_client, again).status_code == 302
    assert list(Business.objects.order_by("pk").values()) == snapshot


def test_it_lists_every_problem_by_line_and_imports_nothing(cast: Cast, admin_client: Client) -> None:
    text = HEADER + (
        "BID-0201,Good Line,5 Gold Street,Gold Street,,\n"          # line 2: fine
        ",No Reference,6 Gold Street,,,\n"                           # line 3: missing levy_reference, street
        "BID-0203,Bad Email,7 Gold Street,Gold Street,Bea,not-an-email\n"
        "BID-0201,Duplicate,8 Gold Street,Gold Street,,\n"           # line 5: duplicate reference
        "BID-0205,Nowhere Shop,1 Nowhere Lane,Nowhere Lane,,\n"      # line 6: unknown street
        "BID-0206,Abington Bakery,40 abington street,Abington Street,,\n"  # line 7: registered with BID-0040
        "BID-0207,Too Many,9 Gold Street,Gold Street,,,extra\n"      # line 8: an extra field
    )
    before = Business.objects.count()
    response = upload(admin_client, text)
    assert response.status_code == 400
    content = response.content.decode()
    for expected in (
        "Line 3: Missing levy_reference, street.",
        "Line 4: “not-an-email” is not a valid email address.",
        "Line 5: Duplicate levy reference BID-0201: also on line 2.",
        "Line 6: Unknown street “Nowhere Lane”: tick “create new streets” to add it.",
        "Line 7: Abington Bakery at 40 Abington Street is already registered with levy reference BID-0040.",
        "Line 8: Too many fields",
    ):
        assert expected in content, expected
    assert "6 lines have problems" in content
    assert 'name="digest"' not in content
    assert Business.objects.count() == before
    # Nor can a confirm sneak through without a clean preview.
    assert admin_client.post(URL, {"step": "confirm", "digest": "0" * 64}).status_code == 409
    assert Business.objects.count() == before


def test_it_creates_new_streets_only_when_asked(cast: Cast, admin_client: Client) -> None:
    text = HEADER + "BID-0301,Bridge Bar,2 Bridge Street,Bridge Street,,\n"
    assert upload(admin_client, text).status_code == 400
    preview = upload(admin_client, text, create_streets=True)
    assert preview.status_code == 200 and b"new streets: Bridge Street" in preview.content
    assert not Street.objects.filter(name="Bridge Street").exists()
    confirm(admin_client, preview)
    street = Street.objects.get(name="Bridge Street")
    assert street.slug == "bridge-street"
    assert Business.objects.get(levy_reference="BID-0301").street == street


def test_it_imports_exactly_what_was_previewed(cast: Cast, admin_client: Client) -> None:
    first = upload(admin_client, HEADER + "BID-0401,First Shop,1 Gold Street,Gold Street,,\n")
    second = upload(admin_client, HEADER + "BID-0402,Second Shop,2 Gold Street,Gold Street,,\n")
    # Confirming the first preview after another file was previewed is refused: it is no longer what is held.
    stale = confirm(admin_client, first)
    assert stale.status_code == 409 and b"no longer available" in stale.content
    assert not Business.objects.filter(levy_reference__in=["BID-0401", "BID-0402"]).exists()
    assert confirm(admin_client, second).status_code == 302
    assert list(Business.objects.filter(levy_reference__startswith="BID-04").values_list("name", flat=True)) == [
        "Second Shop"]
    # The preview is used up.
    assert confirm(admin_client, second).status_code == 409


def test_it_imports_nothing_when_the_businesses_changed_since_the_preview(cast: Cast, admin_client: Client) -> None:
    preview = upload(admin_client, GOOD)
    # Meanwhile the deli was registered under another reference.
    Business.objects.create(name="Drapery Deli", trading_address="3 The Drapery", street=cast.gold,
                            levy_reference="BID-0999", kind="levy_payer", status="active")
    response = confirm(admin_client, preview)
    assert response.status_code == 409
    assert b"Nothing was imported" in response.content and b"Line 2: Drapery Deli" in response.content
    assert not Business.objects.filter(levy_reference="BID-0102").exists()  # the good lines were not saved either
    cast.books.refresh_from_db()
    assert cast.books.contact_email == ""


def test_it_refuses_files_it_cannot_read(cast: Cast, admin_client: Client) -> None:
    not_utf8 = upload(admin_client, HEADER.encode() + "BID-1,Caf\xe9,1 Gold Street,Gold Street,,\n".encode("latin-1"))
    assert not_utf8.status_code == 400 and b"not UTF-8" in not_utf8.content
    no_header = upload(admin_client, "BID-1,Shop,1 Gold Street,Gold Street,,\n")
    assert no_header.status_code == 400 and b"Missing column(s)" in no_header.content
    empty = upload(admin_client, HEADER)
    assert empty.status_code == 400 and b"no businesses" in empty.content
    no_file = admin_client.post(URL, {"step": "preview"})
    assert no_file.status_code == 400 and b'id="id_file_error"' in no_file.content


def test_it_reads_a_spreadsheet_export(cast: Cast) -> None:
    rows, errors = levy_csv_parse(("\ufeff" + HEADER.upper().replace(",", ", ")
                                   + '"BID-9","Smith, Jones & Co","1  Gold Street",Gold Street,,\r\n\r\n').encode())
    assert errors == []
    assert [(r.line, r.levy_reference, r.name, r.trading_address) for r in rows] == [
        (2, "BID-9", "Smith, Jones & Co", "1 Gold Street")]


def test_it_tells_the_hub_when_a_business_moves_street(
    cast: Cast, settings: Any, django_capture_on_commit_callbacks: Any,
) -> None:
    layer = recording_layer(settings)
    preview = services.levy_roll_preview(
        data=(HEADER + "BID-0012,Gold Street Books,12 Gold Street,Abington Street,,\n").encode(), create_streets=False)
    assert preview.ok
    with django_capture_on_commit_callbacks(execute=True):
        services.levy_roll_import(actor=cast.admin, rows=preview.rows, create_streets=False)
    assert layer.membership_changes() == {
        (cast.alice.pk, cast.gold_group.pk, False), (cast.alice.pk, cast.abington_group.pk, True),
        (cast.bob.pk, cast.gold_group.pk, False), (cast.bob.pk, cast.abington_group.pk, True),
    }


def test_it_refuses_an_import_that_no_longer_checks_out(cast: Cast) -> None:
    preview = services.levy_roll_preview(data=GOOD.encode(), create_streets=False)
    Street.objects.filter(pk=cast.abington.pk).update(slug="abington")
    with pytest.raises(services.LevyRollInvalid) as caught:
        services.levy_roll_import(actor=cast.admin, rows=preview.rows, create_streets=False)
    assert [row.line for row in caught.value.preview.rows if row.errors] == [3]
    assert not Business.objects.filter(levy_reference__in=["BID-0101", "BID-0102"]).exists()


def test_it_checks_access(cast: Cast, client: Client) -> None:
    assert client.get(URL).status_code == 302
    for person in (cast.alice, cast.bob, cast.charlie, cast.warden, cast.officer, cast.police, cast.realm, cast.dpo):
        client.force_login(person)
        assert client.get(URL).status_code == 403
        assert upload(client, GOOD).status_code == 403
    assert not Business.objects.filter(levy_reference="BID-0101").exists()
